package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds bin/vitrine into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "vitrine")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)

	t.Run("bad configuration stops the start and names the variable", func(t *testing.T) {
		for env, name := range map[string]string{
			"VITRINE_ADDR=nonsense":         "VITRINE_ADDR",
			"VITRINE_WORKERS=zero":          "VITRINE_WORKERS",
			"VITRINE_JOB_TIMEOUT=-1s":       "VITRINE_JOB_TIMEOUT",
			"VITRINE_LOG_FORMAT=xml":        "VITRINE_LOG_FORMAT",
			"VITRINE_MAX_UPLOAD_BYTES=25TB": "VITRINE_MAX_UPLOAD_BYTES",
			"VITRINE_PUBLIC_URL=ftp://x/y":  "VITRINE_PUBLIC_URL",
			// A split brain: a cluster node on SQLite and local files.
			"VITRINE_CLUSTER_PEERS=127.0.0.1:6330": "VITRINE_POSTGRES_URL",
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a start that is not refused ends too
			cmd := exec.CommandContext(ctx, bin, "serve")
			// Without the real servers that make test puts in the
			// environment (the last value of a variable wins).
			cmd.Env = append(os.Environ(), "VITRINE_POSTGRES_URL=", "VITRINE_S3_ENDPOINT=", "VITRINE_S3_BUCKET=",
				env, "VITRINE_DATA_DIR="+t.TempDir())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			cancel()
			if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
				t.Errorf("%s: exit %d, want 1", env, code)
			}
			if !strings.Contains(stderr.String(), name) {
				t.Errorf("%s: stderr does not name %s:\n%s", env, name, stderr.String())
			}
		}
	})

	t.Run("SIGTERM shuts down gracefully", func(t *testing.T) {
		addr := freePort(t)
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "VITRINE_ADDR="+addr, "VITRINE_DATA_DIR="+t.TempDir(), "VITRINE_LOG_FORMAT=json")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready after 30s:\n%s", stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("still running 30s after SIGTERM:\n%s", stderr.String())
		}
		logs := stderr.String()
		for _, want := range []string{`"msg":"vitrine started"`, `"msg":"shutting down"`, `"msg":"stopped"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("log lacks %s:\n%s", want, logs)
			}
		}
	})
}

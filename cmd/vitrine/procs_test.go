//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// servicesScript is scripts/services.
func servicesScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "services")
}

// ownServices are servers this test starts for itself, with their own
// state directory and ports, so that it may restart them without
// disturbing anyone else's: never the shared ones.
type ownServices struct {
	t     testing.TB
	names []string
	env   []string          // VITRINE_SERVICES_* of this instance
	vars  map[string]string // what `up` exported: VITRINE_POSTGRES_URL…
}

// startOwnServices starts names (postgres, redis, kafka, s3) on free ports
// under a state directory of the test's; they are stopped and wiped at
// the end. Downloads come from the shared cache.
func startOwnServices(t testing.TB, names ...string) *ownServices {
	t.Helper()
	return startOwnServicesWith(t, nil, names...)
}

// startOwnServicesWith is startOwnServices with more VITRINE_SERVICES_*
// settings (NAME=value), such as VITRINE_SERVICES_KAFKA_BROKERS=3.
func startOwnServicesWith(t testing.TB, extra []string, names ...string) *ownServices {
	t.Helper()
	home, err := os.MkdirTemp("", "vitrine-chaos-services-")
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("VITRINE_SERVICES_CACHE")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache", "vitrine-services", "cache")
	}
	s := &ownServices{t: t, names: names, env: []string{"VITRINE_SERVICES_HOME=" + home, "VITRINE_SERVICES_CACHE=" + cache}}
	for _, v := range []string{"PG", "REDIS", "KAFKA", "KAFKA_CONTROLLER", "S3", "ETCD", "ETCD_PEER"} {
		s.env = append(s.env, fmt.Sprintf("VITRINE_SERVICES_%s_PORT=%d", v, lowFreePort(t)))
	}
	s.env = append(s.env, extra...)
	t.Cleanup(func() {
		s.run(append([]string{"reset"}, names...)...)
		os.RemoveAll(home)
	})
	out := s.run(append([]string{"up"}, names...)...)
	s.vars = map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		s.vars[k] = strings.Trim(v, "'")
	}
	return s
}

// appEnv is what a vitrine node needs to use these servers: its job
// topic and bucket are its own, and its peers' management ports are
// given (static membership).
func (s *ownServices) appEnv(topic, bucket string, manage []string) map[string]string {
	env := map[string]string{
		"VITRINE_POSTGRES_URL": s.vars["VITRINE_POSTGRES_URL"], "VITRINE_REDIS_URL": s.vars["VITRINE_REDIS_URL"],
		"VITRINE_KAFKA_BROKERS": s.vars["VITRINE_KAFKA_BROKERS"], "VITRINE_KAFKA_TOPIC": topic,
		"VITRINE_S3_ENDPOINT": s.vars["VITRINE_S3_ENDPOINT"], "VITRINE_S3_BUCKET": bucket,
		"VITRINE_S3_REGION": s.vars["VITRINE_S3_REGION"], "VITRINE_S3_ACCESS_KEY_ID": s.vars["VITRINE_S3_ACCESS_KEY_ID"],
		"VITRINE_S3_SECRET_ACCESS_KEY": s.vars["VITRINE_S3_SECRET_ACCESS_KEY"], "VITRINE_S3_PATH_STYLE": "true",
		"VITRINE_CLUSTER_PEERS": "127.0.0.1:" + strings.Join(manage, ",127.0.0.1:"),
		"VITRINE_ENV":           "development", "VITRINE_RATE_ANONYMOUS": "0", "VITRINE_RATE_ANONYMOUS_WRITES": "0",
	}
	for _, k := range []string{"VITRINE_KAFKA_REPLICATION", "VITRINE_KAFKA_MIN_ISR"} {
		if v, ok := s.vars[k]; ok {
			env[k] = v
		}
	}
	return env
}

// run runs scripts/services for this instance and returns its stdout.
func (s *ownServices) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(servicesScript(), args...)
	cmd.Env = append(os.Environ(), s.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		s.t.Errorf("scripts/services %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// restart stops a server and starts it again.
func (s *ownServices) restart(name string) time.Duration {
	start := time.Now()
	s.run("down", name)
	s.run("up", name)
	return time.Since(start)
}

// lowFreePort picks a free port below Linux's ephemeral range, where no
// outgoing connection's end can take it between now and the server's bind.
func lowFreePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

// proc is a vitrine process started from the binary, its log in a file.
type proc struct {
	t    testing.TB
	bin  string
	env  []string
	log  string
	cmd  *exec.Cmd
	runs int
}

func startProc(t testing.TB, bin, log string, env map[string]string) *proc {
	t.Helper()
	p := &proc{t: t, bin: bin, log: log, env: os.Environ()}
	for k, v := range env {
		p.env = append(p.env, k+"="+v)
	}
	p.start()
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	return p
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	p.cmd = exec.Command(p.bin, "serve")
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.runs++
}

// stop signals the process and waits for it (up to 30 s, then SIGKILL).
func (p *proc) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// logLines returns the process's JSON log lines that contain all of subs.
func (p *proc) logLines(subs ...string) []string {
	p.t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		for _, s := range subs {
			if !strings.Contains(sc.Text(), s) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

// procStats are what the soak watches of a process.
type procStats struct {
	RSS        int64 // bytes
	Goroutines int
	FDs        int
}

func (s procStats) String() string {
	return fmt.Sprintf("RSS %.1f MiB, %d goroutines, %d fds", float64(s.RSS)/(1<<20), s.Goroutines, s.FDs)
}

// statsOf reads a process's RSS and file descriptors from /proc, and its
// goroutines from its pprof listener.
func statsOf(t testing.TB, pid int, pprofAddr string) procStats {
	t.Helper()
	var st procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			st.RSS = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	st.FDs = len(fds)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", http.NoBody)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	defer res.Body.Close()
	first, _ := bufio.NewReader(io.LimitReader(res.Body, 4096)).ReadString('\n')
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &st.Goroutines); err != nil {
		t.Fatalf("goroutine profile %q: %v", first, err)
	}
	return st
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The README's walk-through, run as written against a live vitrine: every
// curl of its shell blocks, with the status and the fragments that the
// "# ->" line after it quotes. Lines "NAME=<…>" are what a reader does by
// hand: the test takes the "id" of the last answer. "NAME=$(…)" lines run.

// readmeStep is one command of a block and what its "# ->" line expects.
type readmeStep struct {
	comment string // the comment lines before it
	command string
	expect  string // the "# ->" line, without "# ->"
}

// readmeBlock returns the steps of the first ```sh block after heading.
func readmeBlock(t *testing.T, readme, after string) []readmeStep {
	t.Helper()
	i := strings.Index(readme, after)
	if i < 0 {
		t.Fatalf("README.md has no %q", after)
	}
	rest := readme[i:]
	start := strings.Index(rest, "```sh\n")
	if start < 0 {
		t.Fatalf("no ```sh block after %q", after)
	}
	rest = rest[start+len("```sh\n"):]
	block := rest[:strings.Index(rest, "```")]
	var steps []readmeStep
	var comment []string
	lines := strings.Split(block, "\n")
	for n := 0; n < len(lines); n++ {
		line := lines[n]
		switch {
		case strings.HasPrefix(line, "# ->"):
			if len(steps) == 0 {
				t.Fatalf("a # -> line before any command: %q", line)
			}
			steps[len(steps)-1].expect = strings.TrimSpace(line[len("# ->"):])
		case strings.HasPrefix(line, "#"):
			comment = append(comment, line)
		case strings.TrimSpace(line) == "":
		default:
			cmd := line
			for strings.HasSuffix(cmd, "\\") && n+1 < len(lines) {
				n++
				cmd += "\n" + lines[n] // bash joins it
			}
			steps = append(steps, readmeStep{comment: strings.Join(comment, "\n"), command: cmd})
			comment = nil
		}
	}
	return steps
}

// fragments are what an expectation says the answer holds: quoted JSON
// ("id", "status":"ready", "width":200) and event types (image.ready).
var fragmentRe = regexp.MustCompile(`"[a-z_]+"(?::(?:"[^"…]*"|[0-9]+))?|\b[a-z]+\.(?:created|updated|deleted|pending|processing|ready|failed)\b`)

// walk runs steps in dir against the vitrine at port.
func walk(t *testing.T, steps []readmeStep, dir, port string, env []string) {
	t.Helper()
	placeholder := regexp.MustCompile(`^([A-Z_]+)=<[^>]*>$`)
	assign := regexp.MustCompile(`^([A-Z_]+)=(\$\(.*\))\s*(?:#.*)?$`)
	var last []byte
	for _, st := range steps {
		cmd := strings.ReplaceAll(st.command, "localhost:8080", "localhost:"+port)
		if m := placeholder.FindStringSubmatch(cmd); m != nil {
			var v map[string]any
			if err := json.Unmarshal(last, &v); err != nil || v["id"] == nil {
				t.Fatalf("%s: the answer before has no id: %s", cmd, last)
			}
			env = append(env, m[1]+"="+v["id"].(string))
			continue
		}
		if m := assign.FindStringSubmatch(cmd); m != nil {
			out := bash(t, dir, env, m[1]+"="+m[2]+`; printf %s "$`+m[1]+`"`)
			if len(out) == 0 {
				t.Fatalf("%s gave nothing", cmd)
			}
			env = append(env, m[1]+"="+string(out))
			continue
		}
		status, body := "", []byte(nil)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			// The curl of the README, with its status appended.
			out := bash(t, dir, env, `curl() { command curl -w '\n%{http_code}' "$@"; }; `+cmd)
			i := bytes.LastIndexByte(out, '\n')
			status, body = string(out[i+1:]), out[:max(i, 0)]
			missing := missingFragments(st.expect, body, dir)
			if len(missing) == 0 && (st.expect == "" || strings.HasPrefix(st.expect, status)) {
				break
			}
			if !strings.Contains(st.comment, "poll until") || time.Now().After(deadline) {
				t.Fatalf("README step\n%s\nanswered %s, lacking %q; the README expects: %s\n%.2000s", cmd, status, missing, st.expect, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		last = body
	}
}

// missingFragments lists what expect quotes that the answer lacks; a file
// name (medium.webp) must be a file curl wrote, of that type.
func missingFragments(expect string, body []byte, dir string) []string {
	var missing []string
	for _, f := range fragmentRe.FindAllString(expect, -1) {
		if !bytes.Contains(body, []byte(f)) {
			missing = append(missing, f)
		}
	}
	for _, f := range regexp.MustCompile(`\b[a-z]+\.webp\b`).FindAllString(expect, -1) {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(data) < 12 || string(data[8:12]) != "WEBP" {
			missing = append(missing, "file "+f)
		}
	}
	return missing
}

func bash(t *testing.T, dir string, env []string, script string) []byte {
	t.Helper()
	c := exec.Command("bash", "-c", "set -eo pipefail; "+script)
	c.Dir = dir
	c.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return out
}

func TestReadmeWalkthrough(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	photo, err := os.ReadFile(filepath.Join(corpusDir(t), "photo_mate_wood.jpg"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("development", func(t *testing.T) {
		steps := readmeBlock(t, string(readme), "## A walk through the API")
		if len(steps) < 8 {
			t.Fatalf("the walk-through has %d steps", len(steps))
		}
		app := startApp(t, t.TempDir(), nil)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "photo.jpg"), photo, 0o644); err != nil {
			t.Fatal(err)
		}
		_, port, _ := strings.Cut(app.Addr(), ":")
		walk(t, steps, dir, port, nil)
	})

	t.Run("production", func(t *testing.T) {
		steps := readmeBlock(t, string(readme), "In production mode, make a\nkey first")
		data := t.TempDir()
		app := startApp(t, data, map[string]string{"VITRINE_ENV": "production"})
		dir := t.TempDir()
		// bin/vitrine, as make build leaves it, on the same database.
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(buildBinary(t), filepath.Join(dir, "bin", "vitrine")); err != nil {
			t.Fatal(err)
		}
		_, port, _ := strings.Cut(app.Addr(), ":")
		walk(t, steps, dir, port, []string{"VITRINE_DATA_DIR=" + data, "VITRINE_POSTGRES_URL=", fmt.Sprintf("VITRINE_ADDR=127.0.0.1:%s", port)})
	})
}

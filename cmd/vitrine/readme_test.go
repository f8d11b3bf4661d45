package main

import (
	"bytes"
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
// command of its shell blocks, in a directory where testdata/ is the
// repository's. A curl that prints its status (-w '%{http_code}', the last
// line of its output) must answer the status and the fragments that the
// "# ->" line after it quotes. "NAME=$(…)" lines run, and set NAME for
// the lines after.

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
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatalf("the ```sh block after %q does not end", after)
	}
	block := rest[:end]
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
	assign := regexp.MustCompile(`(?s)^([A-Z_]+)=(\$\(.*\))\s*(?:#.*)?$`)
	for _, st := range steps {
		cmd := strings.ReplaceAll(st.command, "localhost:8080", "localhost:"+port)
		if m := assign.FindStringSubmatch(cmd); m != nil {
			out := bash(t, dir, env, m[1]+"="+m[2]+`; printf %s "$`+m[1]+`"`)
			if len(out) == 0 || string(out) == "null" {
				t.Fatalf("%s gave %q", cmd, out)
			}
			env = append(env, m[1]+"="+string(out))
			continue
		}
		if !strings.Contains(cmd, "%{http_code}") {
			bash(t, dir, env, cmd)
			continue
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			out := bytes.TrimRight(bash(t, dir, env, cmd), "\n")
			i := bytes.LastIndexByte(out, '\n')
			status, body := string(out[i+1:]), out[:max(i, 0)]
			missing := missingFragments(st.expect, body, dir)
			if len(missing) == 0 && strings.HasPrefix(st.expect, status) {
				break
			}
			if !strings.Contains(st.comment, "poll until") || time.Now().After(deadline) {
				t.Fatalf("README step\n%s\nanswered %s, lacking %q; the README expects: %s\n%.2000s", cmd, status, missing, st.expect, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
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
	// A directory like the repository's: its testdata/, bin/vitrine as
	// make build leaves it.
	workdir := func(t *testing.T) string {
		dir := t.TempDir()
		if err := os.Symlink(filepath.Join(filepath.Dir(file), "..", "..", "testdata"), filepath.Join(dir, "testdata")); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("development", func(t *testing.T) {
		steps := readmeBlock(t, string(readme), "## A walk through the API")
		if len(steps) < 8 {
			t.Fatalf("the walk-through has %d steps", len(steps))
		}
		app := startApp(t, t.TempDir(), nil)
		_, port, _ := strings.Cut(app.Addr(), ":")
		walk(t, steps, workdir(t), port, nil)
	})

	t.Run("production", func(t *testing.T) {
		steps := readmeBlock(t, string(readme), "In production mode, make a\nkey first")
		data := t.TempDir()
		app := startApp(t, data, map[string]string{"VITRINE_ENV": "production"})
		dir := workdir(t)
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

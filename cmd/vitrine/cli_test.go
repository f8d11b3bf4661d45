package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestHelp: vitrine --help lists every command, and every command answers
// --help (and vitrine help COMMAND) with its usage, on stdout, successfully.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, _, err := runCLI(t, nil, args...)
		if err != nil {
			t.Fatalf("vitrine %v: %v", args, err)
		}
		for _, c := range commands() {
			if !strings.Contains(out, "vitrine "+c.name) {
				t.Errorf("vitrine %v does not list %s:\n%s", args, c.name, out)
			}
		}
	}
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			out, errOut, err := runCLI(t, nil, args...)
			if err != nil || !strings.HasPrefix(out, "Usage: vitrine "+c.name) || errOut != "" {
				t.Errorf("vitrine %v: %v, stdout %q, stderr %q", args, err, firstLine(out), errOut)
			}
		}
	}
	if out, _, _ := runCLI(t, nil, "serve", "--help"); !strings.Contains(out, "VITRINE_EVENTS_RETENTION") || !strings.Contains(out, "--postgres-url") {
		t.Errorf("serve --help lacks settings:\n%s", out)
	}
	if _, errOut, err := runCLI(t, nil, "frobnicate"); !errors.Is(err, errUsage) || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("an unknown command: %v %q", err, errOut)
	}
	if _, _, err := runCLI(t, nil); !errors.Is(err, errUsage) {
		t.Errorf("no command: %v", err)
	}
}

// TestHelpOnlyWhereAFlagStands: a help word that is a flag's value is that
// value (a key named help is made, not the help printed); help flags after
// a boolean flag, or alone after the command, still ask for the help.
func TestHelpOnlyWhereAFlagStands(t *testing.T) {
	env := map[string]string{"VITRINE_DATA_DIR": t.TempDir()}
	for _, name := range []string{"help", "-h", "--help"} {
		out, errOut, err := runCLI(t, env, "keys", "create", "--name", name, "--scopes", "read", "--json")
		if err != nil || strings.HasPrefix(out, "Usage:") || !strings.Contains(out, `"name":"`+name+`"`) {
			t.Errorf("keys create --name %s: %v, stdout %q, stderr %q; want a key named %s", name, err, firstLine(out), errOut, name)
		}
	}
	for _, args := range [][]string{{"gc", "--dry-run", "--help"}, {"keys", "help"}, {"keys", "create", "--json", "-h"}, {"import", "--key=x", "--help"}} {
		if out, errOut, err := runCLI(t, env, args...); err != nil || !strings.HasPrefix(out, "Usage: vitrine "+args[0]) {
			t.Errorf("vitrine %v: %v, stdout %q, stderr %q; want the help", args, err, firstLine(out), errOut)
		}
	}
	if out, _, _ := runCLI(t, env, "import", "--", "--help"); strings.HasPrefix(out, "Usage:") {
		t.Errorf("vitrine import -- --help printed the help: after --, --help is a file name")
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func TestVersionAndSecret(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		out, _, err := runCLI(t, nil, arg)
		if err != nil || !strings.HasPrefix(out, "vitrine "+version+" (go") {
			t.Errorf("%s: %v %q", arg, err, out)
		}
	}
	out, _, err := runCLI(t, nil, "webhook-secret")
	if err != nil || !strings.HasPrefix(out, "whsec_") {
		t.Errorf("webhook-secret: %v %q", err, out)
	}
}

// TestDoctor: on a fresh embedded default everything answers; a setting
// that is wrong, a backend that does not answer and an address in use are
// each named, with how to fix them, and fail the command.
func TestDoctor(t *testing.T) {
	dir := t.TempDir()
	free := freePort(t)
	// libvips is checked by the binary (it can start once per process):
	// the API role has no workers.
	base := map[string]string{"VITRINE_DATA_DIR": dir, "VITRINE_ADDR": free, "VITRINE_ROLE": "api"}
	out, _, err := runCLI(t, base, "doctor")
	if err != nil || strings.Contains(out, "FAIL") || !strings.Contains(out, "ok    database") {
		t.Fatalf("doctor on a fresh data directory: %v\n%s", err, out)
	}

	out, _, err = runCLI(t, with(base, "VITRINE_JOB_TIMEOUT", "soon"), "doctor")
	if err == nil || !strings.Contains(out, "FAIL  configuration") || !strings.Contains(out, "VITRINE_JOB_TIMEOUT") || !strings.Contains(out, "fix:") {
		t.Errorf("doctor with a bad setting: %v\n%s", err, out)
	}

	closed := freePort(t) // nothing listens there any more
	out, _, err = runCLI(t, with(base, "VITRINE_REDIS_URL", "redis://"+closed), "doctor")
	if err == nil || !strings.Contains(out, "FAIL  redis") || !strings.Contains(out, "fix: start Redis") {
		t.Errorf("doctor with Redis down: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, _, err = runCLI(t, base, "doctor")
	if err == nil || !strings.Contains(out, "FAIL  listen") || !strings.Contains(out, "VITRINE_ADDR") {
		t.Errorf("doctor with the address in use: %v\n%s", err, out)
	}
}

// TestDoctorBesideRunningVitrine: doctor run beside a live vitrine on the
// same address and data directory recognises it instead of failing on the
// address in use, and checks the rest (its database included).
func TestDoctorBesideRunningVitrine(t *testing.T) {
	dir := t.TempDir()
	app := startApp(t, dir, nil)
	addr := strings.TrimPrefix(app.base, "http://")
	out, _, err := runCLI(t, map[string]string{"VITRINE_DATA_DIR": dir, "VITRINE_ADDR": addr, "VITRINE_ROLE": "api"}, "doctor")
	if err != nil || !strings.Contains(out, "ok    listen") || !strings.Contains(out, "a vitrine already serves on "+addr) || !strings.Contains(out, "ok    database") {
		t.Errorf("doctor beside a running vitrine: %v\n%s", err, out)
	}
}

// TestMigrateShowsProgress: vitrine migrate shows a bar and a summary.
func TestMigrateShowsProgress(t *testing.T) {
	_, errOut, err := runCLI(t, map[string]string{"VITRINE_DATA_DIR": t.TempDir()}, "migrate")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "migrate 0001_init.sql") || !strings.Contains(errOut, "migrations, all applied") {
		t.Errorf("migrate printed %q", errOut)
	}
}

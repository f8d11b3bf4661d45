// Package target builds and runs the vitrine under test as a child process
// on a free loopback port, and reads its memory from /proc.
package target

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModuleRoot finds the vitrine module's root from dir upwards.
func ModuleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod")) // #nosec G304 -- go.mod in the directories above the working directory
		if err == nil && bytes.Contains(b, []byte("module github.com/vitrine-dev/vitrine\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no vitrine go.mod above %s", dir)
		}
		d = parent
	}
}

// Build runs `go build -o out ./cmd/vitrine` in the module root.
func Build(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/vitrine") // #nosec G204 -- go build of this module, out a path the bench chose
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/vitrine: %w\n%s", err, b)
	}
	return nil
}

// FreePort is a loopback port free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

// Options of a vitrine child.
type Options struct {
	Bin     string   // the vitrine binary
	DataDir string   // VITRINE_DATA_DIR
	Env     []string // extra variables, over the inherited environment
	LogPath string   // where its stderr goes
	// CPUs, when set, pins the child to these CPUs (taskset -c syntax, as
	// "0" or "0-1"); its Go runtime then sizes GOMAXPROCS to them.
	CPUs string
}

// Proc is a running vitrine child.
type Proc struct {
	opts   Options
	Addr   string // 127.0.0.1:port
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	Mem    *Memory
}

// URL is the child's base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Start starts `vitrine serve` on a free loopback port and waits until
// /readyz answers 200.
func Start(ctx context.Context, opts Options) (*Proc, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return start(ctx, opts, "127.0.0.1:"+strconv.Itoa(port))
}

func start(ctx context.Context, opts Options, addr string) (*Proc, error) {
	logf, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() //nolint:errcheck // the parent never writes it: the child has its own descriptor
	cmd := Command(opts.CPUs, opts.Bin, "serve")
	cmd.Env = append(append(os.Environ(), opts.Env...), "VITRINE_ADDR="+addr, "VITRINE_DATA_DIR="+opts.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Bin, err)
	}
	p := &Proc{opts: opts, Addr: addr, cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	if err := p.waitReady(ctx, 90*time.Second); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, Tail(opts.LogPath, 20))
	}
	p.Mem = Watch(p.Pid())
	return p, nil
}

// Command is exec.Command of bin, pinned to cpus through taskset (which
// execs bin: the process id is bin's) when cpus is set.
func Command(cpus, bin string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.Command(bin, args...) // #nosec G204 -- the binary the bench built or was given
	}
	return exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...) // #nosec G204 -- the same, pinned by -server-cpus
}

func (p *Proc) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited:
			if p.err == nil {
				return errors.New("vitrine exited before it was ready")
			}
			return fmt.Errorf("vitrine exited before it was ready: %w", p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if res, err := c.Get(p.URL() + "/readyz"); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vitrine not ready at %s after %v", p.URL(), limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 30 s).
func (p *Proc) Stop() error {
	if p.Mem != nil {
		p.Mem.Stop()
	}
	return Terminate(p.cmd, p.exited, func() error { return p.err }, 30*time.Second)
}

// Terminate stops a child process started by cmd, whose waiter closes
// exited once cmd.Wait returned waitErr(): nothing when it exited already,
// else SIGTERM, then SIGKILL after grace. A non-zero exit is no error;
// a failure to wait is.
func Terminate(cmd *exec.Cmd, exited <-chan struct{}, waitErr func() error, grace time.Duration) error {
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
	var ee *exec.ExitError
	if err := waitErr(); err != nil && !errors.As(err, &ee) {
		return err
	}
	return nil
}

// Restart stops the child and starts a new one on the same address and
// data: its in-process cache and actors are gone.
func (p *Proc) Restart(ctx context.Context) (*Proc, error) {
	if err := p.Stop(); err != nil {
		return nil, err
	}
	return start(ctx, p.opts, p.Addr)
}

// Tail is the last n lines of a file.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path) // #nosec G304 -- the log the bench itself writes
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Memory follows a process's resident memory: the kernel's high-water mark
// (VmHWM), reset at the start of each scenario through clear_refs where the
// kernel allows it, and a 50 ms sample of VmRSS as a floor.
type Memory struct {
	pid     int
	mu      sync.Mutex
	sampled int64
	scoped  bool // the last Reset cleared VmHWM
	stop    chan struct{}
	once    sync.Once
}

// Watch starts sampling pid's memory.
func Watch(pid int) *Memory {
	m := &Memory{pid: pid, stop: make(chan struct{})}
	m.Reset()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if st, err := ReadStatus(pid); err == nil {
					m.mu.Lock()
					m.sampled = max(m.sampled, st.RSS)
					m.mu.Unlock()
				}
			}
		}
	}()
	return m
}

// Reset starts a new measurement window.
func (m *Memory) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sampled = 0
	// Writing 5 to clear_refs resets the peak RSS to the current RSS (Linux ≥ 4.0).
	m.scoped = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0) == nil
	if st, err := ReadStatus(m.pid); err == nil {
		m.sampled = st.RSS
	}
}

// Peak is the peak resident set in bytes since the last Reset (or since
// the process started, when scoped is false: the kernel refused the reset).
func (m *Memory) Peak() (bytes int64, scoped bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	peak := m.sampled
	if st, err := ReadStatus(m.pid); err == nil {
		peak = max(peak, st.RSS)
		if m.scoped {
			peak = max(peak, st.HWM)
		} else if st.HWM > 0 {
			return st.HWM, false
		}
	}
	return peak, m.scoped
}

// Stop ends the sampling.
func (m *Memory) Stop() { m.once.Do(func() { close(m.stop) }) }

// Status is what /proc/<pid>/status says of memory, in bytes.
type Status struct{ RSS, HWM int64 }

// ReadStatus reads VmRSS and VmHWM of pid.
func ReadStatus(pid int) (Status, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Status{}, err
	}
	defer f.Close() //nolint:errcheck // opened read-only: closing it loses nothing
	var st Status
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &st.RSS
		case "VmHWM":
			dst = &st.HWM
		default:
			continue
		}
		fs := strings.Fields(v)
		if len(fs) >= 1 {
			n, _ := strconv.ParseInt(fs[0], 10, 64)
			*dst = n << 10 // kB
		}
	}
	return st, sc.Err()
}

// clockTicks is the unit of the times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture the bench runs on.
const clockTicks = 100

// CPUTime is the user and system time pid has used so far (all its
// threads; children not included), to the 10 ms tick.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. utime and stime are fields 14 and 15 of the line, so
	// 12 and 13 after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

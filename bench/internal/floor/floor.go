// Package floor measures the libvips floor of image processing: the bench
// runs its own executable as a child process that makes a recipe's outputs
// of the same photos in-process, as many at a time as vitrine has workers,
// either with the least libvips work (vips.Runtime.Floor: thumbnail_buffer
// with shrink-on-load) or with vitrine's own pipeline (ProcessImage), and
// reports the wall time, the CPU time of the process and its peak memory.
// A child of its own gives a clean CPU and memory account, and keeps
// libvips out of the bench process.
//
// The same child makes the bench's large test photo (Resize).
package floor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/vips"
)

// Env is the variable that makes the bench binary (or its test binary)
// serve one floor request read from stdin instead of running.
const Env = "BENCH_FLOOR_CHILD"

// Modes of a run.
const (
	ModeFloor   = "floor"   // vips.Runtime.Floor: the least libvips work
	ModeProcess = "process" // vips.Runtime.ProcessImage: vitrine's pipeline without the service
)

// Request is what the child does.
type Request struct {
	Op string `json:"op"` // "run" or "resize"

	// run
	Mode        string       `json:"mode,omitempty"`
	Files       []string     `json:"files,omitempty"`
	Count       int          `json:"count,omitempty"`       // images made, files in turn
	Concurrency int          `json:"concurrency,omitempty"` // images at once
	Recipe      media.Recipe `json:"recipe"`

	// resize
	Src     string  `json:"src,omitempty"`
	Dst     string  `json:"dst,omitempty"`
	Factor  float64 `json:"factor,omitempty"`
	Quality int     `json:"quality,omitempty"`
}

// Result is what the child measured. The warm-up image (one, before the
// clock starts) is not counted.
type Result struct {
	Images      int     `json:"images"`
	Outputs     int     `json:"outputs"`      // files made
	OutputBytes int64   `json:"output_bytes"` // their bytes
	Elapsed     int64   `json:"elapsed_ns"`   // first image started → last finished
	CPU         int64   `json:"cpu_ns"`       // user + system time of the process over Elapsed
	PerImage    []int64 `json:"per_image_ns"` // each image's wall time
	PeakRSS     int64   `json:"peak_rss_bytes"`
	Width       int     `json:"width,omitempty"` // resize: the photo made
	Height      int     `json:"height,omitempty"`
	Bytes       int64   `json:"bytes,omitempty"`
}

// ImagesPerSec is the throughput.
func (r *Result) ImagesPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Images) / time.Duration(r.Elapsed).Seconds()
}

// CPUPerImage is the process CPU time per image.
func (r *Result) CPUPerImage() time.Duration {
	if r.Images == 0 {
		return 0
	}
	return time.Duration(r.CPU / int64(r.Images))
}

// Child is a running floor child: it serves requests one after another,
// so that pairs of measurements can alternate with vitrine's.
type Child struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *json.Decoder
	stderr *bytes.Buffer
}

// Start runs exe (the bench binary) as a floor child.
func Start(ctx context.Context, exe string) (*Child, error) {
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), Env+"=1", "MALLOC_ARENA_MAX=2") // as vitrine runs
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &Child{cmd: cmd, in: in, out: json.NewDecoder(out), stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start floor child: %w", err)
	}
	return c, nil
}

// Do has the child serve req.
func (c *Child) Do(req Request) (*Result, error) {
	if err := json.NewEncoder(c.in).Encode(req); err != nil {
		return nil, fmt.Errorf("floor %s: send: %w\n%s", req.Op, err, tail(c.stderr.Bytes()))
	}
	var res response
	if err := c.out.Decode(&res); err != nil {
		return nil, fmt.Errorf("floor %s: result: %w\n%s", req.Op, err, tail(c.stderr.Bytes()))
	}
	if res.Error != "" {
		return nil, fmt.Errorf("floor %s: %s", req.Op, res.Error)
	}
	return res.Result, nil
}

// Close ends the child.
func (c *Child) Close() error {
	_ = c.in.Close() // EOF to the child; Wait reports how it ended
	return c.cmd.Wait()
}

// Run starts a child, has it serve req and ends it.
func Run(ctx context.Context, exe string, req Request) (*Result, error) {
	c, err := Start(ctx, exe)
	if err != nil {
		return nil, err
	}
	res, err := c.Do(req)
	if closeErr := c.Close(); closeErr != nil && err == nil {
		return nil, fmt.Errorf("floor child: %w", closeErr)
	}
	return res, err
}

// response is a Result or an error, one JSON line per request.
type response struct {
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Serve is the child: it reads Requests from stdin until it closes, and
// answers each with a line on stdout.
func Serve() error {
	rt, err := vips.Start(vips.Config{Concurrency: 1}) // as vitrine starts it
	if err != nil {
		return err
	}
	defer rt.Shutdown()
	dec, enc := json.NewDecoder(os.Stdin), json.NewEncoder(os.Stdout)
	warm := map[string]bool{}
	for {
		var req Request
		if err := dec.Decode(&req); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		var res *Result
		switch req.Op {
		case "resize":
			res, err = resize(rt, req)
		case "run":
			res, err = run(rt, req, warm)
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		out := response{Result: res}
		if err != nil {
			out = response{Error: err.Error()}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
}

func resize(rt *vips.Runtime, req Request) (*Result, error) {
	src, err := os.ReadFile(req.Src)
	if err != nil {
		return nil, err
	}
	out, err := rt.ResizeJPEG(src, req.Factor, req.Quality)
	if err != nil {
		return nil, err
	}
	h, err := rt.Probe(out, media.Limits{})
	if err != nil {
		return nil, fmt.Errorf("probe the resized photo: %w", err)
	}
	if err := os.WriteFile(req.Dst, out, 0o600); err != nil { // #nosec G703 -- req.Dst is a path in the parent bench's temporary directory
		return nil, err
	}
	return &Result{Width: h.Width, Height: h.Height, Bytes: int64(len(out))}, nil
}

func run(rt *vips.Runtime, req Request, warm map[string]bool) (*Result, error) {
	if len(req.Files) == 0 || req.Count < 1 || req.Concurrency < 1 {
		return nil, errors.New("run: no files, count or concurrency")
	}
	files := make([][]byte, len(req.Files))
	for i, p := range req.Files {
		var err error
		if files[i], err = os.ReadFile(p); err != nil { // #nosec G304 -- photos the parent bench names (its -corpus)
			return nil, err
		}
	}
	one := func(data []byte) ([]media.Output, error) {
		if req.Mode == ModeProcess {
			r, err := rt.ProcessImage(context.Background(), data, req.Recipe)
			return r.Outputs, err
		}
		return rt.Floor(data, req.Recipe)
	}
	if req.Mode != ModeFloor && req.Mode != ModeProcess {
		return nil, fmt.Errorf("run: unknown mode %q", req.Mode)
	}
	if key := fmt.Sprintf("%s %v", req.Mode, req.Recipe); !warm[key] { // warm-up, once per child
		if _, err := one(files[0]); err != nil {
			return nil, err
		}
		warm[key] = true
	}
	// A new peak-RSS window (Linux ≥ 4.0; without it, the process's peak).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	res := &Result{Images: req.Count, PerImage: make([]int64, req.Count)}
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range req.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				t0 := time.Now()
				outs, err := one(files[k%len(files)])
				d := time.Since(t0)
				mu.Lock()
				res.PerImage[k] = int64(d)
				res.Outputs += len(outs)
				for _, o := range outs {
					res.OutputBytes += int64(len(o.Data))
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for k := range req.Count {
		next <- k
	}
	close(next)
	wg.Wait()
	res.Elapsed = int64(time.Since(start))
	res.CPU = int64(cpuTime() - cpu0)
	res.PeakRSS = peakRSS()
	return res, firstErr
}

// cpuTime is the user and system time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is VmHWM of this process, in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

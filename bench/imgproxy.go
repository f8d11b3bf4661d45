// imgproxy.go: imgproxy as an in-run baseline — built from its public
// source at a pinned release by scripts/imgproxy (or -imgproxy PATH),
// started on a free loopback port serving the bench's photo from a local
// directory, and measured alternately with vitrine: the images scenario's
// webp800 recipe and the on-demand scenarios.

package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/image/webp"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

// imgproxyQuality is the WebP quality both sides make: vitrine's recipes
// and imgproxy's q option.
const imgproxyQuality = 80

// imgproxyBinary is the imgproxy to run: -imgproxy, else what
// scripts/imgproxy builds (once a run). why says why there is none.
func (b *bench) imgproxyBinary(ctx context.Context) (bin, why string) {
	b.ipOnce.Do(func() {
		switch b.o.imgproxy {
		case "none", "off":
			b.ipWhy = "imgproxy baseline turned off (-imgproxy none)"
		case "":
			if b.root == "" {
				b.ipWhy = "imgproxy not built: no repository (scripts/imgproxy) beside the bench; give -imgproxy PATH"
				return
			}
			b.bar.Logf("imgproxy: scripts/imgproxy (builds imgproxy %s once, a few minutes)", baseline.ImgproxyVersion)
			p, err := baseline.BuildImgproxy(ctx, b.root)
			if err != nil {
				b.ipWhy = "imgproxy could not be built: " + err.Error()
				return
			}
			b.ipBin = p
		default:
			b.ipBin = b.o.imgproxy
		}
	})
	if b.ipBin == "" {
		b.warnOnce("imgproxy", b.ipWhy)
	}
	return b.ipBin, b.ipWhy
}

// warnOnce adds a note once per key.
func (b *bench) warnOnce(key, msg string) {
	b.mu.Lock()
	seen := b.warned[key]
	b.warned[key] = true
	b.mu.Unlock()
	if !seen {
		b.note("%s", msg)
	}
}

// startImgproxy starts imgproxy serving the files of dir with workers
// workers. It returns nil and the reason when there is no imgproxy, or
// when it does not start (the scenario then keeps its other baselines).
func (b *bench) startImgproxy(ctx context.Context, dir string, workers int, label string) (*baseline.Imgproxy, string) {
	bin, why := b.imgproxyBinary(ctx)
	if bin == "" {
		return nil, why
	}
	port, err := target.FreePort()
	if err != nil {
		return nil, "imgproxy: no free port: " + err.Error()
	}
	ip, err := baseline.StartImgproxy(ctx, baseline.ImgproxyOptions{Bin: bin, Port: port, Root: dir, Workers: workers,
		Quality: imgproxyQuality, LogPath: filepath.Join(b.tmp, "imgproxy-"+label+".log")})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err().Error()
		}
		return nil, "imgproxy did not start: " + err.Error()
	}
	return ip, ""
}

// getsResult is one timed run of GETs: images/s (requests/s) from the
// first request sent to the last answer, and the CPU time of the serving
// process over it (/proc/<pid>/stat).
type getsResult struct {
	Requests int
	Elapsed  time.Duration
	CPU      time.Duration
	Bytes    int64
	Latency  *hist.Histogram // each request's, ns
}

func (r getsResult) figures() roundFigures {
	f := roundFigures{Seconds: report.Round2(r.Elapsed.Seconds())}
	if r.Elapsed > 0 {
		f.ImagesPerSec = report.Round2(float64(r.Requests) / r.Elapsed.Seconds())
	}
	if r.Requests > 0 {
		f.CPUMs = roundTo(float64(r.CPU.Microseconds())/1e3/float64(r.Requests), 3)
	}
	return f
}

func runImgproxy(ctx context.Context, ip *baseline.Imgproxy, paths []string, conc int) (getsResult, error) {
	return runGets(ctx, ip.URL(), ip.Pid(), conc, len(paths), 0, func(k int) string { return paths[k] })
}

// runGets sends GETs of pathOf(0), pathOf(1), … to base, conc in flight,
// until count requests (count > 0) or for d (count 0: a closed loop of d);
// every answer must be a 200 with a body.
func runGets(ctx context.Context, base string, pid, conc, count int, d time.Duration, pathOf func(k int) string) (getsResult, error) {
	c, err := httpc.New(base, conc, 2*time.Minute)
	if err != nil {
		return getsResult{}, err
	}
	defer c.Close()
	cpu0, err := target.CPUTime(pid)
	if err != nil {
		return getsResult{}, err
	}
	var (
		next, done atomic.Int64
		bytesOut   atomic.Int64
		stop       atomic.Bool
		mu         sync.Mutex
		firstErr   error
		wg         sync.WaitGroup
		lat        = &hist.Histogram{}
	)
	start := time.Now()
	end := start.Add(d)
	for range max(conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var x httpc.Exchange
			h := &hist.Histogram{}
			defer func() {
				mu.Lock()
				lat.Merge(h)
				mu.Unlock()
			}()
			for !stop.Load() && ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if (count > 0 && k >= count) || (count == 0 && time.Now().After(end)) {
					return
				}
				p := pathOf(k)
				at := time.Now()
				st, err := c.Do(&x, "GET", p, "", nil)
				h.Record(int64(time.Since(at)))
				if err == nil && (st != 200 || len(x.Resp.Body()) == 0) {
					err = fmt.Errorf("GET %s: status %d: %.200s", p, st, x.Resp.Body())
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					return
				}
				bytesOut.Add(int64(len(x.Resp.Body())))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return getsResult{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return getsResult{}, err
	}
	cpu1, err := target.CPUTime(pid)
	if err != nil {
		return getsResult{}, err
	}
	return getsResult{Requests: int(done.Load()), Elapsed: elapsed, CPU: cpu1 - cpu0, Bytes: bytesOut.Load(), Latency: lat}, nil
}

// checkWebP fetches path once and checks that it is a WebP width pixels
// wide (and height high, ±1, when height > 0); it returns its size.
func checkWebP(c *httpc.Client, path string, width, height int) (w, h, n int, err error) {
	st, body, err := c.Get(path)
	if err != nil {
		return 0, 0, 0, err
	}
	if st != 200 {
		return 0, 0, 0, fmt.Errorf("%s: status %d: %.200s", path, st, body)
	}
	cfg, err := webp.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: not a WebP: %w", path, err)
	}
	if cfg.Width != width || (height > 0 && (cfg.Height < height-1 || cfg.Height > height+1)) {
		return cfg.Width, cfg.Height, len(body), fmt.Errorf("%s: %dx%d, want %dx%d", path, cfg.Width, cfg.Height, width, height)
	}
	return cfg.Width, cfg.Height, len(body), nil
}

// fitHeight is the height of a w×h image fitted to width (rounded).
func fitHeight(w, h, width int) int {
	if w <= 0 {
		return 0
	}
	return (h*width*2 + w) / (2 * w)
}

// spread is the median, min and max of v (v is sorted in place).
func spread(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	slices.Sort(v)
	return median(v), v[0], v[len(v)-1]
}

// ratios is a[i]/b[i] for each pair with b[i] > 0.
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// ratioSpread is the median, min and max of the pairs' ratios, rounded to
// 3 digits, as the report gives them.
func ratioSpread(a, b []float64) map[string]float64 {
	m, lo, hi := spread(ratios(a, b))
	return map[string]float64{"median": roundTo(m, 3), "min": roundTo(lo, 3), "max": roundTo(hi, 3)}
}

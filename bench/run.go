// run.go: the bench's run — starting the target, seeding, running the
// scenarios in order and writing the report. Each scenario lives in a file of
// its own concern: reads.go (read-hot, list, mixed, read-cold and their
// baselines), upload.go (the upload burst and the vips CLI), images.go (the
// libvips floor), with phases.go, profile.go and targets.go shared.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/progress"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
	"github.com/vitrine-dev/vitrine/bench/internal/zipf"
)

type bench struct {
	o      options
	getenv func(string) string
	stdout io.Writer
	bar    *progress.Bar
	rep    *report.Report

	root   string
	tmp    string
	out    string
	proc   *target.Proc // nil with -url
	client *httpc.Client
	ids    []string
	keys   *zipf.Keys[string]
	pprof  string     // host:port of vitrine's pprof endpoint, "" without -pprof
	mu     sync.Mutex // notes and warned, written by profile fetches too
	warned map[string]bool

	photoSrc photoSource // the photos of upload and images

	ipOnce sync.Once       // imgproxyBinary
	ipBin  string          // the imgproxy binary, "" when there is none
	ipWhy  string          // why there is none
	photo  *largePhotoMade // the images scenario's photo, made once
	od     *ondemandState  // the on-demand scenarios' image
	step   string          // what the run is doing: start, seed, a scenario, stop
	done   []string        // the scenarios completed, in order
}

func newBench(o options, getenv func(string) string, stdout, stderr io.Writer) *bench {
	return &bench{o: o, getenv: getenv, stdout: stdout, bar: progress.New(stderr, o.quiet), warned: map[string]bool{}}
}

func (b *bench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.rep.Notes = append(b.rep.Notes, msg)
	b.mu.Unlock()
	b.bar.Logf("note: %s", msg)
}

func (b *bench) has(s string) bool { return b.o.has(s) }

// has reports whether scenario s was asked for.
func (o options) has(s string) bool { return slices.Contains(o.scenarios, s) }

func (b *bench) backends() string {
	if b.o.url != "" {
		return "external vitrine (backends unknown)"
	}
	pick := func(env, yes, no string) string {
		if b.getenv(env) != "" {
			return yes
		}
		return no
	}
	return "store=" + pick("VITRINE_POSTGRES_URL", "postgres", "sqlite") +
		" cache=" + pick("VITRINE_REDIS_URL", "redis", "memory") +
		" queue=" + pick("VITRINE_KAFKA_BROKERS", "kafka", "database") +
		" files=" + pick("VITRINE_S3_BUCKET", "s3", pick("VITRINE_S3_ENDPOINT", "s3", "localfs"))
}

func (b *bench) run(ctx context.Context) (err error) {
	started := time.Now()
	b.rep = &report.Report{Version: 1, StartedAt: started, Notes: []string{}, Scenarios: []*report.Scenario{}, Baselines: []*report.Baseline{},
		Machine: report.Machine{CPUs: cpus(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(), LoadStart: loadavg()},
		Config: report.Config{Profile: b.o.profileName(), PhaseSeconds: b.o.duration.Seconds(), Concurrency: b.o.concurrency, OpenWorkers: b.o.openWorkers,
			Mode: b.o.mode, Rate: b.o.rate, Products: b.o.products, ZipfS: b.o.zipfS, Seed: b.o.seed, Uploads: b.o.uploads,
			Scenarios: b.o.scenarios, Photos: []string{}}}
	if b.root, err = target.ModuleRoot("."); err != nil && b.o.url == "" && b.o.vitrine == "" {
		return fmt.Errorf("run from the vitrine repository to build it (or give -vitrine or -url): %w", err)
	}
	b.out = b.o.out
	if b.out == "" {
		b.out = "bench-out"
		if b.root != "" {
			b.out = filepath.Join(b.root, "bench", "out")
		}
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil { // #nosec G301 -- bench/out holds reports meant to be read and published
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "vitrine-bench-"); err != nil {
		return err
	}
	if b.o.keep {
		b.bar.Logf("temporary directory kept: %s", b.tmp)
	} else {
		defer func() {
			if err := os.RemoveAll(b.tmp); err != nil { // #nosec G703 -- b.tmp is the bench's own temporary directory (os.MkdirTemp)
				b.bar.Logf("temporary directory not removed: %v", err)
			}
		}()
	}
	return b.finish(ctx, started, b.measure(ctx))
}

// measure starts the target, seeds it and runs the scenarios in order,
// appending each completed one to the report; b.step is what it was doing
// when it returns an error. The vitrine it started is stopped on return.
func (b *bench) measure(ctx context.Context) (err error) {
	b.step = "start"
	if b.has("upload") || b.has("images") || b.has("ondemand-first") || b.has("ondemand-repeat") {
		if b.photoSrc, err = findPhotos(b.root, b.o, b.getenv); err != nil {
			return err
		}
		b.rep.Config.PhotoSource = b.photoSrc.source
		b.bar.Logf("%s", b.photoSrc.note)
	}
	if err := b.startTarget(ctx); err != nil {
		return err
	}
	defer func() {
		if b.proc != nil {
			if stopErr := b.proc.Stop(); stopErr != nil && err == nil {
				b.step = "stop"
				err = fmt.Errorf("stop vitrine: %w", stopErr)
			}
		}
	}()
	maxConns := max(b.o.concurrency, b.o.openWorkers) + b.o.uploadConc + 8
	if b.client, err = httpc.New(b.rep.Target.URL, maxConns, b.o.timeout); err != nil {
		return err
	}
	defer func() { b.client.Close() }() // read-cold replaces it

	b.step = "seed"
	if err := b.seed(ctx); err != nil {
		return err
	}
	for _, name := range allScenarios {
		if !b.has(name) {
			continue
		}
		b.step = name
		if err := ctx.Err(); err != nil {
			return err
		}
		nb := len(b.rep.Baselines)
		ss, err := b.scenario(ctx, name)
		b.rep.Scenarios = append(b.rep.Scenarios, ss...)
		if err != nil {
			// The baselines measured for what did not complete go too.
			kept := map[string]bool{}
			for _, s := range ss {
				if s.Baseline != nil {
					kept[s.Baseline.Name] = true
				}
			}
			bls := b.rep.Baselines[:nb]
			for _, bl := range b.rep.Baselines[nb:] {
				if kept[bl.Name] {
					bls = append(bls, bl)
				}
			}
			b.rep.Baselines = bls
			return fmt.Errorf("%s: %w", name, err)
		}
		b.done = append(b.done, name)
	}
	b.step = ""
	return nil
}

// scenario runs one scenario of -scenarios. On an error it returns only
// the report scenarios that completed (images: the recipes done).
func (b *bench) scenario(ctx context.Context, name string) ([]*report.Scenario, error) {
	var s *report.Scenario
	var err error
	switch name {
	case "read-hot":
		s, err = b.readHot(ctx)
	case "mixed":
		s, err = b.loadScenario(ctx, name, "90 % GET /products/{id} (Zipf), 8 % PATCH of a price (Zipf), 2 % POST /products.", scenario.Mixed(b.client, b.keys))
	case "list":
		s, err = b.loadScenario(ctx, name, fmt.Sprintf("GET /products filtered by user_id, a price range, q, user_id and q, or nothing, with limit 10/20/50, following next_cursor for up to %d pages; each page is a request.", scenario.MaxPages), scenario.List(b.client))
	case "upload":
		s, err = b.upload(ctx)
	case "images":
		return b.images(ctx)
	case "ondemand-first", "ondemand-repeat":
		s, err = b.ondemand(ctx, name)
	case "read-cold":
		s, err = b.readCold(ctx)
	default:
		err = fmt.Errorf("unknown scenario")
	}
	if err != nil {
		return nil, err
	}
	return []*report.Scenario{s}, nil
}

// finish writes the report, whole or partial: when runErr is not nil (a
// step failed, or ctx was cancelled: SIGINT or SIGTERM), the report holds
// what completed, says where and why the run stopped, and finish returns
// an error (the bench exits non-zero).
func (b *bench) finish(ctx context.Context, started time.Time, runErr error) error {
	if runErr != nil {
		st := &report.Stopped{At: b.step, Cause: "failed", Error: runErr.Error(), Completed: append([]string{}, b.done...), NotRun: []string{}}
		if ctx.Err() != nil {
			st.Cause = "interrupted"
			if cause := context.Cause(ctx).Error(); cause != ctx.Err().Error() {
				st.Error += " (" + cause + ")" // which signal
			}
		}
		for _, name := range b.o.scenarios {
			if name != st.At && !slices.Contains(b.done, name) {
				st.NotRun = append(st.NotRun, name)
			}
		}
		b.rep.Partial, b.rep.Stopped = true, st
	}
	b.targets()
	b.rep.Machine.LoadEnd = loadavg()
	b.rep.WallSeconds = report.Round2(time.Since(started).Seconds())
	jsonPath, htmlPath := filepath.Join(b.out, "report.json"), filepath.Join(b.out, "report.html")
	if err := b.rep.WriteJSON(jsonPath); err != nil {
		return errors.Join(runErr, err)
	}
	if err := b.rep.WriteHTML(htmlPath); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprintln(b.stdout)
	b.rep.WriteText(b.stdout)
	if runErr != nil {
		fmt.Fprintf(b.stdout, "\nwrote a partial report (%s at %s) to %s and %s\n", b.rep.Stopped.Cause, b.rep.Stopped.At, jsonPath, htmlPath)
		return fmt.Errorf("%s at %s, partial report in %s: %w", b.rep.Stopped.Cause, b.rep.Stopped.At, b.out, runErr)
	}
	fmt.Fprintf(b.stdout, "\nwrote %s and %s\n", jsonPath, htmlPath)
	return nil
}

// startTarget builds and starts vitrine, or points at -url.
func (b *bench) startTarget(ctx context.Context) error {
	b.rep.Target = report.Target{URL: strings.TrimRight(b.o.url, "/"), Backends: b.backends()}
	if b.o.url != "" {
		b.pprof = b.o.pprofAddr
		return nil
	}
	bin := b.o.vitrine
	if bin == "" {
		bin = filepath.Join(b.tmp, "vitrine")
		b.bar.Logf("building ./cmd/vitrine")
		if err := target.Build(ctx, b.root, bin); err != nil {
			return err
		}
	} else if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	env := append([]string{"VITRINE_LOG_LEVEL=" + b.o.logLevel}, benchEnv()...)
	if b.getenv("MALLOC_ARENA_MAX") == "" {
		env = append(env, "MALLOC_ARENA_MAX=2") // as make run does
	}
	if b.getenv("VITRINE_RENDER_WORKERS") == "" {
		// On-demand files are made by render workers of their own (1 by
		// default): as many as imgproxy's workers in the on-demand scenarios.
		env = append(env, fmt.Sprintf("VITRINE_RENDER_WORKERS=%d", b.workers()))
	}
	if b.o.pprof {
		port, err := target.FreePort()
		if err != nil {
			return err
		}
		b.pprof = fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, "VITRINE_PPROF_ADDR="+b.pprof)
	}
	b.bar.Logf("starting vitrine (%s)", b.backends())
	p, err := target.Start(ctx, target.Options{Bin: bin, DataDir: filepath.Join(b.tmp, "data"), Env: env, LogPath: filepath.Join(b.tmp, "vitrine.log"), CPUs: b.o.serverCPUs})
	if err != nil {
		return err
	}
	b.proc = p
	b.rep.Target = report.Target{URL: p.URL(), Managed: true, Binary: bin, Backends: b.backends(), LogLevel: b.o.logLevel}
	return nil
}

func (b *bench) seed(ctx context.Context) error {
	label := fmt.Sprintf("seed %d products", b.o.products)
	ids, ph, err := scenario.Seed(ctx, b.client, b.o.products, b.o.concurrency, b.o.seed, b.bar.Tick(label))
	if err != nil {
		return err
	}
	b.ids = ids
	b.rep.Seed = report.PhaseOf("seed", ph)
	b.rep.Seed.Mode = "seed"
	b.bar.Done(label, fmt.Sprintf("%d created, %.0f/s, p99 %.2f ms, errors %d", len(ids), ph.Throughput(), report.Ms(ph.Hist.Quantile(0.99)), ph.FailCount()))
	if len(ids) < b.o.products {
		b.note("only %d of %d products were created (%v)", len(ids), b.o.products, ph.Fails)
	}
	b.keys, err = zipf.NewKeys(b.ids, b.o.zipfS, b.o.seed)
	if err != nil {
		return err
	}
	b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("Zipf s=%.2f over %d products: the top 1 %% get %.0f %% of the reads, the top 10 products %.0f %%.",
		b.o.zipfS, len(b.ids), 100*b.keys.Zipf().TopShare(max(len(b.ids)/100, 1)), 100*b.keys.Zipf().TopShare(10)))
	return nil
}

// resetMem starts a new peak-RSS window.
func (b *bench) resetMem() {
	if b.proc != nil {
		b.proc.Mem.Reset()
	}
}

// peak is vitrine's peak RSS since resetMem.
func (b *bench) peak() (*int64, string) {
	if b.proc == nil {
		return nil, ""
	}
	v, scoped := b.proc.Mem.Peak()
	if scoped {
		return &v, "scenario"
	}
	return &v, "process"
}

// benchEnv runs every vitrine of the bench in development mode (the load
// generator writes without a key) without rate or backlog limits: the
// bench measures vitrine, not its limits' refusals.
func benchEnv() []string {
	return []string{"VITRINE_ENV=development", "VITRINE_RATE_ANONYMOUS=0", "VITRINE_RATE_ANONYMOUS_WRITES=0", "VITRINE_MAX_BACKLOG=0", "VITRINE_MAX_OWNER_BACKLOG=0"}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
	"github.com/vitrine-dev/vitrine/bench/internal/progress"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
	"github.com/vitrine-dev/vitrine/bench/internal/zipf"
	"github.com/vitrine-dev/vitrine/media"
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

func (b *bench) has(s string) bool {
	for _, x := range b.o.scenarios {
		if x == s {
			return true
		}
	}
	return false
}

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
	b.rep = &report.Report{Version: 1, StartedAt: started, Notes: []string{},
		Machine: report.Machine{CPUs: cpus(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(), LoadStart: loadavg()},
		Config: report.Config{PhaseSeconds: b.o.duration.Seconds(), Concurrency: b.o.concurrency, OpenWorkers: b.o.openWorkers,
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
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "vitrine-bench-"); err != nil {
		return err
	}
	if b.o.keep {
		b.bar.Logf("temporary directory kept: %s", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}

	if err := b.startTarget(ctx); err != nil {
		return err
	}
	defer func() {
		if b.proc != nil {
			if stopErr := b.proc.Stop(); stopErr != nil && err == nil {
				err = fmt.Errorf("stop vitrine: %w", stopErr)
			}
		}
	}()
	maxConns := max(b.o.concurrency, b.o.openWorkers) + b.o.uploadConc + 8
	if b.client, err = httpc.New(b.rep.Target.URL, maxConns, b.o.timeout); err != nil {
		return err
	}
	defer b.client.Close()

	if err := b.seed(ctx); err != nil {
		return err
	}
	for _, name := range allScenarios {
		if !b.has(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var s *report.Scenario
		switch name {
		case "read-hot":
			s, err = b.readHot(ctx)
		case "mixed":
			s, err = b.loadScenario(ctx, name, "90 % GET /products/{id} (Zipf), 8 % PATCH of a price (Zipf), 2 % POST /products.", scenario.Mixed(b.client, b.keys))
		case "list":
			s, err = b.loadScenario(ctx, name, fmt.Sprintf("GET /products filtered by user_id, a price range, q, user_id and q, or nothing, with limit 10/20/50, following next_cursor for up to %d pages; each page is a request.", scenario.MaxPages), scenario.List(b.client))
		case "upload":
			s, err = b.upload(ctx)
		case "read-cold":
			s, err = b.readCold(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b.rep.Scenarios = append(b.rep.Scenarios, s)
	}
	b.targets()
	b.rep.Machine.LoadEnd = loadavg()
	b.rep.WallSeconds = report.Round2(time.Since(started).Seconds())
	if err := b.rep.WriteJSON(filepath.Join(b.out, "report.json")); err != nil {
		return err
	}
	if err := b.rep.WriteHTML(filepath.Join(b.out, "report.html")); err != nil {
		return err
	}
	fmt.Fprintln(b.stdout)
	b.rep.WriteText(b.stdout)
	fmt.Fprintf(b.stdout, "\nwrote %s and %s\n", filepath.Join(b.out, "report.json"), filepath.Join(b.out, "report.html"))
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
	// Development mode (the load generator writes without a key) and no
	// rate limits: the bench measures vitrine, not its limiter's refusals.
	env := []string{"VITRINE_LOG_LEVEL=" + b.o.logLevel, "VITRINE_ENV=development", "VITRINE_RATE_ANONYMOUS=0",
		"VITRINE_MAX_BACKLOG=0", "VITRINE_MAX_OWNER_BACKLOG=0"}
	if b.getenv("MALLOC_ARENA_MAX") == "" {
		env = append(env, "MALLOC_ARENA_MAX=2") // as make run does
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
	p, err := target.Start(ctx, target.Options{Bin: bin, DataDir: filepath.Join(b.tmp, "data"), Env: env, LogPath: filepath.Join(b.tmp, "vitrine.log")})
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

func summary(p *report.Phase, unit string) string {
	s := fmt.Sprintf("%s %s  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.1f ms  errors %d", fmtNum(p.ThroughputRPS), unit,
		p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.P999, p.Latency.Max, p.Requests-p.OK)
	if p.Unsent > 0 {
		s += fmt.Sprintf("  unsent %d", p.Unsent)
	}
	if p.PeakRSSBytes != nil {
		s += "  rss " + report.MiB(p.PeakRSSBytes)
	}
	return s
}

func fmtNum(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// phases runs a scenario's closed and/or open phases with op.
func (b *bench) phases(ctx context.Context, name string, op load.Op, s *report.Scenario) {
	var peak float64
	if b.o.mode != "open" {
		label := fmt.Sprintf("%s closed c=%d", name, b.o.concurrency)
		b.resetMem()
		prof := b.startProfile(ctx, name+".closed")
		lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Seed: b.o.seed, Setup: scenario.Setup, Tick: b.bar.Tick(label)}, op)
		prof()
		ph := report.PhaseOf("closed", lp)
		ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
		s.Phases = append(s.Phases, ph)
		s.SetMain(ph)
		peak = lp.Throughput()
		b.bar.Done(label, summary(ph, "req/s"))
	}
	if b.o.mode != "closed" && ctx.Err() == nil {
		rate := b.o.rate
		if rate <= 0 {
			rate = peak / 2
		}
		if rate < 1 {
			b.note("%s: no open-loop phase: the closed-loop peak was %.1f req/s", name, peak)
			return
		}
		label := fmt.Sprintf("%s open @%.0f/s", name, rate)
		b.resetMem()
		prof := b.startProfile(ctx, name+".open")
		lp := load.Open(ctx, load.Config{Concurrency: b.o.openWorkers, Rate: rate, Duration: b.o.duration, Seed: b.o.seed + 1,
			Setup: scenario.Setup, Tick: b.bar.Tick(label)}, op)
		prof()
		ph := report.PhaseOf("open", lp)
		ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
		s.Phases = append(s.Phases, ph)
		if b.o.mode == "open" {
			s.SetMain(ph)
		}
		b.bar.Done(label, summary(ph, "req/s"))
	}
	for _, ph := range s.Phases {
		if ph.PeakRSSBytes != nil && (s.PeakRSSBytes == nil || *ph.PeakRSSBytes > *s.PeakRSSBytes) {
			v := *ph.PeakRSSBytes
			s.PeakRSSBytes = &v
		}
	}
}

func (b *bench) loadScenario(ctx context.Context, name, desc string, op load.Op) (*report.Scenario, error) {
	s := &report.Scenario{Name: name, Description: desc, Unit: "req/s", Errors: map[string]uint64{}}
	b.phases(ctx, name, op, s)
	return s, ctx.Err()
}

func (b *bench) readHot(ctx context.Context) (*report.Scenario, error) {
	s := &report.Scenario{Name: "read-hot", Unit: "req/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("GET /products/{id} over %d seeded products, ids drawn by Zipf (s=%.2f): cached reads.", len(b.ids), b.o.zipfS)}
	// Every product once: the warm-up, and the bytes the bare baseline serves.
	b.bar.Logf("reading every product once (warm-up)")
	products, err := scenario.Fetch(ctx, b.client, b.ids, b.o.concurrency)
	if err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	b.phases(ctx, s.Name, scenario.ReadHot(b.client, b.keys), s)
	if !b.o.baselines["bare"] {
		return s, ctx.Err()
	}
	openRate := 0.0
	if op := s.Phase("open"); op != nil {
		openRate = op.TargetRPS
	}
	bl, err := b.bare(ctx, products, openRate)
	if err != nil {
		return nil, err
	}
	b.rep.Baselines = append(b.rep.Baselines, bl)
	if bl.Skipped == "" {
		s.Compare(bl.Name, bl.Value, bl.Unit)
	}
	return s, ctx.Err()
}

// bare runs the read-hot closed loop against a bare fasthttp server
// serving the same product bytes, and, when openRate > 0, the open loop
// at the rate vitrine's open phase had: the floor of what this machine and
// this client can show at that rate.
func (b *bench) bare(ctx context.Context, products []scenario.Product, openRate float64) (*report.Baseline, error) {
	bl := &report.Baseline{Name: "bare-fasthttp", Unit: "req/s",
		Description: "a bare fasthttp server (separate process) answering GET /products/{id} with the same bytes and headers from a map; same closed-loop read-hot load"}
	exe, err := os.Executable()
	if err != nil {
		bl.Skipped = "cannot find the bench executable: " + err.Error()
		return bl, nil
	}
	file := filepath.Join(b.tmp, "products.jsonl")
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, p := range products {
		if err := enc.Encode(p); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	f.Close()
	srv, err := baseline.StartBare(exe, file)
	if err != nil {
		return nil, fmt.Errorf("bare baseline: %w", err)
	}
	defer srv.Stop()
	c, err := httpc.New("http://"+srv.Addr, b.o.concurrency+8, b.o.timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := scenario.Fetch(ctx, c, b.ids[:min(len(b.ids), 100)], 4); err != nil {
		return nil, fmt.Errorf("bare baseline: %w", err)
	}
	mem := target.Watch(srv.Pid())
	defer mem.Stop()
	label := fmt.Sprintf("bare-fasthttp closed c=%d", b.o.concurrency)
	lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Seed: b.o.seed, Setup: scenario.Setup, Tick: b.bar.Tick(label)},
		scenario.ReadHot(c, b.keys))
	bl.Phase = report.PhaseOf("closed", lp)
	rss, _ := mem.Peak()
	bl.PeakRSSBytes = &rss
	bl.Phase.PeakRSSBytes = &rss
	bl.Value = report.Round2(lp.Throughput())
	b.bar.Done(label, summary(bl.Phase, "req/s"))
	if openRate > 0 && ctx.Err() == nil {
		c.Close()
		oc, err := httpc.New("http://"+srv.Addr, b.o.openWorkers+8, b.o.timeout)
		if err != nil {
			return nil, err
		}
		defer oc.Close()
		label := fmt.Sprintf("bare-fasthttp open @%.0f/s", openRate)
		mem.Reset()
		lp := load.Open(ctx, load.Config{Concurrency: b.o.openWorkers, Rate: openRate, Duration: b.o.duration, Seed: b.o.seed + 1,
			Setup: scenario.Setup, Tick: b.bar.Tick(label)}, scenario.ReadHot(oc, b.keys))
		ph := report.PhaseOf("open", lp)
		rss, _ := mem.Peak()
		ph.PeakRSSBytes = &rss
		bl.Extra = map[string]any{"open": ph}
		b.bar.Done(label, summary(ph, "req/s"))
	}
	return bl, nil
}

// photos lists the corpus files to upload.
func (b *bench) photos() ([]string, error) {
	dir := b.o.corpus
	if dir == "" {
		if c := b.getenv("VITRINE_CORPUS"); c != "" {
			dir = filepath.Join(c, "public")
		} else if b.root != "" {
			dir = filepath.Join(b.root, "..", "shared", "corpus", "public")
		}
	}
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		return nil, fmt.Errorf("image corpus (-corpus or VITRINE_CORPUS): %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header: file category expected orientation_fix width height format …
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 7 || cols[2] != "accept" || cols[6] != "jpeg" {
			continue
		}
		if strings.Contains(cols[1], b.o.photos) || strings.Contains(cols[0], b.o.photos) {
			out = append(out, filepath.Join(dir, cols[0]))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no accepted JPEG in %s matches -photos %q", dir, b.o.photos)
	}
	return out, sc.Err()
}

func (b *bench) upload(ctx context.Context) (*report.Scenario, error) {
	paths, err := b.photos()
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b.rep.Config.Photos = append(b.rep.Config.Photos, filepath.Base(p))
	}
	photos, err := scenario.LoadPhotos(paths)
	if err != nil {
		return nil, err
	}
	s := &report.Scenario{Name: "upload", Unit: "images/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("A burst of %d multipart uploads of %d corpus photos (%s), %d at a time, each polled every 25 ms until ready; latency is 202 → ready.",
			b.o.uploads, len(photos), strings.Join(b.rep.Config.Photos, ", "), b.o.uploadConc)}
	label := fmt.Sprintf("upload %d images", b.o.uploads)
	b.resetMem()
	prof := b.startProfile(ctx, "upload.burst")
	res, err := scenario.Upload(ctx, b.client, b.ids, photos, b.o.uploads, b.o.uploadConc, 25*time.Millisecond, 5*time.Minute, b.bar.Tick(label))
	prof()
	if err != nil {
		return nil, err
	}
	ph := &report.Phase{Name: "burst", Mode: "burst", Concurrency: b.o.uploadConc, Seconds: report.Round2(res.Elapsed.Seconds()),
		Requests: uint64(res.Images), OK: uint64(res.Ready), ThroughputRPS: report.Round2(res.ImagesPerSec),
		Latency: report.LatencyOf(res.ToReady), Errors: res.Fails, Status: map[string]uint64{},
		ByOp: map[string]report.OpStats{
			"accept (POST → 202)": {Count: res.Accept.Count(), Latency: report.LatencyOf(res.Accept)},
			"ready (202 → ready)": {Count: res.ToReady.Count(), Latency: report.LatencyOf(res.ToReady)},
		},
		Timeline: report.TimelineOf(res.Timeline), Percentiles: report.PercentilesOf(res.ToReady)}
	for k, v := range res.Status {
		ph.Status[fmt.Sprint(k)] = v
	}
	ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
	s.PeakRSSBytes = ph.PeakRSSBytes
	s.Phases = append(s.Phases, ph)
	s.SetMain(ph)
	s.Extra = map[string]any{"uploaded_mib": report.Round2(float64(res.Bytes) / (1 << 20)), "ready": res.Ready, "images": res.Images,
		"recipe_outputs": media.DefaultRecipe().Outputs()}
	b.bar.Done(label, summary(ph, "images/s"))
	if b.o.baselines["vips"] {
		bl := b.vips(ctx, paths)
		b.rep.Baselines = append(b.rep.Baselines, bl)
		if bl.Skipped == "" {
			s.Compare(bl.Name, bl.Value, bl.Unit)
		}
	}
	return s, ctx.Err()
}

func (b *bench) vips(ctx context.Context, paths []string) *report.Baseline {
	workers := b.workers()
	recipe := media.DefaultRecipe()
	var names []string
	for _, v := range recipe.Variants {
		for _, e := range v.Formats {
			names = append(names, fmt.Sprintf("%s %s %dx%d %s q%d", v.Name, orDefault(string(v.Fit), "inside"), v.Width, v.Height, e.Format.Name(), e.Quality))
		}
	}
	bl := &report.Baseline{Name: "vips-cli", Unit: "images/s",
		Description: fmt.Sprintf("the vips command line making the same %d outputs of the same photos (one `vips thumbnail` per output: %s), %d images at a time, VIPS_CONCURRENCY=1",
			recipe.Outputs(), strings.Join(names, ", "), workers)}
	label := fmt.Sprintf("vips-cli %d images", b.o.uploads)
	b.bar.Logf("%s (%d at a time)", label, workers)
	res, err := baseline.Vips(ctx, paths, b.o.uploads, workers, recipe, b.tmp)
	if err != nil {
		bl.Skipped = err.Error()
		return bl
	}
	bl.Value = report.Round2(res.ImagesPerSec)
	bl.Phase = &report.Phase{Name: "burst", Mode: "burst", Concurrency: workers, Seconds: report.Round2(res.Elapsed.Seconds()),
		Requests: uint64(res.Images), OK: res.PerImage.Count(), ThroughputRPS: bl.Value, Latency: report.LatencyOf(res.PerImage),
		Errors: map[string]uint64{}, Status: map[string]uint64{}, Timeline: []report.Point{}, Percentiles: report.PercentilesOf(res.PerImage)}
	bl.Extra = map[string]any{"commands": res.Commands, "vips_version": res.Version}
	b.bar.Done(label, summary(bl.Phase, "images/s"))
	return bl
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// workers is the started vitrine's image workers (VITRINE_WORKERS, default
// the number of CPUs).
func (b *bench) workers() int {
	if v := b.getenv("VITRINE_WORKERS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return cpus()
}

func (b *bench) readCold(ctx context.Context) (*report.Scenario, error) {
	s := &report.Scenario{Name: "read-cold", Unit: "req/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("vitrine restarted (empty in-process cache, no product actor alive), then each of the %d products read once in a random order by %d closed-loop workers: every GET misses the cache, activates the product's actor and reads the database.", len(b.ids), b.o.concurrency)}
	if b.proc == nil {
		s.Skipped = "needs a vitrine started by the bench (it is restarted to empty its cache)"
		return s, nil
	}
	if b.getenv("VITRINE_REDIS_URL") != "" {
		b.note("read-cold: the Redis cache survives the restart, so these reads may not be cold")
	}
	b.bar.Logf("restarting vitrine for cold reads")
	p, err := b.proc.Restart(ctx)
	if err != nil {
		return nil, err
	}
	b.proc = p
	// The old process's keep-alive connections are dead: start afresh.
	b.client.Close()
	if b.client, err = httpc.New(b.rep.Target.URL, max(b.o.concurrency, b.o.openWorkers)+b.o.uploadConc+8, b.o.timeout); err != nil {
		return nil, err
	}
	label := fmt.Sprintf("read-cold closed c=%d", b.o.concurrency)
	prof := b.startProfile(ctx, "read-cold.closed")
	lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Limit: uint64(len(b.ids)), Seed: b.o.seed,
		Setup: scenario.Setup, Tick: b.bar.Tick(label)}, scenario.Cold(b.client, b.ids, b.o.seed))
	prof()
	ph := report.PhaseOf("closed", lp)
	ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
	s.PeakRSSBytes = ph.PeakRSSBytes
	s.Phases = append(s.Phases, ph)
	s.SetMain(ph)
	b.bar.Done(label, summary(ph, "req/s"))
	if lp.Requests() < uint64(len(b.ids)) {
		b.note("read-cold: %d of %d products read within %v; the rest were not measured", lp.Requests(), len(b.ids), b.o.duration)
	}
	if b.o.baselines["pgbench"] {
		bl := b.pgbench(ctx)
		b.rep.Baselines = append(b.rep.Baselines, bl)
		if bl.Skipped == "" {
			s.Compare(bl.Name, bl.Value, bl.Unit)
		} else {
			s.Baseline = &report.BaselineRef{Name: bl.Name, Unit: bl.Unit}
		}
	}
	return s, ctx.Err()
}

func (b *bench) pgbench(ctx context.Context) *report.Baseline {
	bl := &report.Baseline{Name: "pgbench-S", Unit: "tx/s",
		Description: "pgbench -S (one primary-key SELECT a transaction) against the same PostgreSQL, pgbench tables at scale 1 in a schema of their own"}
	url := b.getenv("VITRINE_POSTGRES_URL")
	if url == "" {
		bl.Skipped = "VITRINE_POSTGRES_URL is not set: vitrine runs on SQLite, there is no PostgreSQL to compare with"
		return bl
	}
	clients := min(b.o.concurrency, 32)
	label := fmt.Sprintf("pgbench -S -c %d", clients)
	b.bar.Logf("%s for %v", label, b.o.duration)
	res, err := baseline.Pgbench(ctx, url, clients, b.o.duration)
	if err != nil {
		bl.Skipped = err.Error()
		return bl
	}
	bl.Value = report.Round2(res.TPS)
	bl.Extra = map[string]any{"clients": res.Clients, "seconds": res.Duration.Seconds(), "latency_avg_ms": res.LatencyMs, "scale": res.Scale}
	b.bar.Done(label, fmt.Sprintf("%.0f tx/s, latency avg %.3f ms", res.TPS, res.LatencyMs))
	return bl
}

// startProfile fetches a CPU profile of vitrine for the phase's duration,
// then, when the returned function is called at the phase's end, its
// allocation profile. Without -pprof it does nothing.
func (b *bench) startProfile(ctx context.Context, name string) (stop func()) {
	if b.pprof == "" {
		return func() {}
	}
	dir := filepath.Join(b.out, "pprof")
	_ = os.MkdirAll(dir, 0o755)
	secs := max(int(math.Round(b.o.duration.Seconds())), 1)
	fetch := func(path, file string) {
		c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.pprof+path, nil)
		res, err := c.Do(req)
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("status %d", res.StatusCode)
			res.Body.Close()
		}
		if err != nil {
			b.mu.Lock()
			first := !b.warned[path]
			b.warned[path] = true
			b.mu.Unlock()
			if first {
				b.note("pprof: GET http://%s%s: %v (vitrine needs VITRINE_PPROF_ADDR serving net/http/pprof)", b.pprof, path, err)
			}
			return
		}
		defer res.Body.Close()
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return
		}
		_, _ = io.Copy(f, res.Body)
		f.Close()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name+".cpu.pprof")
	}()
	return func() {
		wg.Wait()
		fetch("/debug/pprof/allocs", name+".allocs.pprof")
	}
}

func f64(v float64) *float64 { return &v }
func boolp(v bool) *bool     { return &v }

// targets reports the goals, never asserting them.
func (b *bench) targets() {
	t := &b.rep.Targets
	*t = []report.Check{}
	if s := b.rep.Find("read-hot"); s != nil {
		c := report.Check{Name: "cached GET vs bare fasthttp (peak rates)", Unit: "×", Goal: "≥ 0.6×"}
		if s.Ratio != nil {
			c.Value, c.Met = s.Ratio, boolp(*s.Ratio >= 0.6)
			c.Detail = fmt.Sprintf("%.0f vs %.0f req/s", s.ThroughputRPS, s.Baseline.Value)
		} else {
			c.Detail = "no bare-fasthttp baseline"
		}
		*t = append(*t, c)
		c = report.Check{Name: "read-hot p99 at 50% of vitrine's peak (open loop)", Unit: " ms", Goal: "≤ 2 ms"}
		if op, cl := s.Phase("open"), s.Phase("closed"); op != nil && cl != nil && b.o.rate <= 0 {
			c.Value, c.Met = f64(op.Latency.P99), boolp(op.Latency.P99 <= 2)
			c.Detail = fmt.Sprintf("%.0f req/s scheduled (half of %.0f), p50 %.3f ms, p99.9 %.3f ms", op.TargetRPS, cl.ThroughputRPS, op.Latency.P50, op.Latency.P999)
			if bl := b.rep.FindBaseline("bare-fasthttp"); bl != nil && bl.Extra != nil {
				if bo, ok := bl.Extra["open"].(*report.Phase); ok {
					c.Detail += fmt.Sprintf("; bare-fasthttp at the same rate: p99 %.3f ms (this machine and client's floor)", bo.Latency.P99)
				}
			}
		} else {
			c.Detail = "needs -mode both without -rate"
		}
		*t = append(*t, c)
	}
	if s := b.rep.Find("upload"); s != nil {
		c := report.Check{Name: "images/s vs the vips CLI", Unit: "×", Goal: "≥ 1.2×"}
		if s.Ratio != nil {
			c.Value, c.Met = s.Ratio, boolp(*s.Ratio >= 1.2)
			c.Detail = fmt.Sprintf("%.2f vs %.2f images/s", s.ThroughputRPS, s.Baseline.Value)
		} else {
			c.Detail = "no vips-cli baseline"
		}
		*t = append(*t, c)
	}
	if s := b.rep.Find("read-cold"); s != nil && s.Skipped == "" {
		c := report.Check{Name: "cold reads vs pgbench -S", Unit: "×", Goal: "reported"}
		if s.Ratio != nil {
			c.Value = s.Ratio
			c.Detail = fmt.Sprintf("%.0f req/s vs %.0f tx/s", s.ThroughputRPS, s.Baseline.Value)
		} else {
			c.Detail = "no pgbench baseline (needs VITRINE_POSTGRES_URL and pgbench)"
		}
		*t = append(*t, c)
	}
	for _, s := range b.rep.Scenarios {
		if s.Skipped != "" {
			continue
		}
		c := report.Check{Name: "peak RSS, " + s.Name, Unit: " MiB", Goal: "printed"}
		if s.PeakRSSBytes != nil {
			c.Value = f64(math.Round(float64(*s.PeakRSSBytes) / (1 << 20)))
			c.Detail = "VmHWM of the vitrine process"
			if s.PeakRSSScope == "process" {
				c.Detail += " (since its start: the kernel refused to reset it)"
			}
		} else {
			c.Detail = "unknown: vitrine was not started by the bench"
		}
		*t = append(*t, c)
	}
}

// Command bench load-tests vitrine and shows where it stands against the
// limits of the machine it runs on: a bare fasthttp server serving the same
// bytes (the front door's limit), pgbench -S (cold reads on PostgreSQL) and
// the vips command line (images), all measured in the same run.
//
//	go run ./bench                       # builds and starts a vitrine of its own
//	go run ./bench -vitrine bin/vitrine  # starts that binary instead
//	go run ./bench -url http://host:8080 # measures a running vitrine
//
// See bench/README.md for the scenarios, the flags and the report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/floor"
)

func main() {
	if os.Getenv(floor.Env) != "" {
		if err := floor.Serve(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: floor:", err)
			os.Exit(1)
		}
		return
	}
	if os.Getenv(baseline.BareEnv) != "" {
		if err := baseline.ServeBare(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: bare server:", err)
			os.Exit(1)
		}
		return
	}
	// SIGINT or SIGTERM cancels ctx: the bench stops its children and
	// writes a partial report. A second one exits at once, without.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

// All scenarios, in the order they run.
var allScenarios = []string{"read-hot", "mixed", "list", "upload", "images", "ondemand-first", "ondemand-repeat", "read-cold"}

// options are the flags.
type options struct {
	url         string
	vitrine     string
	scenarios   []string
	duration    time.Duration
	concurrency int
	openWorkers int
	mode        string
	rate        float64
	products    int
	zipfS       float64
	seed        uint64
	uploads     int
	uploadConc  int
	photos      string
	corpus      string
	out         string
	baselines   map[string]bool
	pprof       bool
	pprofAddr   string
	logLevel    string
	timeout     time.Duration
	quiet       bool
	keep        bool

	serverCPUs string // taskset -c list the servers are pinned to ("": not pinned)
	cpuRounds  int    // read-hot: alternating rounds of vitrine and bare fasthttp for CPU per request

	imagesUploads int
	imagesRounds  int
	imagesIdle    int
	imagesPhoto   string
	imagesScale   float64 // 0: to imagesWidth
	imagesWidth   int     // the images scenario's photo width when -images-scale is not given
	imagesRecipes []string

	imgproxy       string // imgproxy binary; "": scripts/imgproxy builds it; "none": no imgproxy baseline
	ondemandWidths int    // on-demand scenarios: distinct widths requested

	full bool // the full profile (-full)

	cluster int // nodes of the cluster mode; 0: off
}

// profile is the defaults of a run: quick (make bench, about a minute on
// two cores) or full (-full, make bench-full: the figures the READMEs
// quote). Flags given explicitly, and BENCH_DURATION, override either.
type profile struct {
	duration      time.Duration
	products      int
	uploads       int
	uploadConc    int
	imagesUploads int
	imagesRounds  int
	imagesIdle    int
	imagesWidth   int // the images scenario's photo is scaled to this width
}

var (
	quickProfile = profile{duration: 2 * time.Second, products: 2000, uploads: 4, uploadConc: 4,
		imagesUploads: 6, imagesRounds: 3, imagesIdle: 5, imagesWidth: 2040}
	fullProfile = profile{duration: 4 * time.Second, products: 10000, uploads: 16, uploadConc: 8,
		imagesUploads: 40, imagesRounds: 3, imagesIdle: 20, imagesWidth: 5100}
)

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `bench — load-test vitrine against the machine's limits

Usage: go run ./bench [flags]

With no -url, it builds ./cmd/vitrine (or runs -vitrine) on a free loopback
port with a temporary data directory; VITRINE_* variables of the environment
(VITRINE_POSTGRES_URL…) are passed on. BENCH_DURATION sets the default -duration.

Flags:
`)
		fs.PrintDefaults()
	}
	q, f := quickProfile, fullProfile
	envDuration := time.Duration(0)
	if v := getenv("BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("BENCH_DURATION=%q: want a positive duration such as 3s", v)
		}
		envDuration = d
	}
	fs.BoolVar(&o.full, "full", false, fmt.Sprintf("the full profile (make bench-full): %v phases, %d products, %d uploads, images %d uploads × %d rounds of a %d px wide photo and %d idle uploads; flags given explicitly override it",
		f.duration, f.products, f.uploads, f.imagesUploads, f.imagesRounds, f.imagesWidth, f.imagesIdle))
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated: "+strings.Join(allScenarios, ", "))
	base := fs.String("baselines", "bare,pgbench,vips", "baselines to measure, comma-separated (bare, pgbench, vips), or none")
	seed := fs.Uint64("seed", 1, "random seed (products, Zipf ranks, request mix)")
	fs.StringVar(&o.url, "url", "", "measure the vitrine at this base URL instead of starting one")
	fs.StringVar(&o.vitrine, "vitrine", "", "vitrine binary to start (default: go build ./cmd/vitrine into a temporary directory)")
	fs.DurationVar(&o.duration, "duration", q.duration, fmt.Sprintf("length of each load phase (env BENCH_DURATION; -full: %v)", f.duration))
	fs.IntVar(&o.concurrency, "c", 32, "closed-loop workers (connections)")
	fs.IntVar(&o.openWorkers, "open-workers", 256, "open-loop workers: requests in flight at most")
	fs.StringVar(&o.mode, "mode", "both", "closed (peak rate), open (fixed rate, needs -rate) or both (closed, then open at -rate or half the peak)")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop rate in requests/s (default: 50% of the scenario's closed-loop peak)")
	fs.IntVar(&o.products, "products", q.products, fmt.Sprintf("products to seed (-full: %d)", f.products))
	fs.Float64Var(&o.zipfS, "zipf", 1.0, "Zipf exponent of product popularity (> 0; 1 = classic Zipf)")
	fs.IntVar(&o.uploads, "uploads", q.uploads, fmt.Sprintf("images in the upload burst (-full: %d)", f.uploads))
	fs.IntVar(&o.uploadConc, "upload-concurrency", q.uploadConc, fmt.Sprintf("uploads sent at once (-full: %d)", f.uploadConc))
	fs.StringVar(&o.photos, "photos", "jpeg-photo", "corpus images to upload: accepted JPEGs whose MANIFEST category or file name contains this")
	fs.IntVar(&o.cluster, "cluster", 0, "cluster mode: read-hot, mixed, read-cold and upload against a cluster of 1, then N nodes started by scripts/cluster (needs bin/vitrine: make build), round-robin; writes bench/out/cluster.json")
	fs.StringVar(&o.serverCPUs, "server-cpus", "", "pin the servers the bench starts (vitrine and the bare baseline) to these CPUs (taskset -c list, e.g. 0); run the bench itself on the others (taskset -c 1 go run ./bench …) so the load generator does not share their cores")
	fs.IntVar(&o.cpuRounds, "cpu-rounds", 3, "read-hot: closed-loop rounds alternating vitrine and the bare fasthttp baseline, each -duration long, for their CPU per request (median of the rounds; 0: none)")
	fs.IntVar(&o.imagesUploads, "images-uploads", q.imagesUploads, fmt.Sprintf("images scenario: uploads per round (-full: %d)", f.imagesUploads))
	fs.IntVar(&o.imagesRounds, "images-rounds", q.imagesRounds, fmt.Sprintf("images scenario: rounds, each alternating the floor, vitrine's pipeline in-process and vitrine (-full: %d)", f.imagesRounds))
	fs.IntVar(&o.imagesIdle, "images-idle", q.imagesIdle, fmt.Sprintf("images scenario: single uploads on the idle node, for the latency to ready (-full: %d)", f.imagesIdle))
	fs.StringVar(&o.imagesPhoto, "images-photo", "photo_pixel6pro_ultrahdr_p3.jpg", "images scenario: the corpus photo the large photo is made from (without a corpus: testdata/desk-lamp.jpg)")
	fs.Float64Var(&o.imagesScale, "images-scale", 0, fmt.Sprintf("images scenario: the scale of that photo (default: to %d px wide, -full: %d, the corpus photo's 4080x3072 × 1.25 = 5100x3840, 19.6 MP)", q.imagesWidth, f.imagesWidth))
	imgRecipes := fs.String("images-recipes", "webp800,default", "images scenario: recipes, comma-separated (webp800, default)")
	fs.StringVar(&o.imgproxy, "imgproxy", "", "imgproxy binary of the imgproxy baseline (images webp800, ondemand-*); default: scripts/imgproxy builds imgproxy "+baseline.ImgproxyVersion+" from its public source once; none: no imgproxy baseline")
	fs.IntVar(&o.ondemandWidths, "ondemand-widths", 24, "ondemand-first: distinct widths requested (multiples of 16 from 320 to 1600 px, at most 81)")
	fs.StringVar(&o.corpus, "corpus", "", "image corpus directory with MANIFEST.tsv (default: $VITRINE_CORPUS/public or ../shared/corpus/public beside the repository)")
	fs.StringVar(&o.out, "out", "", "output directory (default: bench/out in the repository)")
	fs.BoolVar(&o.pprof, "pprof", false, "capture CPU and allocation profiles of vitrine per scenario (needs VITRINE_PPROF_ADDR support in vitrine)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "with -url and -pprof: the host:port of vitrine's pprof endpoint")
	fs.StringVar(&o.logLevel, "log-level", "", "VITRINE_LOG_LEVEL of the started vitrine (default: the environment's, else warn; info logs every request)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of one request")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress output")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (vitrine's data and log)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	// The profile's defaults, under the flags given and BENCH_DURATION.
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	p := q
	if o.full {
		p = f
	}
	if envDuration > 0 {
		p.duration = envDuration
	}
	for name, set := range map[string]func(){
		"duration":           func() { o.duration = p.duration },
		"products":           func() { o.products = p.products },
		"uploads":            func() { o.uploads = p.uploads },
		"upload-concurrency": func() { o.uploadConc = p.uploadConc },
		"images-uploads":     func() { o.imagesUploads = p.imagesUploads },
		"images-rounds":      func() { o.imagesRounds = p.imagesRounds },
		"images-idle":        func() { o.imagesIdle = p.imagesIdle },
	} {
		if !given[name] {
			set()
		}
	}
	o.imagesWidth = p.imagesWidth
	if given["images-scale"] && !(o.imagesScale > 0) {
		return o, fmt.Errorf("-images-scale must be positive")
	}
	o.seed = *seed
	known := map[string]bool{}
	for _, s := range allScenarios {
		known[s] = true
	}
	for _, s := range strings.Split(*scen, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !known[s] {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, r := range strings.Split(*imgRecipes, ",") {
		switch r = strings.TrimSpace(r); r {
		case "":
		case "webp800", "default":
			o.imagesRecipes = append(o.imagesRecipes, r)
		default:
			return o, fmt.Errorf("-images-recipes: unknown recipe %q (have webp800, default)", r)
		}
	}
	o.baselines = map[string]bool{}
	for _, b := range strings.Split(*base, ",") {
		switch b = strings.TrimSpace(b); b {
		case "", "none":
		case "bare", "pgbench", "vips":
			o.baselines[b] = true
		default:
			return o, fmt.Errorf("-baselines: unknown baseline %q (have bare, pgbench, vips, none)", b)
		}
	}
	switch {
	case o.mode != "closed" && o.mode != "open" && o.mode != "both":
		return o, fmt.Errorf("-mode must be closed, open or both, got %q", o.mode)
	case o.mode == "open" && o.rate <= 0:
		return o, fmt.Errorf("-mode open needs -rate")
	case o.duration <= 0 || o.concurrency < 1 || o.openWorkers < 1 || o.products < 1 || o.uploads < 1 || o.uploadConc < 1:
		return o, fmt.Errorf("-duration, -c, -open-workers, -products, -uploads and -upload-concurrency must be positive")
	case o.imagesUploads < 1 || o.imagesRounds < 1 || o.imagesIdle < 1:
		return o, fmt.Errorf("-images-uploads, -images-rounds and -images-idle must be positive")
	case o.ondemandWidths < 1 || o.ondemandWidths > 81:
		return o, fmt.Errorf("-ondemand-widths must be between 1 and 81 (the multiples of 16 from 320 to 1600)")
	case !(o.zipfS > 0):
		return o, fmt.Errorf("-zipf must be > 0")
	case o.pprof && o.url != "" && o.pprofAddr == "":
		return o, fmt.Errorf("-pprof with -url needs -pprof-addr")
	case o.url != "" && o.vitrine != "":
		return o, fmt.Errorf("-url and -vitrine exclude each other")
	case o.cluster < 0 || (o.cluster > 0 && (o.url != "" || o.vitrine != "")):
		return o, fmt.Errorf("-cluster N takes a positive N, and starts its own nodes (no -url or -vitrine)")
	}
	if o.logLevel == "" {
		o.logLevel = getenv("VITRINE_LOG_LEVEL")
		if o.logLevel == "" {
			o.logLevel = "warn"
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.cluster > 0 {
		return runCluster(ctx, o, getenv, stdout, stderr)
	}
	b := newBench(o, getenv, stdout, stderr)
	return b.run(ctx)
}

// profileName is the profile the defaults came from.
func (o options) profileName() string {
	if o.full {
		return "full"
	}
	return "quick"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpus() int { return runtime.NumCPU() }

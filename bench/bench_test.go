package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/floor"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

func TestMain(m *testing.M) {
	// The bare baseline runs the bench's own executable as its server: here
	// that is this test binary.
	if os.Getenv(floor.Env) != "" {
		if err := floor.Serve(); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(baseline.BareEnv) != "" {
		if err := baseline.ServeBare(); err != nil {
			fmt.Fprintln(os.Stderr, "bare server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func env(vars map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, env(map[string]string{"BENCH_DURATION": "3s", "VITRINE_LOG_LEVEL": ""}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 3*time.Second || len(o.scenarios) != len(allScenarios) || o.mode != "both" || o.logLevel != "warn" || !o.baselines["bare"] {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-duration", "2s", "-scenarios", "list,read-hot", "-baselines", "none"}, env(map[string]string{"BENCH_DURATION": "3s"}), &bytes.Buffer{})
	if err != nil || o.duration != 2*time.Second || len(o.scenarios) != 2 || len(o.baselines) != 0 {
		t.Errorf("flags over BENCH_DURATION: %+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"-scenarios", "read-warm"}, {"-mode", "open"}, {"-mode", "sideways"}, {"-zipf", "0"},
		{"-baselines", "nginx"}, {"-url", "http://x", "-pprof"}, {"-c", "0"}, {"extra"},
	} {
		if _, err := parseFlags(bad, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := parseFlags(nil, env(map[string]string{"BENCH_DURATION": "soon"}), &bytes.Buffer{}); err == nil {
		t.Errorf("BENCH_DURATION=soon accepted")
	}
}

// TestSmoke runs every scenario for a second against a vitrine the bench
// builds and starts, and checks the reports.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts vitrine (cgo, libvips): skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("no go command to build vitrine: %v", err)
	}
	// The embedded default, whatever the environment says.
	for _, k := range []string{"VITRINE_POSTGRES_URL", "VITRINE_REDIS_URL", "VITRINE_KAFKA_BROKERS", "VITRINE_S3_ENDPOINT", "VITRINE_S3_BUCKET", "VITRINE_WORKERS"} {
		t.Setenv(k, "")
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-products", "200", "-uploads", "3", "-upload-concurrency", "3", "-photos", "progressive_mate",
		"-c", "8", "-open-workers", "32", "-out", out, "-cpu-rounds", "2",
		"-images-uploads", "2", "-images-rounds", "1", "-images-idle", "1", "-images-scale", "0.5"}
	// imgproxy when scripts/imgproxy has built it already (building it
	// takes minutes); else the images scenario keeps the floor alone.
	imgproxy := filepath.Join(os.Getenv("HOME"), ".cache", "vitrine-tools", "imgproxy-"+baseline.ImgproxyVersion, "imgproxy")
	if _, err := os.Stat(imgproxy); err != nil {
		imgproxy = "none"
	}
	args = append(args, "-imgproxy", imgproxy)
	start := time.Now()
	if err := run(ctx, args, env(map[string]string{"BENCH_DURATION": "1s"}), &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("bench ran in %v:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	for _, want := range []string{"read-hot", "bare-fasthttp", "ratios to the baselines", "targets (reported, not asserted)", "peak RSS"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q", want)
		}
	}

	// report.json
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Version   int            `json:"version"`
		Target    map[string]any `json:"target"`
		Config    map[string]any `json:"config"`
		Scenarios []struct {
			Name         string             `json:"name"`
			Unit         string             `json:"unit"`
			Skipped      string             `json:"skipped"`
			Throughput   float64            `json:"throughput"`
			Latency      map[string]float64 `json:"latency_ms"`
			Errors       map[string]uint64  `json:"errors"`
			PeakRSSBytes *int64             `json:"peak_rss_bytes"`
			Ratio        *float64           `json:"ratio"`
			Extra        map[string]any     `json:"extra"`
			Baseline     *struct {
				Name  string  `json:"name"`
				Value float64 `json:"value"`
			} `json:"baseline"`
			Phases []struct {
				Mode        string           `json:"mode"`
				Requests    uint64           `json:"requests"`
				Timeline    []map[string]any `json:"timeline"`
				Percentiles []map[string]any `json:"percentiles"`
			} `json:"phases"`
		} `json:"scenarios"`
		Baselines []struct {
			Name    string  `json:"name"`
			Value   float64 `json:"value"`
			Skipped string  `json:"skipped"`
			Extra   struct {
				CPURounds *struct {
					Rounds []map[string]float64 `json:"rounds"`
					Ratio  map[string]float64   `json:"ratio"`
				} `json:"cpu_rounds"`
			} `json:"extra"`
		} `json:"baselines"`
		Targets []map[string]any `json:"targets"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	for _, k := range []string{"version", "started_at", "target", "machine", "config", "seed", "scenarios", "baselines", "targets", "notes"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	if rep.Version != 1 || rep.Target["managed"] != true {
		t.Errorf("version %d target %v", rep.Version, rep.Target)
	}
	reported := []string{"read-hot", "mixed", "list", "upload", "images-webp800", "images-default", "ondemand-first", "ondemand-repeat", "read-cold"}
	if len(rep.Scenarios) != len(reported) {
		t.Fatalf("%d scenarios, want %d", len(rep.Scenarios), len(reported))
	}
	for i, s := range rep.Scenarios {
		if s.Name != reported[i] {
			t.Errorf("scenario %d is %q, want %q", i, s.Name, reported[i])
		}
		if strings.HasPrefix(s.Name, "ondemand-") && s.Skipped != "" {
			t.Logf("%s skipped: %s", s.Name, s.Skipped) // vitrine without the on-demand route
			continue
		}
		if s.Name == "images-webp800" && imgproxy != "none" {
			if s.Baseline == nil || s.Baseline.Name != "imgproxy-webp800" || s.Baseline.Value <= 0 || s.Ratio == nil || s.Extra["floor_ratio"] == nil {
				t.Errorf("images-webp800 has no ratio to imgproxy: %v %+v %v", s.Ratio, s.Baseline, s.Extra["imgproxy_skipped"])
			}
		}
		for _, k := range []string{"p50", "p90", "p99", "p99_9", "max"} {
			if _, ok := s.Latency[k]; !ok {
				t.Errorf("%s: latency_ms lacks %s", s.Name, k)
			}
		}
		if s.Throughput <= 0 || s.Latency["p50"] <= 0 || s.Latency["max"] < s.Latency["p99"] || s.Latency["p99"] < s.Latency["p50"] {
			t.Errorf("%s: throughput %v %s, latency %v", s.Name, s.Throughput, s.Unit, s.Latency)
		}
		if s.Errors == nil {
			t.Errorf("%s: no errors map", s.Name)
		}
		var n uint64
		for _, c := range s.Errors {
			n += c
		}
		if n > 0 {
			t.Errorf("%s: errors %v", s.Name, s.Errors)
		}
		if s.PeakRSSBytes == nil || *s.PeakRSSBytes < 1<<20 {
			t.Errorf("%s: peak RSS %v", s.Name, s.PeakRSSBytes)
		}
		// A few images, or a few on-demand widths, make no timeline.
		timed := !strings.HasPrefix(s.Name, "images-") && !strings.HasPrefix(s.Name, "ondemand-")
		if len(s.Phases) == 0 || s.Phases[0].Requests == 0 || (timed && len(s.Phases[0].Timeline) == 0) || len(s.Phases[0].Percentiles) == 0 {
			t.Errorf("%s: phases %+v", s.Name, s.Phases)
		}
		if !bytes.Contains(raw, []byte(`"ratio"`)) {
			t.Errorf("no ratio key")
		}
	}
	hot := rep.Scenarios[0]
	if len(hot.Phases) != 2 || hot.Phases[0].Mode != "closed" || hot.Phases[1].Mode != "open" {
		t.Errorf("read-hot phases: %+v", hot.Phases)
	}
	if hot.Ratio == nil || *hot.Ratio <= 0 || hot.Baseline == nil || hot.Baseline.Name != "bare-fasthttp" || hot.Baseline.Value <= 0 {
		t.Errorf("read-hot has no ratio to the bare baseline: %v %+v", hot.Ratio, hot.Baseline)
	}
	up := rep.Scenarios[3]
	if up.Unit != "images/s" || up.Phases[0].Requests != 3 {
		t.Errorf("upload: %+v", up)
	}
	// Every baseline is reported. The vips CLI is measured, never skipped
	// (make test installs it: scripts/install-deps --test); pgbench is
	// skipped here, on SQLite, saying why.
	baselines := map[string]int{}
	for i, b := range rep.Baselines {
		baselines[b.Name] = i
	}
	// The front door's CPU per cached GET against bare fasthttp's, round
	// by round.
	if i, ok := baselines["bare-fasthttp"]; !ok {
		t.Errorf("no bare-fasthttp baseline in %+v", rep.Baselines)
	} else if cr := rep.Baselines[i].Extra.CPURounds; cr == nil || len(cr.Rounds) != 2 || !(cr.Ratio["median"] > 0) ||
		cr.Ratio["min"] > cr.Ratio["median"] || cr.Ratio["median"] > cr.Ratio["max"] {
		t.Errorf("bare-fasthttp: CPU rounds %+v", cr)
	} else {
		for _, r := range cr.Rounds {
			if !(r["vitrine_cpu_us_per_request"] > 0) || !(r["bare_cpu_us_per_request"] > 0) {
				t.Errorf("CPU round %v", r)
			}
		}
	}
	cpuTarget := false
	for _, c := range rep.Targets {
		if c["name"] == "cached GET CPU per request vs bare fasthttp" {
			v, _ := c["value"].(float64)
			cpuTarget = v > 0
		}
	}
	if !cpuTarget {
		t.Errorf("no CPU-per-request target with a value: %v", rep.Targets)
	}
	if i, ok := baselines["vips-cli"]; !ok {
		t.Errorf("no vips-cli baseline in %+v", rep.Baselines)
	} else if b := rep.Baselines[i]; b.Skipped != "" || b.Value <= 0 {
		t.Errorf("vips-cli baseline not measured: %+v", b)
	}
	if up.Ratio == nil || *up.Ratio <= 0 || up.Baseline == nil || up.Baseline.Name != "vips-cli" || up.Baseline.Value <= 0 {
		t.Errorf("upload has no ratio to the vips CLI: %v %+v", up.Ratio, up.Baseline)
	}
	if i, ok := baselines["pgbench-S"]; !ok {
		t.Errorf("no pgbench-S baseline in %+v", rep.Baselines)
	} else if b := rep.Baselines[i]; !strings.Contains(b.Skipped, "VITRINE_POSTGRES_URL") {
		t.Errorf("pgbench on SQLite: %+v", b)
	}
	// The images scenario: each recipe against its libvips floor, with the
	// CPU ratio, the pipeline alone and the idle latency.
	for _, s := range rep.Scenarios[4:6] {
		name := strings.TrimPrefix(s.Name, "images-")
		want := "floor-" + name
		if name == "webp800" && imgproxy != "none" {
			want = "imgproxy-webp800" // the floor's ratio stays in extra.floor_ratio
		}
		if s.Unit != "images/s" || s.Baseline == nil || s.Baseline.Name != want || s.Baseline.Value <= 0 || s.Ratio == nil || *s.Ratio <= 0 {
			t.Errorf("%s: no ratio to its floor: %+v %v", s.Name, s.Baseline, s.Ratio)
		}
		if len(s.Phases) != 2 || s.Phases[0].Mode != "burst" || s.Phases[0].Requests != 2 || s.Phases[1].Mode != "idle" {
			t.Errorf("%s: phases %+v", s.Name, s.Phases)
		}
		for _, k := range []string{"cpu_ratio", "cpu_ms_per_image", "floor_cpu_ms_per_image", "process_cpu_ms_per_image", "idle_added_ms", "rounds"} {
			if _, ok := s.Extra[k]; !ok {
				t.Errorf("%s: extra lacks %s", s.Name, k)
			}
		}
		if r, ok := s.Extra["cpu_ratio"].(float64); !ok || r <= 0 {
			t.Errorf("%s: cpu_ratio %v", s.Name, s.Extra["cpu_ratio"])
		}
	}
	var floors int
	for _, b := range rep.Baselines {
		if strings.HasPrefix(b.Name, "floor-") && b.Skipped == "" && b.Value > 0 {
			floors++
		}
	}
	if floors != 2 {
		t.Errorf("%d floor baselines, want 2", floors)
	}
	if len(rep.Targets) < 4 {
		t.Errorf("targets: %v", rep.Targets)
	}

	// report.html: self-contained, with the charts, each SVG well-formed.
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	if !strings.HasPrefix(html, "<!DOCTYPE html>") || !strings.HasSuffix(strings.TrimSpace(html), "</html>") {
		t.Errorf("report.html is not a whole HTML page")
	}
	for _, want := range []string{`class="chart latency-over-time"`, `class="chart throughput-over-time"`, `class="chart percentiles"`, "<style>", "bare-fasthttp"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	skipped := map[string]bool{}
	for _, s := range rep.Scenarios {
		skipped[s.Name] = s.Skipped != ""
	}
	for _, s := range reported {
		if !skipped[s] && !strings.Contains(html, `id="`+s+`"`) {
			t.Errorf("report.html has no section for %s", s)
		}
	}
	if regexp.MustCompile(`(?i)<script[^>]+src=|<link[^>]+href=|url\(http`).MatchString(html) {
		t.Errorf("report.html loads something from outside")
	}
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(html, -1)
	if len(svgs) < 10 {
		t.Errorf("%d charts, want one per phase and more", len(svgs))
	}
	for _, svg := range svgs {
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			if _, err := d.Token(); err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("an SVG chart is not well-formed: %v\n%.300s", err, svg)
				}
				break
			}
		}
		if !strings.Contains(svg, "<polyline") && !strings.Contains(svg, "no data") {
			t.Errorf("a chart without a line: %.200s", svg)
		}
	}
}

// With -pprof, the bench fetches a CPU profile for the phase and the
// allocation profile at its end; a vitrine without the endpoint only gets
// a note.
func TestProfiles(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		switch r.URL.Path {
		case "/debug/pprof/profile", "/debug/pprof/allocs":
			fmt.Fprint(w, "profile of "+r.URL.Path)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	b := newBench(options{duration: 1500 * time.Millisecond, quiet: true}, os.Getenv, io.Discard, io.Discard)
	b.rep, b.out, b.pprof = &report.Report{}, t.TempDir(), strings.TrimPrefix(srv.URL, "http://")
	b.startProfile(context.Background(), "read-hot.closed")()
	if strings.Join(paths, " ") != "/debug/pprof/profile?seconds=2 /debug/pprof/allocs" {
		t.Errorf("requests %v", paths)
	}
	for _, f := range []string{"read-hot.closed.cpu.pprof", "read-hot.closed.allocs.pprof"} {
		if b, err := os.ReadFile(filepath.Join(b.out, "pprof", f)); err != nil || !strings.HasPrefix(string(b), "profile of") {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
	srv.Close()
	b.startProfile(context.Background(), "mixed.closed")()
	if len(b.rep.Notes) != 2 || !strings.Contains(b.rep.Notes[0], "VITRINE_PPROF_ADDR") {
		t.Errorf("notes without the endpoint: %v", b.rep.Notes)
	}
	b.pprof = ""
	b.startProfile(context.Background(), "off")() // nothing to do without -pprof
}

// make bench is quick by default; -full restores the long run; flags given
// explicitly (and BENCH_DURATION) override either profile.
func TestFlagProfiles(t *testing.T) {
	noEnv := env(map[string]string{"BENCH_DURATION": ""})
	type figures struct {
		duration                                   time.Duration
		products, uploads, uploadConc              int
		imagesUploads, imagesRounds, imagesIdle, w int
	}
	of := func(o options) figures {
		return figures{o.duration, o.products, o.uploads, o.uploadConc, o.imagesUploads, o.imagesRounds, o.imagesIdle, o.imagesWidth}
	}
	for _, c := range []struct {
		args []string
		env  func(string) string
		want figures
	}{
		{nil, noEnv, figures{2 * time.Second, 2000, 4, 4, 6, 3, 5, 2040}},
		{[]string{"-full"}, noEnv, figures{4 * time.Second, 10000, 16, 8, 40, 3, 20, 5100}},
		{[]string{"-full", "-products", "500", "-images-uploads", "7", "-duration", "1s"}, noEnv, figures{time.Second, 500, 16, 8, 7, 3, 20, 5100}},
		{[]string{"-uploads", "9", "-images-rounds", "5"}, noEnv, figures{2 * time.Second, 2000, 9, 4, 6, 5, 5, 2040}},
		{[]string{"-full"}, env(map[string]string{"BENCH_DURATION": "3s"}), figures{3 * time.Second, 10000, 16, 8, 40, 3, 20, 5100}},
		{[]string{"-full", "-duration", "5s"}, env(map[string]string{"BENCH_DURATION": "3s"}), figures{5 * time.Second, 10000, 16, 8, 40, 3, 20, 5100}},
	} {
		o, err := parseFlags(c.args, c.env, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := of(o); got != c.want {
			t.Errorf("%v: %+v, want %+v", c.args, got, c.want)
		}
		if o.imagesScale != 0 {
			t.Errorf("%v: -images-scale %v without the flag", c.args, o.imagesScale)
		}
	}
	if o, err := parseFlags([]string{"-images-scale", "0.5"}, noEnv, io.Discard); err != nil || o.imagesScale != 0.5 {
		t.Errorf("-images-scale 0.5: %v %v", o.imagesScale, err)
	}
	if _, err := parseFlags([]string{"-images-scale", "0"}, noEnv, io.Discard); err == nil {
		t.Errorf("-images-scale 0 accepted")
	}
}

// Without a corpus, both photo scenarios use the repository's photo, and
// the images scenario scales it to the profile's width.
func TestPhotoFallback(t *testing.T) {
	root, err := target.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-corpus", filepath.Join(t.TempDir(), "absent")}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	src, err := findPhotos(root, o, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	lamp := filepath.Join(root, "testdata", "desk-lamp.jpg")
	if src.source != "testdata/desk-lamp.jpg" || len(src.upload) != 1 || src.upload[0] != lamp || src.large != lamp || !strings.Contains(src.note, "desk-lamp.jpg") {
		t.Errorf("no corpus: %+v", src)
	}
	if s, err := imageScale(src.large, 0, 2040); err != nil || s != 1.7 { // 1200 px wide
		t.Errorf("scale to 2040 px: %v %v", s, err)
	}
	if s, err := imageScale(src.large, 1.25, 2040); err != nil || s != 1.25 {
		t.Errorf("-images-scale 1.25: %v %v", s, err)
	}

	// A corpus, when there is one, is used.
	corpus := t.TempDir()
	manifest := "file\tcategory\texpected\texpected_orientation_fix\twidth\theight\tformat\n" +
		"a.jpg\tjpeg-photo\taccept\tno\t8\t8\tjpeg\nb.png\tjpeg-photo\taccept\tno\t8\t8\tpng\n"
	if err := os.WriteFile(filepath.Join(corpus, "MANIFEST.tsv"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	o.corpus = corpus
	src, err = findPhotos(root, o, env(nil))
	if err != nil || src.source != corpus || len(src.upload) != 1 || src.upload[0] != filepath.Join(corpus, "a.jpg") || src.large != filepath.Join(corpus, o.imagesPhoto) {
		t.Errorf("corpus: %+v %v", src, err)
	}
}

// fakeVitrine answers the bench's product requests well enough for
// read-hot and list; onList runs at each list request.
func fakeVitrine(t *testing.T, onList func()) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/products":
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":"p%d"}`, n.Add(1))
		case r.Method == http.MethodGet && r.URL.Path == "/products":
			onList()
			fmt.Fprint(w, `{"items":[],"next_cursor":null}`)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/products/"):
			fmt.Fprintf(w, `{"id":%q}`, strings.TrimPrefix(r.URL.Path, "/products/"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type partialReport struct {
	Partial bool `json:"partial"`
	Stopped *struct {
		At        string   `json:"at"`
		Cause     string   `json:"cause"`
		Error     string   `json:"error"`
		Completed []string `json:"completed"`
		NotRun    []string `json:"not_run"`
	} `json:"stopped"`
	Scenarios []struct {
		Name string `json:"name"`
	} `json:"scenarios"`
	Baselines []any `json:"baselines"`
}

func readPartial(t *testing.T, out string) partialReport {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var rep partialReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	var lists struct{ Scenarios, Baselines []any }
	if err := json.Unmarshal(raw, &lists); err != nil || lists.Scenarios == nil || lists.Baselines == nil {
		t.Errorf("scenarios and baselines are lists, even empty: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || rep.Partial != bytes.Contains(page, []byte("Partial report")) {
		t.Errorf("report.html: partial %v, %v", rep.Partial, err)
	}
	return rep
}

// A scenario that fails, or an interruption (the context cancelled), still
// writes the report: what completed, marked partial, with where and why;
// and the run ends in an error.
func TestPartialReport(t *testing.T) {
	args := func(url, out string, more ...string) []string {
		return append([]string{"-url", url, "-out", out, "-products", "20", "-c", "2", "-open-workers", "2", "-mode", "closed",
			"-duration", "100ms", "-baselines", "none", "-quiet"}, more...)
	}
	names := func(rep partialReport) string {
		var v []string
		for _, s := range rep.Scenarios {
			v = append(v, s.Name)
		}
		return strings.Join(v, ",")
	}

	t.Run("failed", func(t *testing.T) {
		// A corpus whose photo is missing: the upload scenario fails.
		corpus, out := t.TempDir(), t.TempDir()
		manifest := "file\tcategory\texpected\texpected_orientation_fix\twidth\theight\tformat\nmissing.jpg\tjpeg-photo\taccept\tno\t8\t8\tjpeg\n"
		if err := os.WriteFile(filepath.Join(corpus, "MANIFEST.tsv"), []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		srv := fakeVitrine(t, func() {})
		var stdout bytes.Buffer
		err := run(context.Background(), args(srv.URL, out, "-corpus", corpus, "-scenarios", "read-hot,upload,read-cold"), env(nil), &stdout, io.Discard)
		if err == nil {
			t.Fatal("no error")
		}
		rep := readPartial(t, out)
		st := rep.Stopped
		if !rep.Partial || st == nil || st.At != "upload" || st.Cause != "failed" || !strings.Contains(st.Error, "missing.jpg") ||
			strings.Join(st.Completed, ",") != "read-hot" || strings.Join(st.NotRun, ",") != "read-cold" || names(rep) != "read-hot" {
			t.Errorf("partial report: %+v %+v", rep, st)
		}
		if !strings.Contains(stdout.String(), "PARTIAL REPORT: failed at upload") {
			t.Errorf("text report: %s", stdout.String())
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		srv := fakeVitrine(t, cancel) // SIGINT during list
		err := run(ctx, args(srv.URL, out, "-scenarios", "read-hot,list,read-cold"), env(nil), io.Discard, io.Discard)
		if err == nil {
			t.Fatal("no error")
		}
		rep := readPartial(t, out)
		st := rep.Stopped
		if !rep.Partial || st == nil || st.At != "list" || st.Cause != "interrupted" ||
			strings.Join(st.Completed, ",") != "read-hot" || strings.Join(st.NotRun, ",") != "read-cold" || names(rep) != "read-hot" {
			t.Errorf("partial report: %+v %+v", rep, st)
		}
	})

	t.Run("cancelled at once", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv := fakeVitrine(t, func() {})
		if err := run(ctx, args(srv.URL, out, "-scenarios", "read-hot"), env(nil), io.Discard, io.Discard); err == nil {
			t.Fatal("no error")
		}
		rep := readPartial(t, out)
		if !rep.Partial || rep.Stopped == nil || rep.Stopped.Cause != "interrupted" || len(rep.Scenarios) != 0 || len(rep.Stopped.Completed) != 0 {
			t.Errorf("partial report: %+v %+v", rep, rep.Stopped)
		}
	})

	t.Run("complete", func(t *testing.T) {
		out := t.TempDir()
		srv := fakeVitrine(t, func() {})
		if err := run(context.Background(), args(srv.URL, out, "-scenarios", "read-hot,list"), env(nil), io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		if rep := readPartial(t, out); rep.Partial || rep.Stopped != nil || names(rep) != "read-hot,list" {
			t.Errorf("report: %+v", rep)
		}
	})
}

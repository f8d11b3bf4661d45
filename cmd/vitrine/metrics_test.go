package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vitrine-dev/vitrine/media"
)

// scrape reads /metrics as the admin token.
func (a *testApp) scrape() map[string]*dto.MetricFamily {
	a.t.Helper()
	r := a.do("GET", "/metrics", nil, bearer(adminToken)...)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		a.t.Fatalf("GET /metrics: %d %s %.200s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		a.t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// sample sums the family's samples whose labels include want; for a
// histogram, its sample count.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	total := 0.0
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// TestMetricsCountTheWorkload: after a scripted workload the counters and
// histograms have the counts it made.
func TestMetricsCountTheWorkload(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv("VITRINE_RATE_ANONYMOUS", "1000/min"))
	_, key := app.makeKey("write", 0)
	before := app.scrape()
	p := app.doJSON("POST", "/products", `{"name":"Counted","price":"1","user_id":1}`, bearer(key)...).json(t)
	id, _ := p["id"].(string)
	const reads = 25
	for range reads {
		if r := app.do("GET", "/products/"+id, nil); r.Status != http.StatusOK {
			t.Fatalf("read: %d", r.Status)
		}
	}
	for range 3 {
		app.do("GET", "/products/01937a4e-7b8c-7def-8a12-3456789abcde", nil) // 404
	}
	app.do("GET", "/nowhere", nil)
	jpeg, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	r := app.do("POST", "/products/"+id+"/images", bytes.NewReader(jpeg), append([]string{"Content-Type", "image/jpeg"}, bearer(key)...)...)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	app.waitImage(r.Header.Get("Location"), time.Minute)
	after := app.scrape()

	delta := func(name string, labels ...string) float64 {
		return sample(after, name, labels...) - max(sample(before, name, labels...), 0)
	}
	checks := []struct {
		what string
		got  float64
		want float64
	}{
		{"product GETs answered 200", delta("vitrine_http_request_duration_seconds", "route", "/products/{id}", "method", "GET", "status", "2xx"), reads},
		{"product GETs answered 404", delta("vitrine_http_request_duration_seconds", "route", "/products/{id}", "method", "GET", "status", "4xx"), 3},
		{"unmatched requests", delta("vitrine_http_request_duration_seconds", "route", "unmatched"), 1},
		{"creates", delta("vitrine_http_request_duration_seconds", "route", "/products", "method", "POST", "status", "2xx"), 1},
		// The upload reads the product twice: the front door refuses an
		// unknown product before reading the body, the upload checks its owner.
		{"reads answered from the cache", delta("vitrine_product_reads_total", "source", "cache"), reads + 2},
		{"local cache hits", delta("vitrine_cache_lookups_total", "layer", "local", "result", "hit"), reads + 2},
		{"jobs ready", delta("vitrine_image_jobs_total", "outcome", "ready"), 1},
		{"job durations", delta("vitrine_image_job_duration_seconds", "outcome", "ready"), 1},
		{"variant encodings (each output once)", delta("vitrine_image_variant_encode_seconds"), float64(media.DefaultRecipe().Outputs())},
		{"grain activations (the product, and the unknown one read)", delta("vitrine_grain_activations_total"), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	for _, name := range []string{"vitrine_http_requests_in_flight", "vitrine_image_jobs_backlog", "vitrine_vips_memory_bytes",
		"vitrine_vips_memory_highwater_bytes", "vitrine_vips_open_files", "go_goroutines", "process_resident_memory_bytes", "vitrine_http_refused_total"} {
		if sample(after, name) < 0 {
			t.Errorf("%s is not exported", name)
		}
	}
	if v := sample(after, "vitrine_vips_memory_highwater_bytes"); v <= 0 {
		t.Errorf("libvips high-water mark %v after processing an image", v)
	}
	if v := sample(after, "vitrine_image_jobs_backlog"); v != 0 {
		t.Errorf("backlog %v after the only job finished", v)
	}
	// A refusal is counted by its reason.
	limited := startApp(t, t.TempDir(), productionEnv("VITRINE_RATE_ANONYMOUS", "1/min"))
	limited.do("GET", "/products", nil)
	if r := limited.do("GET", "/products", nil); r.Status != http.StatusTooManyRequests {
		t.Fatalf("second anonymous read past 1/min: %d", r.Status)
	}
	if got := sample(limited.scrape(), "vitrine_http_refused_total", "reason", "rate_limit"); got != 1 {
		t.Errorf("refusals for the rate limit: %v, want 1", got)
	}
}

// TestMetricsCardinalityBounded: 1,000 distinct product ids (and as many
// unknown ones) add no series: labels carry route templates, never ids.
func TestMetricsCardinalityBounded(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv())
	_, key := app.makeKey("write", 0)
	series := func() (int, []string) {
		fams := app.scrape()
		n := 0
		var values []string
		for name, f := range fams {
			if !strings.HasPrefix(name, "vitrine_") {
				continue
			}
			n += len(f.GetMetric())
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					values = append(values, l.GetValue())
				}
			}
		}
		return n, values
	}
	// Warm every route once so its series exist.
	p := app.doJSON("POST", "/products", `{"name":"Warm","price":"1","user_id":1}`, bearer(key)...).json(t)
	app.do("GET", "/products/"+p["id"].(string), nil)
	app.do("GET", "/products/01937a4e-7b8c-7def-8a12-3456789abcde", nil)
	first, _ := series()
	for i := range 1000 {
		r := app.doJSON("POST", "/products", fmt.Sprintf(`{"name":"P%d","price":"1","user_id":%d}`, i, i+1), bearer(key)...)
		id, _ := r.json(t)["id"].(string)
		app.do("GET", "/products/"+id, nil)
		app.do("GET", fmt.Sprintf("/products/01937a4e-7b8c-7def-8a12-%012d", i), nil)
	}
	last, values := series()
	if last != first {
		t.Errorf("vitrine_* series grew from %d to %d over 1,000 distinct products", first, last)
	}
	uuid := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`)
	for _, v := range values {
		if uuid.MatchString(v) {
			t.Fatalf("a label value holds an id: %q", v)
		}
	}
	t.Logf("%d vitrine_* series before and after 1,000 products", last)
}

// TestMetricsAccess: /metrics needs the admin scope by default, is open
// with VITRINE_METRICS=public, and absent with off.
func TestMetricsAccess(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv())
	expectProblem(t, app.do("GET", "/metrics", nil), http.StatusUnauthorized, "metrics without a key")
	_, reader := app.makeKey("read", 0)
	expectProblem(t, app.do("GET", "/metrics", nil, bearer(reader)...), http.StatusForbidden, "metrics with a read key")
	public := startApp(t, t.TempDir(), productionEnv("VITRINE_METRICS", "public"))
	if r := public.do("GET", "/metrics", nil); r.Status != http.StatusOK {
		t.Errorf("public metrics: %d", r.Status)
	}
	off := startApp(t, t.TempDir(), productionEnv("VITRINE_METRICS", "off"))
	expectProblem(t, off.do("GET", "/metrics", nil, bearer(adminToken)...), http.StatusNotFound, "metrics off")
}

// dashboardMetrics lists the metric names the Grafana dashboard queries.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "grafana", "vitrine.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/vitrine.json: %v", err)
	}
	name := regexp.MustCompile(`\b((?:vitrine|go|process)_[a-z0-9_]+)`)
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				seen[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")] = true
			}
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) < 15 {
		t.Fatalf("the dashboard queries only %d metrics: %v", len(out), out)
	}
	return out
}

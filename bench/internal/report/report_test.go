package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
)

func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("SVG not well-formed: %v\n%s", err, svg)
		}
	}
}

func TestChartSVG(t *testing.T) {
	c := Chart{Class: "x", Title: `a <b> & "c"`, XLabel: "s", YLabel: "ms",
		Series: []Series{{Name: "p50", X: []float64{0, 1, 2}, Y: []float64{1, 2, 3}}, {Name: "one", X: []float64{1}, Y: []float64{5}, Dash: true}}}
	svg := c.SVG()
	wellFormed(t, svg)
	if strings.Count(svg, "<polyline") != 2 || !strings.Contains(svg, "a &lt;b&gt; &amp;") {
		t.Errorf("chart: %s", svg)
	}
	c.LogY = true
	c.Series[0].Y = []float64{0.01, 0, 300} // a zero cannot be drawn on a log axis
	wellFormed(t, c.SVG())
	wellFormed(t, Chart{Title: "empty"}.SVG())
	if !strings.Contains(Chart{Title: "empty"}.SVG(), "no data") {
		t.Errorf("empty chart does not say so")
	}
	for v, want := range map[float64]string{0: "0", 0.25: "0.25", 2.5: "2.5", 40: "40", 12000: "12k", 2500000: "2.5M"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
	if PercentileX(0.99) < 1.99 || PercentileX(0.99) > 2.01 || PercentileX(1) != 5 {
		t.Errorf("PercentileX")
	}
}

func sample() *Report {
	var h hist.Histogram
	for i := range 1000 {
		h.Record(int64(i) * int64(time.Microsecond))
	}
	lp := &load.Phase{Mode: "closed", Concurrency: 4, Elapsed: time.Second, Hist: &h, ByLabel: map[string]*hist.Histogram{"get": &h},
		Status: map[int]uint64{200: 990, 503: 10}, Fails: map[string]uint64{"503": 10},
		Timeline: []load.Bucket{{Offset: 0, Width: 500 * time.Millisecond, Hist: &h}, {Offset: 500 * time.Millisecond, Width: 500 * time.Millisecond, Hist: &h}}}
	r := &Report{Version: 1, StartedAt: time.Now(), Notes: []string{"n"}}
	s := &Scenario{Name: "read-hot", Unit: "req/s"}
	ph := PhaseOf("closed", lp)
	rss := int64(100 << 20)
	ph.PeakRSSBytes, s.PeakRSSBytes = &rss, &rss
	s.Phases = append(s.Phases, ph)
	s.SetMain(ph)
	s.Compare("bare-fasthttp", 1980, "req/s")
	r.Scenarios = append(r.Scenarios, s, &Scenario{Name: "read-cold", Skipped: "no"})
	r.Baselines = append(r.Baselines, &Baseline{Name: "bare-fasthttp", Value: 1980, Unit: "req/s", Phase: ph, Extra: map[string]any{"open": ph}},
		&Baseline{Name: "pgbench-S", Skipped: "no PostgreSQL"})
	r.Targets = []Check{{Name: "t", Value: s.Ratio, Goal: "≥ 0.6×", Met: new(bool)}}
	return r
}

func TestPhaseAndReports(t *testing.T) {
	r := sample()
	s := r.Scenarios[0]
	if s.ThroughputRPS != 990 || s.Ratio == nil || *s.Ratio != 0.5 {
		t.Errorf("throughput %v ratio %v", s.ThroughputRPS, s.Ratio)
	}
	if math.Abs(s.Latency.P50-0.5) > 0.005 || s.Latency.Max != 0.999 || s.Errors["503"] != 10 {
		t.Errorf("latency %+v errors %v", s.Latency, s.Errors)
	}
	ph := s.Phases[0]
	if len(ph.Timeline) != 2 || ph.Timeline[1].T != 0.5 || ph.Timeline[0].RPS != 2000 || len(ph.Percentiles) != len(load.Quantiles) {
		t.Errorf("timeline %+v percentiles %d", ph.Timeline, len(ph.Percentiles))
	}
	if ph.Status["200"] != 990 || ph.ByOp["get"].Count != 1000 {
		t.Errorf("status %v by op %v", ph.Status, ph.ByOp)
	}
	dir := t.TempDir()
	if err := r.WriteJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "r.json"))
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	sc := back["scenarios"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "throughput", "latency_ms", "errors", "peak_rss_bytes", "baseline", "ratio", "phases"} {
		if _, ok := sc[k]; !ok {
			t.Errorf("scenario JSON lacks %q", k)
		}
	}
	if err := r.WriteHTML(filepath.Join(dir, "r.html")); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "r.html"))
	for _, want := range []string{`class="chart latency-over-time"`, `class="chart percentiles"`, `class="chart throughput-over-time"`, "skipped", "no PostgreSQL", "missed", "0.5× bare-fasthttp"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, svg := range regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(string(page), -1) {
		wellFormed(t, svg)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	for _, want := range []string{"read-hot", "[bare-fasthttp]", "0.50× bare-fasthttp", "[MISS]", "pgbench-S      skipped", "100 MiB"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if Ms(1_234_567) != 1.235 || math.IsNaN(Round2(1.005)) {
		t.Errorf("Ms")
	}
}

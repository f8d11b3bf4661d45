// Package report is the bench's result: a JSON document, a text table and
// a self-contained HTML page with inline SVG charts.
package report

import (
	"encoding/json"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
)

// Report is the whole run.
type Report struct {
	Version     int         `json:"version"`
	StartedAt   time.Time   `json:"started_at"`
	WallSeconds float64     `json:"wall_seconds"`
	Partial     bool        `json:"partial"`           // the run did not complete: Stopped says why, Scenarios holds what did
	Stopped     *Stopped    `json:"stopped,omitempty"` // nil when the run completed
	Target      Target      `json:"target"`
	Machine     Machine     `json:"machine"`
	Config      Config      `json:"config"`
	Seed        *Phase      `json:"seed"` // creating the products
	Scenarios   []*Scenario `json:"scenarios"`
	Baselines   []*Baseline `json:"baselines"`
	Targets     []Check     `json:"targets"`
	Notes       []string    `json:"notes"`
}

// Stopped is where and why a partial run ended.
type Stopped struct {
	At        string   `json:"at"`    // the step that did not complete: start, seed, a scenario of -scenarios, stop
	Cause     string   `json:"cause"` // "interrupted" (SIGINT, SIGTERM) or "failed"
	Error     string   `json:"error"`
	Completed []string `json:"completed"` // the scenarios of -scenarios that completed
	NotRun    []string `json:"not_run"`   // those that did not start
}

// Target is what was measured.
type Target struct {
	URL      string `json:"url"`
	Managed  bool   `json:"managed"` // started by the bench
	Binary   string `json:"binary,omitempty"`
	Backends string `json:"backends"` // store=… cache=… queue=… files=…
	LogLevel string `json:"log_level,omitempty"`
}

// Machine is where it ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	OS        string `json:"os"`
	GoVersion string `json:"go_version"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// Config is the bench's settings.
type Config struct {
	Profile      string   `json:"profile"` // quick or full: where the defaults came from
	PhaseSeconds float64  `json:"phase_seconds"`
	Concurrency  int      `json:"concurrency"`
	OpenWorkers  int      `json:"open_workers"`
	Mode         string   `json:"mode"`
	Rate         float64  `json:"rate,omitempty"`
	Products     int      `json:"products"`
	ZipfS        float64  `json:"zipf_s"`
	Seed         uint64   `json:"seed"`
	Uploads      int      `json:"uploads"`
	Photos       []string `json:"photos"`
	PhotoSource  string   `json:"photo_source,omitempty"` // the corpus directory, or the repository's testdata/desk-lamp.jpg
	Scenarios    []string `json:"scenarios"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Point is a bucket of a latency-over-time chart.
type Point struct {
	T      float64 `json:"t"` // seconds from the phase's start
	RPS    float64 `json:"rps"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
	Errors uint64  `json:"errors"`
}

// QPoint is a point of the percentile-distribution chart.
type QPoint struct {
	Q  float64 `json:"q"`
	Ms float64 `json:"ms"`
}

// OpStats are the latencies of one kind of operation.
type OpStats struct {
	Count   uint64  `json:"count"`
	Latency Latency `json:"latency_ms"`
}

// Phase is one load phase.
type Phase struct {
	Name          string             `json:"name"`
	Mode          string             `json:"mode"` // closed, open, burst, seed
	Concurrency   int                `json:"concurrency"`
	TargetRPS     float64            `json:"target_rps,omitempty"`
	Seconds       float64            `json:"seconds"`
	Requests      uint64             `json:"requests"`
	OK            uint64             `json:"ok"`
	ThroughputRPS float64            `json:"throughput_rps"`
	Latency       Latency            `json:"latency_ms"`
	Errors        map[string]uint64  `json:"errors"`
	Status        map[string]uint64  `json:"status"`
	ByOp          map[string]OpStats `json:"by_op,omitempty"`
	Unsent        uint64             `json:"unsent,omitempty"`
	MaxLagMs      float64            `json:"max_lag_ms,omitempty"`
	PeakRSSBytes  *int64             `json:"peak_rss_bytes"`
	// CPU time of the vitrine process over the phase (all its threads),
	// and per successful request; absent when vitrine was not started by
	// the bench.
	CPUSeconds      *float64 `json:"cpu_seconds,omitempty"`
	CPUUsPerRequest *float64 `json:"cpu_us_per_request,omitempty"`
	Timeline        []Point  `json:"timeline"`
	Percentiles     []QPoint `json:"percentiles"`
}

// BaselineRef is a scenario's comparison.
type BaselineRef struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Scenario is one scenario; its top-level figures are those of its main
// phase (the closed loop's peak, or the upload burst).
type Scenario struct {
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	Unit          string            `json:"unit"` // of throughput: req/s or images/s
	ThroughputRPS float64           `json:"throughput"`
	Latency       Latency           `json:"latency_ms"`
	Errors        map[string]uint64 `json:"errors"`
	PeakRSSBytes  *int64            `json:"peak_rss_bytes"`
	PeakRSSScope  string            `json:"peak_rss_scope,omitempty"` // scenario or process
	Baseline      *BaselineRef      `json:"baseline"`
	Ratio         *float64          `json:"ratio"`
	Phases        []*Phase          `json:"phases"`
	Extra         map[string]any    `json:"extra,omitempty"`
	Skipped       string            `json:"skipped,omitempty"`
}

// Baseline is a reference measured in the same run.
type Baseline struct {
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Value        float64        `json:"value"`
	Unit         string         `json:"unit"`
	Skipped      string         `json:"skipped,omitempty"`
	Phase        *Phase         `json:"phase,omitempty"`
	PeakRSSBytes *int64         `json:"peak_rss_bytes,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
}

// Phases are the baseline's load phases: its main one, and the open loop
// at vitrine's rate when there was one.
func (b *Baseline) Phases() []*Phase {
	var out []*Phase
	if b.Phase != nil {
		out = append(out, b.Phase)
	}
	if op, ok := b.Extra["open"].(*Phase); ok {
		out = append(out, op)
	}
	return out
}

// Check is a target: reported, never asserted.
type Check struct {
	Name   string   `json:"name"`
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	Goal   string   `json:"goal"`
	Met    *bool    `json:"met"`
	Detail string   `json:"detail"`
}

// Ms converts nanoseconds to milliseconds, rounded to the microsecond.
func Ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

// Round2 rounds to two decimals.
func Round2(v float64) float64 { return math.Round(v*100) / 100 }

// LatencyOf summarises a histogram of nanoseconds.
func LatencyOf(h *hist.Histogram) Latency {
	return Latency{P50: Ms(h.Quantile(0.5)), P90: Ms(h.Quantile(0.9)), P99: Ms(h.Quantile(0.99)),
		P999: Ms(h.Quantile(0.999)), Max: Ms(h.Max()), Mean: Ms(int64(h.Mean()))}
}

// PercentilesOf is the percentile-distribution curve of h.
func PercentilesOf(h *hist.Histogram) []QPoint {
	out := []QPoint{}
	if h.Count() == 0 {
		return out
	}
	for _, q := range load.Quantiles {
		out = append(out, QPoint{Q: q, Ms: Ms(h.Quantile(q))})
	}
	return out
}

// TimelineOf turns buckets into chart points.
func TimelineOf(bs []load.Bucket) []Point {
	out := []Point{}
	for _, b := range bs {
		p := Point{T: Round2(b.Offset.Seconds()), Errors: b.Fails}
		if b.Hist.Count() > 0 {
			p.RPS = Round2(float64(b.Hist.Count()) / b.Width.Seconds())
			p.P50, p.P90, p.P99, p.Max = Ms(b.Hist.Quantile(0.5)), Ms(b.Hist.Quantile(0.9)), Ms(b.Hist.Quantile(0.99)), Ms(b.Hist.Max())
		}
		out = append(out, p)
	}
	return out
}

func statusMap(m map[int]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		out[strconv.Itoa(k)] = v
	}
	return out
}

func copyMap(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PhaseOf converts a load phase.
func PhaseOf(name string, p *load.Phase) *Phase {
	ph := &Phase{Name: name, Mode: p.Mode, Concurrency: p.Concurrency, TargetRPS: Round2(p.TargetRate),
		Seconds: Round2(p.Elapsed.Seconds()), Requests: p.Requests(), OK: p.OK(), ThroughputRPS: Round2(p.Throughput()),
		Latency: LatencyOf(p.Hist), Errors: copyMap(p.Fails), Status: statusMap(p.Status), Unsent: p.Unsent,
		MaxLagMs: Ms(int64(p.MaxLag)), Timeline: TimelineOf(p.Timeline), Percentiles: PercentilesOf(p.Hist)}
	if len(p.ByLabel) > 1 || (len(p.ByLabel) == 1 && p.SortedLabels()[0] != "") {
		ph.ByOp = map[string]OpStats{}
		for l, h := range p.ByLabel {
			ph.ByOp[l] = OpStats{Count: h.Count(), Latency: LatencyOf(h)}
		}
	}
	return ph
}

// SetCPU records the CPU time vitrine used over the phase (negative:
// unknown).
func (p *Phase) SetCPU(d time.Duration) {
	if d < 0 {
		return
	}
	secs := Round2(d.Seconds())
	p.CPUSeconds = &secs
	if p.OK > 0 {
		us := math.Round(float64(d.Microseconds()) / float64(p.OK))
		p.CPUUsPerRequest = &us
	}
}

// SetMain sets a scenario's top-level figures from a phase.
func (s *Scenario) SetMain(p *Phase) {
	s.ThroughputRPS, s.Latency, s.Errors = p.ThroughputRPS, p.Latency, copyMap(p.Errors)
}

// Compare sets the scenario's baseline and ratio (throughput over the
// baseline's value).
func (s *Scenario) Compare(name string, value float64, unit string) {
	s.Baseline = &BaselineRef{Name: name, Value: Round2(value), Unit: unit}
	if value > 0 {
		r := math.Round(s.ThroughputRPS/value*1000) / 1000
		s.Ratio = &r
	}
}

// Phase finds a phase of the scenario by mode.
func (s *Scenario) Phase(mode string) *Phase {
	for _, p := range s.Phases {
		if p.Mode == mode {
			return p
		}
	}
	return nil
}

// Find finds a scenario by name.
func (r *Report) Find(name string) *Scenario {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// FindBaseline finds a baseline by name.
func (r *Report) FindBaseline(name string) *Baseline {
	for _, b := range r.Baselines {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644) // #nosec G306 -- a bench report, meant to be read and published
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

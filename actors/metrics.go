package actors

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the actors' Prometheus metrics: product grains, where reads
// are answered, and image jobs. A nil *Metrics records nothing. Labels are
// bounded: no product or image ids.
type Metrics struct {
	activations  prometheus.Counter
	passivations prometheus.Counter
	requests     *prometheus.CounterVec // placement: local, remote
	reads        map[string]prometheus.Counter
	jobs         *prometheus.CounterVec   // outcome, code
	jobSeconds   *prometheus.HistogramVec // outcome
}

// NewMetrics registers the actors' metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	readVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vitrine_product_reads_total",
		Help: "Product reads by where they were answered: cache (no actor hop), grain (this node's actor), remote-grain (another node's) or store (the grain's node was gone).",
	}, []string{"source"})
	m := &Metrics{
		activations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitrine_grain_activations_total", Help: "Product grains activated on this node.",
		}),
		passivations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitrine_grain_passivations_total", Help: "Product grains passivated (idle, or handed over) on this node.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitrine_grain_requests_total",
			Help: "Commands sent to product grains, by placement: local (this node) or remote (across nodes).",
		}, []string{"placement"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitrine_image_jobs_total",
			Help: "Image jobs run, by outcome (ready, failed, retry, dead_letter, skipped) and failure code.",
		}, []string{"outcome", "code"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vitrine_image_job_duration_seconds",
			Help:    "Time an image job took, by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"outcome"}),
		reads: map[string]prometheus.Counter{},
	}
	reg.MustRegister(m.activations, m.passivations, m.requests, readVec, m.jobs, m.jobSeconds)
	for _, s := range []string{SourceCache, SourceGrain, SourceRemoteGrain, SourceStore} {
		m.reads[s] = readVec.WithLabelValues(s)
	}
	for _, p := range []string{"local", "remote"} {
		m.requests.WithLabelValues(p)
	}
	for _, o := range []string{"ready", "failed", "retry", "dead_letter", "skipped"} {
		m.jobSeconds.WithLabelValues(o)
	}
	return m
}

func (m *Metrics) activated() {
	if m != nil {
		m.activations.Inc()
	}
}

func (m *Metrics) passivated() {
	if m != nil {
		m.passivations.Inc()
	}
}

func (m *Metrics) request(local bool) {
	if m == nil {
		return
	}
	if local {
		m.requests.WithLabelValues("local").Inc()
	} else {
		m.requests.WithLabelValues("remote").Inc()
	}
}

func (m *Metrics) read(source string) {
	if m == nil {
		return
	}
	if c, ok := m.reads[source]; ok {
		c.Inc()
	}
}

// job records how an image job ended.
func (m *Metrics) job(outcome, code string, took time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(outcome, code).Inc()
	m.jobSeconds.WithLabelValues(outcome).Observe(took.Seconds())
}

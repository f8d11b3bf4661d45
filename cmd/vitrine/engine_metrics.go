package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitrine-dev/vitrine/media"
)

// engineMetrics are the image engine's metrics: the time each recipe
// variant's encoding takes, and libvips' own memory and cache figures.
type engineMetrics struct {
	encode *prometheus.HistogramVec // variant, format
	stats  func() vipsStats
	descs  []*prometheus.Desc
}

// vipsStats are the libvips figures exported.
type vipsStats struct {
	memory, highwater, cacheMaxMemory float64
	allocations, files, cacheSize     float64
}

func newEngineMetrics(stats func() vipsStats) *engineMetrics {
	m := &engineMetrics{
		encode: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vitrine_image_variant_encode_seconds",
			Help:    "Time to encode one output of the recipe, by variant and format.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"variant", "format"}),
		stats: stats,
	}
	for _, d := range []struct{ name, help string }{
		{"vitrine_vips_memory_bytes", "Pixel memory libvips tracks as allocated now."},
		{"vitrine_vips_memory_highwater_bytes", "The most pixel memory libvips ever tracked."},
		{"vitrine_vips_allocations", "Memory allocations libvips tracks now."},
		{"vitrine_vips_open_files", "Files libvips holds open."},
		{"vitrine_vips_cache_operations", "Operations in libvips' cache (vitrine keeps it off: 0)."},
		{"vitrine_vips_cache_max_memory_bytes", "The memory bound of libvips' operation cache."},
	} {
		m.descs = append(m.descs, prometheus.NewDesc(d.name, d.help, nil, nil))
	}
	return m
}

// observe records the encoding times of a processing's outputs.
func (m *engineMetrics) observe(outs []media.Output) {
	for _, o := range outs {
		m.encode.WithLabelValues(o.Name, o.Format.Name()).Observe(o.Took.Seconds())
	}
}

// Describe and Collect make the engine's metrics one collector.
func (m *engineMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.encode.Describe(ch)
	for _, d := range m.descs {
		ch <- d
	}
}

func (m *engineMetrics) Collect(ch chan<- prometheus.Metric) {
	m.encode.Collect(ch)
	s := m.stats()
	for i, v := range []float64{s.memory, s.highwater, s.allocations, s.files, s.cacheSize, s.cacheMaxMemory} {
		ch <- prometheus.MustNewConstMetric(m.descs[i], prometheus.GaugeValue, v)
	}
}

// Package cachemetrics counts the hot-read cache's lookups by layer, for
// every cache adapter alike: local (this node's memory), redis (Redis
// answered it). A nil *Metrics counts nothing.
package cachemetrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts cache lookups.
type Metrics struct {
	localHit, localMiss, redisHit, redisMiss, unavailable prometheus.Counter
}

// New registers the cache metrics with reg.
func New(reg prometheus.Registerer) *Metrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vitrine_cache_lookups_total",
		Help: "Hot-read cache lookups by layer (local: this node's memory; redis: the shared cache) and result (hit, miss; unavailable: Redis was skipped while its breaker was open).",
	}, []string{"layer", "result"})
	reg.MustRegister(vec)
	return &Metrics{
		localHit: vec.WithLabelValues("local", "hit"), localMiss: vec.WithLabelValues("local", "miss"),
		redisHit: vec.WithLabelValues("redis", "hit"), redisMiss: vec.WithLabelValues("redis", "miss"),
		unavailable: vec.WithLabelValues("redis", "unavailable"),
	}
}

// Local counts a lookup answered (or missed) by this node's memory.
func (m *Metrics) Local(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.localHit.Inc()
	default:
		m.localMiss.Inc()
	}
}

// Redis counts a lookup that went to Redis.
func (m *Metrics) Redis(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.redisHit.Inc()
	default:
		m.redisMiss.Inc()
	}
}

// Unavailable counts a lookup that skipped Redis (its breaker was open).
func (m *Metrics) Unavailable() {
	if m != nil {
		m.unavailable.Inc()
	}
}

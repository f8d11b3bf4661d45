package rest

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// httpMetrics are the front door's Prometheus metrics. Labels are bounded:
// the route template (never the path), the method, the status class, the
// reason of a refusal.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	refused  *prometheus.CounterVec
	other    *routeObservers // requests no route matched
}

// routeObservers are one route's duration observers by status class.
type routeObservers [6]prometheus.Observer // 0: other, 1-5: 1xx-5xx

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vitrine_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template, method and status class.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vitrine_http_requests_in_flight",
			Help: "HTTP requests being answered.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitrine_http_refused_total",
			Help: "Requests refused to protect the service, by reason: rate_limit, backlog, size, timeout, upload_memory, connections.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.duration, m.inFlight, m.refused)
	for _, r := range []string{"rate_limit", "backlog", "size", "timeout", "upload_memory", "connections"} {
		m.refused.WithLabelValues(r) // every reason is exported, at 0 until it happens
	}
	m.other = m.observers("unmatched", "other")
	return m
}

// observers resolves a route's observers for a method, once, when the
// route is registered: the hot path does no label lookup.
func (m *httpMetrics) observers(route, method string) *routeObservers {
	var o routeObservers
	for i, class := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		o[i] = m.duration.WithLabelValues(route, method, class)
	}
	return &o
}

// observe records one answered request; o is its route's observers (nil:
// no route matched).
func (m *httpMetrics) observe(ctx *fasthttp.RequestCtx, x *exchange, took time.Duration) {
	o := x.obs
	if o == nil {
		o = m.other
	}
	class := ctx.Response.StatusCode() / 100
	if class < 1 || class > 5 {
		class = 0
	}
	o[class].Observe(took.Seconds())
	if reason := refusalReason(x.problem); reason != "" {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// refusalReason names why the request was refused to protect the service,
// from the problem code it was answered with; "" when it was not.
func refusalReason(code string) string {
	switch code {
	case "":
		return ""
	case "rate_limited":
		return "rate_limit"
	case "backlog_full", "owner_backlog_full":
		return "backlog"
	case "body_too_large", "file_too_large", "header_too_large":
		return "size"
	case "request_timeout":
		return "timeout"
	case "uploads_busy":
		return "upload_memory"
	}
	return "" // refused connections are counted by the listener
}

// metricsHandler serves the Prometheus exposition of gatherer.
func metricsHandler(gatherer prometheus.Gatherer) fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(MetricsHandler(gatherer))
}

// metrics serves /metrics: the Prometheus exposition of every metric.
func (s *Server) metrics(ctx *fasthttp.RequestCtx, _ principal) {
	if err := onlyParams(ctx.QueryArgs()); err != nil {
		writeError(ctx, err)
		return
	}
	s.metricsHTTP(ctx)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if ctx.Response.StatusCode() != http.StatusOK {
		writeProblem(ctx, http.StatusInternalServerError, "internal", "the metrics could not be gathered", nil)
	}
}

// MetricsHandler is /metrics on a listener of its own (net/http), for
// VITRINE_METRICS_ADDR.
func MetricsHandler(gatherer prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

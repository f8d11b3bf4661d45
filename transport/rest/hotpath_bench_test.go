package rest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// BenchmarkCachedGet is the front door's own cost of a cached
// GET /products/{id} — the router, request id, access checks, metrics and
// the cache hit, without the network — beside a bare fasthttp handler
// writing the same bytes and headers. Run with -benchmem: the difference
// between the two is what vitrine adds to each hot read.
func BenchmarkCachedGet(b *testing.B) {
	const id = "01937a4e-7b8c-7def-8a12-3456789abcde"
	etag := `"01937a4e-7b8c-7def-8a12-3456789abcde.7"`
	body := []byte(`{"id":"` + id + `","name":"oak lamp 1","description":"A oak lamp from the load test, number 1.","price":"12.34","currency":"EUR","user_id":2,"version":7,"images":[]}`)
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

	run := func(b *testing.B, h fasthttp.RequestHandler) {
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodGet)
		req.SetRequestURI("/products/" + id)
		req.Header.SetHost("vitrine")
		var ctx fasthttp.RequestCtx
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			ctx.Init(&req, remote, nil)
			h(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusOK || len(ctx.Response.Body()) != len(body) {
				b.Fatalf("status %d, %d bytes", ctx.Response.StatusCode(), len(ctx.Response.Body()))
			}
		}
	}

	b.Run("vitrine", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		cache := memory.New(1000)
		cache.Set(context.Background(), id, 7, append(append([]byte(etag), 0), body...))
		svc := actors.NewService(nil, cache, nil, nil, time.Second, actors.NewMetrics(reg))
		s := New(Config{}, Deps{Products: svc, Metrics: reg, Gatherer: reg}, zap.NewNop())
		run(b, s.srv.Handler)
	})
	b.Run("bare", func(b *testing.B) {
		run(b, func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.Response.Header.Set("ETag", etag)
			ctx.Response.Header.Set("Cache-Control", "no-cache")
			ctx.SetBody(body)
		})
	})
}

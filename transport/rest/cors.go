package rest

import (
	"net/http"
	"slices"

	"github.com/valyala/fasthttp"
)

// cors answers cross-origin requests from the configured origins. It is off
// (nil) unless origins are configured.
type cors struct {
	any     bool
	origins []string
}

func newCORS(origins []string) *cors {
	if len(origins) == 0 {
		return nil
	}
	return &cors{any: slices.Contains(origins, "*"), origins: origins}
}

// The headers a browser may send and read across origins.
const (
	corsAllowHeaders  = "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-ID"
	corsExposeHeaders = "ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID, Idempotent-Replayed"
)

func (c *cors) allowed(origin []byte) bool {
	return len(origin) > 0 && (c.any || slices.Contains(c.origins, string(origin)))
}

// apply sets the CORS headers of an actual request. The answer depends on
// Origin, so it varies by it.
func (c *cors) apply(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Add("Vary", "Origin")
	origin := ctx.Request.Header.Peek("Origin")
	if !c.allowed(origin) {
		return
	}
	ctx.Response.Header.SetBytesV("Access-Control-Allow-Origin", origin)
	ctx.Response.Header.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// preflight answers an OPTIONS preflight; the router has set Allow to the
// path's methods.
func (s *Server) preflight(ctx *fasthttp.RequestCtx) {
	if s.cors == nil {
		return
	}
	s.cors.apply(ctx)
	ctx.Response.Header.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
	if s.cors.allowed(ctx.Request.Header.Peek("Origin")) {
		ctx.Response.Header.SetBytesV("Access-Control-Allow-Methods", ctx.Response.Header.Peek("Allow"))
		ctx.Response.Header.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		ctx.Response.Header.Set("Access-Control-Max-Age", "600")
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

package rest

import (
	"mime"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"
)

// index answers GET /: a browser (one that asks for text/html) is sent to
// the admin page; any other client gets a small JSON index of where to go.
func (s *Server) index(ctx *fasthttp.RequestCtx, p principal) {
	if acceptsHTML(string(ctx.Request.Header.Peek("Accept"))) {
		s.securityHeaders(ctx)
		ctx.Response.Header.Set("Location", "/admin/")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.Response.Header.Set("Vary", "Accept")
		ctx.SetStatusCode(http.StatusSeeOther)
		return
	}
	ctx.Response.Header.Set("Vary", "Accept")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	writeJSON(ctx, http.StatusOK, map[string]any{
		"name": "vitrine",
		"links": map[string]string{
			"openapi":  "/openapi.json",
			"admin":    "/admin/",
			"products": "/products",
			"health":   "/healthz",
		},
	})
}

// acceptsHTML reports whether an Accept header names text/html (or
// application/xhtml+xml) with a q-value above 0, as browsers' do.
func acceptsHTML(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != "text/html" && mt != "application/xhtml+xml") {
			continue
		}
		if q := params["q"]; q == "0" || strings.Trim(q, "0.") == "" && q != "" {
			continue
		}
		return true
	}
	return false
}

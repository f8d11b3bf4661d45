package rest

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(ctx *fasthttp.RequestCtx, _ principal) {
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(openapiDoc)
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx, _ principal) {
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBodyString(`{"status":"ok"}`)
}

// readyz answers 200 when this node takes requests: it is not leaving and
// its dependencies answer. With ?deps=false only the first part counts
// (Kubernetes, whose membership follows pod readiness, uses it: a database
// outage must not take every pod out of the cluster).
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ principal) {
	if err := onlyParams(ctx.QueryArgs(), "deps"); err != nil {
		writeError(ctx, err)
		return
	}
	checks := s.deps.Checks
	switch deps := ctx.QueryArgs().Peek("deps"); {
	case !ctx.QueryArgs().Has("deps") || string(deps) == "true":
	case string(deps) == "false":
		checks = nil
	default:
		writeError(ctx, &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_query", Detail: "deps must be true or false",
			Fields: []catalog.FieldError{{Field: "deps", Detail: "must be true or false"}}})
		return
	}
	if s.draining.Load() {
		ctx.Response.Header.Set("Retry-After", "1")
		writeProblem(ctx, http.StatusServiceUnavailable, "draining", "this node is shutting down; send requests to another node", nil)
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	results := map[string]string{}
	var failed []string
	for _, ch := range checks {
		if err := ch.Check(c); err != nil {
			results[ch.Name] = err.Error()
			failed = append(failed, ch.Name)
		} else {
			results[ch.Name] = "ok"
		}
	}
	if len(failed) > 0 {
		ctx.Response.Header.Set("Retry-After", "5")
		writeProblem(ctx, http.StatusServiceUnavailable, "not_ready", "not ready: "+strings.Join(failed, ", ")+" did not answer", nil)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, http.StatusOK, map[string]any{"status": "ready", "checks": results})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

func pathID(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

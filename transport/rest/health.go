package rest

import (
	_ "embed"
	"net/http"
	"strings"

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
// its dependencies answered when last checked (see readiness: at most
// readyStale ago, the checks run at most once per readyFresh however many
// requests come). With ?deps=false only the first part counts
// (Kubernetes, whose membership follows pod readiness, uses it: a database
// outage must not take every pod out of the cluster).
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ principal) {
	if err := onlyParams(ctx.QueryArgs(), "deps"); err != nil {
		writeError(ctx, err)
		return
	}
	withDeps := true
	switch deps := ctx.QueryArgs().Peek("deps"); {
	case !ctx.QueryArgs().Has("deps") || string(deps) == "true":
	case string(deps) == "false":
		withDeps = false
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
	results, failed := map[string]string{}, []string(nil)
	if withDeps && len(s.deps.Checks) > 0 {
		r := s.ready.get() // judged at most readyStale ago, shared by every request
		results, failed = r.results, r.failed
	}
	if len(failed) > 0 {
		ctx.Response.Header.Set("Retry-After", "5")
		writeProblem(ctx, http.StatusServiceUnavailable, "not_ready", "not ready: "+strings.Join(failed, ", ")+" did not answer", nil)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, http.StatusOK, map[string]any{"status": "ready", "checks": results})
}

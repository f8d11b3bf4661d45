package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

func (s *Server) listDeadLetters(ctx *fasthttp.RequestCtx, _ principal) {
	limit, ok := queryLimit(ctx, 100, 1000)
	if !ok {
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	items, err := s.deps.Admin.ListDeadLetters(c, limit)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if items == nil {
		items = []catalog.DeadLetter{}
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) replayDeadLetter(ctx *fasthttp.RequestCtx, _ principal) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	job, err := s.deps.Admin.ReplayDeadLetter(c, pathID(ctx, "image_id"))
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/products/"+job.ProductID+"/images/"+job.ImageID)
	writeJSON(ctx, http.StatusAccepted, job)
}

// keyRequest is the body of POST /admin/keys.
type keyRequest struct {
	Name   string          `json:"name"`
	Scopes []access.Scope  `json:"scopes"`
	Owner  json.RawMessage `json:"owner"` // an integer; absent or null: any owner
}

// keyCreated is the answer to POST /admin/keys: the key's secret, shown
// this once.
type keyCreated struct {
	access.APIKey
	Key string `json:"key"`
}

func (s *Server) createKey(ctx *fasthttp.RequestCtx, _ principal) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	var req keyRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeError(ctx, catalog.Errorf(catalog.KindInvalid, "malformed_json",
			`the body must be {"scopes": ["read"|"write"|"admin", …], "owner": <user_id or null>, "name": "…"}: %v`, err))
		return
	}
	var owner *int64
	if len(req.Owner) > 0 && string(req.Owner) != "null" {
		n, ok := catalog.IntegralInt64(string(req.Owner))
		if !ok {
			writeError(ctx, &catalog.Error{Kind: catalog.KindInvalid, Code: "validation", Detail: "owner must be a positive integer",
				Fields: []catalog.FieldError{{Field: "owner", Detail: "must be a positive integer"}}})
			return
		}
		owner = &n
	}
	if s.deps.Keys == nil {
		writeError(ctx, catalog.Errorf(catalog.KindUnavailable, "keys_unavailable", "this server keeps no API keys"))
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	key, secret, err := access.IssueKey(c, s.deps.Keys, s.deps.NewID(), req.Name, req.Scopes, owner, s.now())
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/admin/keys/"+key.ID)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, http.StatusCreated, keyCreated{APIKey: *key, Key: secret})
}

func (s *Server) listKeys(ctx *fasthttp.RequestCtx, _ principal) {
	if err := onlyParams(ctx.QueryArgs()); err != nil {
		writeError(ctx, err)
		return
	}
	keys := []access.APIKey{}
	if s.deps.Keys != nil {
		c, cancel := s.reqCtx(ctx)
		defer cancel()
		var err error
		if keys, err = s.deps.Keys.ListKeys(c); err != nil {
			writeError(ctx, err)
			return
		}
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, http.StatusOK, map[string]any{"items": keys})
}

func (s *Server) revokeKey(ctx *fasthttp.RequestCtx, _ principal) {
	id := pathID(ctx, "id")
	if s.deps.Keys == nil || !catalog.ValidID(id) {
		writeError(ctx, catalog.NotFound("key %q does not exist", id))
		return
	}
	c, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if _, err := s.deps.Keys.RevokeKey(c, id, s.now()); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

// listWebhookAttempts is the webhook delivery log.
func (s *Server) listWebhookAttempts(ctx *fasthttp.RequestCtx, _ principal) {
	limit, ok := queryLimit(ctx, 100, 1000)
	if !ok {
		return
	}
	items := []catalog.WebhookAttempt{}
	if s.deps.Webhooks != nil {
		c, cancel := s.reqCtx(ctx)
		defer cancel()
		var err error
		if items, err = s.deps.Webhooks.ListAttempts(c, limit); err != nil {
			writeError(ctx, err)
			return
		}
		if items == nil {
			items = []catalog.WebhookAttempt{}
		}
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, http.StatusOK, map[string]any{"items": items})
}

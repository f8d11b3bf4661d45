package rest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

// MaxIdempotencyKeyLength bounds an Idempotency-Key.
const MaxIdempotencyKeyLength = 255

// parseIdempotencyKey reads an Idempotency-Key header (draft-ietf-httpapi-
// idempotency-key-header). The draft makes it a structured-field string,
// "…", but many clients send a bare token: the value is taken as sent,
// quotes and all, so that a retry matches whatever form its client uses.
// It is 1 to 255 printable ASCII characters.
func parseIdempotencyKey(h []byte) (string, error) {
	v := strings.TrimSpace(string(h))
	if v == "" || len(v) > MaxIdempotencyKeyLength {
		return "", fmt.Errorf("the Idempotency-Key must be 1 to %d characters", MaxIdempotencyKeyLength)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", fmt.Errorf("the Idempotency-Key must be printable ASCII")
		}
	}
	return v, nil
}

// replayedHeaders are the response headers kept with an idempotent
// response and sent again on a replay.
var replayedHeaders = []string{"Content-Type", "Location", "ETag", "Cache-Control"}

// idempotent runs handle once per Idempotency-Key (when the request has
// one): the same key with the same request replays the stored response,
// with a different request gets 422, and while the first request runs,
// 409. Only successful (2xx) responses are kept; after a failure the key
// is free again, so a corrected retry can run. fingerprint identifies the
// request's meaning (not its framing: a multipart boundary differs between
// two sends of the same file); it is called only when the request has a key.
func (s *Server) idempotent(ctx *fasthttp.RequestCtx, p principal, fingerprint func() []byte, handle func()) {
	h := ctx.Request.Header.Peek("Idempotency-Key")
	if len(h) == 0 && !hasHeader(&ctx.Request.Header, "Idempotency-Key") || s.deps.Idempotency == nil {
		handle()
		return
	}
	key, err := parseIdempotencyKey(h)
	if err != nil {
		writeError(ctx, &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_idempotency_key", Detail: err.Error(),
			Fields: []catalog.FieldError{{Field: "Idempotency-Key", Detail: err.Error()}}})
		return
	}
	scope := "key:" + p.keyID
	if p.anonymous() {
		scope = "addr:" + clientAddr(ctx, s.cfg.TrustedProxies).String()
	}
	sum := sha256.New()
	sum.Write(ctx.Method())
	sum.Write([]byte{0})
	sum.Write(ctx.Path())
	sum.Write([]byte{0})
	sum.Write(fingerprint())
	now := s.now()
	rec := access.IdempotencyRecord{Scope: scope, Key: key, Fingerprint: hex.EncodeToString(sum.Sum(nil)),
		LockedUntil: now.Add(2*s.cfg.RequestTimeout + 10*time.Second), ExpiresAt: now.Add(s.cfg.IdempotencyTTL)}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	got, reserved, err := s.deps.Idempotency.ReserveIdempotencyKey(c, rec, now)
	cancel()
	if err != nil {
		writeError(ctx, err)
		return
	}
	switch {
	case !reserved && got.Fingerprint != rec.Fingerprint:
		writeProblem(ctx, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used with a different request; use a new key for a new request", nil)
		return
	case !reserved && !got.Done:
		ctx.Response.Header.Set("Retry-After", "1")
		writeProblem(ctx, http.StatusConflict, "idempotency_key_in_use",
			"a request with this Idempotency-Key is still running; retry when it has finished", nil)
		return
	case !reserved:
		replay(ctx, got)
		return
	}
	handle()
	c, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status := ctx.Response.StatusCode()
	if status < 200 || status > 299 {
		if err := s.deps.Idempotency.ReleaseIdempotencyKey(c, scope, key); err != nil {
			s.log.Warn("release idempotency key", zap.Error(err)) // it lapses by itself
		}
		return
	}
	header := map[string]string{}
	for _, name := range replayedHeaders {
		if v := ctx.Response.Header.Peek(name); len(v) > 0 {
			header[name] = string(v)
		}
	}
	rec.Status, rec.Body = status, append([]byte(nil), ctx.Response.Body()...)
	rec.Header, _ = json.Marshal(header)
	if err := s.deps.Idempotency.CompleteIdempotencyKey(c, rec); err != nil {
		// The response was made; a retry would run the request again
		// once the lock lapses. Say so in the log, do not fail the answer.
		s.log.Warn("store idempotent response", zap.String("idempotency_scope", scope), zap.Error(err))
	}
}

// hasHeader reports whether the request carries the header, even empty.
func hasHeader(h *fasthttp.RequestHeader, name string) bool {
	for k := range h.All() {
		if strings.EqualFold(string(k), name) {
			return true
		}
	}
	return false
}

// replay answers with a stored response.
func replay(ctx *fasthttp.RequestCtx, rec *access.IdempotencyRecord) {
	var header map[string]string
	_ = json.Unmarshal(rec.Header, &header)
	for k, v := range header {
		ctx.Response.Header.Set(k, v)
	}
	ctx.Response.Header.Set("Idempotent-Replayed", "true")
	ctx.SetStatusCode(rec.Status)
	ctx.SetBody(rec.Body)
}

// purgeIdempotencyKeys removes expired records now and then, until ctx ends.
func (s *Server) purgeIdempotencyKeys(ctx context.Context, every time.Duration) {
	if s.deps.Idempotency == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := s.deps.Idempotency.PurgeIdempotencyKeys(c, s.now())
		cancel()
		if err != nil {
			s.log.Warn("purge idempotency keys", zap.Error(err))
		} else if n > 0 {
			s.log.Debug("purged idempotency keys", zap.Int("count", n))
		}
	}
}

package rest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
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
// is free again, so a corrected retry can run; a success is stored even
// if the store fails for a while (see below). fingerprint identifies the
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
	rec := access.IdempotencyRecord{Scope: scope, Key: key, Fingerprint: hex.EncodeToString(sum.Sum(nil)), Token: uuid.NewString(),
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
		if err := s.deps.Idempotency.ReleaseIdempotencyKey(c, scope, key, rec.Token); err != nil {
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
	// The request's effect is done: from here on, a retry must get this
	// answer, never run it again. So the answer is stored however long it
	// takes: a few tries now, then in the background until the record
	// expires. Meanwhile the reservation stays held (a retry gets 409), and
	// its token keeps it ours even past its lock: a retry can take the key
	// over only if the lock lapses before the store answers again.
	if err := s.completeIdempotent(c, rec, completeTriesInline); err != nil {
		if errors.Is(err, access.ErrReservationLost) {
			s.log.Warn("store idempotent response", zap.String("idempotency_scope", scope), zap.Error(err))
			return
		}
		s.log.Warn("store idempotent response; retrying in the background", zap.String("idempotency_scope", scope), zap.Error(err))
		go s.completeIdempotentLater(rec)
	}
}

// completeTriesInline is how many times a request tries to store its
// idempotent answer before it answers the client.
const completeTriesInline = 3

// completeIdempotent stores rec's answer, trying up to tries times while
// ctx lasts; it gives up at once when the reservation was lost.
func (s *Server) completeIdempotent(ctx context.Context, rec access.IdempotencyRecord, tries int) error {
	wait := 50 * time.Millisecond
	var err error
	for i := range tries {
		if err = s.deps.Idempotency.CompleteIdempotencyKey(ctx, rec); err == nil || errors.Is(err, access.ErrReservationLost) {
			return err
		}
		if i == tries-1 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (then: %w)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 4
	}
	return err
}

// completeIdempotentLater keeps trying to store rec's answer, with a
// growing pause, until it is stored, the reservation is lost or the record
// would have expired anyway.
func (s *Server) completeIdempotentLater(rec access.IdempotencyRecord) {
	wait := time.Second
	for s.now().Before(rec.ExpiresAt) {
		select {
		case <-s.stopped:
			// The process is going: the reservation stays held until its
			// lock lapses; a retry after that runs the request again.
			s.log.Warn("idempotent response not stored before shutdown", zap.String("idempotency_scope", rec.Scope))
			return
		case <-time.After(wait):
		}
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.deps.Idempotency.CompleteIdempotencyKey(c, rec)
		cancel()
		if err == nil {
			s.log.Info("stored idempotent response after retries", zap.String("idempotency_scope", rec.Scope))
			return
		}
		if errors.Is(err, access.ErrReservationLost) {
			s.log.Warn("store idempotent response", zap.String("idempotency_scope", rec.Scope), zap.Error(err))
			return
		}
		wait = min(2*wait, 5*time.Second) // short: the store back, the answer must be in before the lock lapses
	}
	s.log.Error("idempotent response never stored; its key expired", zap.String("idempotency_scope", rec.Scope))
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

package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

// memIdempotency is an access.IdempotencyStore in a map, with the
// semantics the conformance suite (persistence/accesstest) checks of the
// real stores; completeFailures makes that many CompleteIdempotencyKey
// calls fail first, as a store that is briefly unreachable.
type memIdempotency struct {
	mu               sync.Mutex
	recs             map[[2]string]access.IdempotencyRecord
	completeFailures int
}

func (m *memIdempotency) ReserveIdempotencyKey(_ context.Context, rec access.IdempotencyRecord, now time.Time) (*access.IdempotencyRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{rec.Scope, rec.Key}
	if got, ok := m.recs[k]; ok && now.Before(got.ExpiresAt) && (got.Done || now.Before(got.LockedUntil)) {
		got.Token = ""
		return &got, false, nil
	}
	m.recs[k] = rec
	return &rec, true, nil
}

func (m *memIdempotency) CompleteIdempotencyKey(_ context.Context, rec access.IdempotencyRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.completeFailures > 0 {
		m.completeFailures--
		return errors.New("complete idempotency key: connection reset")
	}
	k := [2]string{rec.Scope, rec.Key}
	if got, ok := m.recs[k]; !ok || got.Done || got.Token != rec.Token {
		return access.ErrReservationLost
	}
	rec.Done = true
	m.recs[k] = rec
	return nil
}

func (m *memIdempotency) ReleaseIdempotencyKey(_ context.Context, scope, key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{scope, key}
	if got, ok := m.recs[k]; ok && !got.Done && got.Token == token {
		delete(m.recs, k)
	}
	return nil
}

func (m *memIdempotency) PurgeIdempotencyKeys(context.Context, time.Time) (int, error) { return 0, nil }

// creatingProducts creates a new product on every Create.
type creatingProducts struct {
	stubProducts
	mu      sync.Mutex
	created int
}

func (p *creatingProducts) Create(context.Context, []byte, int64) (actors.Product, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.created++
	id := fmt.Sprintf("01937a4e-7b8c-7def-8a12-%012d", p.created)
	return actors.Product{ID: id, ETag: `"` + id + `.1"`, Body: []byte(`{"id":"` + id + `"}`)}, nil
}

// TestIdempotentCreateSurvivesCompleteFailure: the store fails once to
// keep the answer of a create made with an Idempotency-Key; the client's
// retry, even after the request's lock would have lapsed, must replay the
// first product and not create a second.
func TestIdempotentCreateSurvivesCompleteFailure(t *testing.T) {
	store := &memIdempotency{recs: map[[2]string]access.IdempotencyRecord{}, completeFailures: 1}
	products := &creatingProducts{}
	var mu sync.Mutex
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := serve(t, New(Config{AnonymousWrites: true, RequestTimeout: time.Second},
		Deps{Products: products, Idempotency: store, Now: clock}, zap.NewNop()))

	post := func() (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://x/products", strings.NewReader(`{"name":"lamp"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "order-4711")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body), res.Header.Get("Idempotent-Replayed")
	}
	status, first, _ := post()
	if status != 201 {
		t.Fatalf("first create: %d %s", status, first)
	}
	mu.Lock()
	now = now.Add(time.Hour) // well past the request's lock, within the TTL
	mu.Unlock()
	status, again, replayed := post()
	if products.created != 1 {
		t.Fatalf("the retry created product #%d (answer %d %s); want the first replayed", products.created, status, again)
	}
	if status != 201 || again != first || replayed != "true" {
		t.Errorf("retry: %d %s replayed %q; want the first answer, %s, replayed", status, again, replayed, first)
	}
}

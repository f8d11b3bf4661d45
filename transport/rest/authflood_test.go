package rest

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// countingKeys is a key store of one key that counts its lookups.
type countingKeys struct {
	catalog.KeyStore // only KeyByHash is called
	key              *catalog.APIKey
	lookups          atomic.Int32
}

func (k *countingKeys) KeyByHash(_ context.Context, hash string) (*catalog.APIKey, error) {
	k.lookups.Add(1)
	if hash == k.key.Hash {
		return k.key, nil
	}
	return nil, catalog.NotFound("no such key")
}

// fakeKey is a well-formed key that nobody issued.
func fakeKey(t *testing.T) string {
	t.Helper()
	_, secret, err := catalog.NewAPIKey("x", "", []catalog.Scope{catalog.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestAuthFailuresLimited: a flood of distinct well-formed fake keys from
// one address costs a store lookup each only until the address's failures
// are used up; then 429 without a lookup. A valid key keeps working, from
// the cache.
func TestAuthFailuresLimited(t *testing.T) {
	key, secret, err := catalog.NewAPIKey("good", "good", []catalog.Scope{catalog.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{key: key}
	s := New(Config{PrivateReads: true, RateAuthFailures: catalog.Rate{Limit: 10, Period: time.Minute, Burst: 10}},
		Deps{Products: &stubProducts{}, Keys: keys, Limiter: memory.NewLimiter(nil)}, zap.NewNop())
	c := serve(t, s)
	status := func(key string) (int, string) {
		res, _ := get(t, c, "/products", "Authorization", "Bearer "+key)
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	if st, _ := status(secret); st != http.StatusOK {
		t.Fatalf("the valid key: %d", st)
	}
	counts := map[int]int{}
	for range 1000 {
		st, retry := status(fakeKey(t))
		counts[st]++
		if st == http.StatusTooManyRequests && retry == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if counts[http.StatusUnauthorized] != 10 || counts[http.StatusTooManyRequests] != 990 {
		t.Errorf("1,000 fake keys: %v, want 10 × 401 then 990 × 429", counts)
	}
	if n := keys.lookups.Load(); n != 12 {
		t.Errorf("%d store lookups, want 12 (the valid key once, the 10 failures the budget allows, the one past it)", n)
	}
	if st, _ := status(secret); st != http.StatusOK {
		t.Errorf("the valid key after the flood: %d", st)
	}
	if st, _ := status("garbage"); st != http.StatusTooManyRequests {
		t.Errorf("a malformed key from the blocked address: %d, want 429", st)
	}
}

// TestUnknownKeysCannotEvictKnownOnes: unknown keys are remembered apart
// from found ones, so a flood of them (here with no failure limit) never
// makes a valid key be looked up again within its TTL.
func TestUnknownKeysCannotEvictKnownOnes(t *testing.T) {
	key, secret, err := catalog.NewAPIKey("good", "good", []catalog.Scope{catalog.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{key: key}
	a := newAuthenticator(keys, "", time.Hour, "", time.Now)
	look := func(secret string) error {
		_, err := a.lookup(&fasthttp.RequestCtx{}, secret)
		return err
	}
	if err := look(secret); err != nil {
		t.Fatal(err)
	}
	for i := range 2*maxCachedKeys + 1 {
		if err := look(fmt.Sprintf("vtr_%040d", i)); err == nil {
			t.Fatal("a fake key was accepted")
		}
	}
	if err := look(secret); err != nil {
		t.Fatal(err)
	}
	if n := keys.lookups.Load(); n != 2*maxCachedKeys+2 {
		t.Errorf("%d lookups, want %d: the valid key was looked up again", n, 2*maxCachedKeys+2)
	}
	if len(a.unknown) > maxCachedKeys || len(a.entries) != 1 {
		t.Errorf("caches hold %d unknown and %d found keys", len(a.unknown), len(a.entries))
	}
}

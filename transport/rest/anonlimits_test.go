package rest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// TestAnonymousReadsAndWritesCountApart: a client address without a key
// has one budget for reads and another for writes; using up one leaves
// the other whole, and each 429 names its own policy.
func TestAnonymousReadsAndWritesCountApart(t *testing.T) {
	s := New(Config{AnonymousWrites: true,
		RateAnonymous:       access.Rate{Limit: 3, Period: time.Minute, Burst: 3},
		RateAnonymousWrites: access.Rate{Limit: 2, Period: time.Minute, Burst: 2}},
		Deps{Products: &stubProducts{}, Limiter: memory.NewLimiter(nil)}, zap.NewNop())
	c := serve(t, s)
	read := func() (int, string) {
		res, _ := get(t, c, "/products")
		return res.StatusCode, res.Header.Get("RateLimit-Policy")
	}
	write := func() (int, string) {
		res, err := c.Post("http://x/products", "application/json", strings.NewReader(`{"name":"lamp","price":"1.00","currency":"EUR","user_id":1}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header.Get("RateLimit-Policy")
	}
	for i := range 3 {
		if st, _ := read(); st != http.StatusOK {
			t.Fatalf("read %d: %d", i+1, st)
		}
	}
	if st, policy := read(); st != http.StatusTooManyRequests || !strings.HasPrefix(policy, `"anonymous";q=3`) {
		t.Fatalf("a 4th read: %d %q, want 429 under the anonymous (reads) policy", st, policy)
	}
	for i := range 2 {
		if st, policy := write(); st == http.StatusTooManyRequests || !strings.HasPrefix(policy, `"anonymous-writes";q=2`) {
			t.Fatalf("write %d after the reads ran out: %d %q, want it admitted under the anonymous-writes policy", i+1, st, policy)
		}
	}
	if st, _ := write(); st != http.StatusTooManyRequests {
		t.Fatalf("a 3rd write: %d, want 429", st)
	}
}

// TestUntrustedProxyWarnedOnce: anonymous requests with X-Forwarded-For
// from a peer that is not a trusted proxy are logged once, as a warning
// that all clients behind it share one limit; a trusted proxy is not.
func TestUntrustedProxyWarnedOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		want    int
	}{{"untrusted", "", 1}, {"trusted", "0.0.0.0/0", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			cfg := Config{RateAnonymous: access.Rate{Limit: 100, Period: time.Second, Burst: 100}}
			if tc.trusted != "" {
				var err error
				if cfg.TrustedProxies, err = ParseTrustedProxies([]string{tc.trusted, "::/0"}); err != nil {
					t.Fatal(err)
				}
			}
			c := serve(t, New(cfg, Deps{Products: &stubProducts{}, Limiter: memory.NewLimiter(nil)}, zap.New(core)))
			for range 3 {
				get(t, c, "/products", "X-Forwarded-For", "203.0.113.7")
			}
			if n := logs.FilterMessageSnippet("VITRINE_TRUSTED_PROXIES").Len(); n != tc.want {
				t.Errorf("%d warnings, want %d", n, tc.want)
			}
		})
	}
}

//go:build integration

package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/persistence/limitertest"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

func TestLimiterConformance(t *testing.T) {
	limitertest.Run(t, func(t *testing.T) access.RateLimiter {
		return open(t).Limiter(failingLimiter{t})
	})
}

// failingLimiter fails the test if the Redis limiter falls back to it.
type failingLimiter struct{ t *testing.T }

func (f failingLimiter) Allow(context.Context, string, access.Rate) (access.RateDecision, error) {
	f.t.Error("the Redis limiter fell back to the local one although Redis is up")
	return access.RateDecision{}, nil
}

// TestLimiterSharedByNodes: two nodes (two clients) count against one
// state: together they get one burst, not one each.
func TestLimiterSharedByNodes(t *testing.T) {
	a := open(t).Limiter(failingLimiter{t})
	b := open(t).Limiter(failingLimiter{t})
	r := access.Rate{Limit: 1, Period: time.Minute, Burst: 30}
	key := fmt.Sprintf("shared-%x", rand.Uint64()) // its state lasts half an hour
	got := limitertest.Hammer(t, []access.RateLimiter{a, b}, 4, 20, key, r)
	if got != int64(r.Burst) {
		t.Fatalf("two nodes allowed %d of 160 requests, want the one shared burst of %d", got, r.Burst)
	}
}

// TestLimiterFallsBackWhenRedisIsDown: with Redis unreachable the limiter
// answers from its per-node fallback, fast, without an error.
func TestLimiterFallsBackWhenRedisIsDown(t *testing.T) {
	c, err := New("redis://127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	l := c.Limiter(memory.NewLimiter(nil))
	r := access.Rate{Limit: 1, Period: time.Minute, Burst: 2}
	var got []bool
	for range 3 {
		d, err := l.Allow(context.Background(), "k", r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Allowed)
	}
	if !got[0] || !got[1] || got[2] {
		t.Fatalf("fallback decisions %v, want allowed, allowed, refused", got)
	}
}

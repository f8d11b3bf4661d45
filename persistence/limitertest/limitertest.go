// Package limitertest is the conformance suite of access.RateLimiter:
// every adapter (in-process, Redis) runs the very same tests. The suite
// uses the real clock (Redis keeps its own), with rates chosen so that
// scheduling noise cannot change an outcome.
package limitertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog/access"
)

// Run runs the suite; open returns a limiter whose keys no other test uses.
func Run(t *testing.T, open func(t *testing.T) access.RateLimiter) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l access.RateLimiter, key func() string)
	}{
		{"BurstThenRefuse", testBurstThenRefuse},
		{"RemainingCountsDown", testRemaining},
		{"RefillsAtTheRate", testRefill},
		{"KeysAreIndependent", testIndependent},
		{"ConcurrentExactBurst", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := fmt.Sprintf("t%x:", rand.Uint64()) // #nosec G404 -- a key prefix keeping test runs apart, not a secret
			n := 0
			tt.fn(t, open(t), func() string { n++; return fmt.Sprintf("%s%d", prefix, n) })
		})
	}
}

// slow allows 1 request a minute after a burst of 5: nothing refills
// during a test.
var slow = access.Rate{Limit: 1, Period: time.Minute, Burst: 5}

func allow(t *testing.T, l access.RateLimiter, key string, r access.Rate) access.RateDecision {
	t.Helper()
	d, err := l.Allow(context.Background(), key, r)
	if err != nil {
		t.Fatalf("Allow(%s): %v", key, err)
	}
	return d
}

func testBurstThenRefuse(t *testing.T, l access.RateLimiter, key func() string) {
	k := key()
	for i := range slow.Burst {
		if d := allow(t, l, k, slow); !d.Allowed {
			t.Fatalf("request %d of a burst of %d refused: %+v", i+1, slow.Burst, d)
		}
	}
	d := allow(t, l, k, slow)
	if d.Allowed {
		t.Fatalf("request %d allowed past a burst of %d", slow.Burst+1, slow.Burst)
	}
	if d.RetryAfter <= 50*time.Second || d.RetryAfter > time.Minute {
		t.Errorf("RetryAfter = %s, want just under a minute", d.RetryAfter)
	}
	if d.Remaining != 0 {
		t.Errorf("Remaining = %d on a refusal, want 0", d.Remaining)
	}
}

func testRemaining(t *testing.T, l access.RateLimiter, key func() string) {
	k := key()
	for want := slow.Burst - 1; want >= 0; want-- {
		d := allow(t, l, k, slow)
		if !d.Allowed || d.Remaining != want {
			t.Fatalf("Remaining = %d (allowed %v), want %d", d.Remaining, d.Allowed, want)
		}
		if d.Reset <= 0 || d.Reset > time.Duration(slow.Burst)*time.Minute {
			t.Errorf("Reset = %s, want within %d minutes", d.Reset, slow.Burst)
		}
	}
}

func testRefill(t *testing.T, l access.RateLimiter, key func() string) {
	fast := access.Rate{Limit: 10, Period: time.Second, Burst: 2} // one every 100 ms
	k := key()
	allow(t, l, k, fast)
	allow(t, l, k, fast)
	d := allow(t, l, k, fast)
	if d.Allowed {
		t.Fatal("a third request in a burst of 2 was allowed")
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond {
		t.Fatalf("RetryAfter = %s, want at most one interval (100 ms)", d.RetryAfter)
	}
	time.Sleep(d.RetryAfter + 30*time.Millisecond)
	if d := allow(t, l, k, fast); !d.Allowed {
		t.Fatalf("refused after waiting RetryAfter: %+v", d)
	}
}

func testIndependent(t *testing.T, l access.RateLimiter, key func() string) {
	a, b := key(), key()
	for range slow.Burst + 1 {
		allow(t, l, a, slow)
	}
	if d := allow(t, l, b, slow); !d.Allowed {
		t.Fatal("another key's exhaustion refused this one")
	}
}

func testConcurrent(t *testing.T, l access.RateLimiter, key func() string) {
	r := access.Rate{Limit: 1, Period: time.Minute, Burst: 20}
	if got := Hammer(t, []access.RateLimiter{l}, 8, 10, key(), r); got != int64(r.Burst) {
		t.Fatalf("%d of 80 concurrent requests allowed, want exactly the burst of %d", got, r.Burst)
	}
}

// Hammer asks every limiter from goroutines goroutines at once, each
// making calls requests for key, and returns how many were allowed.
func Hammer(t *testing.T, limiters []access.RateLimiter, goroutines, calls int, key string, r access.Rate) int64 {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range goroutines {
			wg.Go(func() {
				for range calls {
					d, err := l.Allow(context.Background(), key, r)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return allowed.Load()
}

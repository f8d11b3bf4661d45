package rest

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestReadyzCostIsConstant: a flood of /readyz runs the checks once per
// readyFresh at most, whatever the rate; a dependency that fails is seen
// within readyStale.
func TestReadyzCostIsConstant(t *testing.T) {
	var runs atomic.Int32
	var failing atomic.Bool
	var mu sync.Mutex
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	check := Check{Name: "database", Check: func(context.Context) error {
		runs.Add(1)
		time.Sleep(20 * time.Millisecond) // a ping's round trip
		if failing.Load() {
			return errors.New("connection refused")
		}
		return nil
	}}
	c := serve(t, New(Config{}, Deps{Products: &stubProducts{}, Checks: []Check{check}, Now: clock}, zap.NewNop()))
	status := func() int {
		res, _ := get(t, c, "/readyz")
		return res.StatusCode
	}
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 1000 {
		wg.Go(func() {
			if status() != http.StatusOK {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 || bad.Load() != 0 {
		t.Fatalf("1,000 requests ran the checks %d times (want 1), %d answers not 200", n, bad.Load())
	}

	failing.Store(true)
	advance(readyFresh / 2)
	if status() != http.StatusOK || runs.Load() != 1 {
		t.Errorf("fresh results: the checks ran again (%d)", runs.Load())
	}
	advance(readyFresh) // stale enough to refresh, young enough to answer
	_ = status()
	deadline := time.Now().Add(5 * time.Second)
	for status() != http.StatusServiceUnavailable && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if status() != http.StatusServiceUnavailable {
		t.Fatal("a failing dependency never turned /readyz to 503")
	}
	failing.Store(false)
	advance(readyStale) // too old to answer: the request waits for the refresh
	if got := status(); got != http.StatusOK {
		t.Errorf("after the dependency came back, past readyStale: %d, want 200 at once", got)
	}
	if n := runs.Load(); n != 3 {
		t.Errorf("the checks ran %d times in all, want 3", n)
	}
}

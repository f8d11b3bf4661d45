package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/persistence/cachetest"
	"github.com/vitrine-dev/vitrine/persistence/limitertest"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

func TestCache(t *testing.T) {
	const maxEntries = 64
	cachetest.Run(t, func(t *testing.T) catalog.Cache { return memory.New(maxEntries) }, cachetest.Bound{Entries: maxEntries})
}

func TestLenReachesBound(t *testing.T) {
	tests := []struct {
		name       string
		maxEntries int
		want       int
	}{
		{"none", 0, 0},
		{"negative", -5, 0},
		{"one", 1, 1},
		{"fewer than shards", 10, 10},
		{"not a multiple of shards", 100, 100},
		{"many", 5000, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := memory.New(tt.maxEntries)
			for i := range 20*tt.want + 100 {
				c.Set(context.Background(), fmt.Sprintf("product-%d", i), 1, []byte("v"))
			}
			if got := c.Len(); got != tt.want {
				t.Errorf("Len() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestEvict: an evicted entry, value or deletion marker, refuses no later
// Set, unlike a deletion.
func TestEvict(t *testing.T) {
	ctx := context.Background()
	c := memory.New(10)
	c.Set(ctx, "p", 2, []byte("v2"))
	c.Evict("p")
	if _, ok := c.Get(ctx, "p"); ok {
		t.Fatal("an evicted value is read")
	}
	c.Set(ctx, "p", 2, []byte("v2"))
	c.Delete(ctx, "p", 2)
	c.Evict("p")
	c.Set(ctx, "p", 2, []byte("v2"))
	if v, ok := c.Get(ctx, "p"); !ok || string(v) != "v2" {
		t.Fatalf("Get after the deletion marker was evicted = %q %v, want v2", v, ok)
	}
	if n := c.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
	c.Delete(ctx, "p", 2)
	if n := c.Len(); n != 0 {
		t.Fatalf("Len = %d with a deletion marker alone, want 0", n)
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	c := memory.New(100)
	ctx := context.Background()
	c.Set(ctx, "0196a0c2-7b1e-7c3d-8e4f-123456789abc", 1, []byte(`{"name":"Chair"}`))
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := c.Get(ctx, "0196a0c2-7b1e-7c3d-8e4f-123456789abc"); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Errorf("Get allocates %.1f times per hit, want 0", allocs)
	}
}

func BenchmarkGetParallel(b *testing.B) {
	c := memory.New(10_000)
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("0196a0c2-7b1e-7c3d-8e4f-%012d", i)
		c.Set(ctx, keys[i], 1, make([]byte, 2048))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(ctx, keys[i%len(keys)])
			i++
		}
	})
}

func TestLimiter(t *testing.T) {
	limitertest.Run(t, func(t *testing.T) access.RateLimiter { return memory.NewLimiter(nil) })
}

func TestLimiterForgetsIdleKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	l := memory.NewLimiter(func() time.Time { return now })
	r := access.Rate{Limit: 10, Period: time.Second, Burst: 10}
	for i := range 1000 {
		if _, err := l.Allow(context.Background(), fmt.Sprint("client-", i), r); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Minute)
	if _, err := l.Allow(context.Background(), "one more", r); err != nil {
		t.Fatal(err)
	}
	for i := range 300 { // touch (almost) every shard, so that each sweeps
		if _, err := l.Allow(context.Background(), fmt.Sprint("sweep-", i), r); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Keys(); n > 400 {
		t.Fatalf("limiter holds %d keys after every client went idle, want only the recent ones", n)
	}
}

//go:build integration

package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/cachetest"
)

func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("VITRINE_REDIS_URL")
	if u == "" {
		t.Fatal(`VITRINE_REDIS_URL is not set: run eval "$(scripts/services up redis)" first (make test does)`)
	}
	return u
}

func open(t *testing.T) *Cache {
	t.Helper()
	c, err := New(redisURL(t), Options{Prefix: fmt.Sprintf("test:%d:", rand.Int64())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// localBytes is the client-side cache the conformance suite opens caches
// with: small, so that the suite fills it many times over.
const localBytes = 256 << 10

// TestConformance runs the suite with the bound on this node's memory: the
// client-side cache, LocalBytes per connection. The keys of one test cache
// share a hash tag, hence a slot, so rueidis sends all of them through one
// of its connections, whose cache alone holds them.
func TestConformance(t *testing.T) {
	bound := cachetest.Bound{
		Bytes: localBytes,
		Local: func(ctx context.Context, cc catalog.Cache, id string) bool {
			c := cc.(*Cache)
			return c.client.DoCache(ctx, c.client.B().Get().Key(c.opts.Prefix+id).Cache(), time.Hour).IsCacheHit()
		},
	}
	cachetest.Run(t, func(t *testing.T) catalog.Cache {
		c, err := New(redisURL(t), Options{Prefix: fmt.Sprintf("test:{%d}:", rand.Int64()), LocalBytes: localBytes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		return c
	}, bound)
}

// peer is a second node's cache over the same keys as a, keeping its
// local copies for long, so only invalidation can drop them.
func peer(t *testing.T, a *Cache) *Cache {
	t.Helper()
	b, err := New(redisURL(t), Options{Prefix: a.opts.Prefix, LocalTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestInvalidationAcrossClients: a copy one node keeps in memory is dropped
// when another node changes the key.
func TestInvalidationAcrossClients(t *testing.T) {
	ctx := context.Background()
	a := open(t)
	b := peer(t, a)
	a.Set(ctx, "p1", []byte("v1"))
	if v, ok := b.Get(ctx, "p1"); !ok || string(v) != "v1" {
		t.Fatalf("b reads %q %v", v, ok)
	}
	// b now holds v1 in its own memory (tracked). Prove it is served locally:
	resp := b.client.DoCache(ctx, b.client.B().Get().Key(b.opts.Prefix+"p1").Cache(), time.Hour)
	if !resp.IsCacheHit() {
		t.Fatal("the second read did not come from client-side memory")
	}
	a.Set(ctx, "p1", []byte("v2"))
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, ok := b.Get(ctx, "p1")
		if ok && string(v) == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still reads %q after a's write", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.Delete(ctx, "p1")
	deadline = time.Now().Add(2 * time.Second)
	for {
		if _, ok := b.Get(ctx, "p1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b still reads the key after a deleted it")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDownRedisIsAFastMiss: with nothing listening, reads miss quickly and
// the breaker keeps later calls from waiting at all.
func TestDownRedisIsAFastMiss(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New("redis://"+addr+"/0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 1000; i++ {
		if _, ok := c.Get(ctx, "x"); ok {
			t.Fatal("hit on a down redis")
		}
		c.Set(ctx, fmt.Sprint("y", i), []byte("v"))
	}
	// Not a timing assertion on speed, a bound on hanging: 1000 reads and
	// writes would take 100 s if each waited for its 50 ms timeout.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("1000 calls against a down redis took %s", d)
	}
	if !c.hasDirty() {
		t.Error("a write missed during the outage is not remembered")
	}
}

func services(t *testing.T, args ...string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out, err := exec.Command(filepath.Join(filepath.Dir(file), "..", "..", "scripts", "services"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/services %v: %v\n%s", args, err, out)
	}
}

// TestWriteMissedDuringOutage: a write made while Redis was down is not
// lost on other nodes: when Redis returns, the key is deleted before this
// node uses Redis again, so no node keeps reading the older value.
func TestWriteMissedDuringOutage(t *testing.T) {
	ctx := context.Background()
	a := open(t)
	b := peer(t, a)
	a.Set(ctx, "k", []byte("v1"))
	if v, ok := b.Get(ctx, "k"); !ok || string(v) != "v1" {
		t.Fatalf("b reads %q %v", v, ok)
	}

	services(t, "down", "redis")
	t.Cleanup(func() { services(t, "up", "redis") })
	if _, ok := a.Get(ctx, "other"); ok {
		t.Fatal("a hit with Redis down")
	}
	if !a.open() {
		t.Fatal("the breaker did not open")
	}
	a.Set(ctx, "k", []byte("v2")) // missed by Redis
	if v, ok := a.Get(ctx, "k"); !ok || string(v) != "v2" {
		t.Fatalf("a does not read its own write: %q %v", v, ok)
	}

	services(t, "up", "redis") // Redis comes back with v1 on disk
	time.Sleep(a.opts.Cooldown + recentFor)
	a.Get(ctx, "any") // the first call after the cooldown flushes what was missed
	if a.hasDirty() {
		t.Fatal("missed writes not flushed after Redis returned")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, ok := b.Get(ctx, "k")
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still reads %q, older than a's write", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

//go:build integration

package redis

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

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
	b, err := New(redisURL(t), Options{Prefix: a.opts.Prefix, LocalTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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

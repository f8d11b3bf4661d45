//go:build integration

package redis

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
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
	a.Set(ctx, "p1", 1, []byte("v1"))
	if v, ok := b.Get(ctx, "p1"); !ok || string(v) != "v1" {
		t.Fatalf("b reads %q %v", v, ok)
	}
	// b now holds v1 in its own memory (tracked). Prove it is served locally:
	resp := b.client.DoCache(ctx, b.client.B().Get().Key(b.opts.Prefix+"p1").Cache(), time.Hour)
	if !resp.IsCacheHit() {
		t.Fatal("the second read did not come from client-side memory")
	}
	a.Set(ctx, "p1", 2, []byte("v2"))
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
	a.Delete(ctx, "p1", 2)
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
		c.Set(ctx, fmt.Sprint("y", i), 1, []byte("v"))
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
// lost on other nodes: when Redis returns, the key's older value is
// replaced by a marker before this node uses Redis again, so no node keeps
// reading the older value.
func TestWriteMissedDuringOutage(t *testing.T) {
	ctx := context.Background()
	a := open(t)
	b := peer(t, a)
	a.Set(ctx, "k", 1, []byte("v1"))
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
	a.Set(ctx, "k", 2, []byte("v2")) // missed by Redis
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

// TestLateWritesLose: of two nodes' writes of a product, the newer stays in
// Redis whichever arrives last, and a deletion refuses the writes of its
// version or older that arrive after it. Every node, one that never wrote
// included, reads the newest.
func TestLateWritesLose(t *testing.T) {
	ctx := context.Background()
	a := open(t)
	b := peer(t, a)
	reader := peer(t, a)
	readers := map[string]*Cache{"a": a, "b": b, "a third node": reader}

	a.Set(ctx, "k", 2, []byte("v2"))
	b.Set(ctx, "k", 1, []byte("v1")) // late: a slow call, or a grain with an older state
	for name, c := range readers {
		if v, ok := c.Get(ctx, "k"); !ok || string(v) != "v2" {
			t.Errorf("%s reads %q %v after a late older write, want v2", name, v, ok)
		}
	}

	a.Delete(ctx, "k", 2)
	b.Set(ctx, "k", 2, []byte("v2")) // late: a refill of the deleted product
	b.Set(ctx, "k", 1, []byte("v1"))
	for name, c := range readers {
		if v, ok := c.Get(ctx, "k"); ok {
			t.Errorf("%s reads %q after the product was deleted", name, v)
		}
	}
}

// proxy stands between one cache and Redis, so that a test can make Redis
// unreachable from that cache alone, as a network partition does.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut(true)
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		d, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, d)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
		}
		go pipe(d, c)
		go pipe(c, d)
	}
}

// cut makes Redis unreachable through the proxy (down) or reachable again.
func (p *proxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
	}
}

// partitioned opens a node's cache that reaches Redis through a proxy of
// its own, and returns both. Closing the cache is the caller's.
func partitioned(t *testing.T, opts Options) (*Cache, *proxy) {
	t.Helper()
	u, err := url.Parse(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	c, err := New(u.String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, p
}

// missWrite makes a's write of v2 to k fail, Redis being unreachable from
// a alone, after b read v1 (and keeps it in its memory).
func missWrite(t *testing.T, a, b *Cache, p *proxy) (v1Written time.Time) {
	t.Helper()
	ctx := context.Background()
	a.Set(ctx, "k", 1, []byte("v1"))
	if v, ok := b.Get(ctx, "k"); !ok || string(v) != "v1" {
		t.Fatalf("b reads %q %v", v, ok)
	}
	// b read v1 from Redis: it was written by now, and the missed write
	// comes after.
	v1Written = time.Now()
	p.cut(true)
	a.Set(ctx, "k", 2, []byte("v2"))
	if !a.hasDirty() {
		t.Fatal("a's write reached Redis through the cut proxy")
	}
	if v, ok := b.Get(ctx, "k"); !ok || string(v) != "v1" {
		t.Fatalf("b reads %q %v; the test expects v1, as Redis missed v2", v, ok)
	}
	return v1Written
}

// TestMissedWriteRepairedByIdleNode: a write that failed to reach Redis
// from its node is repaired once Redis answers the node again, though the
// node makes no call of its own: other nodes stop reading the older value
// within the repair bound (the backoff's cap, the cooldown, and one
// repair call).
func TestMissedWriteRepairedByIdleNode(t *testing.T) {
	prefix := fmt.Sprintf("test:%d:", rand.Int64())
	a, p := partitioned(t, Options{Prefix: prefix})
	t.Cleanup(a.Close)
	b := peer(t, a)
	missWrite(t, a, b, p)

	p.cut(false) // Redis answers a again; a stays idle
	back := time.Now()
	bound := a.opts.Cooldown + repairTimeout
	for {
		v, ok := b.Get(context.Background(), "k")
		if !ok || string(v) != "v1" {
			t.Logf("b stopped reading v1 %s after Redis answered a again (bound %s)", time.Since(back).Round(time.Millisecond), bound)
			break
		}
		if time.Since(back) > bound+250*time.Millisecond { // the invalidation's trip and this poll's period
			t.Fatalf("b still reads v1 %s after Redis answered a again, which missed v2", time.Since(back).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.hasDirty() {
		t.Error("a still holds the repair it made")
	}
}

// TestMissedWriteOfALostNode: a node whose write failed to reach Redis dies
// before it can repair the key. Other nodes read the older value until it
// expires: within the TTL of the failed write, one minute by default.
func TestMissedWriteOfALostNode(t *testing.T) {
	t.Run("default TTL", func(t *testing.T) {
		prefix := fmt.Sprintf("test:%d:", rand.Int64())
		a, p := partitioned(t, Options{Prefix: prefix})
		b := peer(t, a)
		// The missed write came after v1Written: the older value must
		// expire within DefaultTTL of that moment.
		v1Written := missWrite(t, a, b, p)
		a.Close() // Redis still unreachable: the repair dies with a
		p.cut(false)

		asked := time.Now()
		pttl, err := b.client.Do(context.Background(), b.client.B().Pttl().Key(prefix+"k").Build()).AsInt64()
		answered := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		// Redis read its clock between asked and answered; its
		// millisecond expiry and this process's clock agree to a few
		// milliseconds (a margin that a 10-minute TTL overshoots by
		// minutes).
		const clocks = 100 * time.Millisecond
		expires := answered.Add(time.Duration(pttl) * time.Millisecond)
		if stale := expires.Sub(v1Written); stale > DefaultTTL+answered.Sub(asked)+clocks {
			t.Fatalf("the older value expires %s after the write before the missed one, past the %s bound", stale, DefaultTTL)
		}
	})
	t.Run("expires", func(t *testing.T) {
		const ttl = 2 * time.Second
		prefix := fmt.Sprintf("test:%d:", rand.Int64())
		a, p := partitioned(t, Options{Prefix: prefix, TTL: ttl})
		b, err := New(redisURL(t), Options{Prefix: prefix, TTL: ttl, LocalTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		missWrite(t, a, b, p)
		failed := time.Now()
		a.Close()
		p.cut(false)
		for {
			v, ok := b.Get(context.Background(), "k")
			if !ok {
				t.Logf("b stopped reading v1 %s after the failed write (TTL %s)", time.Since(failed).Round(time.Millisecond), ttl)
				break
			}
			if time.Since(failed) > ttl+time.Second {
				t.Fatalf("b still reads %q %s after the failed write, past the TTL", v, time.Since(failed).Round(time.Millisecond))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestOlderReleaseKeys: during a rolling upgrade, nodes of the older
// release read and write the value key alone. A value one of them wrote is
// read as it is, and a versioned write replaces it; a value one of them
// deleted (or that Redis evicted) leaves its version key, which still lets
// the refill of that version back in but no older write.
func TestOlderReleaseKeys(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	rc := peer(t, c) // reads Redis, not c's own writes
	key := c.opts.Prefix + "k"
	legacy := `"k.7"` + "\x00{}"
	if err := c.client.Do(ctx, c.client.B().Set().Key(key).Value(legacy).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if v, ok := rc.Get(ctx, "k"); !ok || string(v) != legacy {
		t.Fatalf("a value of the older release reads %q %v", v, ok)
	}
	c.Set(ctx, "k", 1, []byte("v1"))
	wantRead := func(want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			v, ok := rc.Get(ctx, "k")
			if ok && string(v) == want || !ok && want == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reads %q %v, want %q", v, ok, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wantRead("v1")

	if err := c.client.Do(ctx, c.client.B().Del().Key(key).Build()).Error(); err != nil { // the older release's Delete
		t.Fatal(err)
	}
	wantRead("")
	c.Set(ctx, "k", 0, []byte("v0"))
	wantRead("")
	c.Set(ctx, "k", 1, []byte("v1 again"))
	wantRead("v1 again")
}

//go:build integration && faults

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/persistence/redis"
)

// Network partitions between a vitrine node and its servers: a fault proxy
// (toxiproxy, in-process, on loopback) stands between the node and one
// server, and the test cuts the link in one of two ways: reset (every
// byte that crosses resets the connection, and new connections are reset
// as soon as they speak) or blackhole (every byte is dropped, connections
// stay open: nothing tells either end, the harder case).

// faultProxy is a toxiproxy proxy in front of one server.
type faultProxy struct {
	t      testing.TB
	proxy  *toxiproxy.Proxy
	toxics []string // the rules in force
}

// startFaultProxy listens on a free loopback port and forwards to upstream
// (host:port). The proxy, and every rule it holds, is removed when the
// test ends, whether it failed or not.
func startFaultProxy(t testing.TB, name, upstream string) *faultProxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start fault proxy %s: %v", name, err)
	}
	f := &faultProxy{t: t, proxy: p}
	t.Cleanup(func() {
		f.heal()
		p.Stop()
	})
	return f
}

// addr is where the proxy listens.
func (f *faultProxy) addr() string { return f.proxy.Listen }

// partition cuts the link both ways: mode "reset" or "blackhole". It
// applies to the connections open now and to those opened later. t is the
// (sub)test that cuts it.
func (f *faultProxy) partition(t testing.TB, mode string) {
	t.Helper()
	typ, attrs := "", ""
	switch mode {
	case "reset":
		typ, attrs = "reset_peer", `{"timeout":0}`
	case "blackhole":
		typ, attrs = "timeout", `{"timeout":0}` // 0: never closes, drops everything
	default:
		t.Fatalf("partition mode %q", mode)
	}
	for _, stream := range []string{"upstream", "downstream"} {
		name := mode + "_" + stream
		rule := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
		if _, err := f.proxy.Toxics.AddToxicJson(strings.NewReader(rule)); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
		f.toxics = append(f.toxics, name)
	}
}

// heal removes every rule: the link carries bytes again.
func (f *faultProxy) heal() {
	for _, name := range f.toxics {
		if err := f.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
			f.t.Errorf("remove %s: %v", name, err)
		}
	}
	f.toxics = nil
}

// proxied returns rawURL with its host:port replaced by the proxy's.
func (f *faultProxy) proxied(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = f.addr()
	return u.String()
}

// hostPort is rawURL's host:port.
func hostPort(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// partitionEnv is the environment of a cluster node on the test's own
// servers: PostgreSQL, Redis and S3 (a cluster keeps its files there).
func partitionEnv(svc *ownServices) map[string]string {
	env := map[string]string{"VITRINE_S3_BUCKET": "vitrine-partition"}
	for _, k := range []string{"VITRINE_POSTGRES_URL", "VITRINE_REDIS_URL", "VITRINE_S3_ENDPOINT", "VITRINE_S3_REGION",
		"VITRINE_S3_ACCESS_KEY_ID", "VITRINE_S3_SECRET_ACCESS_KEY", "VITRINE_S3_PATH_STYLE"} {
		env[k] = svc.vars[k]
	}
	return env
}

// partitionClient gives up on a request after a minute: a request that
// hangs fails the test rather than holding it until -timeout.
var partitionClient = &http.Client{Timeout: time.Minute}

// try sends a request; it is safe from any goroutine (no t.Fatal).
func (a *testApp) try(method, path string, body []byte, header ...string) (response, error) {
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := partitionClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// create creates a product and returns its id.
func (a *testApp) create(t testing.TB, body string) string {
	t.Helper()
	r, err := a.try("POST", "/products", []byte(body), "Content-Type", "application/json")
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create product: %d %s %v", r.Status, r.Body, err)
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil || p.ID == "" {
		t.Fatalf("create product: %s %v", r.Body, err)
	}
	return p.ID
}

// read is one answer of GET /products/{id}.
type read struct {
	at      time.Time
	took    time.Duration
	status  int
	version int64
	source  string
}

func (a *testApp) readProduct(t testing.TB, id string) read {
	t.Helper()
	start := time.Now()
	r, err := a.try("GET", "/products/"+id, nil)
	if err != nil {
		t.Fatalf("GET /products/%s: %v", id, err)
	}
	rd := read{at: start, took: time.Since(start), status: r.Status, source: r.Header.Get("X-Vitrine-Source")}
	if r.Status == http.StatusOK {
		rd.version, _ = productVersion(t, r.Body)
	}
	return rd
}

// TestPartitionRedis: node b of a two-node cluster reaches Redis through
// the fault proxy, node a directly. b holds a product in its client-side
// cache; the link between b and Redis is cut, the product is changed
// through a (whose grain writes Redis, which cannot tell b), and b must
// stop answering from its copy within redis.TrustBound of the cut. After
// healing b answers from its cache again, the new version, never an older
// one after it saw the newer.
func TestPartitionRedis(t *testing.T) {
	began := time.Now()
	svc := startOwnServices(t, "postgres", "redis", "s3")
	t.Logf("own servers up in %v", time.Since(began).Round(time.Millisecond))
	env := partitionEnv(svc)
	fp := startFaultProxy(t, "redis", hostPort(t, env["VITRINE_REDIS_URL"]))
	m1, m2 := lowFreePort(t), lowFreePort(t)
	env["VITRINE_CLUSTER_PEERS"] = fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", m1, m2)
	a := startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_MANAGE_PORT", fmt.Sprint(m1)))
	b := startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_MANAGE_PORT", fmt.Sprint(m2),
		"VITRINE_REDIS_URL", fp.proxied(t, env["VITRINE_REDIS_URL"])))
	t.Cleanup(fp.heal) // before the nodes stop (cleanups run last first)
	deadline := time.Now().Add(30 * time.Second)
	for len(a.node.Members(actors.ProductKind)) < 2 || len(b.node.Members(actors.ProductKind)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the two nodes did not see each other within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, mode := range []string{"reset", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			// A product whose grain is on a, so that its writes reach
			// Redis whatever happens to b's link.
			var id string
			for i := 0; id == "" && i < 64; i++ {
				p := a.create(t, fmt.Sprintf(`{"name":"Partition %s %d","price":"1.00","user_id":1}`, mode, i))
				if a.node.Owns(p, actors.ProductKind) {
					id = p
				}
			}
			if id == "" {
				t.Fatal("no product of 64 has its grain on a")
			}
			// Warm b's copy: two reads from its cache in a row, the second
			// from its memory (the first tracked the key).
			warm := time.Now().Add(10 * time.Second)
			var old int64
			for n := 0; n < 2; {
				r := b.readProduct(t, id)
				if r.status != http.StatusOK {
					t.Fatalf("read on b: %d", r.status)
				}
				if r.source == "cache" {
					n++
					old = r.version
				} else {
					n = 0
				}
				if time.Now().After(warm) {
					t.Fatalf("b does not answer product %s from its cache (source %q)", id, r.source)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// Clients read and write other products on both nodes meanwhile;
			// Porcupine checks their history after the heal.
			reg := startRegister(t, []string{a.base, b.base}, 6, 4, rand.Uint64())
			time.Sleep(500 * time.Millisecond)
			fp.partition(t, mode)
			cut := time.Now()
			w, err := a.try("PATCH", "/products/"+id, []byte(`{"price":"2.00"}`), "Content-Type", "application/merge-patch+json")
			if err != nil {
				t.Fatalf("PATCH on a during the partition: %v", err)
			}
			if w.Status != http.StatusOK {
				t.Fatalf("PATCH on a during the partition: %d %s", w.Status, w.Body)
			}
			acked := time.Now()
			newer, _ := productVersion(t, w.Body)
			if newer <= old {
				t.Fatalf("PATCH answered version %d, b read %d before", newer, old)
			}

			// Poll b until it answers the new version, for TrustBound and
			// a generous margin at most.
			const margin = 3 * time.Second
			var lastStale time.Time
			staleAfterWrite, reads := 0, 0
			var slowest time.Duration
			for {
				r := b.readProduct(t, id)
				reads++
				slowest = max(slowest, r.took)
				if r.status != http.StatusOK {
					t.Fatalf("read on b during the partition: %d", r.status)
				}
				if r.version > newer {
					t.Fatalf("b read version %d, newer than the last write's %d", r.version, newer)
				}
				if r.version == newer {
					t.Logf("%s: b answered the new version from %q %v after the cut", mode, r.source, time.Since(cut).Round(time.Millisecond))
					break
				}
				if r.source != "cache" {
					t.Fatalf("b answered version %d (older than %d) from %q", r.version, newer, r.source)
				}
				lastStale = time.Now()
				if r.at.After(acked) {
					staleAfterWrite++
				}
				if time.Since(cut) > redis.TrustBound+margin {
					t.Fatalf("%s: b still answers its copy of version %d %v after the cut, past redis.TrustBound %v (and a margin of %v); the write of version %d was acknowledged %v after the cut",
						mode, old, time.Since(cut).Round(time.Millisecond), redis.TrustBound, margin, newer, acked.Sub(cut).Round(time.Millisecond))
				}
				time.Sleep(10 * time.Millisecond)
			}
			stale := time.Duration(0)
			if !lastStale.IsZero() {
				stale = lastStale.Sub(cut)
			}
			t.Logf("%s: b answered its copy of version %d until %v after the cut (redis.TrustBound %v), %d times after the write was acknowledged (%v after the cut); %d reads, the slowest %v",
				mode, old, stale.Round(time.Millisecond), redis.TrustBound, staleAfterWrite, acked.Sub(cut).Round(time.Millisecond), reads, slowest.Round(time.Millisecond))
			if mode == "blackhole" && staleAfterWrite == 0 && acked.Sub(cut) < redis.AnswerWithin/2 {
				// Nothing tells b of a silent cut before its PING goes
				// unanswered, a second at least: had it stopped at once,
				// this test would not have measured what it claims to.
				t.Errorf("blackhole: b never answered its older copy after the write; the partition did not hold")
			}

			// Heal: b answers from its cache again, the new version, and
			// never an older one once it has seen the newer.
			fp.heal()
			healed := time.Now()
			for {
				r := b.readProduct(t, id)
				if r.status != http.StatusOK || r.version != newer {
					t.Fatalf("after healing, b answered %d version %d from %q; it had read version %d", r.status, r.version, r.source, newer)
				}
				if r.source == "cache" {
					t.Logf("%s: b answered from its cache again %v after healing", mode, time.Since(healed).Round(time.Millisecond))
					break
				}
				if time.Since(healed) > 30*time.Second {
					t.Fatalf("%s: b does not answer from its cache 30 s after healing (source %q)", mode, r.source)
				}
				time.Sleep(20 * time.Millisecond)
			}
			for range 20 {
				if r := b.readProduct(t, id); r.status != http.StatusOK || r.version != newer {
					t.Fatalf("after healing, b answered %d version %d from %q; it had read version %d", r.status, r.version, r.source, newer)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// The bound on the register's reads: a write b made while cut
			// from Redis left a's older copy there until the repair, within
			// redis.TrustBound of the heal (README, "The hot-read cache…").
			reg.Staleness = healed.Sub(cut) + redis.TrustBound
			t.Logf("%s: %v", mode, reg.Stop())
		})
	}
}

// write is one write request and what it answered.
type write struct {
	what   string
	err    error // the request failed (no answer)
	status int
	code   string // the problem's code, if any
	retry  string // Retry-After
	ctype  string
	took   time.Duration
	body   string
}

// writes sends, at once, one write of each kind: a product created, one
// replaced, one patched and an image uploaded (each product its own, so
// that none waits behind another in a grain).
func (a *testApp) writes(t testing.TB, ids []string, seed int) []write {
	t.Helper()
	upload, uploadType := multipartBody(t, "file", "x.png", distinctPNG(t, 70000+seed))
	uploadBody, err := io.ReadAll(upload)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []struct {
		what, method, path, body string
		header                   []string
	}{
		{"POST /products", "POST", "/products", fmt.Sprintf(`{"name":"New %d","price":"1.00","user_id":1}`, seed),
			[]string{"Content-Type", "application/json"}},
		{"PUT /products/{id}", "PUT", "/products/" + ids[0], fmt.Sprintf(`{"name":"Replaced %d","price":"3.00","user_id":1}`, seed),
			[]string{"Content-Type", "application/json"}},
		{"PATCH /products/{id}", "PATCH", "/products/" + ids[1], fmt.Sprintf(`{"price":"4.%02d"}`, seed%100),
			[]string{"Content-Type", "application/merge-patch+json"}},
		{"POST /products/{id}/images", "POST", "/products/" + ids[2] + "/images", string(uploadBody),
			[]string{"Content-Type", uploadType}},
	}
	out := make([]write, len(reqs))
	var wg sync.WaitGroup
	for i, q := range reqs {
		wg.Go(func() {
			start := time.Now()
			r, err := a.try(q.method, q.path, []byte(q.body), q.header...)
			w := write{what: q.what, err: err, status: r.Status, retry: r.Header.Get("Retry-After"),
				ctype: r.Header.Get("Content-Type"), took: time.Since(start), body: string(r.Body)}
			var p struct {
				Code string `json:"code"`
			}
			if json.Unmarshal(r.Body, &p) == nil {
				w.code = p.Code
			}
			out[i] = w
		})
	}
	wg.Wait()
	return out
}

// TestPartitionPostgres: a node reaches PostgreSQL through the fault
// proxy. While the link is cut (resets, then a silent blackhole), product
// writes, uploads and lists answer 503, a problem with Retry-After, within
// writeUnavailableBound; products already rendered are still read (from
// the cache); nothing hangs. After healing, writes succeed again.
func TestPartitionPostgres(t *testing.T) {
	began := time.Now()
	svc := startOwnServices(t, "postgres", "redis")
	t.Logf("own servers up in %v", time.Since(began).Round(time.Millisecond))
	pgURL := svc.vars["VITRINE_POSTGRES_URL"]
	fp := startFaultProxy(t, "postgres", hostPort(t, pgURL))
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_POSTGRES_URL": fp.proxied(t, pgURL),
		"VITRINE_REDIS_URL": svc.vars["VITRINE_REDIS_URL"]})
	t.Cleanup(fp.heal) // before the node stops (cleanups run last first)

	for round, mode := range []string{"reset", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			var ids []string
			for i := range 3 {
				ids = append(ids, app.create(t, fmt.Sprintf(`{"name":"Partition %s %d","price":"1.00","user_id":1}`, mode, i)))
			}
			for _, id := range ids { // rendered, and in the cache
				if r := app.readProduct(t, id); r.status != http.StatusOK {
					t.Fatalf("read %s: %d", id, r.status)
				}
			}

			fp.partition(t, mode)
			var longest time.Duration
			// Two rounds: the first meets the pool's open connections, the
			// second new connections (or none) through the cut link.
			for k := range 2 {
				for _, w := range app.writes(t, ids, 10*round+k) {
					longest = max(longest, w.took)
					t.Logf("%s, round %d: %s answered %d %s in %v (Retry-After %q)", mode, k+1, w.what, w.status, w.code, w.took.Round(time.Millisecond), w.retry)
					if w.err != nil {
						t.Errorf("%s: %s during the partition: %v after %v", mode, w.what, w.err, w.took.Round(time.Millisecond))
					} else if w.status != http.StatusServiceUnavailable || w.ctype != "application/problem+json" || w.retry == "" {
						t.Errorf("%s: %s during the partition: %d %s, Retry-After %q, want 503 application/problem+json with Retry-After\n%s",
							mode, w.what, w.status, w.ctype, w.retry, w.body)
					}
					if w.took > writeUnavailableBound+2*time.Second {
						t.Errorf("%s: %s answered after %v, past the bound of %v (and a margin of 2 s)", mode, w.what, w.took.Round(time.Millisecond), writeUnavailableBound)
					}
				}
				for _, id := range ids {
					r := app.readProduct(t, id)
					if r.status != http.StatusOK || r.took > time.Second {
						t.Errorf("%s: read of product %s during the partition: %d in %v from %q", mode, id, r.status, r.took.Round(time.Millisecond), r.source)
					}
				}
				// A list reads the database: 503 within the bound too.
				start := time.Now()
				r, err := app.try("GET", "/products?limit=5&user_id=1", nil)
				took := time.Since(start)
				longest = max(longest, took)
				t.Logf("%s, round %d: GET /products answered %d in %v", mode, k+1, r.Status, took.Round(time.Millisecond))
				if err != nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || took > writeUnavailableBound+2*time.Second {
					t.Errorf("%s: GET /products during the partition: %d %v in %v, want 503 with Retry-After within %v (and a margin of 2 s)\n%s",
						mode, r.Status, err, took.Round(time.Millisecond), writeUnavailableBound, r.Body)
				}
			}

			fp.heal()
			healed := time.Now()
			tries := 0
			for {
				tries++
				r, err := app.try("POST", "/products", []byte(`{"name":"After","price":"1.00","user_id":1}`), "Content-Type", "application/json")
				if err != nil {
					t.Fatalf("%s: POST after healing: %v", mode, err)
				}
				if r.Status == http.StatusCreated {
					break
				}
				if time.Since(healed) > 30*time.Second {
					t.Fatalf("%s: writes still fail 30 s after healing: %d %s", mode, r.Status, r.Body)
				}
				time.Sleep(50 * time.Millisecond)
			}
			recovered := time.Since(healed)
			t.Logf("%s: the longest answer during the partition (writes, uploads, lists) %v (bound %v); writes succeeded again %v after healing (%d tries)",
				mode, longest.Round(time.Millisecond), writeUnavailableBound, recovered.Round(time.Millisecond), tries)
		})
	}
}

// writeUnavailableBound is the longest a product write, an upload or a
// list may take to answer 503 while PostgreSQL does not answer: the
// deadline of a grain's store call, of an upload's backlog count and of a
// list's reads (actors.DefaultStoreTimeout), which is also the pool's
// connect timeout (postgres.Options.ConnectTimeout's default). It counts
// from a request's first call to the database: a call that got through
// just before the cut comes on top, as the test does not time.
const writeUnavailableBound = actors.DefaultStoreTimeout

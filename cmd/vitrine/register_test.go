//go:build faults

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/internal/linearcheck"
)

// The register workload: clients read and write products through the HTTP
// API of one or more nodes while everything they see is recorded, then
// Porcupine checks the history against a register with compare-and-set
// (internal/linearcheck). A fault test starts it, does its harm, and stops
// it:
//
//	run := startRegister(t, []string{a.base, b.base}, 20, 8, seed)
//	run.Staleness = 2 * time.Second // the bound its reads are held to (0: linearizable)
//	… kill a node, restart Redis …
//	t.Log(run.Stop())               // fails the test on a violation, or a check that timed out

// registerRun is a register workload running.
type registerRun struct {
	// Staleness is the bound reads are checked with: a read may return
	// any state its product had at most this long before its call. 0 (the
	// default) is linearizability. Set it before Stop.
	Staleness time.Duration
	// CheckTimeout bounds Porcupine's search (default 2 minutes); a check
	// that runs out fails the test, as it proves nothing.
	CheckTimeout time.Duration
	// HTML is where the visualisation of a violation goes (default
	// out/faults/<test name>.html at the repository's root).
	HTML string

	t        testing.TB
	rec      *linearcheck.Recorder
	http     *http.Client
	nodes    []string
	products []string
	stop     chan struct{}
	stopOnce sync.Once
	clients  sync.WaitGroup

	down sync.Map // node base URL → true: left alone (SetDown)

	mu        sync.Mutex
	failed    int    // requests with a definite failure (no effect): not in the history
	firstFail string // the first of them
	longest   time.Duration
	sources   map[string]int // reads answered, by X-Vitrine-Source
}

// registerReport is what a register run did and what the check found.
type registerReport struct {
	Ops, Reads, Writes, CAS, Unknown, Refused int
	Products, Failed                          int
	Longest                                   time.Duration  // the longest request that was answered
	Staleness, Check                          time.Duration  // the bound on reads, the check's own time
	Verdict                                   string         // linearizable, violation or unknown
	HTML                                      string         // the visualisation, on a violation
	Sources                                   map[string]int // reads answered, by X-Vitrine-Source (cache, grain, remote-grain, store)
}

func (r registerReport) String() string {
	s := fmt.Sprintf("register: %s with reads %v stale at most (checked in %v): %d operations on %d products: %d reads (answered from %v), %d writes, %d cas (%d refused), %d writes of unknown outcome; %d requests failed (not recorded); longest request %v",
		r.Verdict, r.Staleness, r.Check.Round(time.Millisecond), r.Ops, r.Products, r.Reads, r.Sources, r.Writes, r.CAS, r.Refused, r.Unknown,
		r.Failed, r.Longest.Round(time.Millisecond))
	if r.HTML != "" {
		s += "; visualisation " + r.HTML
	}
	return s
}

// startRegister creates `products` products (no images) through nodes[0],
// then runs `clients` goroutines that each pick a random product and a
// random node base URL and do a GET, a PATCH without If-Match, or a PATCH
// with If-Match (using the ETag of its last read of that product),
// recording everything, until Stop. A client pauses 2–10 ms between its
// requests, so that histories stay checkable in seconds. Requests time out
// after 10 s (a write's outcome is then unknown).
func startRegister(t testing.TB, nodes []string, products, clients int, seed uint64) *registerRun {
	t.Helper()
	r := &registerRun{
		CheckTimeout: 2 * time.Minute,
		HTML:         defaultHTML(t),
		t:            t,
		rec:          linearcheck.NewRecorder(),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: clients, IdleConnTimeout: 30 * time.Second,
		}},
		nodes:   nodes,
		stop:    make(chan struct{}),
		sources: map[string]int{},
	}
	t.Cleanup(r.halt)
	for i := range products {
		value := fmt.Sprintf("p%d-created", i)
		body := fmt.Sprintf(`{"name":"Register %d","price":"1","user_id":1,"description":%q}`, i, value)
		call := r.rec.Call(clients, linearcheck.Input{Kind: linearcheck.Create, Value: value})
		status, _, b, err := r.send("POST", nodes[0]+"/products", body, "Content-Type", "application/json")
		var doc struct {
			ID      string
			Version int64
		}
		if err != nil || status != http.StatusCreated || json.Unmarshal(b, &doc) != nil || doc.ID == "" {
			t.Fatalf("create product %d: %v %d %s", i, err, status, b)
		}
		call.End(linearcheck.Output{Outcome: linearcheck.OK, Version: doc.Version}, doc.ID, "create on "+nodes[0])
		r.products = append(r.products, doc.ID)
	}
	t.Logf("register: %d products, %d clients on %d node(s), seed %d (VITRINE_REGISTER_SEED replays its choices)", products, clients, len(nodes), seed)
	for c := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(c)))
		r.clients.Go(func() { r.client(c, rng) })
	}
	return r
}

// defaultHTML is out/faults/<test name>.html at the repository's root.
func defaultHTML(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	name := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(t.Name(), "_")
	return filepath.Join(filepath.Dir(file), "..", "..", "out", "faults", name+".html")
}

// client is one client's loop: a read (half the time, and whenever it has
// no ETag of the product for a CAS), a write or a CAS.
func (r *registerRun) client(c int, rng *rand.Rand) {
	etags := map[string]string{} // product → the ETag of the client's last read of it
	for n := 0; ; n++ {
		select {
		case <-r.stop:
			return
		case <-time.After(2*time.Millisecond + time.Duration(rng.Int64N(int64(8*time.Millisecond)))):
		}
		product := r.products[rng.IntN(len(r.products))]
		i := rng.IntN(len(r.nodes))
		for k := 0; k < len(r.nodes); k++ {
			if _, down := r.down.Load(r.nodes[(i+k)%len(r.nodes)]); !down {
				i = (i + k) % len(r.nodes)
				break
			}
		}
		node := r.nodes[i]
		value := fmt.Sprintf("c%d-%d", c, n)
		switch k := rng.IntN(4); {
		case k == 2:
			r.write(c, node, product, value, "")
		case k == 3 && etags[product] != "":
			r.write(c, node, product, value, etags[product])
		default:
			if etag := r.read(c, node, product); etag != "" {
				etags[product] = etag
			}
		}
	}
}

// SetDown makes the clients leave node alone (down) or use it again, as a
// load balancer does with a node whose readiness fails.
func (r *registerRun) SetDown(node string, down bool) {
	if down {
		r.down.Store(node, true)
	} else {
		r.down.Delete(node)
	}
}

// read GETs a product and records what it saw; it returns its ETag.
func (r *registerRun) read(c int, node, product string) string {
	call := r.rec.Call(c, linearcheck.Input{Key: product, Kind: linearcheck.Read})
	status, h, b, err := r.send("GET", node+"/products/"+product, "")
	out := linearcheck.Output{Outcome: linearcheck.Unknown} // a failed read is not recorded
	note := node
	etag := ""
	switch {
	case err != nil:
		r.fail(fmt.Sprintf("GET %s on %s: %v", product, node, err))
	case status == http.StatusOK:
		out.Version, out.Value = r.decode(h, b, "GET "+product)
		out.Outcome = linearcheck.OK
		etag = h.Get("ETag")
		source := h.Get("X-Vitrine-Source")
		note += ", " + source
		r.mu.Lock()
		r.sources[source]++
		r.mu.Unlock()
	case status == http.StatusNotFound:
		out.Outcome = linearcheck.NotFound
	default:
		r.fail(fmt.Sprintf("GET %s on %s: %d %s", product, node, status, b))
	}
	call.End(out, "", note)
	return etag
}

// write PATCHes a product's description, with If-Match when etag is set
// (a CAS), and records the outcome.
func (r *registerRun) write(c int, node, product, value, etag string) {
	in := linearcheck.Input{Key: product, Kind: linearcheck.Write, Value: value}
	header := []string{"Content-Type", "application/merge-patch+json"}
	if etag != "" {
		in.Kind, in.Expect = linearcheck.CAS, etagVersion(etag)
		header = append(header, "If-Match", etag)
	}
	call := r.rec.Call(c, in)
	status, h, b, err := r.send("PATCH", node+"/products/"+product, fmt.Sprintf(`{"description":%q}`, value), header...)
	var out linearcheck.Output
	note := node
	var dial *net.OpError
	switch {
	case errors.As(err, &dial) && dial.Op == "dial":
		// The connection was refused (a node restarting): the request
		// was never sent, and has no effect.
		r.fail(fmt.Sprintf("PATCH %s on %s: %v", product, node, err))
		return
	case err != nil:
		out.Outcome, note = linearcheck.Unknown, fmt.Sprintf("%s: %v", node, err)
	case status == http.StatusOK:
		var written string
		out.Version, written = r.decode(h, b, "PATCH "+product)
		if written != value {
			r.t.Errorf("PATCH %s on %s answered description %q, want %q", product, node, written, value)
		}
	case status == http.StatusPreconditionFailed:
		out.Outcome = linearcheck.Refused
	case status == http.StatusNotFound:
		out.Outcome = linearcheck.NotFound
	case status >= 500:
		// 503 outcome_unknown, or any other failure of the server's:
		// the write may have been applied.
		out.Outcome, note = linearcheck.Unknown, fmt.Sprintf("%s: %d %s", node, status, problemCode(b))
	default:
		// Refused for a reason of the request's (no effect): the
		// workload is wrong, or the node limits it.
		r.fail(fmt.Sprintf("PATCH %s on %s: %d %s", product, node, status, b))
		return
	}
	call.End(out, "", note)
}

// decode reads a product's version and description, and checks that its
// ETag says the same version.
func (r *registerRun) decode(h http.Header, b []byte, what string) (int64, string) {
	var doc struct {
		Version     int64
		Description string
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		r.t.Errorf("%s: %v\n%s", what, err, b)
	}
	if v := etagVersion(h.Get("ETag")); v != doc.Version {
		r.t.Errorf("%s: ETag %s, body version %d", what, h.Get("ETag"), doc.Version)
	}
	return doc.Version, doc.Description
}

// etagVersion reads the version from a product's ETag, "id.version".
func etagVersion(etag string) int64 {
	etag = strings.Trim(etag, `"`)
	n, _ := strconv.ParseInt(etag[strings.LastIndexByte(etag, '.')+1:], 10, 64)
	return n
}

func problemCode(b []byte) string {
	var p struct{ Code string }
	_ = json.Unmarshal(b, &p)
	return p.Code
}

// send makes a request and reads its answer whole, and keeps the longest
// time one took.
func (r *registerRun) send(method, url, body string, header ...string) (int, http.Header, []byte, error) {
	began := time.Now()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := r.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		r.mu.Lock()
		r.longest = max(r.longest, time.Since(began))
		r.mu.Unlock()
	}
	return res.StatusCode, res.Header, b, err
}

func (r *registerRun) fail(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed++
	if r.firstFail == "" {
		r.firstFail = what
	}
}

// halt stops the clients and waits for them (idempotent).
func (r *registerRun) halt() {
	r.stopOnce.Do(func() { close(r.stop) })
	r.clients.Wait()
}

// Stop stops the clients, waits for them, and checks the history with
// reads r.Staleness stale at most. On a violation it writes the
// visualisation to r.HTML, and fails the test with the minimal history; a
// check that timed out fails it too.
func (r *registerRun) Stop() registerReport {
	r.t.Helper()
	rep, res := r.check(r.Staleness, r.HTML)
	switch res.Verdict {
	case linearcheck.Violation:
		r.t.Errorf("the product register's history is not linearizable with reads %v stale at most:\n%s", r.Staleness, res)
	case linearcheck.TimedOut:
		r.t.Errorf("the product register's history could not be checked in %v:\n%s", r.CheckTimeout, res)
	}
	return rep
}

// check stops the clients and checks the history as it is, without
// failing the test on its verdict.
func (r *registerRun) check(staleness time.Duration, html string) (registerReport, linearcheck.Result) {
	r.t.Helper()
	r.halt()
	res, err := linearcheck.Check(r.rec.Ops(), staleness, r.CheckTimeout, html)
	if err != nil {
		r.t.Error(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed > 0 {
		r.t.Logf("register: %d requests failed, not recorded; the first: %s", r.failed, r.firstFail)
	}
	return registerReport{
		Ops: res.Ops, Reads: res.Reads, Writes: res.Writes, CAS: res.CAS, Unknown: res.Unknown, Refused: res.Refused,
		Products: res.Keys, Failed: r.failed, Longest: r.longest, Staleness: staleness, Check: res.Took,
		Verdict: string(res.Verdict), HTML: res.HTML, Sources: maps.Clone(r.sources),
	}, res
}

// TestRegisterLinearizable: on one node, product writes and reads are
// linearizable (δ = 0): every read sees every write acknowledged before it
// was called. Writes whose answers a proxy loses (some applied, some not)
// are of unknown outcome, and the history still holds; without them it
// would not. And the checker sees a stale read when there is one: the same
// workload through a proxy that serves reads from a copy it keeps for
// 300 ms fails at δ = 0 and passes at δ = 300 ms.
func TestRegisterLinearizable(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("VITRINE_REGISTER_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	app := startApp(t, t.TempDir(), nil)

	t.Run("one node", func(t *testing.T) {
		run := startRegister(t, []string{app.base}, 20, 8, seed)
		time.Sleep(5 * time.Second)
		rep := run.Stop()
		t.Log(rep)
		if rep.Writes+rep.CAS-rep.Refused < 100 || rep.Reads < 100 || rep.Refused == 0 {
			t.Errorf("too few operations to prove anything: %v", rep)
		}
	})

	t.Run("lost answers", func(t *testing.T) {
		run := startRegister(t, []string{app.base, lossyProxy(t, app.base)}, 20, 8, seed)
		time.Sleep(4 * time.Second)
		rep := run.Stop()
		t.Log(rep)
		if rep.Unknown == 0 {
			t.Fatalf("no write of unknown outcome: %v", rep)
		}
		// Counted as failed (no effect), the writes whose answers were
		// lost leave values and versions that nothing explains.
		var known []linearcheck.Op
		for _, op := range run.rec.Ops() {
			if op.Output.Outcome != linearcheck.Unknown {
				known = append(known, op)
			}
		}
		res, err := linearcheck.Check(known, 0, run.CheckTimeout, "")
		if err != nil || res.Verdict != linearcheck.Violation {
			t.Errorf("the history without its writes of unknown outcome passes: %v %v", err, res)
		}
	})

	t.Run("stale proxy", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		proxy := staleProxy(t, app.base, ttl)
		run := startRegister(t, []string{app.base, proxy}, 20, 8, seed)
		run.HTML = filepath.Join(t.TempDir(), "stale.html")
		time.Sleep(4 * time.Second)
		rep, res := run.check(0, run.HTML)
		t.Log(rep)
		if res.Verdict != linearcheck.Violation || rep.HTML == "" {
			t.Fatalf("reads up to %v stale passed as linearizable: %v", ttl, res)
		}
		t.Logf("as it should, the check fails at δ = 0:\n%s", res)
		// The proxy's copies are at most ttl old when served, so the
		// same history holds to that bound.
		rep, res = run.check(ttl, run.HTML+".2")
		t.Log(rep)
		if res.Verdict != linearcheck.Linearizable {
			t.Errorf("reads at most %v stale fail the check at that bound: %v", ttl, res)
		}
	})
}

// lossyProxy passes requests to node, but loses the answers of some
// PATCHes: a quarter of them it forwards and then answers 502 (the write
// applied, its answer lost), a tenth it answers 504 without forwarding
// (never applied).
func lossyProxy(t testing.TB, node string) string {
	t.Helper()
	target, err := url.Parse(node)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPatch {
			forward.ServeHTTP(w, req)
			return
		}
		switch n := rand.IntN(20); {
		case n < 5:
			forward.ServeHTTP(httptest.NewRecorder(), req)
			http.Error(w, "answer lost", http.StatusBadGateway)
		case n < 7:
			http.Error(w, "not sent", http.StatusGatewayTimeout)
		default:
			forward.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// staleProxy passes requests to node, but answers a product GET from the
// answer it fetched for the same path less than ttl before (a cache that no
// write invalidates): its reads are up to ttl stale.
func staleProxy(t testing.TB, node string, ttl time.Duration) string {
	t.Helper()
	target, err := url.Parse(node)
	if err != nil {
		t.Fatal(err)
	}
	type copyOf struct {
		at     time.Time // when the GET that fetched it was sent
		status int
		etag   string
		body   []byte
	}
	var (
		mu     sync.Mutex
		copies = map[string]copyOf{}
	)
	forward := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			forward.ServeHTTP(w, req)
			return
		}
		mu.Lock()
		c, ok := copies[req.URL.Path]
		mu.Unlock()
		if !ok || time.Since(c.at) >= ttl {
			at := time.Now()
			res, err := http.Get(node + req.URL.Path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			c = copyOf{at: at, status: res.StatusCode, etag: res.Header.Get("ETag"), body: body}
			mu.Lock()
			copies[req.URL.Path] = c
			mu.Unlock()
		}
		w.Header().Set("ETag", c.etag)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Vitrine-Source", "stale-proxy")
		w.WriteHeader(c.status)
		w.Write(c.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

//go:build chaos

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestChaos runs a workload of uploads and product writes against two API
// nodes and two worker processes on servers of its own, while it kills
// each worker once (SIGKILL) and restarts Kafka, Redis and PostgreSQL, at
// random times drawn from a printed seed (VITRINE_CHAOS_SEED replays one).
// Then every accepted upload is ready (or failed for a reason in its input:
// the generated images have none), so none is lost; no variant was written
// twice; every acknowledged product write is there.
func TestChaos(t *testing.T) {
	const (
		uploads   = 1000
		products  = 100
		window    = 70 * time.Second // the workload's length; the faults fall inside it
		clients   = 8
		writers   = 10
		drainTime = 6 * time.Minute
	)
	seed := rand.Uint64()
	if s := os.Getenv("VITRINE_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 42))
	t.Logf("chaos seed %d (VITRINE_CHAOS_SEED=%d replays it)", seed, seed)
	began := time.Now()

	svc := startOwnServices(t, "postgres", "redis", "kafka", "s3")
	t.Logf("own servers up in %v", time.Since(began).Round(time.Second))
	bin := buildBinary(t)
	var manage []string
	for range 4 {
		manage = append(manage, strconv.Itoa(lowFreePort(t)))
	}
	env := map[string]string{
		"VITRINE_POSTGRES_URL": svc.vars["VITRINE_POSTGRES_URL"], "VITRINE_REDIS_URL": svc.vars["VITRINE_REDIS_URL"],
		"VITRINE_KAFKA_BROKERS": svc.vars["VITRINE_KAFKA_BROKERS"], "VITRINE_KAFKA_TOPIC": "vitrine.chaos",
		"VITRINE_S3_ENDPOINT": svc.vars["VITRINE_S3_ENDPOINT"], "VITRINE_S3_BUCKET": "vitrine-chaos",
		"VITRINE_S3_REGION": svc.vars["VITRINE_S3_REGION"], "VITRINE_S3_ACCESS_KEY_ID": svc.vars["VITRINE_S3_ACCESS_KEY_ID"],
		"VITRINE_S3_SECRET_ACCESS_KEY": svc.vars["VITRINE_S3_SECRET_ACCESS_KEY"], "VITRINE_S3_PATH_STYLE": "true",
		"VITRINE_CLUSTER_PEERS": "127.0.0.1:" + strings.Join(manage, ",127.0.0.1:"),
		"VITRINE_JOB_TIMEOUT":   "15s", // a killed worker's jobs run again after 45 s
		"VITRINE_ENV":           "development", "VITRINE_RATE_ANONYMOUS": "0", "VITRINE_RATE_ANONYMOUS_WRITES": "0",
	}
	apis := []*testApp{
		startApp(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", manage[0])),
		startApp(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", manage[1])),
	}
	logs := t.TempDir()
	var workers []*proc
	for i := range 2 {
		workers = append(workers, startProc(t, bin, filepath.Join(logs, fmt.Sprintf("worker-%d.log", i)), with(env,
			"VITRINE_ROLE", "worker", "VITRINE_WORKERS", "2", "VITRINE_CLUSTER_MANAGE_PORT", manage[2+i],
			"VITRINE_DATA_DIR", t.TempDir(), "VITRINE_LOG_LEVEL", "debug", "VITRINE_LOG_FORMAT", "json")))
	}

	w := &workload{t: t, apis: apis, http: &http.Client{Timeout: 30 * time.Second}}
	for i := range products {
		w.createProduct(i)
	}
	if len(w.products) != products {
		t.Fatalf("%d of %d products created before the faults", len(w.products), products)
	}

	// The faults, at random times inside the window.
	at := func() time.Duration { return 5*time.Second + time.Duration(rng.Int64N(int64(window-20*time.Second))) }
	faults := []struct {
		name string
		at   time.Duration
		do   func() string
	}{
		{"SIGKILL worker 0", at(), func() string { return w.kill(workers[0], 50000) }},
		{"SIGKILL worker 1", at(), func() string { return w.kill(workers[1], 60000) }},
		{"restart Kafka", at(), func() string { return "down " + svc.restart("kafka").Round(time.Millisecond).String() }},
		{"restart Redis", at(), func() string { return "down " + svc.restart("redis").Round(time.Millisecond).String() }},
		{"restart PostgreSQL", at(), func() string { return "down " + svc.restart("postgres").Round(time.Millisecond).String() }},
	}
	sort.Slice(faults, func(i, j int) bool { return faults[i].at < faults[j].at })
	start := time.Now()
	var faulted sync.WaitGroup
	report := make([]string, len(faults))
	for i, f := range faults {
		faulted.Go(func() {
			time.Sleep(time.Until(start.Add(f.at)))
			report[i] = fmt.Sprintf("%s at %v: %s", f.name, f.at.Round(time.Millisecond), f.do())
		})
	}

	// The workload: paced uploads and product writes for the window.
	var load sync.WaitGroup
	var next atomic.Int64
	for c := range clients {
		load.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= uploads {
					return
				}
				time.Sleep(time.Until(start.Add(window * time.Duration(k) / uploads)))
				w.upload(c, k)
			}
		})
	}
	stopWrites := make(chan struct{})
	var writes sync.WaitGroup
	for g := range writers {
		writes.Go(func() { w.patchLoop(g, writers, stopWrites) })
	}
	load.Wait()
	close(stopWrites)
	writes.Wait()
	faulted.Wait()
	for _, r := range report {
		t.Log(r)
	}

	// Every accepted upload ends; none is lost.
	w.drain(drainTime)
	w.checkWrites()
	double, written := doubleWrites(t, workers)
	accepted, ready, input, other := w.outcomes()
	lost := accepted - ready - input
	runs, again, outcomes := jobRuns(t, workers)
	t.Logf("chaos seed %d, %v in all: %d uploads tried, %d accepted (refused: %v), %d ready, %d failed for their input, %d failed otherwise %v, LOST %d; "+
		"%d variants written, %d written twice; %d job runs (outcomes %v), %d of them after a first run of their job; product writes: %d acknowledged, %d verified",
		seed, time.Since(began).Round(time.Second), w.tried.Load(), accepted, w.refusals(), ready, input, len(other), other, lost,
		written, len(double), runs, outcomes, again, w.acked.Load(), w.verified)
	if lost != 0 {
		t.Errorf("%d accepted uploads lost (neither ready nor failed for their input)", lost)
	}
	if len(double) > 0 {
		t.Errorf("%d variants written twice for one recipe version, e.g. %v", len(double), double[:min(3, len(double))])
	}
	if accepted < uploads/2 {
		t.Errorf("only %d of %d uploads accepted: the faults should cost a few, not half", accepted, uploads)
	}
	if again == 0 {
		t.Errorf("no job ran twice: the workers were killed holding none, and the test proved nothing of redelivery")
	}
}

// jobRuns reads the workers' job log lines: how many jobs ran, how many
// of those were not their job's first start, and their outcomes.
func jobRuns(t *testing.T, workers []*proc) (runs, again int, outcomes map[string]int) {
	t.Helper()
	outcomes = map[string]int{}
	for _, p := range workers {
		for _, line := range p.logLines(`"msg":"image job"`) {
			var l struct {
				Attempt int
				Outcome string
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("log line %s: %v", line, err)
			}
			runs++
			outcomes[l.Outcome]++
			if l.Attempt > 1 {
				again++
			}
		}
	}
	return runs, again, outcomes
}

// workload drives the chaos test's clients and keeps what was acknowledged.
type workload struct {
	t    *testing.T
	apis []*testApp
	http *http.Client

	mu       sync.Mutex
	products []string
	images   map[string]string // accepted image → its product
	refused  map[string]int    // by status, or "error"
	patches  map[string][]patch
	status   map[string]map[string]any // final image documents
	verified int
	acked    atomic.Int64
	tried    atomic.Int64
}

// patch is a product write: the description it set, whether it was
// acknowledged, and the version it answered.
type patch struct {
	desc    string
	acked   bool
	version float64
}

func (w *workload) api(k int) *testApp { return w.apis[k%len(w.apis)] }

// try makes a request without failing the test: faults make some fail.
func (w *workload) try(a *testApp, method, path string, body io.Reader, header ...string) (response, error) {
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := w.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

func (w *workload) createProduct(i int) {
	r, err := w.try(w.api(i), "POST", "/products", strings.NewReader(`{"name":"Chaos","price":"1","user_id":1}`), "Content-Type", "application/json")
	if err != nil || r.Status != http.StatusCreated {
		w.t.Errorf("create product %d: %v %d %s", i, err, r.Status, r.Body)
		return
	}
	var p struct{ ID string }
	if err := json.Unmarshal(r.Body, &p); err != nil {
		w.t.Errorf("create product %d: decode: %v", i, err)
		return
	}
	w.acked.Add(1)
	w.mu.Lock()
	w.products = append(w.products, p.ID)
	w.mu.Unlock()
}

func (w *workload) upload(client, k int) {
	w.uploadData(client, k, distinctPNG(w.t, 7000+k))
}

func (w *workload) uploadData(client, k int, data []byte) {
	w.tried.Add(1)
	w.mu.Lock()
	product := w.products[k%len(w.products)]
	w.mu.Unlock()
	body, ct := multipartBody(w.t, "file", "x.png", data)
	r, err := w.try(w.api(client), "POST", "/products/"+product+"/images", body, "Content-Type", ct)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.images == nil {
		w.images, w.refused = map[string]string{}, map[string]int{}
	}
	switch {
	case err != nil:
		w.refused["error"]++
	case r.Status == http.StatusAccepted:
		var img struct{ ID string }
		if err := json.Unmarshal(r.Body, &img); err != nil {
			w.t.Errorf("decode an accepted upload: %v", err)
		}
		w.images[img.ID] = product
	default:
		w.refused[strconv.Itoa(r.Status)]++
	}
}

func (w *workload) refusals() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

// patchLoop rewrites the descriptions of its share of the products, one
// write after the other, until stop.
func (w *workload) patchLoop(g, of int, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(300 * time.Millisecond):
		}
		w.mu.Lock()
		product := w.products[(g+of*n)%len(w.products)]
		w.mu.Unlock()
		desc := fmt.Sprintf("write %d of writer %d", n, g)
		r, err := w.try(w.api(g+n), "PATCH", "/products/"+product, strings.NewReader(`{"description":"`+desc+`"}`),
			"Content-Type", "application/merge-patch+json")
		p := patch{desc: desc, acked: err == nil && r.Status == http.StatusOK}
		if p.acked {
			var doc struct{ Version float64 }
			if err := json.Unmarshal(r.Body, &doc); err != nil {
				w.t.Errorf("decode an acknowledged write: %v", err)
			}
			p.version = doc.Version
			w.acked.Add(1)
		}
		w.mu.Lock()
		if w.patches == nil {
			w.patches = map[string][]patch{}
		}
		w.patches[product] = append(w.patches[product], p)
		w.mu.Unlock()
	}
}

// kill SIGKILLs a worker while it holds jobs, and starts it again a moment
// later. A burst of larger images (a few hundred milliseconds each to
// process), sent just before, makes it busy.
func (w *workload) kill(p *proc, burst int) string {
	var sent sync.WaitGroup
	for i := range 6 {
		sent.Go(func() { w.uploadData(i, burst+i, largePNG(w.t, burst+i)) })
	}
	sent.Wait()
	// Kill it while it holds a job (its debug log says which it started
	// and which it ended), so that the kill tests redelivery: a fault that
	// lands while Kafka is down, or between jobs, would prove nothing.
	// Waits up to 30 s for one (Kafka may be restarting meanwhile).
	var held string
	for deadline := time.Now().Add(30 * time.Second); held == "" && time.Now().Before(deadline); {
		if held = inFlight(w.t, p); held == "" {
			time.Sleep(25 * time.Millisecond)
		}
	}
	pid := p.cmd.Process.Pid
	p.stop(syscall.SIGKILL)
	time.Sleep(time.Second)
	p.start()
	if held == "" {
		held = "none"
	}
	return fmt.Sprintf("pid %d killed holding image %s, restarted as pid %d", pid, held, p.cmd.Process.Pid)
}

// inFlight returns an image whose job the worker started and has not
// ended, from its log; "" when it holds none. Each worker is killed once,
// so a job started and never ended is one it holds now.
func inFlight(t *testing.T, p *proc) string {
	t.Helper()
	open := map[string]bool{}
	for _, line := range p.logLines(`"msg":"image job`) {
		var l struct {
			Msg     string
			ImageID string `json:"image_id"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		switch l.Msg {
		case "image job started":
			open[l.ImageID] = true
		case "image job":
			delete(open, l.ImageID)
		}
	}
	for id := range open {
		return id
	}
	return ""
}

// drain waits until every accepted image is ready or failed.
func (w *workload) drain(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		w.status = map[string]map[string]any{}
		for _, product := range w.products {
			r, err := w.try(w.apis[0], "GET", "/products/"+product, nil)
			if err != nil || r.Status != http.StatusOK {
				continue
			}
			var doc struct{ Images []map[string]any }
			if err := json.Unmarshal(r.Body, &doc); err != nil {
				w.t.Errorf("decode a product: %v", err)
			}
			for _, img := range doc.Images {
				w.status[img["id"].(string)] = img
			}
		}
		open := 0
		for id := range w.images {
			if s := w.status[id]["status"]; s != "ready" && s != "failed" {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Errorf("%d accepted images still not ready or failed %v after the workload", open, limit)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// inputCodes are the failures the input is to blame for.
var inputCodes = map[string]bool{"unsupported_format": true, "too_many_pixels": true, "too_many_frames": true, "corrupt_image": true}

// outcomes counts the accepted images and how they ended.
func (w *workload) outcomes() (accepted, ready, input int, other []string) {
	for id := range w.images {
		accepted++
		img := w.status[id]
		switch img["status"] {
		case "ready":
			ready++
		case "failed":
			code, _ := img["error"].(map[string]any)["code"].(string)
			if inputCodes[code] {
				input++
			} else {
				other = append(other, fmt.Sprintf("%s: %v", id, img["error"]))
			}
		}
	}
	return accepted, ready, input, other
}

// checkWrites checks that every acknowledged product write is there: the
// product exists, its version is at least the one acknowledged, and its
// description is that of its last acknowledged write, or of a later write
// whose answer was lost.
func (w *workload) checkWrites() {
	for _, product := range w.products {
		r, err := w.try(w.apis[1], "GET", "/products/"+product, nil)
		if err != nil || r.Status != http.StatusOK {
			w.t.Errorf("acknowledged product %s: %v %d", product, err, r.Status)
			continue
		}
		var doc struct {
			Description string
			Version     float64
		}
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			w.t.Errorf("decode product %s: %v", product, err)
		}
		ps := w.patches[product]
		last := -1
		for i, p := range ps {
			if p.acked {
				last = i
			}
		}
		if last < 0 {
			w.verified++
			continue
		}
		ok := doc.Version >= ps[last].version && doc.Description == ps[last].desc
		for _, p := range ps[last+1:] {
			ok = ok || doc.Description == p.desc
		}
		if !ok {
			w.t.Errorf("product %s: description %q version %v, want the acknowledged %q (version %v) or a later write",
				product, doc.Description, doc.Version, ps[last].desc, ps[last].version)
			continue
		}
		w.verified++
	}
}

// doubleWrites reads the workers' logs for variants written, and returns
// those written more than once, and how many were written.
func doubleWrites(t *testing.T, workers []*proc) (double []string, written int) {
	t.Helper()
	count := map[string]int{}
	for _, p := range workers {
		for _, line := range p.logLines(`"msg":"variant stored"`, `"written":true`) {
			var l struct{ Key string }
			if err := json.Unmarshal([]byte(line), &l); err != nil || l.Key == "" {
				t.Fatalf("log line %s: %v", line, err)
			}
			count[l.Key]++
			written++
		}
	}
	for k, n := range count {
		if n > 1 {
			double = append(double, fmt.Sprintf("%s ×%d", k, n))
		}
	}
	return double, written
}

//go:build chaos || faults

// The workload of the chaos and fault runs: uploads and product writes
// through the API nodes, what was acknowledged, and how it all ended.

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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
	longest  atomic.Int64 // the longest request, in nanoseconds
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
	began := time.Now()
	defer func() {
		took := int64(time.Since(began))
		for old := w.longest.Load(); took > old; old = w.longest.Load() {
			if w.longest.CompareAndSwap(old, took) {
				break
			}
		}
	}()
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
			if s := w.status[id]["status"]; (s != "ready" && s != "failed") || (s == "ready" && filesPending(w.status[id])) {
				open++ // its job still under way (AVIF too)
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

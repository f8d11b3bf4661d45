package main

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rateHeader reads "policy";r=N;t=S or "policy";q=N;w=S.
var rateHeader = regexp.MustCompile(`^"(anonymous|key)";([qr])=(\d+);([wt])=(\d+)$`)

// TestRateLimitHeaders: every limited answer carries RateLimit-Policy and
// RateLimit; past the burst the answer is 429 with Retry-After; keys and
// addresses count apart.
func TestRateLimitHeaders(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv("VITRINE_RATE_ANONYMOUS", "5/min", "VITRINE_RATE_KEY", "3/min"))
	_, key := app.makeKey("read", 0)
	var last response
	for i := range 5 {
		last = app.do("GET", "/products", nil)
		if last.Status != http.StatusOK {
			t.Fatalf("anonymous request %d of a burst of 5: %d", i+1, last.Status)
		}
		m := rateHeader.FindStringSubmatch(last.Header.Get("RateLimit"))
		if len(m) < 4 || m[1] != "anonymous" || m[3] != strconv.Itoa(4-i) {
			t.Errorf("request %d: RateLimit %q, want \"anonymous\";r=%d", i+1, last.Header.Get("RateLimit"), 4-i)
		}
		if p := last.Header.Get("RateLimit-Policy"); p != `"anonymous";q=5;w=60` {
			t.Errorf("RateLimit-Policy %q", p)
		}
	}
	r := app.do("GET", "/products", nil)
	expectProblem(t, r, http.StatusTooManyRequests, "past the burst")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 12 {
		t.Errorf("Retry-After %q, want the 12 s one request takes to come back", r.Header.Get("Retry-After"))
	}
	if r.Header.Get("RateLimit") == "" {
		t.Error("429 without RateLimit")
	}
	// The key has its own budget (3/min), untouched by the anonymous one.
	for i := range 3 {
		if r := app.do("GET", "/products", nil, bearer(key)...); r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("RateLimit"), `"key"`) {
			t.Fatalf("key request %d: %d %q", i+1, r.Status, r.Header.Get("RateLimit"))
		}
	}
	expectProblem(t, app.do("GET", "/products", nil, bearer(key)...), http.StatusTooManyRequests, "key past its burst")
	// Health checks are never limited.
	if r := app.do("GET", "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("healthz while limited: %d", r.Status)
	}
}

// TestTrustedProxies: X-Forwarded-For names the client only when the peer
// is a trusted proxy; otherwise a client cannot dodge its limit with it.
func TestTrustedProxies(t *testing.T) {
	untrusted := startApp(t, t.TempDir(), productionEnv("VITRINE_RATE_ANONYMOUS", "2/min"))
	for i := range 2 {
		untrusted.do("GET", "/products", nil, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
	}
	expectProblem(t, untrusted.do("GET", "/products", nil, "X-Forwarded-For", "203.0.113.99"), http.StatusTooManyRequests,
		"a forged X-Forwarded-For from an untrusted peer")

	trusted := startApp(t, t.TempDir(), productionEnv("VITRINE_RATE_ANONYMOUS", "2/min", "VITRINE_TRUSTED_PROXIES", "127.0.0.1/32"))
	for i := range 5 {
		r := trusted.do("GET", "/products", nil, "X-Forwarded-For", fmt.Sprintf("198.51.100.7, 203.0.113.%d", i))
		if r.Status != http.StatusOK {
			t.Fatalf("client %d behind a trusted proxy: %d", i, r.Status)
		}
	}
	trusted.do("GET", "/products", nil, "X-Forwarded-For", "203.0.113.50")
	trusted.do("GET", "/products", nil, "X-Forwarded-For", "203.0.113.50")
	expectProblem(t, trusted.do("GET", "/products", nil, "X-Forwarded-For", "203.0.113.50"), http.StatusTooManyRequests,
		"one client behind a trusted proxy, past its limit")
}

// noiseImage is a PNG of random pixels (incompressible) of about size bytes.
func noiseImage(t testing.TB, size int, seed uint64) []byte {
	t.Helper()
	side := 1
	for side*side*3 < size {
		side++
	}
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	r := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < len(img.Pix); i += 4 {
		v := r.Uint32()
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 255
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBacklogLimit: past the global backlog limit uploads get 503 with
// Retry-After, past an owner's limit 429; every upload accepted before
// reaches ready.
func TestBacklogLimit(t *testing.T) {
	// One slow worker: jobs pile up. The embedded queue polls, so the
	// backlog drains while the test watches.
	app := startApp(t, t.TempDir(), with(productionEnv("VITRINE_MAX_BACKLOG", "6", "VITRINE_MAX_OWNER_BACKLOG", "4"), "VITRINE_WORKERS", "1"))
	_, key := app.makeKey("write", 0)
	product := func(owner int) string {
		id, _ := app.doJSON("POST", "/products", fmt.Sprintf(`{"name":"P","price":"1","user_id":%d}`, owner), bearer(key)...).json(t)["id"].(string)
		return id
	}
	// Big enough that one worker takes a while over each.
	upload := func(pid string, n int) response {
		body := noiseImage(t, 12<<20, uint64(n)+10) // distinct bytes: no dedupe
		return app.do("POST", "/products/"+pid+"/images", bytes.NewReader(body), append([]string{"Content-Type", "image/png"}, bearer(key)...)...)
	}
	var accepted []string
	statuses := map[int]int{}
	owner1 := product(1)
	for i := range 8 {
		r := upload(owner1, i)
		statuses[r.Status]++
		switch r.Status {
		case http.StatusAccepted:
			accepted = append(accepted, r.Header.Get("Location"))
		case http.StatusTooManyRequests:
			if p := r.json(t); p["code"] != "owner_backlog_full" || r.Header.Get("Retry-After") == "" {
				t.Errorf("owner refusal: %v Retry-After %q", p, r.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Body)
		}
	}
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Fatalf("8 quick uploads of one owner past an owner limit of 4: %v, want some 429", statuses)
	}
	// Other owners fill the global backlog.
	sawFull := false
	for owner := 2; owner < 8 && !sawFull; owner++ {
		pid := product(owner)
		for i := range 3 {
			r := upload(pid, 100*owner+i)
			switch r.Status {
			case http.StatusAccepted:
				accepted = append(accepted, r.Header.Get("Location"))
			case http.StatusServiceUnavailable:
				if p := r.json(t); p["code"] != "backlog_full" || r.Header.Get("Retry-After") == "" {
					t.Errorf("backlog refusal: %v Retry-After %q", p, r.Header.Get("Retry-After"))
				}
				sawFull = true
			case http.StatusTooManyRequests:
			default:
				t.Fatalf("upload: %d %s", r.Status, r.Body)
			}
		}
	}
	if !sawFull {
		t.Fatal("the global backlog limit of 6 never refused an upload")
	}
	for _, loc := range accepted {
		if img := app.waitImage(loc, 3*time.Minute); img["status"] != "ready" {
			t.Errorf("accepted upload %s ended %v", loc, img["status"])
		}
	}
	t.Logf("%d uploads accepted before and between the limits, all ready", len(accepted))
}

// TestUploadMemoryBounded: 64 uploads of 24 MB at once keep the peak
// resident memory of the API process that takes them under 400 MiB: the
// bodies stream in under the upload budget, and those that are no image
// are refused from their first bytes. The process is the real binary (an
// API node: image processing, bounded by VITRINE_WORKERS, is measured by
// the bench), so VmHWM is vitrine's alone.
func TestUploadMemoryBounded(t *testing.T) {
	bin := buildBinary(t)
	addr := freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(cleanEnv(), "VITRINE_ADDR="+addr, "VITRINE_DATA_DIR="+dir, "VITRINE_ENV=development", "VITRINE_ROLE=api",
		"VITRINE_RATE_ANONYMOUS=0", "VITRINE_RATE_ANONYMOUS_WRITES=0", "VITRINE_MAX_BACKLOG=0", "VITRINE_MAX_OWNER_BACKLOG=0", "MALLOC_ARENA_MAX=2", "VITRINE_LOG_LEVEL=warn")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	waitReady(t, base)
	app := &testApp{t: t, base: base}

	const n = 64
	photo := noiseImage(t, 24<<20, 2) // ~24 MB, 2.9k × 2.9k
	junk := bytes.Repeat([]byte("not an image "), 24<<20/13)
	ids := make([]string, n)
	for i := range ids {
		ids[i], _ = app.doJSON("POST", "/products", fmt.Sprintf(`{"name":"P%d","price":"1","user_id":1}`, i)).json(t)["id"].(string)
	}
	rssBefore := vmHWM(t, cmd.Process.Pid)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var accepted []string
	client := &http.Client{Timeout: 3 * time.Minute}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := photo
			if i%4 == 3 {
				body = junk // a quarter are no image at all
			}
			req, _ := http.NewRequest("POST", base+"/products/"+ids[i]+"/images", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/octet-stream")
			res, err := client.Do(req)
			if err != nil {
				t.Errorf("upload %d: %v", i, err)
				return
			}
			res.Body.Close()
			mu.Lock()
			if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
				t.Errorf("upload %d: 503 without Retry-After", i)
			}
			statuses[res.StatusCode]++
			if res.StatusCode == http.StatusAccepted {
				accepted = append(accepted, res.Header.Get("Location"))
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	peak := vmHWM(t, cmd.Process.Pid)
	if statuses[http.StatusAccepted]+statuses[http.StatusServiceUnavailable] != n-n/4 || statuses[http.StatusUnsupportedMediaType] != n/4 {
		t.Fatalf("statuses %v: want the images accepted (or 503 when the budget stayed full) and %d refused with 415", statuses, n/4)
	}
	// The budget (64 MiB) holds two of these uploads at once: at least
	// those are taken; a server refusing every upload would be bounded too.
	if fit := (64 << 20) / len(photo); statuses[http.StatusAccepted] < fit {
		t.Fatalf("statuses %v: %d accepted, fewer than the %d the upload budget holds at once", statuses, statuses[http.StatusAccepted], fit)
	}
	for _, loc := range accepted {
		if r := app.do("GET", loc, nil); r.Status != http.StatusOK || r.json(t)["status"] != "pending" {
			t.Fatalf("accepted upload %s: %d %s", loc, r.Status, r.Body)
		}
	}
	t.Logf("64 × 24 MB uploads at once: %v; peak RSS %d MiB before, %d MiB after", statuses, rssBefore>>10, peak>>10)
	if peak > 400<<10 {
		t.Fatalf("peak RSS %d MiB, over 400 MiB\n%s", peak>>10, logs.String())
	}
}

// vmHWM reads a process's peak resident set size, in KiB.
func vmHWM(t testing.TB, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kib, err := strconv.Atoi(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return kib
}

// cleanEnv is the environment without VITRINE_* settings, so a child
// vitrine runs on the embedded default whatever the test run exported.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VITRINE_") {
			out = append(out, kv)
		}
	}
	return out
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30 s", base)
}

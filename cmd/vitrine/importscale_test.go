//go:build importscale

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestImportScale imports a catalog of 10,000 products with one image URL
// each (VITRINE_IMPORT_SCALE_ROWS), served by a server of the test's own on
// 127.0.0.1, into two vitrine processes on the real servers: the import is
// posted to the first, which runs it; the second joins, then the first is
// killed (SIGKILL) a third of the way through. The second takes the import
// over once its lease runs out. At the end every row is applied once:
// one product per SKU, one image per product, from its URL, with its alt
// text. It logs the duration, rows per second, each process's peak RSS
// and what the kill cost. Images are processed meanwhile; the test ends
// when the rows are applied, every image ready or queued.
func TestImportScale(t *testing.T) {
	rows := 10_000
	if v := os.Getenv("VITRINE_IMPORT_SCALE_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/p/%d.png", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(distinctPNG(t, 90_000+n))
	}))
	defer srv.Close()

	env := backendEnv(t)
	_, m0, _ := strings.Cut(freePort(t), ":")
	_, m1, _ := strings.Cut(freePort(t), ":")
	a0, a1 := freePort(t), freePort(t)
	env = with(env, "VITRINE_CLUSTER_PEERS", "127.0.0.1:"+m0+",127.0.0.1:"+m1, "VITRINE_FETCH_ALLOW", "127.0.0.1/32",
		"VITRINE_IMPORT_LEASE", "5s", "VITRINE_MAX_BACKLOG", "0", "VITRINE_MAX_OWNER_BACKLOG", "0", "VITRINE_WORKERS", "1",
		"VITRINE_ENV", "development", "VITRINE_LOG_LEVEL", "warn", "MALLOC_ARENA_MAX", "2")
	bin := buildBinary(t)
	dir := t.TempDir()
	first := startProc(t, bin, filepath.Join(dir, "first.log"), with(env, "VITRINE_ADDR", a0, "VITRINE_CLUSTER_MANAGE_PORT", m0,
		"VITRINE_DATA_DIR", t.TempDir()))
	waitReady(t, "http://"+a0)

	var file strings.Builder
	for i := range rows {
		fmt.Fprintf(&file, `{"sku":"S-%05d","name":"Product %d","price":"%d.99","user_id":%d,"images":[{"url":"%s/p/%d.png","alt":"Photo %d"}]}`+"\n",
			i, i, 1+i%500, 1+i%50, srv.URL, i, i)
	}
	app := &testApp{t: t, base: "http://" + a0}
	started := time.Now()
	r := app.postImport("application/x-ndjson", file.String())
	if r.Status != http.StatusAccepted {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	location := r.Header.Get("Location")
	accepted := time.Since(started)
	progress := func(base string) map[string]any {
		r := (&testApp{t: t, base: base}).do("GET", location, nil)
		if r.Status != http.StatusOK {
			return nil
		}
		return r.json(t)["rows"].(map[string]any)
	}
	// The second node joins once the first runs the import.
	for p := progress(app.base); p["applied"].(float64) == 0; p = progress(app.base) {
		time.Sleep(100 * time.Millisecond)
	}
	second := startProc(t, bin, filepath.Join(dir, "second.log"), with(env, "VITRINE_ADDR", a1, "VITRINE_CLUSTER_MANAGE_PORT", m1,
		"VITRINE_DATA_DIR", t.TempDir()))
	waitReady(t, "http://"+a1)
	var killedAt float64
	for {
		p := progress(app.base)
		if done := p["applied"].(float64) + p["failed"].(float64); done >= float64(rows)/3 {
			killedAt = done
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	firstPeak := peakRSS(t, first.cmd.Process.Pid)
	killed := time.Now()
	first.stop(syscall.SIGKILL)

	app = &testApp{t: t, base: "http://" + a1}
	var resumedAfter time.Duration
	for deadline := time.Now().Add(15 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		p := progress(app.base)
		if p != nil && resumedAfter == 0 && p["applied"].(float64)+p["failed"].(float64) > killedAt {
			resumedAfter = time.Since(killed)
		}
		if p != nil && p["pending"] == 0.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import did not complete: %v", p)
		}
	}
	imp := app.waitImport(location, time.Minute)
	took := time.Since(started)
	secondPeak := peakRSS(t, second.cmd.Process.Pid)
	if p := imp["rows"].(map[string]any); p["applied"] != float64(rows) || p["failed"] != 0.0 {
		t.Fatalf("import rows %v, errors %v", p, imp["errors"])
	}

	// Every row applied once: one product per SKU, each with one image,
	// from its URL; then every image ready.
	conn, err := pgx.Connect(context.Background(), env["VITRINE_POSTGRES_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var products, skus, images, wrong int
	if err := conn.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM products), (SELECT count(DISTINCT sku) FROM products),
		       (SELECT count(*) FROM images),
		       (SELECT count(*) FROM images i JOIN products p ON p.id = i.product_id
		        WHERE i.source_url <> $1 || '/p/' || substr(p.name, 9) || '.png' OR i.alt <> 'Photo ' || substr(p.name, 9))`, srv.URL).Scan(&products, &skus, &images, &wrong); err != nil {
		t.Fatal(err)
	}
	if products != rows || skus != rows || images != rows || wrong != 0 {
		t.Errorf("%d products, %d SKUs, %d images, %d images with another URL or alt; want %d, %d, %d, 0", products, skus, images, wrong, rows, rows, rows)
	}
	// Every image is ready or on its way (its job row kept): none lost.
	var ready, stranded int
	if err := conn.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM images WHERE status = 'ready'),
		       (SELECT count(*) FROM images i WHERE i.status <> 'ready' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.image_id = i.id))`).Scan(&ready, &stranded); err != nil {
		t.Fatal(err)
	}
	if stranded != 0 {
		t.Errorf("%d images neither ready nor queued", stranded)
	}
	mu.Lock()
	fetchedTwice := 0
	for _, n := range hits {
		if n > 1 {
			fetchedTwice++
		}
	}
	mu.Unlock()
	t.Logf("import of %d rows: accepted in %s, applied in %s (%.0f rows/s, the kill included); %d images ready by then, the others queued",
		rows, accepted.Round(time.Millisecond), took.Round(time.Millisecond), float64(rows)/took.Seconds(), ready)
	t.Logf("SIGKILL of the node running it after %.0f rows: taken over by the other after %s (lease 5 s); rows lost 0, applied twice 0 "+
		"(%d products, %d images); %d photos fetched twice (jobs the kill interrupted)", killedAt, resumedAfter.Round(time.Millisecond), products, images, fetchedTwice)
	t.Logf("peak RSS: the node killed %.0f MiB (at the kill), the node that finished %.0f MiB", float64(firstPeak)/(1<<20), float64(secondPeak)/(1<<20))
	if firstPeak > 400<<20 || secondPeak > 400<<20 {
		t.Errorf("a node's peak RSS is over 400 MiB")
	}
}

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

//go:build soak

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak sends 3,000 uploads through one worker process, on the real
// servers, and compares the process after the first 300 with the process
// after the last: its RSS within 25 %, its goroutines and file
// descriptors flat (no more than a few above).
func TestSoak(t *testing.T) {
	const (
		total, first = 3000, 300
		products     = 30 // a product holds at most 100 images
		clients      = 4
	)
	began := time.Now()
	env := backendEnv(t)
	_, m0, _ := strings.Cut(freePort(t), ":")
	_, m1, _ := strings.Cut(freePort(t), ":")
	env = with(env, "VITRINE_CLUSTER_PEERS", "127.0.0.1:"+m0+",127.0.0.1:"+m1)
	api := startApp(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", m0))
	pprof := freePort(t)
	worker := startProc(t, buildBinary(t), filepath.Join(t.TempDir(), "worker.log"), with(env,
		"VITRINE_ROLE", "worker", "VITRINE_WORKERS", "2", "VITRINE_CLUSTER_MANAGE_PORT", m1, "VITRINE_DATA_DIR", t.TempDir(),
		"VITRINE_PPROF_ADDR", pprof, "VITRINE_LOG_LEVEL", "warn", "MALLOC_ARENA_MAX", "2"))
	var ids []string
	for i := range products { // an owner each: the backlog is bounded per owner
		ids = append(ids, api.createProduct(fmt.Sprintf(`{"name":"Soak","price":"1","user_id":%d}`, i+1))["id"].(string))
	}

	// send uploads k in [from, to), clients at a time.
	send := func(from, to int) {
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for k := int(next.Add(1)) - 1; k < to; k = int(next.Add(1)) - 1 {
					if r := api.uploadBytes(ids[k%products], "x.png", distinctPNG(t, 90000+k), true); r.Status != http.StatusAccepted {
						t.Errorf("upload %d: %d %s", k, r.Status, r.Body)
					}
				}
			})
		}
		wg.Wait()
	}
	// await waits until n images are ready.
	await := func(n int) {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			ready := 0
			for _, id := range ids {
				var doc struct{ Images []struct{ Status string } }
				if err := json.Unmarshal(api.do("GET", "/products/"+id, nil).Body, &doc); err != nil {
					t.Fatal(err)
				}
				for _, img := range doc.Images {
					switch img.Status {
					case "ready":
						ready++
					case "failed":
						t.Fatalf("an image failed during the soak")
					}
				}
			}
			if ready >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d images ready after 10 minutes", ready, n)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	sample := func() procStats {
		time.Sleep(2 * time.Second) // let the last jobs' goroutines and connections settle
		return statsOf(t, worker.cmd.Process.Pid, pprof)
	}

	send(0, first)
	await(first)
	after300 := sample()
	mid := time.Now()
	send(first, total)
	await(total)
	afterAll := sample()
	t.Logf("soak: %d uploads through one worker process in %v (%v for the last %d); after %d: %s; after %d: %s; RSS %+.1f %%",
		total, time.Since(began).Round(time.Second), time.Since(mid).Round(time.Second), total-first,
		first, after300, total, afterAll, 100*(float64(afterAll.RSS)/float64(after300.RSS)-1))
	if afterAll.RSS > after300.RSS*5/4 {
		t.Errorf("RSS grew from %d to %d bytes, more than 25 %%", after300.RSS, afterAll.RSS)
	}
	flat := func(what string, before, after int) {
		if after > before+max(5, before/10) {
			t.Errorf("%s grew from %d to %d", what, before, after)
		}
	}
	flat("goroutines", after300.Goroutines, afterAll.Goroutines)
	flat("file descriptors", after300.FDs, afterAll.FDs)
}

//go:build chaos

package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
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
	env := with(svc.appEnv("vitrine.chaos", "vitrine-chaos", manage),
		"VITRINE_JOB_TIMEOUT", "15s") // a killed worker's jobs run again after 45 s
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

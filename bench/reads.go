// reads.go: the HTTP read and write scenarios and their baselines (bare
// fasthttp, pgbench -S).

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

func (b *bench) loadScenario(ctx context.Context, name, desc string, op load.Op) (*report.Scenario, error) {
	s := &report.Scenario{Name: name, Description: desc, Unit: "req/s", Errors: map[string]uint64{}}
	b.phases(ctx, name, op, s)
	return s, ctx.Err()
}

func (b *bench) readHot(ctx context.Context) (*report.Scenario, error) {
	s := &report.Scenario{Name: "read-hot", Unit: "req/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("GET /products/{id} over %d seeded products, ids drawn by Zipf (s=%.2f): cached reads.", len(b.ids), b.o.zipfS)}
	// Every product once: the warm-up, and the bytes the bare baseline serves.
	b.bar.Logf("reading every product once (warm-up)")
	products, err := scenario.Fetch(ctx, b.client, b.ids, b.o.concurrency)
	if err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	b.phases(ctx, s.Name, scenario.ReadHot(b.client, b.keys), s)
	if !b.o.baselines["bare"] {
		return s, ctx.Err()
	}
	openRate := 0.0
	if op := s.Phase("open"); op != nil {
		openRate = op.TargetRPS
	}
	bl, err := b.bare(ctx, products, openRate)
	if err != nil {
		return nil, err
	}
	b.rep.Baselines = append(b.rep.Baselines, bl)
	if bl.Skipped == "" {
		s.Compare(bl.Name, bl.Value, bl.Unit)
	}
	return s, ctx.Err()
}

// bare runs the read-hot closed loop against a bare fasthttp server
// serving the same product bytes, and, when openRate > 0, the open loop
// at the rate vitrine's open phase had: the floor of what this machine and
// this client can show at that rate.
func (b *bench) bare(ctx context.Context, products []scenario.Product, openRate float64) (*report.Baseline, error) {
	bl := &report.Baseline{Name: "bare-fasthttp", Unit: "req/s",
		Description: "a bare fasthttp server (separate process) answering GET /products/{id} with the same bytes and headers from a map; same closed-loop read-hot load"}
	exe, err := os.Executable()
	if err != nil {
		bl.Skipped = "cannot find the bench executable: " + err.Error()
		return bl, nil
	}
	file := filepath.Join(b.tmp, "products.jsonl")
	f, err := os.Create(file) // #nosec G304 G703 -- a fixed name in the bench's temporary directory
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, p := range products {
		if err := enc.Encode(p); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	srv, err := baseline.StartBare(exe, file, b.o.serverCPUs)
	if err != nil {
		return nil, fmt.Errorf("bare baseline: %w", err)
	}
	defer srv.Stop()
	c, err := httpc.New("http://"+srv.Addr, b.o.concurrency+8, b.o.timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := scenario.Fetch(ctx, c, b.ids[:min(len(b.ids), 100)], 4); err != nil {
		return nil, fmt.Errorf("bare baseline: %w", err)
	}
	mem := target.Watch(srv.Pid())
	defer mem.Stop()
	label := fmt.Sprintf("bare-fasthttp closed c=%d", b.o.concurrency)
	lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Seed: b.o.seed, Setup: scenario.Setup, Tick: b.bar.Tick(label)},
		scenario.ReadHot(c, b.keys))
	bl.Phase = report.PhaseOf("closed", lp)
	rss, _ := mem.Peak()
	bl.PeakRSSBytes = &rss
	bl.Phase.PeakRSSBytes = &rss
	bl.Value = report.Round2(lp.Throughput())
	b.bar.Done(label, summary(bl.Phase, "req/s"))
	bl.Extra = map[string]any{}
	if rr, err := b.cpuRounds(ctx, c, srv.Pid()); err != nil {
		b.note("read-hot CPU rounds: %v", err)
	} else if rr != nil {
		bl.Extra["cpu_rounds"] = rr
	}
	if openRate > 0 && ctx.Err() == nil {
		c.Close()
		oc, err := httpc.New("http://"+srv.Addr, b.o.openWorkers+8, b.o.timeout)
		if err != nil {
			return nil, err
		}
		defer oc.Close()
		label := fmt.Sprintf("bare-fasthttp open @%.0f/s", openRate)
		mem.Reset()
		lp := load.Open(ctx, load.Config{Concurrency: b.o.openWorkers, Rate: openRate, Duration: b.o.duration, Seed: b.o.seed + 1,
			Setup: scenario.Setup, Tick: b.bar.Tick(label)}, scenario.ReadHot(oc, b.keys))
		ph := report.PhaseOf("open", lp)
		rss, _ := mem.Peak()
		ph.PeakRSSBytes = &rss
		bl.Extra["open"] = ph
		b.bar.Done(label, summary(ph, "req/s"))
	}
	return bl, nil
}

func (b *bench) readCold(ctx context.Context) (*report.Scenario, error) {
	s := &report.Scenario{Name: "read-cold", Unit: "req/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("vitrine restarted (empty in-process cache, no product actor alive), then each of the %d products read once in a random order by %d closed-loop workers: every GET misses the cache, activates the product's actor and reads the database.", len(b.ids), b.o.concurrency)}
	if b.proc == nil {
		s.Skipped = "needs a vitrine started by the bench (it is restarted to empty its cache)"
		return s, nil
	}
	if b.getenv("VITRINE_REDIS_URL") != "" {
		b.note("read-cold: the Redis cache survives the restart, so these reads may not be cold")
	}
	b.bar.Logf("restarting vitrine for cold reads")
	p, err := b.proc.Restart(ctx)
	if err != nil {
		return nil, err
	}
	b.proc = p
	// The old process's keep-alive connections are dead: start afresh.
	b.client.Close()
	if b.client, err = httpc.New(b.rep.Target.URL, max(b.o.concurrency, b.o.openWorkers)+b.o.uploadConc+8, b.o.timeout); err != nil {
		return nil, err
	}
	label := fmt.Sprintf("read-cold closed c=%d", b.o.concurrency)
	prof := b.startProfile(ctx, "read-cold.closed")
	lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Limit: uint64(len(b.ids)), Seed: b.o.seed,
		Setup: scenario.Setup, Tick: b.bar.Tick(label)}, scenario.Cold(b.client, b.ids, b.o.seed))
	prof()
	ph := report.PhaseOf("closed", lp)
	ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
	s.PeakRSSBytes = ph.PeakRSSBytes
	s.Phases = append(s.Phases, ph)
	s.SetMain(ph)
	b.bar.Done(label, summary(ph, "req/s"))
	if lp.Requests() < uint64(len(b.ids)) {
		b.note("read-cold: %d of %d products read within %v; the rest were not measured", lp.Requests(), len(b.ids), b.o.duration)
	}
	if b.o.baselines["pgbench"] {
		bl := b.pgbench(ctx)
		b.rep.Baselines = append(b.rep.Baselines, bl)
		if bl.Skipped == "" {
			s.Compare(bl.Name, bl.Value, bl.Unit)
		} else {
			s.Baseline = &report.BaselineRef{Name: bl.Name, Unit: bl.Unit}
		}
	}
	return s, ctx.Err()
}

func (b *bench) pgbench(ctx context.Context) *report.Baseline {
	bl := &report.Baseline{Name: "pgbench-S", Unit: "tx/s",
		Description: "pgbench -S (one primary-key SELECT a transaction) against the same PostgreSQL, pgbench tables at scale 1 in a schema of their own"}
	url := b.getenv("VITRINE_POSTGRES_URL")
	if url == "" {
		bl.Skipped = "VITRINE_POSTGRES_URL is not set: vitrine runs on SQLite, there is no PostgreSQL to compare with"
		return bl
	}
	clients := min(b.o.concurrency, 32)
	label := fmt.Sprintf("pgbench -S -c %d", clients)
	b.bar.Logf("%s for %v", label, b.o.duration)
	res, err := baseline.Pgbench(ctx, url, clients, b.o.duration)
	if err != nil {
		bl.Skipped = err.Error()
		return bl
	}
	bl.Value = report.Round2(res.TPS)
	bl.Extra = map[string]any{"clients": res.Clients, "seconds": res.Duration.Seconds(), "latency_avg_ms": res.LatencyMs, "scale": res.Scale}
	b.bar.Done(label, fmt.Sprintf("%.0f tx/s, latency avg %.3f ms", res.TPS, res.LatencyMs))
	return bl
}

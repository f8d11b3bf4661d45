package load

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

// slow is a fake target that takes d to answer, one request at a time per
// worker (as a server with that many threads would).
func slow(d time.Duration, calls *atomic.Int64) Op {
	return func(ctx context.Context, w *Worker) Outcome {
		calls.Add(1)
		time.Sleep(d)
		return Outcome{Status: 200}
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// With enough workers, the open loop keeps its rate against a slow target,
// and the latency is the target's.
func TestOpenKeepsRate(t *testing.T) {
	var calls atomic.Int64
	p := Open(context.Background(), Config{Concurrency: 16, Rate: 200, Duration: time.Second, Seed: 1}, slow(20*time.Millisecond, &calls))
	if calls.Load() != 200 || p.Requests() != 200 || p.Unsent != 0 {
		t.Fatalf("sent %d (recorded %d, unsent %d), want the 200 scheduled", calls.Load(), p.Requests(), p.Unsent)
	}
	if tp := p.Throughput(); tp < 150 || tp > 210 {
		t.Errorf("throughput %.1f/s, want about 200/s", tp)
	}
	if p50 := ms(p.Hist.Quantile(0.5)); p50 < 20 || p50 > 60 {
		t.Errorf("p50 %.1f ms, want about 20 ms", p50)
	}
	if p.Hist.Min() < int64(20*time.Millisecond) {
		t.Errorf("min latency %v is below the target's 20 ms", time.Duration(p.Hist.Min()))
	}
	if p.Mode != "open" || p.TargetRate != 200 {
		t.Errorf("mode %q rate %v", p.Mode, p.TargetRate)
	}
}

// With one worker at 200/s against a 20 ms target, the client falls behind:
// it keeps the schedule (every request is still sent, in order), and the
// latency, measured from the scheduled time, grows with it — request i is
// scheduled at 5i ms and answered at about 20(i+1) ms — instead of showing
// the target's 20 ms.
func TestOpenCountsTheDelay(t *testing.T) {
	var calls atomic.Int64
	p := Open(context.Background(), Config{Concurrency: 1, Rate: 200, Duration: 500 * time.Millisecond, Drain: 5 * time.Second,
		Bucket: 50 * time.Millisecond, Seed: 1}, slow(20*time.Millisecond, &calls))
	if calls.Load() != 100 || p.Unsent != 0 {
		t.Fatalf("sent %d, unsent %d: want all 100 scheduled requests sent late", calls.Load(), p.Unsent)
	}
	// Expected latencies 15i+20 ms for i in [0, 100): p50 ≈ 0.76 s, max ≈ 1.5 s.
	if p50 := ms(p.Hist.Quantile(0.5)); p50 < 650 || p50 > 1100 {
		t.Errorf("p50 %.0f ms, want about 760 ms (15·49+20)", p50)
	}
	if mx := ms(p.Hist.Max()); mx < 1400 || mx > 2500 {
		t.Errorf("max %.0f ms, want about 1500 ms", mx)
	}
	if p.MaxLag < 1200*time.Millisecond {
		t.Errorf("max lag %v, want close to 1.5 s", p.MaxLag)
	}
	if tp := p.Throughput(); tp > 60 {
		t.Errorf("throughput %.0f/s: one worker cannot do more than 50/s", tp)
	}
	// The timeline (by scheduled time) rises bucket after bucket.
	if len(p.Timeline) != 10 {
		t.Fatalf("%d timeline buckets, want 10", len(p.Timeline))
	}
	prev := 0.0
	for i, b := range p.Timeline {
		p50 := ms(b.Hist.Quantile(0.5))
		want := 15*(10*float64(i)+5) + 20 // the bucket's middle request
		if math.Abs(p50-want) > 0.2*want+30 {
			t.Errorf("bucket %d: p50 %.0f ms, want about %.0f ms", i, p50, want)
		}
		if p50 <= prev {
			t.Errorf("bucket %d: p50 %.0f ms does not grow (previous %.0f)", i, p50, prev)
		}
		prev = p50
	}
	// A closed loop against the same target sees only 20 ms: the omission
	// the open loop avoids.
	c := Closed(context.Background(), Config{Concurrency: 1, Duration: 300 * time.Millisecond}, slow(20*time.Millisecond, &calls))
	if p99 := ms(c.Hist.Quantile(0.99)); p99 > 60 {
		t.Errorf("closed loop p99 %.0f ms, want about 20", p99)
	}
}

// When even the drain time is not enough, the slots left are counted as
// unsent, with their delay so far as a lower bound.
func TestOpenUnsent(t *testing.T) {
	var calls atomic.Int64
	p := Open(context.Background(), Config{Concurrency: 1, Rate: 200, Duration: 500 * time.Millisecond, Drain: 100 * time.Millisecond},
		slow(20*time.Millisecond, &calls))
	sent := uint64(calls.Load())
	if sent < 20 || sent > 40 || p.Unsent != 100-sent || p.Hist.Count() != 100 {
		t.Fatalf("sent %d, unsent %d, recorded %d: want about 30 sent of 100, the rest unsent", sent, p.Unsent, p.Hist.Count())
	}
	if p.Requests() != sent || p.OK() != sent {
		t.Errorf("requests %d ok %d, want %d", p.Requests(), p.OK(), sent)
	}
	if p50 := ms(p.Hist.Quantile(0.5)); p50 < 100 {
		t.Errorf("p50 %.0f ms with unsent slots, want their delay counted", p50)
	}
}

func TestClosedCountsFailuresAndLabels(t *testing.T) {
	var n atomic.Int64
	op := func(ctx context.Context, w *Worker) Outcome {
		i := n.Add(1)
		switch i % 10 {
		case 0:
			return Failed("post", 503)
		case 1:
			return Outcome{Label: "post", Fail: "transport"}
		}
		return Outcome{Label: "get", Status: 200}
	}
	var ticks atomic.Int64
	p := Closed(context.Background(), Config{Concurrency: 4, Duration: time.Minute, Limit: 1000,
		Tick: func(Progress) { ticks.Add(1) }}, op)
	if p.Requests() != 1000 || p.Fails["503"] != 100 || p.Fails["transport"] != 100 || p.OK() != 800 {
		t.Fatalf("requests %d fails %v ok %d", p.Requests(), p.Fails, p.OK())
	}
	if p.Status[200] != 800 || p.Status[503] != 100 {
		t.Errorf("status %v", p.Status)
	}
	if p.ByLabel["get"].Count() != 800 || p.ByLabel["post"].Count() != 200 {
		t.Errorf("labels %v", p.SortedLabels())
	}
	if ticks.Load() < 1 {
		t.Errorf("no progress tick")
	}
	// Workers get reproducible random streams.
	first := func() uint64 {
		var v uint64
		Closed(context.Background(), Config{Concurrency: 1, Limit: 1, Duration: time.Second, Seed: 9},
			func(ctx context.Context, w *Worker) Outcome { v = w.Rand.Uint64(); return Outcome{} })
		return v
	}
	if a, b := first(), first(); a != b {
		t.Errorf("same seed, different worker stream")
	}
}

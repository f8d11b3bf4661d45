// Package load drives an operation at a target in two ways:
//
//   - closed loop (Closed): C workers, each sending its next request as soon
//     as the previous one is answered; the rate is whatever the target
//     sustains, so it finds the peak;
//   - open loop (Open): requests are scheduled on a fixed timetable at R per
//     second, whatever the target does. A free worker takes the next slot of
//     the timetable, waits for its time if it is early, and the latency is
//     measured from the slot's scheduled time, not from when it was sent.
//     When the target is slow and every worker is busy, the schedule is kept
//     and the requests that are late carry their delay in their latency (no
//     coordinated omission). After the planned duration the late slots are
//     still sent, for up to Config.Drain; slots unsent even then are
//     recorded with the delay they had accumulated, as a lower bound, and
//     counted as Unsent.
//
// Latencies go into log-linear histograms (package hist), overall, by the
// operation's label, and per time bucket for a latency-over-time chart.
package load

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
)

// Outcome is what one operation did.
type Outcome struct {
	// Label names the kind of operation ("get", "patch"…); "" for a
	// scenario with one kind.
	Label string
	// Status is the HTTP status, 0 when there was none.
	Status int
	// Fail is "" for a success, else why it failed: the status code
	// ("503"), "transport", "timeout", "bad-body"…
	Fail string
}

// Failed is an outcome for an unexpected HTTP status.
func Failed(label string, status int) Outcome {
	return Outcome{Label: label, Status: status, Fail: strconv.Itoa(status)}
}

// Worker is one load worker's state, passed to every call of the operation
// it runs: never shared between goroutines.
type Worker struct {
	ID   int
	Rand *rand.Rand
	// Data is for the operation's own per-worker state.
	Data any
}

// Op is one request.
type Op func(ctx context.Context, w *Worker) Outcome

// Config of a phase.
type Config struct {
	// Concurrency is the number of workers: requests in flight at most.
	Concurrency int
	// Duration is how long requests are started (closed) or scheduled
	// (open) for.
	Duration time.Duration
	// Rate is the open loop's target rate, requests per second.
	Rate float64
	// Limit, if not 0, ends a closed-loop phase after that many requests.
	Limit uint64
	// Drain is how long an open-loop phase goes on sending the slots it is
	// behind on after Duration (default: Duration, at least 1 s); what is
	// still unsent then is counted in Unsent.
	Drain time.Duration
	// Seed makes the workers' random streams reproducible.
	Seed uint64
	// Bucket is the width of a timeline bucket (default: about 1/60 of
	// Duration, at least 100 ms).
	Bucket time.Duration
	// Setup, if set, prepares each worker before the phase starts.
	Setup func(w *Worker)
	// Tick, if set, is called about every 200 ms while the phase runs.
	Tick func(Progress)
}

// Progress is a phase's state, for a progress bar.
type Progress struct {
	Elapsed, Planned time.Duration
	Done, Fails      uint64
}

// Bucket is one interval of the timeline: the requests started (closed) or
// scheduled (open) in it.
type Bucket struct {
	Offset time.Duration // from the phase's start
	Width  time.Duration
	Fails  uint64
	Hist   *hist.Histogram // latencies in ns, failures included
}

// Phase is the result of a run.
type Phase struct {
	Mode        string // "closed" or "open"
	Concurrency int
	TargetRate  float64       // open loop only
	Planned     time.Duration // the configured duration
	Elapsed     time.Duration // from the start to the last answer
	Hist        *hist.Histogram
	ByLabel     map[string]*hist.Histogram
	Status      map[int]uint64
	Fails       map[string]uint64
	Timeline    []Bucket
	// Unsent counts open-loop slots that were never sent because every
	// worker was still busy when the phase ended; their delay up to then
	// is in Hist as a lower bound.
	Unsent uint64
	// MaxLag is the open loop's longest delay between a slot's scheduled
	// time and its sending.
	MaxLag time.Duration
}

// Requests is the number of requests answered (successes and failures).
func (p *Phase) Requests() uint64 { return p.Hist.Count() - p.Unsent }

// FailCount is the number of failed requests.
func (p *Phase) FailCount() uint64 {
	var n uint64
	for _, c := range p.Fails {
		n += c
	}
	return n
}

// OK is the number of successful requests.
func (p *Phase) OK() uint64 { return p.Requests() - p.FailCount() }

// Throughput is successful requests per second of elapsed time.
func (p *Phase) Throughput() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.OK()) / p.Elapsed.Seconds()
}

type shard struct {
	mu       sync.Mutex
	all      hist.Histogram
	byLabel  map[string]*hist.Histogram
	status   map[int]uint64
	fails    map[string]uint64
	timeline []*Bucket
}

type recorder struct {
	shards []shard
	width  time.Duration
	done   atomic.Uint64
	failed atomic.Uint64
	last   atomic.Int64 // unix ns of the last answer
}

func newRecorder(workers int, width time.Duration) *recorder {
	r := &recorder{shards: make([]shard, min(max(workers, 1), 16)), width: width}
	for i := range r.shards {
		r.shards[i].byLabel = map[string]*hist.Histogram{}
		r.shards[i].status = map[int]uint64{}
		r.shards[i].fails = map[string]uint64{}
	}
	return r
}

// record counts one request of worker w that started (or was scheduled) at
// offset from the phase's start and took latency.
func (r *recorder) record(w int, offset, latency time.Duration, o Outcome, end time.Time) {
	s := &r.shards[w%len(r.shards)]
	ns := int64(latency)
	s.mu.Lock()
	s.all.Record(ns)
	h := s.byLabel[o.Label]
	if h == nil {
		h = &hist.Histogram{}
		s.byLabel[o.Label] = h
	}
	h.Record(ns)
	if o.Status != 0 {
		s.status[o.Status]++
	}
	if o.Fail != "" {
		s.fails[o.Fail]++
	}
	b := s.bucket(offset, r.width)
	b.Hist.Record(ns)
	if o.Fail != "" {
		b.Fails++
	}
	s.mu.Unlock()
	r.done.Add(1)
	if o.Fail != "" {
		r.failed.Add(1)
	}
	for t := end.UnixNano(); ; {
		old := r.last.Load()
		if t <= old || r.last.CompareAndSwap(old, t) {
			break
		}
	}
}

func (s *shard) bucket(offset, width time.Duration) *Bucket {
	i := max(int(offset/width), 0)
	for len(s.timeline) <= i {
		k := len(s.timeline)
		s.timeline = append(s.timeline, &Bucket{Offset: time.Duration(k) * width, Width: width, Hist: &hist.Histogram{}})
	}
	return s.timeline[i]
}

func (r *recorder) phase(mode string, cfg Config, start time.Time) *Phase {
	p := &Phase{Mode: mode, Concurrency: cfg.Concurrency, Planned: cfg.Duration, Hist: &hist.Histogram{},
		ByLabel: map[string]*hist.Histogram{}, Status: map[int]uint64{}, Fails: map[string]uint64{}}
	if last := r.last.Load(); last > 0 {
		p.Elapsed = time.Unix(0, last).Sub(start)
	}
	for i := range r.shards {
		s := &r.shards[i]
		p.Hist.Merge(&s.all)
		for l, h := range s.byLabel {
			if p.ByLabel[l] == nil {
				p.ByLabel[l] = &hist.Histogram{}
			}
			p.ByLabel[l].Merge(h)
		}
		for k, v := range s.status {
			p.Status[k] += v
		}
		for k, v := range s.fails {
			p.Fails[k] += v
		}
		for j, b := range s.timeline {
			for len(p.Timeline) <= j {
				k := len(p.Timeline)
				p.Timeline = append(p.Timeline, Bucket{Offset: time.Duration(k) * r.width, Width: r.width, Hist: &hist.Histogram{}})
			}
			p.Timeline[j].Hist.Merge(b.Hist)
			p.Timeline[j].Fails += b.Fails
		}
	}
	return p
}

func bucketWidth(cfg Config) time.Duration {
	if cfg.Bucket > 0 {
		return cfg.Bucket
	}
	w := (cfg.Duration / 60).Truncate(100 * time.Millisecond)
	return max(w, 100*time.Millisecond)
}

func workers(cfg Config) []*Worker {
	ws := make([]*Worker, max(cfg.Concurrency, 1))
	for i := range ws {
		ws[i] = &Worker{ID: i, Rand: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1))} // #nosec G404 -- seeded load generation, not security
		if cfg.Setup != nil {
			cfg.Setup(ws[i])
		}
	}
	return ws
}

func ticker(ctx context.Context, cfg Config, r *recorder, start time.Time) (stop func()) {
	if cfg.Tick == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				cfg.Tick(Progress{Elapsed: time.Since(start), Planned: cfg.Duration, Done: r.done.Load(), Fails: r.failed.Load()})
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		cfg.Tick(Progress{Elapsed: time.Since(start), Planned: cfg.Duration, Done: r.done.Load(), Fails: r.failed.Load()})
	}
}

// Closed runs op back to back on cfg.Concurrency workers for cfg.Duration
// (or until cfg.Limit requests, or ctx ends). Requests in flight at the end
// are waited for and counted.
func Closed(ctx context.Context, cfg Config, op Op) *Phase {
	ws := workers(cfg)
	r := newRecorder(len(ws), bucketWidth(cfg))
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var started atomic.Uint64
	stopTick := ticker(ctx, cfg, r, start)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				if cfg.Limit > 0 && started.Add(1) > cfg.Limit {
					return
				}
				o := op(ctx, w)
				t1 := time.Now()
				r.record(w.ID, t0.Sub(start), t1.Sub(t0), o, t1)
			}
		}()
	}
	wg.Wait()
	stopTick()
	return r.phase("closed", cfg, start)
}

// Open schedules op at cfg.Rate per second for cfg.Duration, on at most
// cfg.Concurrency workers, measuring each latency from its scheduled time.
func Open(ctx context.Context, cfg Config, op Op) *Phase {
	ws := workers(cfg)
	r := newRecorder(len(ws), bucketWidth(cfg))
	rate := cfg.Rate
	if rate <= 0 || math.IsNaN(rate) {
		rate = 1
	}
	interval := float64(time.Second) / rate
	slots := uint64(math.Floor(cfg.Duration.Seconds() * rate))
	start := time.Now().Add(5 * time.Millisecond) // let the workers get going
	drain := cfg.Drain
	if drain <= 0 {
		drain = max(cfg.Duration, time.Second)
	}
	stopAt := start.Add(cfg.Duration + drain)
	sched := func(i uint64) time.Time { return start.Add(time.Duration(float64(i) * interval)) }
	var next atomic.Uint64
	var maxLag atomic.Int64
	stopTick := ticker(ctx, cfg, r, start)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= slots {
					return
				}
				at := sched(i)
				now := time.Now()
				if wait := at.Sub(now); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
					now = time.Now()
				} else if !now.Before(stopAt) {
					// Behind schedule and out of time: leave this slot and
					// the rest to the unsent count.
					next.Store(slots + 1 + i) // every other worker stops too
					return
				}
				for lag := int64(now.Sub(at)); ; {
					old := maxLag.Load()
					if lag <= old || maxLag.CompareAndSwap(old, lag) {
						break
					}
				}
				o := op(ctx, w)
				t1 := time.Now()
				r.record(w.ID, at.Sub(start), t1.Sub(at), o, t1)
			}
		}()
	}
	wg.Wait()
	stopTick()
	end := time.Now()
	// Slots never sent: next may have been pushed past slots; find the first
	// unsent one from what was recorded.
	sent := r.done.Load()
	var unsent uint64
	if sent < slots && ctx.Err() == nil {
		unsent = slots - sent
		s := &r.shards[0]
		s.mu.Lock()
		for i := sent; i < slots; i++ {
			at := sched(i)
			lat := end.Sub(at)
			s.all.Record(int64(lat))
			s.bucket(at.Sub(start), r.width).Hist.Record(int64(lat))
		}
		s.mu.Unlock()
	}
	p := r.phase("open", cfg, start)
	p.TargetRate = rate
	p.Unsent = unsent
	p.MaxLag = time.Duration(maxLag.Load())
	if p.Elapsed < cfg.Duration {
		p.Elapsed = cfg.Duration
	}
	return p
}

// Quantiles are the points of a percentile-distribution chart.
var Quantiles = []float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1}

// SortedLabels lists a phase's labels in order.
func (p *Phase) SortedLabels() []string {
	ls := make([]string, 0, len(p.ByLabel))
	for l := range p.ByLabel {
		ls = append(ls, l)
	}
	sort.Strings(ls)
	return ls
}

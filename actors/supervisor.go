package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// putBackTimeout bounds putting back the job of a crashed worker.
const putBackTimeout = 10 * time.Second

// ImagePool is a running image supervisor with its workers.
type ImagePool struct {
	system    *actor.ActorSystem
	pid       *actor.PID
	stopFeed  context.CancelFunc
	stopJobs  context.CancelFunc
	fed       sync.WaitGroup // the feeder goroutine
	inflight  sync.WaitGroup // jobs handed to workers and not yet finished or put back
	workerCtx context.Context
	up        atomic.Int32 // workers started and not crashed since
	running   atomic.Int32 // jobs taken from the queue and not yet finished or put back
}

// StartImages spawns the image supervisor, which spawns deps.Workers worker
// actors and takes a job from the queue only when one of them is free.
//
// A worker that crashes (a panic while it runs a job) is restarted after a
// backoff that doubles with each crash of that worker in a row (without a
// job run to its end in between, within deps.RestartWindow), up to
// deps.RestartBackoffMax, however often it crashes: the pool never shrinks
// for good. The job it held is put back
// with a retry delay (its attempt was counted before it ran, so a job that
// crashes every worker is failed after deps.MaxAttempts starts); the other
// workers go on meanwhile. While a worker waits for its restart, no job is
// taken for it.
func StartImages(system *actor.ActorSystem, deps ImageDeps) (*ImagePool, error) {
	deps.defaults()
	pool := &ImagePool{system: system}
	var feedCtx context.Context
	feedCtx, pool.stopFeed = context.WithCancel(context.Background())
	pool.workerCtx, pool.stopJobs = context.WithCancel(context.Background())
	tokens := make(chan struct{}, deps.Workers)
	sup := &supervisor{deps: &deps, pool: pool, tokens: tokens, busy: map[string]catalog.Delivery{},
		up: map[string]bool{}, crashes: map[string]*crashes{}, restarts: map[string]*time.Timer{}}
	pid, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return sup }), "image-supervisor")
	if err != nil {
		return nil, fmt.Errorf("spawn image supervisor: %w", err)
	}
	pool.pid = pid
	pool.fed.Add(1)
	go pool.feed(feedCtx, &deps, tokens)
	return pool, nil
}

// Workers counts the workers that are running: started, and not crashed
// since. It is deps.Workers but while crashed workers wait for their
// restart.
func (p *ImagePool) Workers() int { return int(p.up.Load()) }

// InFlight counts the jobs taken from the queue whose outcome is not
// stored yet.
func (p *ImagePool) InFlight() int { return int(p.running.Load()) }

// taken and settled count a job in and out of flight.
func (p *ImagePool) taken() {
	p.inflight.Add(1)
	p.running.Add(1)
}

func (p *ImagePool) settled() {
	p.running.Add(-1)
	p.inflight.Done()
}

// feed takes a job from the queue whenever a worker is free: the queue is
// the buffer, so memory stays bounded however many jobs wait.
func (p *ImagePool) feed(ctx context.Context, deps *ImageDeps, tokens chan struct{}) {
	defer p.fed.Done()
	for {
		select {
		case <-tokens:
		case <-ctx.Done():
			return
		}
		d, err := deps.Queue.Receive(ctx)
		if err != nil {
			tokens <- struct{}{} // the worker is still free; tokens never outnumber the workers
			if ctx.Err() != nil {
				return
			}
			deps.Log.Warn("receive image job", zap.Error(err))
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		p.taken()
		p.system.Root.Send(p.pid, &dispatch{d: d})
	}
}

// Stop stops taking jobs and waits for running ones until ctx ends; jobs
// still running then are cancelled and stay in the queue, to be delivered
// again.
func (p *ImagePool) Stop(ctx context.Context) error {
	p.stopFeed()
	p.fed.Wait()
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("image jobs still running at shutdown: %w", ctx.Err())
		p.stopJobs()
		<-done
	}
	p.stopJobs()
	if stopErr := p.system.Root.StopFuture(p.pid).Wait(); stopErr != nil && err == nil {
		err = fmt.Errorf("stop image supervisor: %w", stopErr)
	}
	return err
}

type dispatch struct{ d catalog.Delivery }
type work struct{ d catalog.Delivery }
type workDone struct{ worker *actor.PID }

// workerReady is what a worker says when it starts, and after each restart.
type workerReady struct{ worker *actor.PID }

// supervisor hands jobs to free workers and restarts crashed ones. Nothing
// it does inside the actor blocks: putting a crashed worker's job back
// runs beside it, under a deadline.
type supervisor struct {
	deps     *ImageDeps
	pool     *ImagePool
	tokens   chan struct{}
	free     []*actor.PID
	busy     map[string]catalog.Delivery // by worker PID id
	up       map[string]bool             // workers running, by PID id
	crashes  map[string]*crashes         // by worker PID id
	restarts map[string]*time.Timer      // crashed workers waiting for their restart
	stopping bool
}

// crashes counts a worker's crashes in a row: those less than the restart
// window apart, with no job run to its end in between.
type crashes struct {
	n    int
	last time.Time
}

func (s *supervisor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		s.spawnWorkers(c)
	case *workerReady:
		s.ready(m.worker)
	case *dispatch:
		s.dispatch(c, m.d)
	case *workDone:
		s.release(m.worker)
	case *actor.Stopping:
		s.stopping = true
		for id, t := range s.restarts {
			t.Stop()
			delete(s.restarts, id)
		}
	case *actor.Terminated:
		s.forget(m.Who)
	}
}

func (s *supervisor) spawnWorkers(c actor.Context) {
	props := actor.PropsFromProducer(func() actor.Actor { return &worker{deps: s.deps, ctx: s.pool.workerCtx} })
	for i := 0; i < s.deps.Workers; i++ {
		if _, err := c.SpawnNamed(props, fmt.Sprintf("worker-%d", i)); err != nil {
			s.deps.Log.Error("spawn image worker", zap.Int("worker", i), zap.Error(err))
		}
	}
}

// ready takes a started (or restarted) worker into the pool, free.
func (s *supervisor) ready(w *actor.PID) {
	if s.stopping || s.up[w.Id] {
		return
	}
	s.up[w.Id] = true
	s.pool.up.Store(int32(len(s.up))) // #nosec G115 -- len(s.up) ≤ deps.Workers, one spawned actor each: nowhere near 2^31
	s.free = append(s.free, w)
	s.giveToken()
}

// giveToken lets the feeder take one more job. Tokens never outnumber the
// free workers, so the channel, as large as the pool, always has room.
func (s *supervisor) giveToken() {
	select {
	case s.tokens <- struct{}{}:
	default:
		s.deps.Log.Error("image supervisor: more free workers than the pool holds")
	}
}

func (s *supervisor) dispatch(c actor.Context, d catalog.Delivery) {
	if len(s.free) == 0 { // a token was given for every free worker: never
		s.deps.Log.Error("image job dispatched with no free worker; put back", zap.String("image_id", d.Job().ImageID))
		s.putBack(d, s.deps.RetryBase)
		return
	}
	w := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.busy[w.Id] = d
	c.Send(w, &work{d: d})
}

func (s *supervisor) release(w *actor.PID) {
	if _, ok := s.busy[w.Id]; !ok {
		return
	}
	delete(s.busy, w.Id)
	delete(s.crashes, w.Id) // it ran a job to its end: its next crash starts from the first backoff
	s.free = append(s.free, w)
	s.giveToken()
	s.pool.settled()
}

// forget drops a worker that stopped.
func (s *supervisor) forget(w *actor.PID) {
	for i, f := range s.free {
		if f.Id == w.Id {
			s.free = append(s.free[:i], s.free[i+1:]...)
			break
		}
	}
	delete(s.up, w.Id)
	s.pool.up.Store(int32(len(s.up))) // #nosec G115 -- len(s.up) ≤ deps.Workers, one spawned actor each: nowhere near 2^31
}

// HandleFailure is called, inside the supervisor, when a worker panics:
// the job it held is put back with a retry delay, and the worker is
// restarted after its backoff.
func (s *supervisor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ interface{}) {
	n := s.crashed(child.Id)
	delay := restartDelay(s.deps.RestartBackoff, s.deps.RestartBackoffMax, n)
	fields := []zap.Field{zap.String("worker", child.Id), zap.Any("reason", reason),
		zap.Int("crashes_in_a_row", n), zap.Duration("restart_in", delay)}
	if d, ok := s.busy[child.Id]; ok {
		delete(s.busy, child.Id)
		fields = append(fields, zap.String("image_id", d.Job().ImageID), zap.Int("attempt", d.Attempt()))
		s.putBack(d, backoff(s.deps.RetryBase, d.Attempt()))
	}
	s.deps.Log.Error("image worker crashed; job put back, worker restarted after a backoff", fields...)
	s.takeOut(child)
	if s.stopping {
		return
	}
	if t := s.restarts[child.Id]; t != nil {
		t.Stop()
	}
	s.restarts[child.Id] = time.AfterFunc(delay, func() { sup.RestartChildren(child) })
}

// crashed counts a crash of worker id and returns its crashes in a row.
func (s *supervisor) crashed(id string) int {
	now := s.deps.Now()
	c := s.crashes[id]
	if c == nil {
		c = &crashes{}
		s.crashes[id] = c
	}
	if now.Sub(c.last) >= s.deps.RestartWindow {
		c.n = 0 // a quiet worker starts again from the first backoff
	}
	c.n++
	c.last = now
	return c.n
}

// takeOut removes a crashed worker from the pool until it is ready again.
func (s *supervisor) takeOut(w *actor.PID) {
	for i, f := range s.free { // a crash outside a job: it is not free either
		if f.Id == w.Id {
			s.free = append(s.free[:i], s.free[i+1:]...)
			select {
			case <-s.tokens:
			default: // the feeder holds it: its dispatch finds one worker fewer
			}
			break
		}
	}
	delete(s.up, w.Id)
	s.pool.up.Store(int32(len(s.up))) // #nosec G115 -- len(s.up) ≤ deps.Workers, one spawned actor each: nowhere near 2^31
}

// putBack retries a delivery after delay, beside the actor and under a
// deadline; the job counts as in flight until it is back.
func (s *supervisor) putBack(d catalog.Delivery, delay time.Duration) {
	go func() {
		defer s.pool.settled()
		ctx, cancel := context.WithTimeout(context.Background(), putBackTimeout)
		defer cancel()
		if err := d.Retry(ctx, delay); err != nil {
			s.deps.Log.Error("put back image job", zap.String("image_id", d.Job().ImageID), zap.Error(err))
		}
	}()
}

// restartDelay is the backoff before a worker's restart after its nth
// crash in the window: base doubled n-1 times, capped, with jitter (the
// upper half of the range), so crashed workers do not all come back at once.
// A function of n, which the supervisor counts: not a cenkalti/backoff
// BackOff, whose state would have to follow each worker.
func restartDelay(base, most time.Duration, n int) time.Duration {
	d := base << min(max(n-1, 0), 20)
	if d <= 0 || d > most {
		d = most
	}
	return d/2 + rand.N(d/2+1) // #nosec G404 -- jitter, not security
}

// backoff is exponential with full jitter, capped at five minutes. A
// function of the attempt number, which the job's row keeps across
// processes: cenkalti/backoff's BackOff keeps its state in memory instead.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 16)
	if d <= 0 || d > 5*time.Minute {
		d = 5 * time.Minute
	}
	return d/2 + rand.N(d/2+1) // #nosec G404 -- jitter, not security
}

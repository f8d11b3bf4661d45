package main

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// eventStore keeps products' events and the webhook delivery log.
type eventStore interface {
	catalog.EventLog
	catalog.WebhookLog
}

// eventLogOf is the event log a node uses: the database's when it is one
// every node shares (PostgreSQL), else this process's memory (the embedded
// default runs one node).
func eventLogOf(db database, retention time.Duration) eventStore {
	if shared, ok := db.(eventStore); ok {
		return shared
	}
	return memory.NewEvents(memory.EventOptions{Retention: retention})
}

// eventSink is what product grains emit to: the event log, within a
// bounded wait, then the webhooks, which queue without waiting.
//
// The event is written after the product's change is stored, outside its
// transaction, so the log may refuse an event of a change that happened.
// Such an event is not dropped: it waits in a bounded queue of this
// process, which a goroutine appends again with backoff, and the product's
// later events wait behind it, so the log receives each product's events
// in order (a stream that was fanned out a later one first would only see a
// gap). An event given up on (after retryOptions.attempts, with the queue
// full, or pending when the sink closes) is counted as lost and logged as
// an error; live streams then see the gap and send stream.reset.
type eventSink struct {
	log   catalog.EventLog
	hooks actors.EventSink // nil: no webhooks
	zap   *zap.Logger
	opts  retryOptions

	mu      sync.Mutex
	pending map[string]*pendingEvents // by product
	queued  int                       // events in pending
	closed  bool

	wake   chan struct{}
	stop   context.CancelFunc
	done   chan struct{}
	failed atomic.Int64 // appends that failed, first tries and retries
	lost   atomic.Int64 // events never appended
}

// pendingEvents are a product's events waiting for the log, in Seq order:
// the first is retried at due.
type pendingEvents struct {
	evs      []catalog.Event
	attempts int // failed appends of evs[0]
	due      time.Time
}

// retryOptions bound the retries of events the log refused.
type retryOptions struct {
	attempts   int           // appends of one event before it is given up (first try included)
	minBackoff time.Duration // wait before the first retry; doubled after each failure
	maxBackoff time.Duration
	maxQueued  int // events waiting, all products together
}

// defaultRetry retries an event for some four minutes (the log is down, or
// its database fails over), and holds at most 10,000 of them.
func defaultRetry() retryOptions {
	return retryOptions{attempts: 16, minBackoff: 100 * time.Millisecond, maxBackoff: 30 * time.Second, maxQueued: 10_000}
}

// backoff is the wait after an event's nth failed append.
func (o retryOptions) backoff(n int) time.Duration {
	d := o.minBackoff
	for i := 1; i < n && d < o.maxBackoff; i++ {
		d *= 2
	}
	return min(d, o.maxBackoff)
}

// appendTimeout bounds how long a grain waits for the event log: a change
// is stored already, and an event the log refuses is retried later.
const appendTimeout = 2 * time.Second

func newEventSink(log catalog.EventLog, hooks actors.EventSink, logger *zap.Logger) *eventSink {
	return newRetryingSink(log, hooks, logger, defaultRetry())
}

func newRetryingSink(log catalog.EventLog, hooks actors.EventSink, logger *zap.Logger, opts retryOptions) *eventSink {
	ctx, stop := context.WithCancel(context.Background())
	s := &eventSink{log: log, hooks: hooks, zap: logger, opts: opts, pending: map[string]*pendingEvents{},
		wake: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	go s.run(ctx)
	return s
}

// Emit appends e to the log, or queues it to be retried, and hands it to
// the webhooks, which keep their own queue.
func (s *eventSink) Emit(ctx context.Context, e catalog.Event) {
	s.mu.Lock()
	behind := s.pending[e.ProductID] != nil
	if behind { // an earlier event of the product waits: e goes after it
		s.enqueue(e)
	}
	s.mu.Unlock()
	if !behind {
		c, cancel := context.WithTimeout(ctx, appendTimeout)
		err := s.log.Append(c, e)
		cancel()
		if err != nil {
			s.failed.Add(1)
			s.zap.Warn("append event; retrying it in the background", eventFields(e, zap.Error(err))...)
			s.mu.Lock()
			if q := s.enqueue(e); q != nil {
				q.attempts = 1
			}
			s.mu.Unlock()
			s.poke()
		}
	}
	if s.hooks != nil {
		s.hooks.Emit(ctx, e)
	}
}

// enqueue adds e to its product's pending events and returns them (nil
// when e was given up: the queue is full or closed); s.mu is held.
func (s *eventSink) enqueue(e catalog.Event) *pendingEvents {
	if s.closed || s.queued >= s.opts.maxQueued {
		s.giveUp(e, "the retry queue is full or closed", nil)
		return nil
	}
	q := s.pending[e.ProductID]
	if q == nil {
		q = &pendingEvents{due: time.Now().Add(s.opts.minBackoff)}
		s.pending[e.ProductID] = q
	}
	q.evs = append(q.evs, e)
	s.queued++
	return q
}

// giveUp counts e as lost and says so: live streams will send a reset.
func (s *eventSink) giveUp(e catalog.Event, why string, err error) {
	s.lost.Add(1)
	s.zap.Error("event lost: "+why+"; live streams of the product send stream.reset", eventFields(e, zap.Error(err))...)
}

func eventFields(e catalog.Event, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("product_id", e.ProductID), zap.Int64("seq", e.Seq), zap.String("type", string(e.Type))}, more...)
}

func (s *eventSink) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run retries pending events as they come due, until ctx ends.
func (s *eventSink) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := s.retryDue(ctx)
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// retryDue appends the pending events of every product whose retry is due,
// each product's in order until one fails again; it returns how long until
// the next one is due.
func (s *eventSink) retryDue(ctx context.Context) time.Duration {
	next := time.Hour
	s.mu.Lock()
	var due []string
	now := time.Now()
	for id, q := range s.pending {
		if wait := q.due.Sub(now); wait > 0 {
			next = min(next, wait)
		} else {
			due = append(due, id)
		}
	}
	s.mu.Unlock()
	for _, id := range due {
		if wait, ok := s.retry(ctx, id); ok {
			next = min(next, wait)
		}
	}
	return next
}

// retry appends productID's pending events in order; when one fails it is
// due again after a backoff, which retry returns (false: none is left).
func (s *eventSink) retry(ctx context.Context, productID string) (time.Duration, bool) {
	for ctx.Err() == nil {
		s.mu.Lock()
		q := s.pending[productID]
		if q == nil {
			s.mu.Unlock()
			return 0, false
		}
		e := q.evs[0]
		s.mu.Unlock()
		c, cancel := context.WithTimeout(ctx, appendTimeout)
		err := s.log.Append(c, e)
		cancel()
		s.mu.Lock()
		if err == nil {
			attempts := q.attempts + 1
			s.pop(productID, q)
			s.mu.Unlock()
			s.zap.Info("appended event late", eventFields(e, zap.Int("attempts", attempts))...)
			continue
		}
		s.failed.Add(1)
		q.attempts++
		if q.attempts >= s.opts.attempts {
			s.pop(productID, q)
			s.mu.Unlock()
			s.giveUp(e, "the event log refused it "+strconv.Itoa(s.opts.attempts)+" times", err)
			continue
		}
		backoff := s.opts.backoff(q.attempts)
		q.due = time.Now().Add(backoff)
		s.mu.Unlock()
		return backoff, true
	}
	return 0, false
}

// pop removes the first of q, productID's pending events (the next one
// has had no failed append yet); s.mu is held.
func (s *eventSink) pop(productID string, q *pendingEvents) {
	q.evs, q.attempts = q.evs[1:], 0
	s.queued--
	if len(q.evs) == 0 {
		delete(s.pending, productID)
	}
}

// Close stops the retries and tries each pending event once more, until
// ctx ends; those the log still refuses are lost, and counted. Product
// grains must be stopped first (the node left): what they emit afterwards
// is lost.
func (s *eventSink) Close(ctx context.Context) {
	s.stop()
	<-s.done
	s.mu.Lock()
	s.closed = true
	pending := s.pending
	s.pending, s.queued = map[string]*pendingEvents{}, 0
	s.mu.Unlock()
	for _, q := range pending {
		for _, e := range q.evs {
			err := ctx.Err()
			if err == nil {
				c, cancel := context.WithTimeout(ctx, appendTimeout)
				err = s.log.Append(c, e)
				cancel()
			}
			if err != nil {
				s.failed.Add(1)
				s.giveUp(e, "the node stopped before the event log took it", err)
			}
		}
	}
}

// Pending counts the events waiting to be appended again.
func (s *eventSink) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Failed counts the appends the event log refused, retries included.
func (s *eventSink) Failed() int64 { return s.failed.Load() }

// Lost counts the events that never reached the event log.
func (s *eventSink) Lost() int64 { return s.lost.Load() }

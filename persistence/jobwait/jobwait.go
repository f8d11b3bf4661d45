// Package jobwait is how a database-backed job queue waits for work: a
// signal that writers broadcast when a job becomes available, and the
// receive loop that claims a job or sleeps until a wake-up, the next due
// time or the poll interval.
package jobwait

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Signal lets writers wake every receiver waiting for a job.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewSignal returns a Signal.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{})} }

// Wait returns a channel closed at the next Broadcast.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Broadcast wakes every current waiter.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// Claim takes one available job; with none it returns ok false and when
// the next job falls due (nil if none is pending).
type Claim[D any] func(ctx context.Context) (d D, ok bool, due *time.Time, err error)

// Loop waits for a job and claims it.
type Loop struct {
	Signal *Signal
	Closed <-chan struct{} // closed when the store closes
	Poll   time.Duration   // the longest sleep, in case a wake-up is lost
	Now    func() time.Time
}

// Receive claims a job, blocking until there is one, ctx ends or the store
// closes.
func Receive[D any](ctx context.Context, l Loop, claim Claim[D]) (D, error) {
	var zero D
	for {
		wake := l.Signal.Wait() // before the claim, so no wake-up is missed
		d, ok, due, err := claim(ctx)
		if err != nil {
			return zero, fmt.Errorf("receive job: %w", err)
		}
		if ok {
			return d, nil
		}
		wait := l.Poll
		if due != nil {
			if until := due.Sub(l.Now()); until < wait {
				wait = max(until, time.Millisecond)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return zero, fmt.Errorf("receive job: %w", ctx.Err())
		case <-l.Closed:
			timer.Stop()
			return zero, fmt.Errorf("receive job: %w", catalog.Unavailable("job queue", errors.New("database closed")))
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

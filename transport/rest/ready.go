package rest

import (
	"context"
	"sync"
	"time"
)

// Readiness is judged in the background, so that a request to /readyz
// costs the same however often it comes: the checks (a database ping, a
// file written, a broker dialled) run at most once per readyFresh, all
// requests meanwhile sharing their last results.
const (
	// readyFresh: results younger than this answer at once.
	readyFresh = time.Second
	// readyStale: results younger than this answer at once too, and a
	// refresh starts; older ones (or none) wait for the refresh, which
	// every waiting request shares. So an answer reflects checks started
	// at most readyStale before it (each bounded by readyTimeout).
	readyStale = 5 * time.Second
	// readyTimeout bounds one run of the checks.
	readyTimeout = 2 * time.Second
)

// readiness keeps the last results of the checks and refreshes them.
type readiness struct {
	checks []Check
	now    func() time.Time
	runs   func() // called before each run of the checks (tests count them); nil: none

	mu      sync.Mutex
	last    *readyResult  // nil before the first run
	running chan struct{} // closed when the run under way ends; nil when none
}

// readyResult is one run of the checks: each check's "ok" or error, the
// names of those that failed, and when the run started.
type readyResult struct {
	results map[string]string
	failed  []string
	at      time.Time
}

// get returns results no older than readyStale, starting a refresh when
// they are older than readyFresh.
func (r *readiness) get() *readyResult {
	r.mu.Lock()
	last := r.last
	var age time.Duration
	if last != nil {
		age = r.now().Sub(last.at)
	}
	if last != nil && age < readyFresh {
		r.mu.Unlock()
		return last
	}
	done := r.running
	if done == nil {
		done = make(chan struct{})
		r.running = done
		go r.refresh(done)
	}
	r.mu.Unlock()
	if last != nil && age < readyStale {
		return last
	}
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// refresh runs every check and keeps the results.
func (r *readiness) refresh(done chan struct{}) {
	if r.runs != nil {
		r.runs()
	}
	res := &readyResult{results: map[string]string{}, at: r.now()}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, ch := range r.checks {
		if err := ch.Check(ctx); err != nil {
			res.results[ch.Name] = err.Error()
			res.failed = append(res.failed, ch.Name)
		} else {
			res.results[ch.Name] = "ok"
		}
	}
	r.mu.Lock()
	r.last, r.running = res, nil
	r.mu.Unlock()
	close(done)
}

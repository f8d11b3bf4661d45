// Package fakeclock is the settable clock that the persistence tests
// share: one that stands still until told to move, or the real time moved
// forward by a growing offset. Both are safe for concurrent use.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a time source that tests move with Advance.
type Clock struct {
	mu     sync.Mutex
	at     time.Time // the time, when it stands still
	real   bool      // the real time plus offset instead
	offset time.Duration
}

// At is a clock standing still at t.
func At(t time.Time) *Clock { return &Clock{at: t} }

// Offset is the real time, moved forward by each Advance: time passes as
// a suite expects, and a test can still skip a lease.
func Offset() *Clock { return &Clock{real: true} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.offset)
	}
	return c.at
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	c.at = c.at.Add(d)
}

package memory

import (
	"context"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/catalog/access"
)

// Limiter is the in-process access.RateLimiter of one node: the GCRA state
// of each key in sharded maps. Keys idle for longer than their burst takes
// to refill are forgotten, so memory follows the number of active clients.
type Limiter struct {
	now    func() time.Time
	shards [limiterShards]limiterShard
}

const limiterShards = 64

type limiterShard struct {
	mu    sync.Mutex
	tat   map[string]time.Time
	sweep time.Time
}

var _ access.RateLimiter = (*Limiter)(nil)

// NewLimiter returns an empty limiter; now is the clock (time.Now if nil).
func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{now: now}
	for i := range l.shards {
		l.shards[i].tat = map[string]time.Time{}
	}
	return l
}

// Allow counts one request of key against r.
func (l *Limiter) Allow(_ context.Context, key string, r access.Rate) (access.RateDecision, error) {
	now := l.now()
	s := &l.shards[fnv(key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	d, tat := access.GCRA(now, s.tat[key], r)
	s.tat[key] = tat
	if now.After(s.sweep) {
		// A key whose tat has passed is as good as new: drop it.
		for k, t := range s.tat {
			if t.Before(now) {
				delete(s.tat, k)
			}
		}
		s.sweep = now.Add(time.Minute)
	}
	return d, nil
}

// Keys returns how many keys the limiter holds.
func (l *Limiter) Keys() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// fnv is the FNV-1a hash of key.
func fnv(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h
}

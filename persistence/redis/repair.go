package redis

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// A write that fails to reach Redis leaves there an older value, which
// every other node would read. The writer records a repair for the key and
// writes its marker as soon as Redis answers it again: the value goes, and
// the version key holds a stale marker of the write's version for a value
// (a miss: the next read goes to the product's grain, whose refill puts
// the value back) or a deletion marker for a deletion. A background loop
// retries with backoff, so a node that goes idle repairs anyway; reads and
// writes of the node repair first too, so the node itself never reads what
// it missed.
//
// Repairs live in the node's memory: a node that dies takes them along.
// That is what the TTL bounds. Every value that a repair would remove was
// written before the failed write, so it expires at most the TTL after it;
// a repair still pending then is dropped, as it has nothing left to fix.
const (
	// repairFirst is the delay before the first retry of a repair; it
	// doubles with each failure, up to the cooldown.
	repairFirst = 100 * time.Millisecond
	// repairTimeout bounds one retry, longer than a call on the request
	// path: nobody waits for it.
	repairTimeout = time.Second
	// repairBatch is how many repairs one round trip carries.
	repairBatch = 256
	// maxRepairs bounds the repairs kept (about 100 bytes each); past it a
	// failed write is not repaired, and is read by other nodes until its
	// older entry expires, within the TTL, as if its writer had died.
	maxRepairs = 1 << 16
)

// repair is the marker a key needs, and since when.
type repair struct {
	key   string
	at    order
	since time.Time
}

// repairs holds the pending repairs of the node, one per key, safe for
// concurrent use.
type repairs struct {
	mu    sync.Mutex
	keys  map[string]repair
	limit int
	full  bool // at its limit since it last had room
}

func newRepairs(limit int) *repairs {
	return &repairs{keys: map[string]repair{}, limit: limit}
}

// add records that the write at of key failed at now. It reports whether
// the set just ran out of room (to say so once, not on every write).
func (r *repairs) add(key string, at order, now time.Time) (overflowed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.keys[key]; ok {
		if at.after(old.at) {
			r.keys[key] = repair{key: key, at: at, since: now}
		}
		return false
	}
	if len(r.keys) >= r.limit {
		overflowed = !r.full
		r.full = true
		return overflowed
	}
	r.keys[key] = repair{key: key, at: at, since: now}
	return false
}

// settled forgets the repair of key when Redis holds at, or a newer entry,
// which already replaced what the repair would.
func (r *repairs) settled(key string, at order) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.keys[key]; ok && !old.at.after(at) {
		delete(r.keys, key)
	}
}

// done forgets rp once its marker is written, unless a newer repair of its
// key was recorded meanwhile.
func (r *repairs) done(rp repair) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.keys[rp.key]; ok && old == rp {
		delete(r.keys, rp.key)
	}
}

// pending returns the repairs still needed at now: those recorded within
// ttl. Older ones are dropped, as the entries they would replace expired.
func (r *repairs) pending(now time.Time, ttl time.Duration) []repair {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]repair, 0, len(r.keys))
	for k, rp := range r.keys {
		if now.Sub(rp.since) >= ttl {
			delete(r.keys, k)
			continue
		}
		out = append(out, rp)
	}
	if len(r.keys) < r.limit {
		r.full = false
	}
	return out
}

func (r *repairs) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// missed records that the write at of key did not reach Redis, and wakes
// the repair loop.
func (c *Cache) missed(key string, at order) {
	if at.kind == kindValue {
		at.kind = kindStale // the grain's next refill brings the value
	}
	if c.repairs.add(key, at, time.Now()) {
		c.opts.Log.Warn("too many writes missed by redis to repair; other nodes may read older products until they expire",
			zap.Int("repairs", maxRepairs), zap.Duration("ttl", c.opts.TTL))
	}
	select {
	case c.wake <- struct{}{}:
	default: // the loop is awake already
	}
}

// repair writes the markers of the pending repairs. It stops at the first
// failure and returns it; what was written before stays done.
func (c *Cache) repair(ctx context.Context) error {
	pending := c.repairs.pending(time.Now(), c.opts.TTL)
	for len(pending) > 0 {
		batch := pending[:min(len(pending), repairBatch)]
		pending = pending[len(batch):]
		execs := make([]rueidis.LuaExec, len(batch))
		for i, rp := range batch {
			execs[i] = rueidis.LuaExec{Keys: []string{rp.key, versionKey(rp.key)}, Args: []string{rp.at.encode(), c.ttlArg}}
		}
		for i, res := range c.set.ExecMulti(ctx, c.client, execs...) {
			if err := res.Error(); err != nil {
				return fmt.Errorf("repair %s: %w", batch[i].key, err)
			}
			c.repairs.done(batch[i])
		}
	}
	return nil
}

// repairLoop retries the pending repairs until each is written or no
// longer needed, backing off from repairFirst to the cooldown while Redis
// does not answer; it sleeps while there are none. It ends with ctx.
func (c *Cache) repairLoop(ctx context.Context) {
	defer close(c.done)
	delay := repairFirst
	for {
		if c.repairs.len() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
			}
			delay = repairFirst
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, repairTimeout)
		err := c.repair(rctx)
		cancel()
		if err != nil {
			delay = min(2*delay, c.opts.Cooldown)
			c.opts.Log.Debug("repair of writes missed by redis failed; retrying", zap.Duration("in", delay), zap.Error(err))
			continue
		}
		delay = repairFirst
	}
}

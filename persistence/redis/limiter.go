package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/vitrine-dev/vitrine/catalog/access"
	"go.uber.org/zap"
)

// gcraScript is access.GCRA run inside Redis, so that every node counts
// against one state per key; the clock is the Redis server's, so nodes'
// clocks need not agree. The state is the theoretical arrival time in
// microseconds, kept just as long as it matters.
//
// KEYS[1]: the key; ARGV[1]: the interval, µs; ARGV[2]: the burst.
// Returns {allowed, remaining, retry after µs, reset µs}.
const gcraScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
local allow_at = nxt - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
return {1, math.floor((tolerance - (nxt - now)) / interval), 0, nxt - now}
`

// Limiter is the shared access.RateLimiter: one GCRA state per key in
// Redis, for every node. While Redis is unreachable each node counts
// alone, through its fallback: limits loosen to per-node ones instead of
// failing requests. The limiter has a breaker of its own, and a longer
// call timeout than the cache's (limiterTimeout): a busy node's slow reply
// must not split the shared limit into per-node ones.
type Limiter struct {
	cache     *Cache
	script    *rueidis.Lua
	prefix    string
	fallback  access.RateLimiter
	openUntil atomic.Int64 // unix nanos: while now < openUntil, Redis is not asked
}

// limiterTimeout bounds one limiter call to Redis.
const limiterTimeout = 250 * time.Millisecond

var _ access.RateLimiter = (*Limiter)(nil)

// Limiter returns a rate limiter over the cache's Redis connection.
func (c *Cache) Limiter(fallback access.RateLimiter) *Limiter {
	return &Limiter{cache: c, script: rueidis.NewLuaScript(gcraScript), prefix: "vitrine:rate:", fallback: fallback}
}

// Allow counts one request of key against r.
func (l *Limiter) Allow(ctx context.Context, key string, r access.Rate) (access.RateDecision, error) {
	if time.Now().UnixNano() < l.openUntil.Load() {
		return l.fallback.Allow(ctx, key, r)
	}
	ctx, cancel := context.WithTimeout(ctx, limiterTimeout)
	defer cancel()
	interval := max(r.Interval().Microseconds(), 1)
	vals, err := l.script.Exec(ctx, l.cache.client, []string{l.prefix + key},
		[]string{fmt.Sprint(interval), fmt.Sprint(max(r.Burst, 1))}).AsIntSlice()
	if err == nil && len(vals) != 4 {
		err = fmt.Errorf("rate script returned %d values", len(vals))
	}
	if err != nil {
		if time.Now().UnixNano() >= l.openUntil.Load() {
			l.cache.opts.Log.Warn("redis rate limiter unavailable; limits count per node", zap.Duration("for", l.cache.opts.Cooldown), zap.Error(err))
		}
		l.openUntil.Store(time.Now().Add(l.cache.opts.Cooldown).UnixNano())
		return l.fallback.Allow(ctx, key, r)
	}
	return access.RateDecision{
		Allowed:    vals[0] == 1,
		Remaining:  int(vals[1]),
		RetryAfter: time.Duration(vals[2]) * time.Microsecond,
		Reset:      time.Duration(vals[3]) * time.Microsecond,
	}, nil
}

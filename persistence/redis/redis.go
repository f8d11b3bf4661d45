// Package redis is the production catalog.Cache: Redis through rueidis with
// server-assisted client-side caching. A hot product is answered from this
// node's memory; when any node changes it, Redis tells every node holding
// a copy to drop it. When Redis is down or slow, a circuit breaker turns
// every call into a fast miss, so reads fall back to the product actors.
package redis

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/cachemetrics"
)

// Options tune the cache.
type Options struct {
	// Prefix starts every key; default "vitrine:product:".
	Prefix string
	// TTL bounds how long Redis keeps a product; default 10 minutes. It also
	// bounds how long a write missed during an outage can be served stale.
	TTL time.Duration
	// LocalTTL bounds how long this node keeps a copy in memory between
	// invalidations; default one minute.
	LocalTTL time.Duration
	// Timeout bounds one Redis call; default 50 ms.
	Timeout time.Duration
	// Cooldown is how long the breaker stays open after a failure; default 2 s.
	Cooldown time.Duration
	// LocalBytes is the client-side cache size per connection; default 64 MiB.
	LocalBytes int
	Log        *zap.Logger
	// Metrics counts lookups by layer; nil: none.
	Metrics *cachemetrics.Metrics
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "vitrine:product:"
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.LocalTTL <= 0 {
		o.LocalTTL = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 2 * time.Second
	}
	if o.LocalBytes <= 0 {
		o.LocalBytes = 64 << 20
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
}

// Cache is a catalog.Cache over Redis.
type Cache struct {
	opts   Options
	client rueidis.Client
	// openUntil is the breaker (one atomic timestamp rather than
	// sony/gobreaker, whose mutex per call would cost more than the check
	// on the cached read path): while now < openUntil (unix nanos), Redis
	// is not asked at all.
	openUntil atomic.Int64
	// dirty holds keys whose write or delete failed while Redis was
	// unreachable: they are deleted before the breaker closes, so no node
	// reads a copy older than a write it missed.
	mu    sync.Mutex
	dirty map[string]struct{}
	// recent holds this node's own writes for a moment: Redis's
	// invalidation of the node's tracked copy arrives asynchronously, and
	// a read right after a write must not see the copy from before it.
	rmu    sync.Mutex
	recent map[string]recentWrite
}

type recentWrite struct {
	value   []byte // nil: deleted
	expires time.Time
}

// recentFor is how long a node trusts its own write over Redis: far longer
// than an invalidation takes to arrive on loopback or a LAN.
const recentFor = time.Second

func (c *Cache) remember(key string, value []byte) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	now := time.Now()
	if len(c.recent) > 4096 {
		for k, w := range c.recent {
			if now.After(w.expires) {
				delete(c.recent, k)
			}
		}
	}
	c.recent[key] = recentWrite{value: value, expires: now.Add(recentFor)}
}

func (c *Cache) recentWrite(key string) (recentWrite, bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	w, ok := c.recent[key]
	if ok && time.Now().After(w.expires) {
		delete(c.recent, key)
		return w, false
	}
	return w, ok
}

var _ catalog.Cache = (*Cache)(nil)

// New connects to the Redis at url (redis://host:port/db). Redis need not
// be up: the client reconnects by itself and the breaker covers the gap.
func New(url string, opts Options) (*Cache, error) {
	opts.defaults()
	co, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	co.CacheSizeEachConn = opts.LocalBytes
	co.Dialer.Timeout = time.Second
	co.ConnWriteTimeout = time.Second
	co.DisableRetry = true // a slow retry is worse than a miss here
	co.ForceSingleClient = true
	c := &Cache{opts: opts, dirty: map[string]struct{}{}, recent: map[string]recentWrite{}}
	// With ForceSingleClient, rueidis returns a usable client even when
	// the first dial fails: it dials again on use.
	c.client, err = rueidis.NewClient(co)
	if c.client == nil {
		return nil, fmt.Errorf("redis client: %w", err)
	}
	if err != nil {
		c.trip(err)
	}
	return c, nil
}

// Close closes the client.
func (c *Cache) Close() { c.client.Close() }

func (c *Cache) open() bool { return time.Now().UnixNano() < c.openUntil.Load() }

func (c *Cache) trip(err error) {
	if !c.open() {
		c.opts.Log.Warn("redis unavailable; serving without it", zap.Duration("for", c.opts.Cooldown), zap.Error(err))
	}
	c.openUntil.Store(time.Now().Add(c.opts.Cooldown).UnixNano())
}

// healthy is called after a successful call: flush what was missed.
func (c *Cache) healthy(ctx context.Context) {
	c.mu.Lock()
	if len(c.dirty) == 0 {
		c.mu.Unlock()
		return
	}
	keys := make([]string, 0, len(c.dirty))
	for k := range c.dirty {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	if err := c.client.Do(ctx, c.client.B().Del().Key(keys...).Build()).Error(); err != nil {
		c.trip(err)
		return
	}
	c.mu.Lock()
	for _, k := range keys {
		delete(c.dirty, k)
	}
	c.mu.Unlock()
}

func (c *Cache) markDirty(key string) {
	c.mu.Lock()
	c.dirty[key] = struct{}{}
	c.mu.Unlock()
}

func (c *Cache) hasDirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dirty) > 0
}

// Get answers from this node's memory when it holds a tracked copy, else
// from Redis; any failure is a miss.
func (c *Cache) Get(ctx context.Context, id string) ([]byte, bool) {
	key := c.opts.Prefix + id
	if w, ok := c.recentWrite(key); ok {
		c.opts.Metrics.Local(w.value != nil)
		return w.value, w.value != nil
	}
	if c.open() {
		c.opts.Metrics.Unavailable()
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if c.hasDirty() {
		c.healthy(ctx)
		if c.open() {
			c.opts.Metrics.Unavailable()
			return nil, false
		}
	}
	res := c.client.DoCache(ctx, c.client.B().Get().Key(key).Cache(), c.opts.LocalTTL)
	v, err := res.AsBytes()
	switch {
	case rueidis.IsRedisNil(err):
		c.count(res.IsCacheHit(), false)
		return nil, false
	case err != nil:
		c.opts.Metrics.Unavailable()
		c.trip(err)
		return nil, false
	}
	c.count(res.IsCacheHit(), true)
	return v, true
}

// count records a lookup: answered from this node's memory (a tracked
// copy), or by Redis.
func (c *Cache) count(local, hit bool) {
	if local {
		c.opts.Metrics.Local(hit)
	} else {
		c.opts.Metrics.Redis(hit)
	}
}

// Set stores value; Redis invalidates every node's copy of the key.
func (c *Cache) Set(ctx context.Context, id string, value []byte) {
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	c.remember(c.opts.Prefix+id, value)
	c.write(ctx, id, c.client.B().Set().Key(c.opts.Prefix+id).Value(rueidis.BinaryString(value)).Ex(c.opts.TTL).Build())
}

// Delete removes the key; Redis invalidates every node's copy.
func (c *Cache) Delete(ctx context.Context, id string) {
	c.remember(c.opts.Prefix+id, nil)
	c.write(ctx, id, c.client.B().Del().Key(c.opts.Prefix+id).Build())
}

func (c *Cache) write(ctx context.Context, id string, cmd rueidis.Completed) {
	key := c.opts.Prefix + id
	if c.open() {
		c.markDirty(key)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if err := c.client.Do(ctx, cmd).Error(); err != nil {
		c.markDirty(key)
		c.trip(err)
		return
	}
	c.healthy(ctx)
}

// Ping checks that Redis answers.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.client.Do(ctx, c.client.B().Ping().Build()).Error(); err != nil {
		return catalog.Unavailable("redis", err)
	}
	return nil
}

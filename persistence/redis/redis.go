// Package redis is the production catalog.Cache: Redis through rueidis with
// server-assisted client-side caching. A hot product is answered from this
// node's memory; when any node changes it, Redis tells every node holding
// a copy to drop it. When Redis is down or slow, a circuit breaker turns
// every call into a fast miss, so reads fall back to the product actors.
//
// Every value has its product's version beside it, and a script writes it
// only over an older one, so a late write never replaces a newer one
// (version.go); a write that fails is repaired as soon as Redis answers
// again, and within the TTL in any case (repair.go).
package redis

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
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
	// TTL bounds how long Redis keeps an entry (a product, or the marker
	// of a deletion or of a missed write); default DefaultTTL. It bounds how
	// long other nodes may read a product older than a write that failed to
	// reach Redis, when its writer cannot repair the key before (it died,
	// or Redis stayed unreachable from it); and the product's grain renders
	// it again about once per TTL while it is read.
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

// DefaultTTL is the default of Options.TTL: the longest a product older
// than a write can be read on other nodes after that write failed to reach
// Redis. A refill costs one grain call per product and TTL, which is
// nothing to a product read often enough to be worth caching.
const DefaultTTL = time.Minute

// This node answers from its tracked copies only while Redis can tell it
// of every change: a copy is dropped by Redis's invalidation, or with the
// connection that would have carried it. When Redis stops answering the
// node (a partition, even a silent one that drops packets without a reset),
// invalidations stop arriving, and the copies go at the latest when
// rueidis's PING on an idle connection goes unanswered: a tick of PingEvery
// that still saw replies, the next one that sends PING, and AnswerWithin
// for its answer.
const (
	PingEvery    = time.Second
	AnswerWithin = time.Second
	// TrustBound is the longest this node answers from its copies after
	// Redis stopped reaching it (TestPartitionRedis, cmd/vitrine); its
	// reads then miss, and go to the products' grains.
	TrustBound = 2*PingEvery + AnswerWithin
)

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "vitrine:product:"
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
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
	set    *rueidis.Lua // setScript
	ttlArg string       // opts.TTL in ms, setScript's ARGV[2]
	// openUntil is the breaker (one atomic timestamp rather than
	// sony/gobreaker, whose mutex per call would cost more than the check
	// on the cached read path): while now < openUntil (unix nanos), Redis
	// is not asked at all.
	openUntil atomic.Int64
	// repairs holds the writes Redis missed (repair.go); the repair loop
	// retries them, woken through wake, until stop; done closes when it
	// has returned.
	repairs *repairs
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
	// recent holds this node's own writes for a moment: Redis's
	// invalidation of the node's tracked copy arrives asynchronously, and
	// a read right after a write must not see the copy from before it.
	rmu    sync.Mutex
	recent map[string]recentWrite
}

type recentWrite struct {
	at      order
	value   []byte // nil: deleted
	expires time.Time
}

// recentFor is how long a node trusts its own write over Redis: far longer
// than an invalidation takes to arrive on loopback or a LAN.
const recentFor = time.Second

// remember keeps the node's write at of key, unless it remembers a newer
// one: a late write must not hide a newer one from the node itself either.
func (c *Cache) remember(key string, at order, value []byte) {
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
	if w, ok := c.recent[key]; ok && !now.After(w.expires) && w.at.after(at) {
		return
	}
	c.recent[key] = recentWrite{at: at, value: value, expires: now.Add(recentFor)}
}

// forget drops the node's write at of key: Redis refused it for a newer
// entry, which the node must read instead.
func (c *Cache) forget(key string, at order) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if w, ok := c.recent[key]; ok && w.at == at {
		delete(c.recent, key)
	}
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
	// rueidis watches the connection: past a PingEvery without a reply it
	// sends PING, and a connection that leaves it unanswered for
	// AnswerWithin is closed, this node's tracked copies with it (TrustBound).
	co.Dialer.KeepAlive = PingEvery
	co.ConnWriteTimeout = AnswerWithin
	co.DisableRetry = true // a slow retry is worse than a miss here
	co.ForceSingleClient = true
	c := &Cache{opts: opts, set: rueidis.NewLuaScript(setScript), ttlArg: strconv.FormatInt(max(opts.TTL.Milliseconds(), 1), 10),
		repairs: newRepairs(maxRepairs), wake: make(chan struct{}, 1), done: make(chan struct{}),
		recent: map[string]recentWrite{}}
	// With ForceSingleClient, rueidis returns a usable client even when
	// the first dial fails: it dials again on use.
	c.client, err = rueidis.NewClient(co)
	if c.client == nil {
		return nil, fmt.Errorf("redis client: %w", err)
	}
	if err != nil {
		c.trip(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.repairLoop(ctx)
	return c, nil
}

// Close stops the repair loop and closes the client. A node that leaves
// tries its pending repairs once more first, for at most repairTimeout:
// they die with it, and other nodes would read what it missed until the
// older entries expire.
func (c *Cache) Close() {
	c.stop()
	<-c.done
	if c.repairs.len() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
		if err := c.repair(ctx); err != nil {
			c.opts.Log.Warn("writes missed by redis left unrepaired; other nodes may read older products until they expire",
				zap.Int("repairs", c.repairs.len()), zap.Duration("ttl", c.opts.TTL), zap.Error(err))
		}
		cancel()
	}
	c.client.Close()
}

func (c *Cache) open() bool { return time.Now().UnixNano() < c.openUntil.Load() }

func (c *Cache) trip(err error) {
	if !c.open() {
		c.opts.Log.Warn("redis unavailable; serving without it", zap.Duration("for", c.opts.Cooldown), zap.Error(err))
	}
	c.openUntil.Store(time.Now().Add(c.opts.Cooldown).UnixNano())
}

// healthy is called after a successful call: repair what was missed, so
// that this node does not read it either.
func (c *Cache) healthy(ctx context.Context) {
	if c.repairs.len() == 0 {
		return
	}
	if err := c.repair(ctx); err != nil {
		c.trip(err)
	}
}

// hasDirty reports whether writes missed by Redis wait for their repair.
func (c *Cache) hasDirty() bool { return c.repairs.len() > 0 }

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

// Set stores value at version unless Redis holds that version or a newer
// one (or the product's deletion); Redis invalidates every node's copy of
// the key.
func (c *Cache) Set(ctx context.Context, id string, version int64, value []byte) {
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{}
	}
	key := c.opts.Prefix + id
	at := order{version: max(version, 0), kind: kindValue}
	c.remember(key, at, value)
	c.write(ctx, key, at, []string{at.encode(), c.ttlArg, rueidis.BinaryString(value)})
}

// Delete removes the value and marks the product's deletion at version,
// which refuses every later Set of that version or an older one until it
// expires with the TTL; Redis invalidates every node's copy.
func (c *Cache) Delete(ctx context.Context, id string, version int64) {
	key := c.opts.Prefix + id
	at := order{version: max(version, 0), kind: kindDeleted}
	c.remember(key, at, nil)
	c.write(ctx, key, at, []string{at.encode(), c.ttlArg})
}

// write runs setScript with args for the write at of key; a write that
// fails, or that the breaker skips, is repaired later.
func (c *Cache) write(ctx context.Context, key string, at order, args []string) {
	if c.open() {
		c.missed(key, at)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	wrote, err := c.set.Exec(ctx, c.client, []string{key, versionKey(key)}, args).AsInt64()
	if err != nil {
		c.missed(key, at)
		c.trip(err)
		return
	}
	c.repairs.settled(key, at) // Redis holds at, or newer
	if wrote == 0 {
		c.forget(key, at)
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

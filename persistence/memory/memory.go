// Package memory is vitrine's embedded default cache: rendered products kept
// in the process's memory.
package memory

import (
	"context"
	"sync"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/cachemetrics"
)

// maxShards bounds the number of shards; each has its own lock, so readers
// of different products rarely meet.
const maxShards = 32

// Cache is a bounded in-process catalog.Cache, safe for concurrent use. Keys
// are spread over shards, each a map under a read-write lock, so reads
// proceed in parallel and Get does not allocate. It holds at most
// maxEntries values: when the shard a new key falls in is full, an arbitrary
// entry of that shard is evicted (the first that Go's randomised map
// iteration yields). Random eviction needs no bookkeeping on the read path,
// so reads stay lock-shared and allocation-free, and a hot entry evicted by
// chance is rendered and cached again on its next read.
type Cache struct {
	shards  []shard
	mask    uint64
	metrics *cachemetrics.Metrics
}

type shard struct {
	mu       sync.RWMutex
	values   map[string][]byte
	capacity int
}

var _ catalog.Cache = (*Cache)(nil)

// New returns a cache holding at most maxEntries values; with 0 or less it
// keeps nothing.
func New(maxEntries int) *Cache {
	maxEntries = max(maxEntries, 0)
	n := maxShards
	for n > 1 && n > maxEntries {
		n /= 2
	}
	c := &Cache{shards: make([]shard, n), mask: uint64(n - 1)} // #nosec G115 -- n ≥ 1
	for i := range c.shards {
		capacity := maxEntries / n
		if i < maxEntries%n {
			capacity++
		}
		c.shards[i] = shard{values: make(map[string][]byte), capacity: capacity}
	}
	return c
}

// Instrument makes the cache count its lookups in m; call it before use.
func (c *Cache) Instrument(m *cachemetrics.Metrics) *Cache {
	c.metrics = m
	return c
}

// shard returns the shard of key, by its FNV-1a hash.
func (c *Cache) shard(key string) *shard {
	return &c.shards[fnv(key)&c.mask]
}

// Get returns the value kept for id. The caller must not modify it.
func (c *Cache) Get(_ context.Context, id string) ([]byte, bool) {
	s := c.shard(id)
	s.mu.RLock()
	v, ok := s.values[id]
	s.mu.RUnlock()
	c.metrics.Local(ok)
	return v, ok
}

// Set keeps a copy of value for id, evicting another entry if the shard is
// full.
func (c *Cache) Set(_ context.Context, id string, value []byte) {
	s := c.shard(id)
	if s.capacity == 0 {
		return
	}
	v := make([]byte, len(value))
	copy(v, value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[id]; !ok && len(s.values) >= s.capacity {
		for k := range s.values { // map iteration starts at a random entry
			delete(s.values, k)
			break
		}
	}
	s.values[id] = v
}

// Delete forgets id.
func (c *Cache) Delete(_ context.Context, id string) {
	s := c.shard(id)
	s.mu.Lock()
	delete(s.values, id)
	s.mu.Unlock()
}

// Len returns the number of values kept.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.values)
		s.mu.RUnlock()
	}
	return n
}

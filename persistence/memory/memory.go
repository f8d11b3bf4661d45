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
//
// Each entry keeps the version it was written at, and a deleted product
// leaves a marker with its last version, so that the cache keeps the newest
// write it was given (catalog.Cache). Markers take room like values do.
type Cache struct {
	shards  []shard
	mask    uint64
	metrics *cachemetrics.Metrics
}

type shard struct {
	mu       sync.RWMutex
	values   map[string]entry
	capacity int
}

// entry is a product's value at a version, or the marker of its deletion.
type entry struct {
	value   []byte
	version int64
	deleted bool
}

// newer reports whether a write of version (a deletion when deleted)
// supersedes e: a later version does, and at one version a deletion
// supersedes the value, since it is the product's last change.
func (e entry) newer(version int64, deleted bool) bool {
	return version > e.version || version == e.version && deleted && !e.deleted
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
		c.shards[i] = shard{values: make(map[string]entry), capacity: capacity}
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
	e, ok := s.values[id]
	s.mu.RUnlock()
	ok = ok && !e.deleted
	c.metrics.Local(ok)
	if !ok {
		return nil, false
	}
	return e.value, true
}

// Set keeps a copy of value for id at version, unless the entry kept is as
// new or newer; it evicts another entry if the shard is full.
func (c *Cache) Set(_ context.Context, id string, version int64, value []byte) {
	if c.shard(id).capacity == 0 {
		return // a cache that keeps nothing copies nothing
	}
	v := make([]byte, len(value))
	copy(v, value)
	c.put(id, entry{value: v, version: version})
}

// Delete forgets id, keeping the marker of its deletion at version.
func (c *Cache) Delete(_ context.Context, id string, version int64) {
	c.put(id, entry{version: version, deleted: true})
}

func (c *Cache) put(id string, e entry) {
	s := c.shard(id)
	if s.capacity == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.values[id]
	if ok && !old.newer(e.version, e.deleted) {
		return
	}
	if !ok && len(s.values) >= s.capacity {
		for k := range s.values { // map iteration starts at a random entry
			delete(s.values, k)
			break
		}
	}
	s.values[id] = e
}

// Evict drops whatever is kept for id, value or deletion marker, as the
// eviction of a full shard does: unlike Delete, it refuses no later Set.
func (c *Cache) Evict(id string) {
	s := c.shard(id)
	s.mu.Lock()
	delete(s.values, id)
	s.mu.Unlock()
}

// Len returns the number of values kept, deletion markers left out.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for _, e := range s.values {
			if !e.deleted {
				n++
			}
		}
		s.mu.RUnlock()
	}
	return n
}

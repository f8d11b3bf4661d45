// Package pagecache keeps pages of product ids that a store listed, until
// a product is written. Every write that may change a page (a product
// created, deleted, or its owner, price or name changed) starts a new
// generation, and a page is kept only with the generation that was current
// before its query ran, so no page that misses a write is returned after
// that write is known.
//
// A store knows its own writes at once; one shared by several processes
// (PostgreSQL) hears of the others' through notifications, and a Cache
// that is not Live (no notifications heard, as while that connection is
// down) keeps nothing.
package pagecache

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vitrine-dev/vitrine/catalog"
)

// MaxPages bounds the pages kept.
const MaxPages = 4096

// Cache keeps pages. The zero value is live and empty.
type Cache struct {
	mu    sync.RWMutex
	gen   uint64
	dead  bool // not Live
	pages map[string]page
}

type page struct {
	gen uint64
	ids []string
}

// Generation is the current generation, to give Put after the query.
func (c *Cache) Generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// Get returns a copy of the page kept under key, if it is of the current
// generation.
func (c *Cache) Get(key string) ([]string, bool) {
	c.mu.RLock()
	p, ok := c.pages[key]
	ok = ok && p.gen == c.gen && !c.dead
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return slices.Clone(p.ids), true
}

// Put keeps a page read after Generation returned gen, unless a write came
// since.
func (c *Cache) Put(key string, gen uint64, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.dead {
		return
	}
	if c.pages == nil || len(c.pages) >= MaxPages {
		c.pages = make(map[string]page) // the simplest bound: start over
	}
	c.pages[key] = page{gen: gen, ids: slices.Clone(ids)}
}

// Invalidate starts a new generation: call it once a product write is
// committed (or heard of), before it is acknowledged.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.pages)
}

// SetLive says whether the cache hears of every write; while it does not,
// it keeps nothing. Both directions start a new generation.
func (c *Cache) SetLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = !live
	c.gen++
	clear(c.pages)
}

// Key identifies the page of a filter.
func Key(f catalog.ProductFilter) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d|%d|%s|%q", f.UserID, f.Limit, f.After, strings.ToLower(f.Query))
	for _, p := range []*catalog.Price{f.MinPrice, f.MaxPrice} {
		if p == nil {
			b.WriteString("|-")
		} else {
			fmt.Fprintf(&b, "|%d", int64(*p))
		}
	}
	return b.String()
}

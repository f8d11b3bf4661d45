// Package cachetest is the conformance suite of catalog.Cache: the in-process
// cache and the shared caches that come later run the very same tests from
// their own _test.go with Run.
package cachetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Bound is the bound on this process's memory that the caches under test
// are opened with, and how to see it. Every cache must have one: the suite
// fills the cache four times past it and checks what the memory kept.
type Bound struct {
	// Entries is the most entries kept (0: not bounded by a count).
	Entries int
	// Bytes is the most bytes the kept entries take, values and the
	// cache's own bookkeeping (0: not bounded by size).
	Bytes int
	// Local reads id and reports whether the answer came from this
	// process's memory. A cache backed by a server may bring id into its
	// memory on a miss (evicting an older entry); the suite allows for that.
	// nil: Get's hit, for a cache that is all memory.
	Local func(ctx context.Context, c catalog.Cache, id string) bool
}

// Run runs the suite. open must return a new, empty cache for each call; it
// should register its own cleanup with t.Cleanup. bound is the memory bound
// the caches are opened with; the suite fails when it is not given.
func Run(t *testing.T, open func(t *testing.T) catalog.Cache, bound Bound) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c catalog.Cache)
	}{
		{"SetGetDelete", testSetGetDelete},
		{"Overwrite", testOverwrite},
		{"NewestWins", testNewestWins},
		{"DeletionWins", testDeletionWins},
		{"KeepsItsOwnCopy", testOwnCopy},
		{"Concurrent", testConcurrent},
		{"Bounded", func(t *testing.T, c catalog.Cache) { testBounded(t, c, bound) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

func want(t *testing.T, ctx context.Context, c catalog.Cache, id string, value []byte) {
	t.Helper()
	got, ok := c.Get(ctx, id)
	if !ok {
		t.Fatalf("Get(%s) missed, want %q", id, value)
	}
	if !bytes.Equal(got, value) {
		t.Fatalf("Get(%s) = %q, want %q", id, got, value)
	}
}

func wantMiss(t *testing.T, ctx context.Context, c catalog.Cache, id string) {
	t.Helper()
	if got, ok := c.Get(ctx, id); ok {
		t.Fatalf("Get(%s) = %q, want a miss", id, got)
	}
}

func testSetGetDelete(t *testing.T, c catalog.Cache) {
	ctx := t.Context()
	tests := []struct {
		name  string
		id    string
		value []byte
	}{
		{"json", "0196a0c2-7b1e-7c3d-8e4f-123456789abc", []byte(`{"id":"0196a0c2","name":"Chair"}`)},
		{"binary", "bin", []byte{0, 1, 2, 255}},
		{"empty value", "empty", []byte{}},
		{"unicode id", "éclair", []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantMiss(t, ctx, c, tt.id)
			c.Set(ctx, tt.id, 1, tt.value)
			want(t, ctx, c, tt.id, tt.value)
			c.Delete(ctx, tt.id, 1)
			wantMiss(t, ctx, c, tt.id)
			c.Delete(ctx, tt.id, 1) // deleting a missing id is fine
		})
	}
}

func testOverwrite(t *testing.T, c catalog.Cache) {
	ctx := t.Context()
	c.Set(ctx, "p", 1, []byte("version 1, rather long"))
	c.Set(ctx, "other", 1, []byte("other"))
	c.Set(ctx, "p", 2, []byte("v2"))
	want(t, ctx, c, "p", []byte("v2"))
	want(t, ctx, c, "other", []byte("other"))
}

// testNewestWins: a write that arrives after a newer one (a slow or
// retried call, a second grain during a membership change) changes
// nothing; the cache keeps the newest version it was given.
func testNewestWins(t *testing.T, c catalog.Cache) {
	ctx := t.Context()
	tests := []struct {
		name     string
		versions []int64 // written in this order, each as "v<version>"
		want     string
	}{
		{"in order", []int64{1, 2, 3}, "v3"},
		{"an older one late", []int64{2, 1}, "v2"},
		{"the same one again", []int64{1, 2, 2}, "v2"},
		{"many late", []int64{5, 1, 4, 2, 3}, "v5"},
		{"past nine", []int64{10, 9}, "v10"}, // versions compare as numbers, not text
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "newest " + tt.name
			for _, v := range tt.versions {
				c.Set(ctx, id, v, fmt.Appendf(nil, "v%d", v))
			}
			want(t, ctx, c, id, []byte(tt.want))
		})
	}
}

// testDeletionWins: a product deleted at a version stays deleted for every
// write of that version or an older one that arrives afterwards.
func testDeletionWins(t *testing.T, c catalog.Cache) {
	ctx := t.Context()
	c.Set(ctx, "p", 2, []byte("v2"))
	c.Delete(ctx, "p", 2)
	wantMiss(t, ctx, c, "p")
	c.Set(ctx, "p", 2, []byte("v2")) // the refill of a grain that did not see the deletion
	wantMiss(t, ctx, c, "p")
	c.Set(ctx, "p", 1, []byte("v1"))
	wantMiss(t, ctx, c, "p")
	c.Delete(ctx, "p", 1) // an older deletion changes nothing either
	c.Set(ctx, "p", 2, []byte("v2"))
	wantMiss(t, ctx, c, "p")

	// A deletion whose Set never arrived (or was evicted) still wins.
	c.Delete(ctx, "q", 3)
	c.Set(ctx, "q", 3, []byte("v3"))
	wantMiss(t, ctx, c, "q")

	// A deletion older than the value held does not remove it.
	c.Set(ctx, "r", 4, []byte("v4"))
	c.Delete(ctx, "r", 3)
	want(t, ctx, c, "r", []byte("v4"))
}

func testOwnCopy(t *testing.T, c catalog.Cache) {
	ctx := t.Context()
	value := []byte("original")
	c.Set(ctx, "p", 1, value)
	copy(value, "MUTATED!")
	want(t, ctx, c, "p", []byte("original"))
}

// testConcurrent mixes Sets, Gets and Deletes on shared ids; run it with
// -race. A value read is always one that was set for that id, whole.
// Versions grow with each worker's operations, so workers' writes race as
// late writes do.
func testConcurrent(t *testing.T, c catalog.Cache) {
	const workers, ops, ids = 8, 2000, 16
	value := func(id, w, i int) []byte {
		return []byte(fmt.Sprintf("id=%d|%s|w=%d i=%d", id, strings.Repeat("x", (w*i)%200), w, i))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx := t.Context()
			for i := range ops {
				id := (w*7 + i) % ids
				key := fmt.Sprintf("product-%d", id)
				switch i % 10 {
				case 0:
					c.Delete(ctx, key, int64(i))
				case 1, 2, 3:
					c.Set(ctx, key, int64(i), value(id, w, i))
				default:
					got, ok := c.Get(ctx, key)
					if ok && !bytes.HasPrefix(got, fmt.Appendf(nil, "id=%d|", id)) {
						t.Errorf("Get(%s) = %q, a value of another id", key, got)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// testBounded fills the cache with four times what its bound allows, reads
// every entry once in the order written (a cache backed by a server then
// holds the newest in memory), and counts, newest first, the entries its
// memory answers: they must fit the bound, use a fair share of it (a bound
// wired to something else shows), and include the newest.
func testBounded(t *testing.T, c catalog.Cache, b Bound) {
	ctx := t.Context()
	local := b.Local
	if local == nil {
		local = func(ctx context.Context, c catalog.Cache, id string) bool {
			_, ok := c.Get(ctx, id)
			return ok
		}
	}
	// Values of a size the bound holds a few dozen of.
	size, capacity := 16, 0
	switch {
	case b.Entries > 0 && b.Bytes > 0:
		size = max(b.Bytes/b.Entries, size)
		capacity = b.Entries
	case b.Entries > 0:
		capacity = b.Entries
	case b.Bytes > 0:
		size = max(b.Bytes/64, size)
		capacity = b.Bytes / size
	default:
		t.Fatal("the cache under test has no bound: give Run its Bound (Entries or Bytes)")
	}
	id := func(i int) string { return fmt.Sprintf("product-%d", i) }
	value := func(i int) []byte {
		v := bytes.Repeat([]byte{'v'}, size)
		copy(v, id(i)+"|")
		return v
	}
	n := 4 * capacity
	for i := range n {
		c.Set(ctx, id(i), 1, value(i))
	}
	for i := range n {
		local(ctx, c, id(i))
	}
	kept, newest := 0, false
	for i := n - 1; i >= 0; i-- {
		if local(ctx, c, id(i)) {
			kept++
			newest = newest || i == n-1
		}
	}
	t.Logf("kept %d of %d entries of %d bytes in memory (bound: %d entries, %d bytes)", kept, n, size, b.Entries, b.Bytes)
	if b.Entries > 0 && kept > b.Entries {
		t.Errorf("kept %d entries, bound %d", kept, b.Entries)
	}
	if b.Bytes > 0 && kept*size > b.Bytes {
		t.Errorf("kept %d entries of %d bytes: %d bytes of values alone, bound %d", kept, size, kept*size, b.Bytes)
	}
	if kept < capacity/4 {
		t.Errorf("kept %d entries, under a quarter of the %d the bound allows", kept, capacity)
	}
	if !newest {
		t.Error("the newest entry is not in memory")
	}
	want(t, ctx, c, id(n-1), value(n-1)) // and reads back whole
}

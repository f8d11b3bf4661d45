// Package cachetest is the conformance suite of catalog.Cache: the in-process
// cache and the shared caches that come later run the very same tests from
// their own _test.go with Run.
package cachetest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Run runs the suite. open must return a new, empty cache for each call; it
// should register its own cleanup with t.Cleanup. maxEntries is the bound
// the caches are opened with, checked by the suite; 0 skips that check, for
// caches bounded otherwise (by memory, by time).
func Run(t *testing.T, open func(t *testing.T) catalog.Cache, maxEntries int) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c catalog.Cache)
	}{
		{"SetGetDelete", testSetGetDelete},
		{"Overwrite", testOverwrite},
		{"KeepsItsOwnCopy", testOwnCopy},
		{"Concurrent", testConcurrent},
		{"Bounded", func(t *testing.T, c catalog.Cache) { testBounded(t, c, maxEntries) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

func want(t *testing.T, c catalog.Cache, id string, value []byte) {
	t.Helper()
	got, ok := c.Get(t.Context(), id)
	if !ok {
		t.Fatalf("Get(%s) missed, want %q", id, value)
	}
	if !bytes.Equal(got, value) {
		t.Fatalf("Get(%s) = %q, want %q", id, got, value)
	}
}

func wantMiss(t *testing.T, c catalog.Cache, id string) {
	t.Helper()
	if got, ok := c.Get(t.Context(), id); ok {
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
			wantMiss(t, c, tt.id)
			c.Set(ctx, tt.id, tt.value)
			want(t, c, tt.id, tt.value)
			c.Delete(ctx, tt.id)
			wantMiss(t, c, tt.id)
			c.Delete(ctx, tt.id) // deleting a missing id is fine
		})
	}
}

func testOverwrite(t *testing.T, c catalog.Cache) {
	ctx := t.Context()
	c.Set(ctx, "p", []byte("version 1, rather long"))
	c.Set(ctx, "other", []byte("other"))
	c.Set(ctx, "p", []byte("v2"))
	want(t, c, "p", []byte("v2"))
	want(t, c, "other", []byte("other"))
}

func testOwnCopy(t *testing.T, c catalog.Cache) {
	value := []byte("original")
	c.Set(t.Context(), "p", value)
	copy(value, "MUTATED!")
	want(t, c, "p", []byte("original"))
}

// testConcurrent mixes Sets, Gets and Deletes on shared ids; run it with
// -race. A value read is always one that was set for that id, whole.
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
					c.Delete(ctx, key)
				case 1, 2, 3:
					c.Set(ctx, key, value(id, w, i))
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

func testBounded(t *testing.T, c catalog.Cache, maxEntries int) {
	if maxEntries <= 0 {
		t.Skip("the cache is not bounded by a number of entries")
	}
	ctx := t.Context()
	n := 4 * maxEntries
	for i := range n {
		c.Set(ctx, fmt.Sprintf("product-%d", i), []byte("value"))
	}
	kept := 0
	for i := range n {
		if _, ok := c.Get(ctx, fmt.Sprintf("product-%d", i)); ok {
			kept++
		}
	}
	if kept > maxEntries {
		t.Errorf("kept %d entries, bound %d", kept, maxEntries)
	}
	if kept == 0 {
		t.Error("kept nothing")
	}
	last := fmt.Sprintf("product-%d", n-1)
	want(t, c, last, []byte("value")) // the newest entry is never the one evicted for it
}

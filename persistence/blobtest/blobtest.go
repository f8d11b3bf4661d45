// Package blobtest is the conformance suite of catalog.BlobStore: the local
// file system store and the object stores that come later run the very same
// tests from their own _test.go with Run.
package blobtest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Run runs the suite. open must return a new, empty store for each call; it
// should register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) catalog.BlobStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.BlobStore)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"GetMissing", testGetMissing},
		{"DeleteDirectoryPrefix", testDeleteDirPrefix},
		{"DeleteNamePrefix", testDeleteNamePrefix},
		{"DeleteMissingPrefix", testDeleteMissing},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentPutIsAtomic", testConcurrentPut},
		{"CreateWritesOnce", testCreate},
		{"ConcurrentCreateWritesOnce", testConcurrentCreate},
		{"DeleteKeys", testDeleteKeys},
		{"List", testList},
		{"URL", testURL},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

func put(t *testing.T, s catalog.BlobStore, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, data, "application/octet-stream"); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func wantBlob(t *testing.T, s catalog.BlobStore, key string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%s) = %d bytes %.20q, want %d bytes %.20q", key, len(got), got, len(want), want)
	}
}

func wantMissing(t *testing.T, s catalog.BlobStore, key string) {
	t.Helper()
	if _, err := s.Get(t.Context(), key); !catalog.IsNotFound(err) {
		t.Errorf("Get(%s) error = %v, want not found", key, err)
	}
}

func testPutGet(t *testing.T, s catalog.BlobStore) {
	binary := make([]byte, 256*1024+7)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		key  string
		data []byte
	}{
		{"original", catalog.OriginalKey("0196a0c2-7b1e-7c3d-8e4f-123456789abc", "0196a0c2-7b1e-7c3d-8e4f-cba987654321"), binary},
		{"variant", catalog.VariantKey("p1", "i1", 1, "thumb", "webp"), []byte("RIFF....WEBP")},
		{"empty", "products/p1/i1/empty", []byte{}},
		{"top level", "single", []byte("x")},
		{"dots and dashes", "a.b/c-d_e/.hidden/f..g", []byte("y")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(t, s, tt.key, tt.data)
			wantBlob(t, s, tt.key, tt.data)
		})
	}
}

func testOverwrite(t *testing.T, s catalog.BlobStore) {
	key := catalog.VariantKey("p1", "i1", 1, "thumb", "webp")
	put(t, s, key, bytes.Repeat([]byte("long "), 1000))
	put(t, s, key, []byte("short"))
	wantBlob(t, s, key, []byte("short"))
}

func testGetMissing(t *testing.T, s catalog.BlobStore) {
	put(t, s, "products/p1/i1/original", []byte("x"))
	for _, key := range []string{"products/p1/i1/thumb.webp", "products/p2/i1/original", "products/p1/i1", "nothing"} {
		wantMissing(t, s, key)
	}
}

// fill puts one blob per key, its content being its key.
func fill(t *testing.T, s catalog.BlobStore, keys []string) {
	t.Helper()
	for _, k := range keys {
		put(t, s, k, []byte(k))
	}
}

// check expects the blobs of gone to be missing and those of kept intact.
func check(t *testing.T, s catalog.BlobStore, gone, kept []string) {
	t.Helper()
	for _, k := range gone {
		wantMissing(t, s, k)
	}
	for _, k := range kept {
		wantBlob(t, s, k, []byte(k))
	}
}

func testDeleteDirPrefix(t *testing.T, s catalog.BlobStore) {
	gone := []string{
		catalog.OriginalKey("p1", "i1"),
		catalog.VariantKey("p1", "i1", 1, "thumb", "webp"),
		catalog.OriginalKey("p1", "i2"),
	}
	kept := []string{
		catalog.OriginalKey("p10", "i1"), // p1 is a prefix of p10 as text, not as a directory
		catalog.OriginalKey("p2", "i1"),
	}
	fill(t, s, slices.Concat(gone, kept))
	if err := s.DeletePrefix(t.Context(), catalog.ProductPrefix("p1")); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	check(t, s, gone, kept)
	// Keys under a deleted prefix can be written again.
	put(t, s, gone[0], []byte(gone[0]))
	wantBlob(t, s, gone[0], []byte(gone[0]))
}

func testDeleteNamePrefix(t *testing.T, s catalog.BlobStore) {
	gone := []string{"products/p1/i1/thumb.webp", "products/p1/i1/thumb.avif", "products/p1/i1/thumbnail/x"}
	kept := []string{"products/p1/i1/large.webp", "products/p1/i2/thumb.webp", "products/p1/i1/original"}
	fill(t, s, slices.Concat(gone, kept))
	if err := s.DeletePrefix(t.Context(), "products/p1/i1/thumb"); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	check(t, s, gone, kept)
}

func testDeleteMissing(t *testing.T, s catalog.BlobStore) {
	put(t, s, "products/p1/i1/original", []byte("x"))
	for _, prefix := range []string{"products/p2/", "products/p1/i9/", "other/", "products/p1/i1/z"} {
		if err := s.DeletePrefix(t.Context(), prefix); err != nil {
			t.Errorf("DeletePrefix(%s) on nothing: %v", prefix, err)
		}
	}
	wantBlob(t, s, "products/p1/i1/original", []byte("x"))
}

func testInvalidKeys(t *testing.T, s catalog.BlobStore) {
	put(t, s, "x", []byte("inside"))
	tests := []struct {
		name string
		key  string
	}{
		{"empty", ""},
		{"parent", "../x"},
		{"parent inside", "a/../x"},
		{"parent at end", "a/.."},
		{"absolute", "/abs"},
		{"absolute system file", "/etc/passwd"},
		{"double slash", "a//b"},
		{"trailing slash", "a/b/"},
		{"dot segment", "a/./b"},
		{"dot", "."},
		{"backslash", `a\b`},
		{"backslash parent", `..\x`},
		{"space", "a b"},
		{"percent", "a%2e%2e"},
		{"nul", "a\x00b"},
		{"non-ascii", "é"},
		{"too long", strings.Repeat("a/", 600) + "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(t.Context(), tt.key, []byte("evil"), "text/plain"); err == nil {
				t.Errorf("Put(%q) succeeded, want it refused", tt.key)
			}
			if data, err := s.Get(t.Context(), tt.key); err == nil {
				t.Errorf("Get(%q) = %q, want it refused", tt.key, data)
			}
		})
	}
	t.Run("delete prefix", func(t *testing.T) {
		for _, prefix := range []string{"", "/", "../", "/abs/", "a//", "a/./", "../x"} {
			if err := s.DeletePrefix(t.Context(), prefix); err == nil {
				t.Errorf("DeletePrefix(%q) succeeded, want it refused", prefix)
			}
		}
		wantBlob(t, s, "x", []byte("inside"))
	})
}

func testConcurrentPut(t *testing.T, s catalog.BlobStore) {
	const key, writers, size = "products/p1/i1/original", 4, 64 * 1024
	put(t, s, key, bytes.Repeat([]byte{'0'}, size))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('1' + w)}, size) // #nosec G115 -- w < writers (4)
			for range 5 {
				if err := s.Put(t.Context(), key, data, "image/png"); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var reads sync.WaitGroup
	reads.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			data, err := s.Get(t.Context(), key)
			if err != nil {
				t.Errorf("Get during Puts: %v", err)
				return
			}
			if len(data) != size || bytes.Count(data, data[:1]) != size {
				t.Errorf("Get during Puts saw a torn blob: %d bytes, %s", len(data), summary(data))
				return
			}
		}
	})
	wg.Wait()
	close(done)
	reads.Wait()
}

func summary(data []byte) string {
	counts := map[byte]int{}
	for _, b := range data {
		counts[b]++
	}
	return fmt.Sprint(counts)
}

func testURL(t *testing.T, s catalog.BlobStore) {
	key := catalog.VariantKey("p1", "i1", 1, "thumb", "webp")
	u := s.URL(key)
	if !strings.HasSuffix(u, "/"+key) || len(u) == len(key)+1 {
		t.Errorf("URL(%s) = %q, want a base followed by /%s", key, u, key)
	}
}

func testPing(t *testing.T, s catalog.BlobStore) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func create(t *testing.T, s catalog.BlobStore, key string, data []byte) bool {
	t.Helper()
	written, err := s.Create(t.Context(), key, data, "image/webp")
	if err != nil {
		t.Fatalf("Create(%s): %v", key, err)
	}
	return written
}

func testCreate(t *testing.T, s catalog.BlobStore) {
	key := catalog.VariantKey("p1", "i1", 1, "thumb", "webp")
	if !create(t, s, key, []byte("first")) {
		t.Errorf("Create of a new key wrote nothing")
	}
	if create(t, s, key, []byte("second")) {
		t.Errorf("Create of an existing key wrote")
	}
	wantBlob(t, s, key, []byte("first"))
	// Large enough for a multipart upload where the store has one.
	big := bytes.Repeat([]byte("v"), 9<<20)
	bigKey := catalog.VariantKey("p1", "i1", 1, "large", "webp")
	if !create(t, s, bigKey, big) || create(t, s, bigKey, []byte("small")) {
		t.Errorf("Create of a large blob: want written once")
	}
	wantBlob(t, s, bigKey, big)
	if _, err := s.Create(t.Context(), "../x", []byte("evil"), "text/plain"); err == nil {
		t.Errorf("Create(../x) succeeded, want it refused")
	}
}

func testConcurrentCreate(t *testing.T, s catalog.BlobStore) {
	const key, writers = "products/p1/i1/r1/small.webp", 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []int
	for w := range writers {
		wg.Go(func() {
			written, err := s.Create(t.Context(), key, []byte{byte('a' + w)}, "image/webp") // #nosec G115 -- w < writers (6)
			if err != nil {
				t.Errorf("Create: %v", err)
				return
			}
			if written {
				mu.Lock()
				winners = append(winners, w)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d concurrent Creates wrote (%v), want exactly one", len(winners), winners)
	}
	wantBlob(t, s, key, []byte{byte('a' + winners[0])}) // #nosec G115 -- winners are ws < writers (6)
}

func testDeleteKeys(t *testing.T, s catalog.BlobStore) {
	gone := []string{"products/p1/i1/original", "products/p1/i1/r1/thumb.webp", "products/p2/i1/original"}
	kept := []string{"products/p1/i2/original", "products/p1/i1/r1/small.webp"}
	fill(t, s, slices.Concat(gone, kept))
	if err := s.Delete(t.Context(), append(gone, "products/p9/i9/original")); err != nil { // a missing key is fine
		t.Fatalf("Delete: %v", err)
	}
	check(t, s, gone, kept)
	if err := s.Delete(t.Context(), nil); err != nil {
		t.Errorf("Delete(nothing): %v", err)
	}
	if err := s.Delete(t.Context(), []string{"../x"}); err == nil {
		t.Errorf("Delete(../x) succeeded, want it refused")
	}
	// Keys whose blobs were deleted can be written again.
	put(t, s, gone[1], []byte(gone[1]))
	wantBlob(t, s, gone[1], []byte(gone[1]))
}

func listed(t *testing.T, s catalog.BlobStore, prefix string) map[string]catalog.BlobInfo {
	t.Helper()
	got := map[string]catalog.BlobInfo{}
	err := s.List(t.Context(), prefix, func(b catalog.BlobInfo) error {
		if _, dup := got[b.Key]; dup {
			t.Errorf("List(%q) gave %s twice", prefix, b.Key)
		}
		got[b.Key] = b
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func testList(t *testing.T, s catalog.BlobStore) {
	before := time.Now().Add(-time.Minute)
	keys := []string{"products/p1/i1/original", "products/p1/i1/r2/thumb.webp", "products/p10/i1/original", "products/p2/i1/original", "other"}
	fill(t, s, keys)
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", keys},
		{"products/", keys[:4]},
		{"products/p1/", keys[:2]},
		{"products/p1", keys[:3]},
		{"products/p1/i1/r2/", keys[1:2]},
		{"products/p3/", nil},
		{"nothing/", nil},
	}
	for _, tt := range tests {
		got := listed(t, s, tt.prefix)
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(tt.want))) {
			t.Errorf("List(%q) = %v, want %v", tt.prefix, slices.Sorted(maps.Keys(got)), tt.want)
		}
		for k, b := range got {
			if b.Size != int64(len(k)) || b.ModTime.Before(before) || b.ModTime.After(time.Now().Add(time.Minute)) {
				t.Errorf("List(%q): %s is %d bytes modified %v, want %d bytes modified about now", tt.prefix, k, b.Size, b.ModTime, len(k))
			}
		}
	}
	stop := errors.New("enough")
	n := 0
	err := s.List(t.Context(), "", func(catalog.BlobInfo) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("List stopped by its callback: %d calls, error %v; want 1 call and the callback's error", n, err)
	}
}

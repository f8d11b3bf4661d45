package localfs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/blobtest"
	"github.com/vitrine-dev/vitrine/persistence/localfs"
)

func newStore(t *testing.T, dir, baseURL string) *localfs.Store {
	t.Helper()
	s, err := localfs.New(dir, baseURL)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestBlobStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) catalog.BlobStore {
		return newStore(t, t.TempDir(), "http://localhost:8080/media")
	})
}

func TestPath(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, "")
	tests := []struct {
		name    string
		key     string
		want    string
		invalid bool
	}{
		{"nested", "products/p1/i1/thumb.webp", filepath.Join(dir, "products", "p1", "i1", "thumb.webp"), false},
		{"top level", "x", filepath.Join(dir, "x"), false},
		{"parent", "../x", "", true},
		{"absolute", "/etc/passwd", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Path(tt.key)
			if tt.invalid {
				if err == nil || catalog.ErrorKind(err) != catalog.KindInvalid {
					t.Fatalf("Path(%q) = %q, %v; want an invalid key error", tt.key, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Path(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name, base, want string
	}{
		{"plain", "https://cdn.example/media", "https://cdn.example/media/products/p/i/original"},
		{"trailing slash", "https://cdn.example/media/", "https://cdn.example/media/products/p/i/original"},
		{"relative", "/media", "/media/products/p/i/original"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, t.TempDir(), tt.base)
			if got := s.URL(catalog.OriginalKey("p", "i")); got != tt.want {
				t.Errorf("URL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPutLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, "")
	key := catalog.VariantKey("p", "i", 1, "thumb", "webp")
	for range 3 {
		if err := s.Put(t.Context(), key, []byte("data"), "image/webp"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	var files []string
	if err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(path, dir+"/"))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != key {
		t.Errorf("files in the store: %v, want only %s", files, key)
	}
}

func TestNewCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := newStore(t, dir, "")
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

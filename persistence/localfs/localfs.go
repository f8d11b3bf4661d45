// Package localfs is vitrine's embedded default blob store: one file per
// blob under a directory of the local file system.
package localfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Store keeps blobs as files under a directory: the blob with key
// "products/p/i/original" is the file dir/products/p/i/original. Content
// types are not kept; whoever serves the files derives them from the name
// or the content.
type Store struct {
	dir     string
	baseURL string
}

var _ catalog.BlobStore = (*Store)(nil)

// New returns a store over dir, creating it if needed. URLs of blobs are
// baseURL + "/" + key.
func New(dir, baseURL string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("blob dir %s: %w", dir, err)
	}
	return &Store{dir: abs, baseURL: strings.TrimRight(baseURL, "/")}, nil
}

// Path returns the file that holds the blob with key, for serving it. The
// file may not exist.
func (s *Store) Path(key string) (string, error) {
	if err := catalog.ValidBlobKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// URL is where clients fetch the blob.
func (s *Store) URL(key string) string {
	return s.baseURL + "/" + key
}

// Put stores data under key atomically: readers see the old content or the
// new, never a part. The content type is not kept.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) error {
	path, err := s.Path(key)
	if err != nil {
		return fmt.Errorf("put blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	dir := filepath.Dir(path)
	err = inDir(dir, func() error { return writeAtomic(dir, path, data) })
	if err != nil {
		return fmt.Errorf("put blob %s: %w", key, unavailable(err))
	}
	return nil
}

// inDir makes dir and runs write in it; when the directory vanishes under
// it (a delete of the product's or image's files removed it meanwhile), it
// makes it again and runs write again, a few times.
func inDir(dir string, write func() error) error {
	var err error
	for range 3 {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		if err = write(); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// writeAtomic writes data to a temporary file in dir, flushes it to disk
// and renames it to path. The temporary name holds a '~', which no key
// does, so it never shadows a blob.
func writeAtomic(dir, path string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "put~*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close() // err is already being returned
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir) // so that the rename survives a crash
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- the directory of a path Path built from a catalog.ValidBlobKey key
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// Get returns the content of the blob with key; a missing blob is NotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	path, err := s.Path(key)
	if err != nil {
		return nil, fmt.Errorf("get blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, err)
	}
	data, err := os.ReadFile(path) // #nosec G304 -- Path checked key with catalog.ValidBlobKey: no . or .. segments, inside s.dir
	if err != nil {
		if isMissing(err) {
			return nil, fmt.Errorf("get blob %s: %w", key, catalog.NotFound("blob %s", key))
		}
		return nil, fmt.Errorf("get blob %s: %w", key, unavailable(err))
	}
	return data, nil
}

// isMissing reports whether err means there is no blob at the path: no
// such file, a directory there, or a file where a directory of the path
// should be.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR)
}

// DeletePrefix removes every blob whose key starts with prefix. A prefix
// ending in "/" removes that directory tree; another removes the entries of
// its directory whose names start with its last segment. Deleting what does
// not exist is not an error.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blobs %s: %w", prefix, err)
	}
	if dirKey, ok := strings.CutSuffix(prefix, "/"); ok {
		path, err := s.Path(dirKey)
		if err != nil {
			return fmt.Errorf("delete blobs: %w", err)
		}
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("delete blobs %s: %w", prefix, unavailable(err))
		}
		return nil
	}
	path, err := s.Path(prefix)
	if err != nil {
		return fmt.Errorf("delete blobs: %w", err)
	}
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if isMissing(err) {
			return nil
		}
		return fmt.Errorf("delete blobs %s: %w", prefix, unavailable(err))
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base) || strings.Contains(e.Name(), "~") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("delete blobs %s: %w", prefix, unavailable(err))
		}
	}
	return nil
}

// Ping checks that the directory is writable.
func (s *Store) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(s.dir, "ping~*")
	if err != nil {
		return fmt.Errorf("ping blob dir %s: %w", s.dir, unavailable(err))
	}
	name := f.Name()
	_ = f.Close() // an empty probe: CreateTemp and Remove test writability
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("ping blob dir %s: %w", s.dir, unavailable(err))
	}
	return nil
}

func unavailable(err error) error {
	return catalog.Unavailable("blob storage", err)
}

// Create stores data under key unless a file is there already, and reports
// whether it wrote. The file is written to a temporary name, flushed, and
// linked to its key's name, which fails when that name exists: of
// concurrent Creates, one writes, and a reader never sees a part.
func (s *Store) Create(ctx context.Context, key string, data []byte, contentType string) (bool, error) {
	path, err := s.Path(key)
	if err != nil {
		return false, fmt.Errorf("create blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("create blob %s: %w", key, err)
	}
	dir := filepath.Dir(path)
	var written bool
	err = inDir(dir, func() (err error) {
		written, err = createAtomic(dir, path, data)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("create blob %s: %w", key, unavailable(err))
	}
	return written, nil
}

// createAtomic writes data to a temporary file in dir, flushes it and
// links it to path unless path exists.
func createAtomic(dir, path string, data []byte) (written bool, err error) {
	f, err := os.CreateTemp(dir, "put~*")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name()) //nolint:errcheck // linked or not, the temporary name goes; the blob's outcome does not depend on it
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return false, err
	}
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, syncDir(dir) // so that the link survives a crash
}

// Delete removes the files of keys, and the directories they leave empty;
// missing files are no error.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete blobs: %w", err)
		}
		path, err := s.Path(key)
		if err != nil {
			return fmt.Errorf("delete blobs: %w", err)
		}
		if err := os.Remove(path); err != nil && !isMissing(err) {
			return fmt.Errorf("delete blob %s: %w", key, unavailable(err))
		}
		s.pruneDirs(filepath.Dir(path))
	}
	return nil
}

// pruneDirs removes dir and its parents while they are empty, up to the
// store's directory.
func (s *Store) pruneDirs(dir string) {
	for dir != s.dir && strings.HasPrefix(dir, s.dir+string(filepath.Separator)) {
		if os.Remove(dir) != nil { // not empty (or gone): stop
			return
		}
		dir = filepath.Dir(dir)
	}
}

// List calls fn with each blob whose key starts with prefix, walking the
// directory that holds them; temporary files of writes under way are left
// out.
func (s *Store) List(ctx context.Context, prefix string, fn func(catalog.BlobInfo) error) error {
	rootKey := prefix[:strings.LastIndexByte(prefix, '/')+1] // the directory part, "" for all
	root := s.dir
	if rootKey != "" {
		var err error
		if root, err = s.Path(strings.TrimSuffix(rootKey, "/")); err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if isMissing(err) {
				return nil // removed while walking, or no such directory
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || strings.Contains(d.Name(), "~") {
			return nil
		}
		rel, err := filepath.Rel(s.dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if isMissing(err) {
				return nil
			}
			return err
		}
		return fn(catalog.BlobInfo{Key: key, Size: info.Size(), ModTime: info.ModTime().UTC()})
	})
	if err != nil {
		return fmt.Errorf("list blobs %s: %w", prefix, err)
	}
	return nil
}

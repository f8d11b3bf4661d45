// Package orphans finds and removes the files that no image owns: files of
// images (or products) deleted while a job was writing them, or left by a
// process that died between writing a file and recording it, or by a
// removal that failed. Every file lives under products/{product}/{image}/;
// a file whose image row does not exist, and that is older than a grace
// period, is an orphan. The grace period covers the moments when a file
// rightly exists before its row: an upload's original is stored just
// before the image is recorded.
package orphans

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Images says which images exist.
type Images interface {
	ExistingImages(ctx context.Context, ids []string) (map[string]bool, error)
}

// Blobs lists and removes files.
type Blobs interface {
	List(ctx context.Context, prefix string, fn func(catalog.BlobInfo) error) error
	Delete(ctx context.Context, keys []string) error
}

// Options tune a sweep.
type Options struct {
	// Grace leaves orphans younger than it alone (default 1 h).
	Grace time.Duration
	// DryRun finds orphans and removes none.
	DryRun bool
	// Batch is how many files are checked at once (default 500).
	Batch int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Progress, when set, is called with the figures so far after each
	// batch.
	Progress func(Stats)
}

// Stats are a sweep's figures.
type Stats struct {
	Files        int64 // files looked at
	Bytes        int64
	Orphans      int64 // files of images that do not exist, older than the grace period
	OrphanBytes  int64
	Removed      int64 // orphans removed (none in a dry run)
	Young        int64 // files of images that do not exist, within the grace period: left
	Unrecognized int64 // keys outside products/{product}/{image}/: left
}

// Sweep looks at every file under products/ and removes the orphans.
func Sweep(ctx context.Context, images Images, blobs Blobs, opts Options) (Stats, error) {
	if opts.Grace <= 0 {
		opts.Grace = time.Hour
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &sweep{images: images, blobs: blobs, opts: opts, cutoff: opts.Now().Add(-opts.Grace)}
	err := blobs.List(ctx, "products/", func(b catalog.BlobInfo) error {
		s.batch = append(s.batch, b)
		if len(s.batch) < opts.Batch {
			return nil
		}
		return s.flush(ctx)
	})
	if err == nil {
		err = s.flush(ctx)
	}
	if err != nil {
		return s.stats, fmt.Errorf("sweep orphan files: %w", err)
	}
	return s.stats, nil
}

type sweep struct {
	images Images
	blobs  Blobs
	opts   Options
	cutoff time.Time
	batch  []catalog.BlobInfo
	stats  Stats
}

// flush checks the files of the batch and removes its orphans.
func (s *sweep) flush(ctx context.Context) error {
	if len(s.batch) == 0 {
		return nil
	}
	ids := map[string]bool{}
	for _, b := range s.batch {
		if id, ok := imageOf(b.Key); ok {
			ids[id] = true
		}
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	exist, err := s.images.ExistingImages(ctx, list)
	if err != nil {
		return err
	}
	var gone []string
	for _, b := range s.batch {
		s.stats.Files++
		s.stats.Bytes += b.Size
		id, ok := imageOf(b.Key)
		switch {
		case !ok:
			s.stats.Unrecognized++
		case exist[id]:
		case b.ModTime.After(s.cutoff):
			s.stats.Young++
		default:
			s.stats.Orphans++
			s.stats.OrphanBytes += b.Size
			gone = append(gone, b.Key)
		}
	}
	s.batch = s.batch[:0]
	if len(gone) > 0 && !s.opts.DryRun {
		if err := s.blobs.Delete(ctx, gone); err != nil {
			return err
		}
		s.stats.Removed += int64(len(gone))
	}
	if s.opts.Progress != nil {
		s.opts.Progress(s.stats)
	}
	return nil
}

// imageOf returns the image id of a key products/{product}/{image}/….
func imageOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "products/")
	if !ok {
		return "", false
	}
	product, rest, ok := strings.Cut(rest, "/")
	if !ok || product == "" {
		return "", false
	}
	image, rest, ok := strings.Cut(rest, "/")
	if !ok || image == "" || rest == "" {
		return "", false
	}
	return image, true
}

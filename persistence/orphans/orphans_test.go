package orphans_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/localfs"
	"github.com/vitrine-dev/vitrine/persistence/orphans"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
)

type rig struct {
	t     *testing.T
	db    *sqlite.DB
	files *localfs.Store
	dir   string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	files, err := localfs.New(filepath.Join(dir, "files"), "http://test/media")
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, db: db, files: files, dir: filepath.Join(dir, "files")}
}

// image records a product with one image and returns their ids.
func (r *rig) image() (product, image string) {
	r.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &catalog.Product{ID: uuid.NewString(), UserID: 1, Name: "p", Currency: "EUR", CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := r.db.CreateProduct(r.t.Context(), p); err != nil {
		r.t.Fatal(err)
	}
	img := &catalog.Image{ID: uuid.NewString(), ProductID: p.ID, Status: catalog.StatusReady, CreatedAt: now}
	p.Version++
	if err := r.db.AddImage(r.t.Context(), p, img); err != nil {
		r.t.Fatal(err)
	}
	return p.ID, img.ID
}

// file writes a file aged age.
func (r *rig) file(key string, age time.Duration) string {
	r.t.Helper()
	if err := r.files.Put(r.t.Context(), key, []byte(key), "image/webp"); err != nil {
		r.t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(r.dir, filepath.FromSlash(key)), when, when); err != nil {
		r.t.Fatal(err)
	}
	return key
}

func (r *rig) keys() []string {
	r.t.Helper()
	var keys []string
	err := r.files.List(r.t.Context(), "", func(b catalog.BlobInfo) error { keys = append(keys, b.Key); return nil })
	if err != nil {
		r.t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// TestSweepRemovesPlantedOrphans: files of images that do not exist and
// are older than the grace period go; live files, young orphans and keys
// of another shape stay. A dry run removes nothing and counts the same.
func TestSweepRemovesPlantedOrphans(t *testing.T) {
	r := newRig(t)
	const grace = time.Hour
	p, img := r.image()
	live := []string{
		r.file(catalog.OriginalKey(p, img), 48*time.Hour),
		r.file(catalog.VariantKey(p, img, 2, "thumb", "webp"), 48*time.Hour),
	}
	ghostProduct, ghostImage := uuid.NewString(), uuid.NewString()
	orphaned := []string{
		r.file(catalog.OriginalKey(ghostProduct, ghostImage), 2*time.Hour),
		r.file(catalog.VariantKey(ghostProduct, ghostImage, 2, "large", "jpeg"), 3*time.Hour),
		r.file(catalog.VariantKey(p, uuid.NewString(), 2, "small", "webp"), 25*time.Hour), // a deleted image of a live product
	}
	kept := []string{
		r.file(catalog.OriginalKey(uuid.NewString(), uuid.NewString()), time.Minute), // young: an upload under way
		r.file("products/"+ghostProduct+"/stray", 48*time.Hour),                      // not an image's
		r.file("elsewhere/file", 48*time.Hour),                                       // outside products/
	}
	want := slices.Sorted(slices.Values(slices.Concat(live, kept)))

	var progress []orphans.Stats
	dry, err := orphans.Sweep(t.Context(), r.db, r.files, orphans.Options{Grace: grace, DryRun: true, Batch: 2,
		Progress: func(s orphans.Stats) { progress = append(progress, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Orphans != 3 || dry.Removed != 0 || dry.Young != 1 || dry.Unrecognized != 1 || dry.Files != 7 {
		t.Errorf("dry run: %+v, want 7 files, 3 orphans, none removed, 1 young, 1 unrecognized", dry)
	}
	if len(progress) < 3 || progress[len(progress)-1] != dry {
		t.Errorf("progress %+v, want one report per batch of 2, the last the result", progress)
	}
	if got := r.keys(); len(got) != 8 {
		t.Fatalf("a dry run removed files: %v", got)
	}

	st, err := orphans.Sweep(t.Context(), r.db, r.files, orphans.Options{Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	if st.Orphans != 3 || st.Removed != 3 || st.OrphanBytes != int64(len(orphaned[0])+len(orphaned[1])+len(orphaned[2])) {
		t.Errorf("sweep: %+v, want 3 orphans removed", st)
	}
	if got := r.keys(); !slices.Equal(got, want) {
		t.Errorf("after the sweep: %v\nwant %v", got, want)
	}
	// The ghost image's directory went with its files.
	if _, err := os.Stat(filepath.Join(r.dir, "products", ghostProduct, ghostImage)); !os.IsNotExist(err) {
		t.Errorf("the orphan's directory remains: %v", err)
	}
	again, err := orphans.Sweep(t.Context(), r.db, r.files, orphans.Options{Grace: grace})
	if err != nil || again.Orphans != 0 {
		t.Errorf("a second sweep: %+v, %v; want no orphans", again, err)
	}
}

// TestPeriodicSweepsOnOneProcess: of two processes sharing a store, one
// sweeps per interval.
func TestPeriodicSweepsOnOneProcess(t *testing.T) {
	r := newRig(t)
	orphan := r.file(catalog.OriginalKey(uuid.NewString(), uuid.NewString()), 48*time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{}, 2)
	for _, holder := range []string{"a", "b"} {
		p := &orphans.Periodic{Images: r.db, Blobs: r.files, Lease: r.db, Holder: holder, Interval: 50 * time.Millisecond,
			Options: orphans.Options{Grace: time.Hour}, Log: zap.NewNop()}
		go func() { p.Run(ctx); done <- struct{}{} }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(r.keys(), orphan) {
		if time.Now().After(deadline) {
			t.Fatal("the orphan is still there 10 s later")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	<-done
}

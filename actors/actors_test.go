package actors_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/cluster"
	"github.com/vitrine-dev/vitrine/persistence/localfs"
	"github.com/vitrine-dev/vitrine/persistence/memory"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
)

// fixture is a single-node cluster over the embedded adapters, with an
// image processor and blob store that tests can make misbehave.
type fixture struct {
	t       *testing.T
	blobs   *flakyBlobs
	service *actors.Service
	uploads *actors.Uploads
	db      *sqlite.DB
	pool    *actors.ImagePool
	node    *cluster.Node
	cache   *memory.Cache
}

type header struct{}

func (header) Probe(data []byte) (actors.Header, error) {
	return actors.Header{ContentType: "image/png", Width: 10, Height: 10, Frames: 1}, nil
}

// processor is a scripted image processor.
type processor struct {
	calls atomic.Int32
	fn    func(call int) (actors.Processed, error)
}

func (p *processor) Process(ctx context.Context, data []byte, opts actors.ProcessOptions) (actors.Processed, error) {
	return p.fn(int(p.calls.Add(1)))
}

func ok(int) (actors.Processed, error) {
	return actors.Processed{RecipeVersion: 1, Renditions: []actors.Rendition{{Name: "thumb", Format: "webp", ContentType: "image/webp", Width: 5, Height: 5, Data: []byte("RIFF")}}}, nil
}

// flakyBlobs fails writes of variants while failPuts > 0.
type flakyBlobs struct {
	*localfs.Store
	failPuts atomic.Int32
}

func (b *flakyBlobs) Put(ctx context.Context, key string, data []byte, ct string) error {
	if filepath.Base(key) != "original" && b.failPuts.Add(-1) >= 0 {
		return errors.New("injected storage failure")
	}
	return b.Store.Put(ctx, key, data, ct)
}

func (b *flakyBlobs) Create(ctx context.Context, key string, data []byte, ct string) (bool, error) {
	if filepath.Base(key) != "original" && b.failPuts.Add(-1) >= 0 {
		return false, errors.New("injected storage failure")
	}
	return b.Store.Create(ctx, key, data, ct)
}

func newFixture(t *testing.T, proc actors.Processor, blobs *flakyBlobs, maxAttempts int) *fixture {
	t.Helper()
	return newFixtureWith(t, proc, blobs, func(d *actors.ImageDeps) { d.MaxAttempts = maxAttempts })
}

// newFixtureWith starts a fixture whose image pool deps are adjusted by
// tune (two workers and a 5 ms retry base otherwise).
func newFixtureWith(t *testing.T, proc actors.Processor, blobs *flakyBlobs, tune func(*actors.ImageDeps)) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if blobs == nil {
		blobs = &flakyBlobs{}
	}
	blobs.Store, err = localfs.New(filepath.Join(dir, "files"), "http://test/media")
	if err != nil {
		t.Fatal(err)
	}
	cache := memory.New(100)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	node, err := cluster.Start(cluster.Config{}, log, actors.NewProductKind(actors.ProductDeps{Store: db, Cache: cache, Blobs: blobs, Log: log}))
	if err != nil {
		t.Fatal(err)
	}
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	f := &fixture{t: t, db: db, node: node, cache: cache, blobs: blobs}
	f.service = actors.NewService(node, cache, db, newID, 5*time.Second, nil)
	f.uploads = actors.NewUploads(f.service, header{}, blobs, db, actors.UploadLimits{}, time.Now)
	deps := actors.ImageDeps{Queue: db, Images: f.service, Blobs: blobs, Processor: proc,
		Log: log, Workers: 2, RetryBase: 5 * time.Millisecond}
	tune(&deps)
	f.pool, err = actors.StartImages(node.System, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.pool.Stop(ctx); err != nil {
			t.Error(err)
		}
		node.Stop()
		db.Close()
	})
	return f
}

func (f *fixture) product() string {
	f.t.Helper()
	p, err := f.service.Create(context.Background(), []byte(`{"name":"P","price":"1","user_id":1}`), 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return p.ID
}

func (f *fixture) upload(productID string) *catalog.Image {
	f.t.Helper()
	img, _, _, err := f.uploads.Upload(context.Background(), productID, []byte(uuid.NewString()), 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return img
}

func (f *fixture) wait(img *catalog.Image) *catalog.Image {
	f.t.Helper()
	return f.waitFor(img, "ready or failed", func(got *catalog.Image) bool {
		return got.Status == catalog.StatusReady || got.Status == catalog.StatusFailed
	})
}

// waitFor polls the image for 20 s at most until done holds.
func (f *fixture) waitFor(img *catalog.Image, what string, done func(*catalog.Image) bool) *catalog.Image {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _, err := f.service.Image(context.Background(), img.ProductID, img.ID)
		if err != nil {
			f.t.Fatal(err)
		}
		if done(got) {
			return got
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("image %s, variants %+v; want it %s", got.Status, got.Variants, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWritesAreSerialisedByTheGrain(t *testing.T) {
	f := newFixture(t, &processor{fn: ok}, nil, 3)
	id := f.product()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := f.service.Patch(context.Background(), id, []byte(fmt.Sprintf(`{"description":"edit %d"}`, i)), "", 0)
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent patch: %v", err)
		}
	}
	stored, err := f.db.GetProduct(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Version != 51 {
		t.Errorf("version after 50 patches = %d, want 51", stored.Version)
	}
	// The cached rendering is the stored state.
	got, err := f.service.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ETag != stored.ETag() {
		t.Errorf("cached ETag %s, stored %s", got.ETag, stored.ETag())
	}
}

func TestCrashedWorkerIsRestartedAndItsJobRetried(t *testing.T) {
	proc := &processor{fn: func(call int) (actors.Processed, error) {
		if call == 1 {
			panic("decoder crashed")
		}
		return ok(call)
	}}
	f := newFixture(t, proc, nil, 3)
	img := f.wait(f.upload(f.product()))
	if img.Status != catalog.StatusReady {
		t.Fatalf("status %s, error %+v", img.Status, img.Error)
	}
	if n := proc.calls.Load(); n != 2 {
		t.Errorf("processor called %d times, want 2 (a crash, then success)", n)
	}
	// The pool still has its workers: more jobs go through.
	if img := f.wait(f.upload(f.product())); img.Status != catalog.StatusReady {
		t.Errorf("after the restart: %s", img.Status)
	}
}

func TestJobThatAlwaysCrashesIsFailedAfterMaxAttempts(t *testing.T) {
	proc := &processor{fn: func(int) (actors.Processed, error) { panic("always") }}
	f := newFixture(t, proc, nil, 3)
	img := f.wait(f.upload(f.product()))
	if img.Status != catalog.StatusFailed || img.Error == nil || img.Error.Code != catalog.FailInternal {
		t.Fatalf("status %s error %+v", img.Status, img.Error)
	}
	if n := proc.calls.Load(); n != 3 {
		t.Errorf("processor called %d times, want 3", n)
	}
}

func TestTransientStorageFailureIsRetried(t *testing.T) {
	blobs := &flakyBlobs{}
	blobs.failPuts.Store(2)
	f := newFixture(t, &processor{fn: ok}, blobs, 5)
	img := f.wait(f.upload(f.product()))
	if img.Status != catalog.StatusReady || len(img.Variants) != 1 || img.Variants[0].URL == "" {
		t.Fatalf("status %s error %+v variants %+v", img.Status, img.Error, img.Variants)
	}
}

func TestStorageFailingEveryTimeEndsFailed(t *testing.T) {
	blobs := &flakyBlobs{}
	blobs.failPuts.Store(1000)
	f := newFixture(t, &processor{fn: ok}, blobs, 3)
	img := f.wait(f.upload(f.product()))
	if img.Status != catalog.StatusFailed || img.Error.Code != catalog.FailStorageUnavailable {
		t.Fatalf("status %s error %+v", img.Status, img.Error)
	}
}

func TestCorruptInputIsNotRetried(t *testing.T) {
	proc := &processor{fn: func(int) (actors.Processed, error) {
		return actors.Processed{}, catalog.Errorf(catalog.KindUnprocessableImage, catalog.FailCorruptImage, "truncated JPEG")
	}}
	f := newFixture(t, proc, nil, 5)
	img := f.wait(f.upload(f.product()))
	if img.Status != catalog.StatusFailed || img.Error.Code != catalog.FailCorruptImage || img.Error.Detail != "truncated JPEG" {
		t.Fatalf("status %s error %+v", img.Status, img.Error)
	}
	if n := proc.calls.Load(); n != 1 {
		t.Errorf("processor called %d times, want 1", n)
	}
}

func TestExhaustedRetriesAreDeadLettered(t *testing.T) {
	blobs := &flakyBlobs{}
	blobs.failPuts.Store(1000)
	f := newFixture(t, &processor{fn: ok}, blobs, 2)
	img := f.wait(f.upload(f.product()))
	if img.Status != catalog.StatusFailed {
		t.Fatalf("status %s", img.Status)
	}
	var letters []catalog.DeadLetter
	deadline := time.Now().Add(5 * time.Second)
	for len(letters) == 0 && time.Now().Before(deadline) {
		var err error
		if letters, err = f.db.ListDeadLetters(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(letters) != 1 || letters[0].Job.ImageID != img.ID || letters[0].Code != catalog.FailStorageUnavailable || letters[0].Attempts != 2 {
		t.Fatalf("dead letters: %+v", letters)
	}

	// Replayed once storage works again, the image ends ready.
	blobs.failPuts.Store(0)
	admin := actors.NewAdmin(f.service, f.db)
	if _, err := admin.ReplayDeadLetter(context.Background(), img.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := f.wait(img); got.Status != catalog.StatusReady {
		t.Fatalf("after replay: %s %+v", got.Status, got.Error)
	}
	letters, err := f.db.ListDeadLetters(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 0 {
		t.Errorf("dead letters after replay: %+v", letters)
	}
}

func TestCorruptInputIsNotDeadLettered(t *testing.T) {
	proc := &processor{fn: func(int) (actors.Processed, error) {
		return actors.Processed{}, catalog.Errorf(catalog.KindUnprocessableImage, catalog.FailCorruptImage, "bad")
	}}
	f := newFixture(t, proc, nil, 3)
	if got := f.wait(f.upload(f.product())); got.Status != catalog.StatusFailed || got.Error == nil || got.Error.Code != catalog.FailCorruptImage {
		t.Fatalf("a corrupt image ended %s %+v, want failed corrupt_image", got.Status, got.Error)
	}
	letters, err := f.db.ListDeadLetters(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 0 {
		t.Errorf("a corrupt image was dead-lettered: %+v", letters)
	}
}

func TestSameBytesReturnTheExistingImage(t *testing.T) {
	f := newFixture(t, &processor{fn: ok}, nil, 3)
	id := f.product()
	a, _, existing, err := f.uploads.Upload(context.Background(), id, []byte("same bytes"), 0)
	if err != nil || existing {
		t.Fatalf("first: %v %v", existing, err)
	}
	b, _, existing, err := f.uploads.Upload(context.Background(), id, []byte("same bytes"), 0)
	if err != nil || !existing || b.ID != a.ID {
		t.Fatalf("second: id %s existing %v err %v, want %s", b.ID, existing, err, a.ID)
	}
}

func TestReprocessKeepsVariantsUntilNewOnesAreReady(t *testing.T) {
	version := atomic.Int32{}
	version.Store(1)
	started, release := make(chan struct{}, 1), make(chan struct{})
	proc := &processor{fn: func(call int) (actors.Processed, error) {
		if call == 2 { // the reprocessing: held while the test looks
			started <- struct{}{}
			<-release
		}
		p, _ := ok(0)
		p.RecipeVersion = int(version.Load())
		return p, nil
	}}
	f := newFixture(t, proc, nil, 3)
	img := f.wait(f.upload(f.product()))
	oldURL := img.Variants[0].URL
	oldKey := strings.TrimPrefix(oldURL, "http://test/media/")
	if !f.hasBlob(img.ProductID, oldKey) {
		t.Fatalf("the variant's file %s is not stored", oldKey)
	}
	version.Store(2)
	if _, err := f.service.Reprocess(context.Background(), img.ProductID, img.ID, 0); err != nil {
		t.Fatal(err)
	}
	<-started
	// While the new variants are made, the image is not ready and still
	// names, and stores, the old ones.
	during, _, err := f.service.Image(context.Background(), img.ProductID, img.ID)
	if err != nil {
		t.Fatal(err)
	}
	if during.Status == catalog.StatusReady || len(during.Variants) == 0 || during.Variants[0].URL != oldURL {
		t.Errorf("while reprocessing: %s with variants %+v, want not ready and the old variant %s", during.Status, during.Variants, oldURL)
	}
	if !f.hasBlob(img.ProductID, oldKey) {
		t.Errorf("while reprocessing, the old variant's file is gone")
	}
	close(release)
	got := f.wait(img)
	if got.RecipeVersion != 2 || got.Variants[0].URL == oldURL {
		t.Fatalf("after reprocess: recipe %d url %s (old %s)", got.RecipeVersion, got.Variants[0].URL, oldURL)
	}
	if !f.hasBlob(img.ProductID, strings.TrimPrefix(got.Variants[0].URL, "http://test/media/")) {
		t.Errorf("the new variant's file is not stored")
	}
	// After the switch, the old version's file goes.
	deadline := time.Now().Add(10 * time.Second)
	for f.hasBlob(img.ProductID, oldKey) {
		if time.Now().After(deadline) {
			t.Fatalf("the old variant's file %s is still stored 10 s after the switch", oldKey)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if proc.calls.Load() != 2 {
		t.Errorf("processed %d times, want 2", proc.calls.Load())
	}
}

// hasBlob reports whether the product's files include key.
func (f *fixture) hasBlob(productID, key string) bool {
	f.t.Helper()
	found := false
	err := f.blobs.List(context.Background(), catalog.ProductPrefix(productID), func(b catalog.BlobInfo) error {
		found = found || b.Key == key
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return found
}

// TestHotReadRefill: once a product's cache entry expired or was evicted,
// the live grain that answers the next read puts it back, so the reads
// after it are answered from the cache again.
func TestHotReadRefill(t *testing.T) {
	f := newFixture(t, nil, nil, 3)
	ctx := context.Background()
	p, err := f.service.Create(ctx, []byte(`{"name":"Hot","price":"3","user_id":1}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.cache.Get(ctx, p.ID); !ok {
		t.Fatal("a created product is not in the cache")
	}
	for i := 0; i < 3; i++ {
		f.cache.Evict(p.ID) // expiry or eviction; the grain stays alive
		got, err := f.service.Get(ctx, p.ID)
		if err != nil || got.ETag != p.ETag {
			t.Fatalf("read after eviction: %v %v", got, err)
		}
		if _, ok := f.cache.Get(ctx, p.ID); !ok {
			t.Fatalf("round %d: the read answered by the grain did not refill the cache", i)
		}
	}
}

package actors_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
)

// injector is a processor that panics at a steady rate while it is on, as
// a decoder that crashes on some inputs would, and takes a little time
// for each image otherwise.
type injector struct {
	mu     sync.Mutex
	every  time.Duration
	until  time.Time
	next   time.Time
	panics atomic.Int32
	calls  atomic.Int32
}

func (in *injector) Process(ctx context.Context, data []byte, opts actors.ProcessOptions) (actors.Processed, error) {
	in.calls.Add(1)
	in.mu.Lock()
	now := time.Now()
	crash := now.Before(in.until) && !now.Before(in.next)
	if crash {
		in.next = now.Add(in.every)
	}
	in.mu.Unlock()
	if crash {
		in.panics.Add(1)
		panic("injected decoder crash")
	}
	select {
	case <-time.After(5 * time.Millisecond):
	case <-ctx.Done():
		return actors.Processed{}, ctx.Err()
	}
	return ok(0)
}

// waitWorkers waits until the pool runs want workers.
func waitWorkers(t *testing.T, f *fixture, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for f.pool.Workers() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the pool runs %d workers %v after the crashes stopped, want %d", f.pool.Workers(), within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPoolSurvivesSteadyCrashes: workers panic 30 times a minute for two
// minutes while jobs keep coming (the old one-for-one strategy stopped a
// worker for good after its 10th crash in a minute). Every job is still
// processed, and the pool is back to its size once the crashes stop.
func TestPoolSurvivesSteadyCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("two minutes of crashes: skipped with -short")
	}
	const workers, rate, period = 4, 30, 2 * time.Minute
	in := &injector{every: time.Minute / rate, until: time.Now().Add(period)}
	f := newFixtureWith(t, in, nil, func(d *actors.ImageDeps) {
		d.Workers, d.MaxAttempts = workers, 8
	})
	waitWorkers(t, f, workers, 10*time.Second)
	product := f.product()
	var imgs []*catalog.Image
	var lowest = workers
	for time.Now().Before(in.until) {
		if len(imgs)%90 == 89 { // a product holds at most 100 images
			product = f.product()
		}
		imgs = append(imgs, f.upload(product))
		lowest = min(lowest, f.pool.Workers())
		time.Sleep(100 * time.Millisecond)
	}
	for _, img := range imgs {
		if got := f.wait(img); got.Status != catalog.StatusReady {
			t.Errorf("image %s ended %s %+v", img.ID, got.Status, got.Error)
		}
	}
	waitWorkers(t, f, workers, 15*time.Second) // the longest restart backoff is 10 s
	if n := in.panics.Load(); n < rate*int32(period/time.Minute)*9/10 {
		t.Errorf("%d crashes injected, want about %d", n, rate*int(period/time.Minute))
	}
	t.Logf("%d crashes in %v, %d jobs processed (%d calls), fewest workers running %d of %d; pool back to %d",
		in.panics.Load(), period, len(imgs), in.calls.Load(), lowest, workers, f.pool.Workers())
}

// TestPoisonJobDoesNotStarveTheRest: a job that crashes every worker that
// runs it is failed after its attempts, while the other jobs go through.
func TestPoisonJobDoesNotStarveTheRest(t *testing.T) {
	proc := &processor{fn: func(int) (actors.Processed, error) { return ok(0) }}
	poisoned := &poison{processor: proc}
	f := newFixtureWith(t, poisoned, nil, func(d *actors.ImageDeps) { d.Workers, d.MaxAttempts = 2, 4 })
	p := f.product()
	bad, _, _, err := f.uploads.Upload(context.Background(), p, []byte("poison"), 0)
	if err != nil {
		t.Fatal(err)
	}
	var good []*catalog.Image
	for range 30 {
		good = append(good, f.upload(p))
	}
	for _, img := range good {
		if got := f.wait(img); got.Status != catalog.StatusReady {
			t.Errorf("image %s ended %s", img.ID, got.Status)
		}
	}
	if got := f.wait(bad); got.Status != catalog.StatusFailed || got.Error.Code != catalog.FailInternal {
		t.Errorf("the poison image ended %s %+v, want failed internal", got.Status, got.Error)
	}
	if n := poisoned.crashes.Load(); n != 4 {
		t.Errorf("the poison job crashed %d workers, want 4 (its attempts; the 5th start fails it without running)", n)
	}
	waitWorkers(t, f, 2, 10*time.Second)
}

// poison crashes on the bytes "poison".
type poison struct {
	*processor
	crashes atomic.Int32
}

func (p *poison) Process(ctx context.Context, data []byte, opts actors.ProcessOptions) (actors.Processed, error) {
	if string(data) == "poison" {
		p.crashes.Add(1)
		panic("poison")
	}
	return p.processor.Process(ctx, data, opts)
}

// TestDeletedWhileProcessing: a product deleted while its image is being
// processed keeps no file: the job, finishing after the delete, removes
// the variants it wrote and records nothing.
func TestDeletedWhileProcessing(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	proc := &processor{fn: func(int) (actors.Processed, error) {
		started <- struct{}{}
		<-release
		return ok(0)
	}}
	book := &failingSave{} // fails nothing: it counts the job's final save
	f := newFixtureWith(t, proc, nil, func(d *actors.ImageDeps) {
		d.MaxAttempts = 3
		book.images = d.Images
		d.Images = book
	})
	p := f.product()
	img := f.upload(p)
	<-started
	// The job has recorded the image as processing: it will write its
	// variants before it learns of the delete (a job that finds the image
	// gone before processing writes nothing, and proves nothing here).
	waitStatus(t, f, p, img.ID, catalog.StatusProcessing)
	if err := f.service.Delete(context.Background(), p, "", 0); err != nil {
		t.Fatal(err)
	}
	if n := f.files(p); n != 0 {
		t.Fatalf("%d files of the deleted product right after the delete", n)
	}
	close(release) // the job writes its variants now, then finds the image gone
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, err := f.db.PendingJobs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Only once the job has tried to record its variants (so it wrote
		// them) does "no file" mean they were removed.
		if pending == 0 && f.files(p) == 0 && book.readySaves.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the job ended: %d jobs pending, %d files of the deleted product, %d final saves tried", pending, f.files(p), book.readySaves.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := f.service.Image(context.Background(), p, img.ID); !catalog.IsNotFound(err) {
		t.Errorf("the image of a deleted product: %v, want not found", err)
	}
}

// TestDeletedWhileSaveFails: a product deleted while its image is being
// processed, whose job then fails to record the image for a reason other
// than not-found (its grain did not answer, say), keeps no file either: the
// job's row went with the image, so the retry it asks for would never
// come, and the variants it wrote must go at once, not with the orphan
// sweep hours later.
func TestDeletedWhileSaveFails(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	proc := &processor{fn: func(int) (actors.Processed, error) {
		started <- struct{}{}
		<-release
		return ok(0)
	}}
	book := &failingSave{}
	f := newFixtureWith(t, proc, nil, func(d *actors.ImageDeps) {
		d.MaxAttempts = 3
		book.images = d.Images
		d.Images = book
	})
	book.fails.Store(1)
	p := f.product()
	img := f.upload(p)
	<-started
	// The processing status is recorded (a save refused as not-found
	// would end the job as deleted, the path this test is not about).
	waitStatus(t, f, p, img.ID, catalog.StatusProcessing)
	if err := f.service.Delete(context.Background(), p, "", 0); err != nil {
		t.Fatal(err)
	}
	close(release) // the job writes its variants now, then fails to record them
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, err := f.db.PendingJobs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 && f.files(p) == 0 && book.injected.Load() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the job ended: %d jobs pending, %d files of the deleted product (%d saves failed, want 1)",
				pending, f.files(p), book.injected.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failingSave fails the saves of images recorded ready while fails > 0,
// with an error that is not not-found; injected counts those failures.
// waitStatus waits until the image has status st.
func waitStatus(t *testing.T, f *fixture, productID, imageID string, st catalog.ImageStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _, err := f.service.Image(context.Background(), productID, imageID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == st {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image is %s after 10 s, want %s", got.Status, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type failingSave struct {
	images interface {
		Image(ctx context.Context, productID, imageID string) (*catalog.Image, []byte, error)
		SaveImage(ctx context.Context, img *catalog.Image) error
	}
	fails, injected atomic.Int32
	readySaves      atomic.Int32 // saves of a ready image: a job's last step, after its files
}

func (b *failingSave) Image(ctx context.Context, productID, imageID string) (*catalog.Image, []byte, error) {
	return b.images.Image(ctx, productID, imageID)
}

func (b *failingSave) SaveImage(ctx context.Context, img *catalog.Image) error {
	if img.Status == catalog.StatusReady {
		b.readySaves.Add(1)
	}
	if img.Status == catalog.StatusReady && b.fails.Add(-1) >= 0 {
		b.injected.Add(1)
		return errors.New("injected: the product's grain did not answer")
	}
	return b.images.SaveImage(ctx, img)
}

// files counts the blobs of a product.
func (f *fixture) files(productID string) int {
	f.t.Helper()
	n := 0
	err := f.blobs.List(context.Background(), catalog.ProductPrefix(productID), func(catalog.BlobInfo) error { n++; return nil })
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

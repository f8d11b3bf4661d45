// Package outboxtest is the conformance suite of catalog.JobOutbox and
// catalog.DeadLetters: every store that keeps image jobs (the embedded
// SQLite one, PostgreSQL, ...) runs the very same tests from its own
// _test.go with Run.
package outboxtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vitrine-dev/vitrine/catalog"
)

// Store is what the suite drives: a product store whose AddImage writes the
// job rows of the outbox, and that keeps dead letters.
type Store interface {
	catalog.ProductStore
	catalog.JobOutbox
	catalog.DeadLetters
	// RequeueImage records a change of an existing image (as SaveImage)
	// and queues its job again as Enqueue does, in one transaction.
	RequeueImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error
}

// Harness drives one store under test.
type Harness struct {
	Store Store
	// Advance moves the clock that the store reads forward by d; the store's
	// clock stands still otherwise.
	Advance func(d time.Duration)
}

// Run runs the suite. open must return a harness over a new, empty store
// for each call; it should register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"AddImageJobIsDue", testDue},
		{"MarkPublishedHides", testMarkPublished},
		{"RescheduleAfterDelay", testReschedule},
		{"StartAttemptCounts", testStartAttempt},
		{"EnqueueResets", testEnqueue},
		{"FinishJobRemoves", testFinish},
		{"BuryListRevive", testBury},
		{"EnqueueDropsDeadLetter", testEnqueueDropsDeadLetter},
		{"DeleteProductDropsJobs", testDeleteProduct},
		{"RequeueImage", testRequeueImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := open(t)
			if h.Store == nil || h.Advance == nil {
				t.Fatal("outboxtest: the harness must set Store and Advance")
			}
			tt.fn(t, h)
		})
	}
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// at is a time d after a fixed instant, with microsecond precision and not
// in UTC, so that the suite sees stores return UTC whatever they were given.
func at(d time.Duration) time.Time {
	return time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("UTC+2", 2*60*60)).Add(d)
}

// add creates a product with one image, which writes its job, and moves
// the clock on by a second so that jobs added one after the other fall due
// in that order.
func add(t *testing.T, h Harness) catalog.Job {
	t.Helper()
	p := &catalog.Product{ID: newID(t), UserID: 1, Name: "Chair", Price: 100, Currency: "EUR",
		CreatedAt: at(0), UpdatedAt: at(0), Version: 1}
	if err := h.Store.CreateProduct(t.Context(), p); err != nil {
		t.Fatalf("CreateProduct: %v", err)
	}
	img := &catalog.Image{ID: newID(t), ProductID: p.ID, Status: catalog.StatusPending, CreatedAt: at(0)}
	p.Version++
	if err := h.Store.AddImage(t.Context(), p, img); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	h.Advance(time.Second)
	return catalog.Job{ImageID: img.ID, ProductID: p.ID}
}

func due(t *testing.T, h Harness, n int) []catalog.Job {
	t.Helper()
	jobs, err := h.Store.DueJobs(t.Context(), n)
	if err != nil {
		t.Fatalf("DueJobs(%d): %v", n, err)
	}
	return jobs
}

// expectDue checks that exactly want are due, in that order.
func expectDue(t *testing.T, h Harness, want ...catalog.Job) {
	t.Helper()
	if got := due(t, h, 100); !slices.Equal(got, want) {
		t.Errorf("DueJobs = %+v, want %+v", got, want)
	}
}

func markPublished(t *testing.T, h Harness, jobs ...catalog.Job) {
	t.Helper()
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ImageID
	}
	if err := h.Store.MarkPublished(t.Context(), ids); err != nil {
		t.Fatalf("MarkPublished(%v): %v", ids, err)
	}
}

func startAttempt(t *testing.T, h Harness, job catalog.Job) int {
	t.Helper()
	n, err := h.Store.StartAttempt(t.Context(), job.ImageID)
	if err != nil {
		t.Fatalf("StartAttempt(%s): %v", job.ImageID, err)
	}
	return n
}

func expectGone(t *testing.T, h Harness, job catalog.Job) {
	t.Helper()
	if _, err := h.Store.StartAttempt(t.Context(), job.ImageID); !catalog.IsNotFound(err) {
		t.Errorf("StartAttempt(%s) error = %v, want not found", job.ImageID, err)
	}
}

func reschedule(t *testing.T, h Harness, job catalog.Job, delay time.Duration) {
	t.Helper()
	if err := h.Store.Reschedule(t.Context(), job.ImageID, delay); err != nil {
		t.Fatalf("Reschedule(%s, %v): %v", job.ImageID, delay, err)
	}
}

func finish(t *testing.T, h Harness, job catalog.Job) {
	t.Helper()
	if err := h.Store.FinishJob(t.Context(), job.ImageID); err != nil {
		t.Fatalf("FinishJob(%s): %v", job.ImageID, err)
	}
}

func enqueue(t *testing.T, h Harness, job catalog.Job) {
	t.Helper()
	if err := h.Store.Enqueue(t.Context(), job); err != nil {
		t.Fatalf("Enqueue(%s): %v", job.ImageID, err)
	}
}

func bury(t *testing.T, h Harness, dl catalog.DeadLetter) {
	t.Helper()
	if err := h.Store.BuryJob(t.Context(), dl); err != nil {
		t.Fatalf("BuryJob(%s): %v", dl.Job.ImageID, err)
	}
}

func listDead(t *testing.T, h Harness, limit int) []catalog.DeadLetter {
	t.Helper()
	dls, err := h.Store.ListDeadLetters(t.Context(), limit)
	if err != nil {
		t.Fatalf("ListDeadLetters(%d): %v", limit, err)
	}
	if dls == nil {
		t.Errorf("ListDeadLetters(%d) = nil, want a non-nil slice", limit)
	}
	return dls
}

func deadJobs(dls []catalog.DeadLetter) []catalog.Job {
	out := make([]catalog.Job, len(dls))
	for i, dl := range dls {
		out[i] = dl.Job
	}
	return out
}

func testDue(t *testing.T, h Harness) {
	if jobs := due(t, h, 10); len(jobs) != 0 {
		t.Fatalf("DueJobs on an empty outbox = %+v", jobs)
	}
	a, b := add(t, h), add(t, h)
	tests := []struct {
		n    int
		want []catalog.Job
	}{
		{10, []catalog.Job{a, b}},
		{2, []catalog.Job{a, b}},
		{1, []catalog.Job{a}},
		{0, nil},
	}
	for _, tt := range tests {
		if got := due(t, h, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("DueJobs(%d) = %+v, want %+v (oldest first)", tt.n, got, tt.want)
		}
	}
	// Reading is not publishing: they stay due.
	expectDue(t, h, a, b)
}

func testMarkPublished(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	markPublished(t, h, a, catalog.Job{ImageID: newID(t)}) // an unknown id is ignored
	expectDue(t, h, b)
	markPublished(t, h) // nothing
	markPublished(t, h, a, b)
	expectDue(t, h)
	// Published jobs are still jobs: they stay until their outcome is stored.
	if n := startAttempt(t, h, a); n != 1 {
		t.Errorf("StartAttempt of a published job = %d, want 1", n)
	}
}

func testReschedule(t *testing.T, h Harness) {
	a := add(t, h)
	markPublished(t, h, a)
	if n := startAttempt(t, h, a); n != 1 {
		t.Fatalf("StartAttempt = %d, want 1", n)
	}
	reschedule(t, h, a, time.Minute)
	expectDue(t, h)
	// A relay that read the job before it was rescheduled marks it late:
	// a job not due is not published, so it stays unpublished.
	markPublished(t, h, a)
	h.Advance(59 * time.Second)
	expectDue(t, h)
	h.Advance(time.Second)
	expectDue(t, h, a)
	if n := startAttempt(t, h, a); n != 2 {
		t.Errorf("StartAttempt after a reschedule = %d, want 2 (attempts are kept)", n)
	}

	t.Run("no delay", func(t *testing.T) {
		b := add(t, h)
		markPublished(t, h, a, b)
		reschedule(t, h, b, 0)
		expectDue(t, h, b)
	})
	t.Run("gone", func(t *testing.T) {
		finish(t, h, a)
		reschedule(t, h, a, 0) // the outcome is stored already: nothing to do
		reschedule(t, h, catalog.Job{ImageID: newID(t)}, 0)
		expectGone(t, h, a)
	})
}

func testStartAttempt(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	for want := 1; want <= 3; want++ {
		if n := startAttempt(t, h, a); n != want {
			t.Errorf("StartAttempt #%d = %d", want, n)
		}
	}
	if n := startAttempt(t, h, b); n != 1 {
		t.Errorf("StartAttempt of another job = %d, want 1", n)
	}
	// Counting attempts does not take the job off the outbox.
	expectDue(t, h, a, b)
	expectGone(t, h, catalog.Job{ImageID: newID(t)})
}

func testEnqueue(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	startAttempt(t, h, a)
	startAttempt(t, h, a)
	markPublished(t, h, a, b)
	reschedule(t, h, a, time.Hour)
	expectDue(t, h)

	enqueue(t, h, a) // due now, unpublished, attempts reset
	expectDue(t, h, a)
	if n := startAttempt(t, h, a); n != 1 {
		t.Errorf("StartAttempt after Enqueue = %d, want 1", n)
	}

	finish(t, h, b)
	enqueue(t, h, b) // the job of an existing image comes back
	expectDue(t, h, a, b)

	err := h.Store.Enqueue(t.Context(), catalog.Job{ImageID: newID(t), ProductID: a.ProductID})
	if !catalog.IsNotFound(err) {
		t.Errorf("Enqueue(unknown image) error = %v, want not found", err)
	}
}

func testFinish(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	markPublished(t, h, b)
	finish(t, h, a)
	finish(t, h, b)
	expectDue(t, h)
	expectGone(t, h, a)
	expectGone(t, h, b)
	finish(t, h, a) // again: no error
	finish(t, h, catalog.Job{ImageID: newID(t)})
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Errorf("finished jobs listed as dead: %+v", dls)
	}
}

func testBury(t *testing.T, h Harness) {
	a, b, c := add(t, h), add(t, h), add(t, h)
	for range 3 {
		startAttempt(t, h, a)
	}
	markPublished(t, h, a, b)
	dlA := catalog.DeadLetter{Job: a, Code: catalog.FailCorruptImage, Detail: "the PNG ends early", Attempts: 3, FailedAt: at(time.Minute)}
	dlB := catalog.DeadLetter{Job: b, Code: catalog.FailTimeout, Detail: "took over 60s", Attempts: 5, FailedAt: at(2 * time.Minute)}
	bury(t, h, dlA)
	bury(t, h, dlB)
	expectDue(t, h, c)
	expectGone(t, h, a)
	expectGone(t, h, b)

	dls := listDead(t, h, 0)
	if got := deadJobs(dls); !slices.Equal(got, []catalog.Job{b, a}) {
		t.Fatalf("ListDeadLetters = %+v, want b then a (newest first)", got)
	}
	for i, want := range []catalog.DeadLetter{dlB, dlA} {
		got := dls[i]
		if !got.FailedAt.Equal(want.FailedAt) || got.FailedAt.Location() != time.UTC {
			t.Errorf("FailedAt = %v, want %v in UTC", got.FailedAt, want.FailedAt)
		}
		got.FailedAt, want.FailedAt = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("dead letter = %+v, want %+v", got, want)
		}
	}
	if got := deadJobs(listDead(t, h, 1)); !slices.Equal(got, []catalog.Job{b}) {
		t.Errorf("ListDeadLetters(1) = %+v, want [b]", got)
	}

	revived, err := h.Store.ReviveDeadLetter(t.Context(), a.ImageID)
	if err != nil {
		t.Fatalf("ReviveDeadLetter: %v", err)
	}
	if revived != a {
		t.Errorf("ReviveDeadLetter = %+v, want %+v", revived, a)
	}
	expectDue(t, h, c, a) // a is due now, after c
	if n := startAttempt(t, h, a); n != 1 {
		t.Errorf("StartAttempt of a revived job = %d, want 1", n)
	}
	if got := deadJobs(listDead(t, h, 0)); !slices.Equal(got, []catalog.Job{b}) {
		t.Errorf("ListDeadLetters after the revival = %+v, want [b]", got)
	}
	for _, id := range []string{a.ImageID, newID(t)} {
		if _, err := h.Store.ReviveDeadLetter(t.Context(), id); !catalog.IsNotFound(err) {
			t.Errorf("ReviveDeadLetter(%s) error = %v, want not found", id, err)
		}
	}

	t.Run("gone job", func(t *testing.T) {
		finish(t, h, c)
		bury(t, h, catalog.DeadLetter{Job: c, Code: catalog.FailInternal, Detail: "late", Attempts: 1})
		if got := deadJobs(listDead(t, h, 0)); !slices.Equal(got, []catalog.Job{b}) {
			t.Errorf("burying a finished job listed it: %+v", got)
		}
	})
	t.Run("failed again", func(t *testing.T) {
		bury(t, h, catalog.DeadLetter{Job: a, Code: catalog.FailInternal, Detail: "again", Attempts: 1, FailedAt: at(time.Hour)})
		dls := listDead(t, h, 0)
		if got := deadJobs(dls); !slices.Equal(got, []catalog.Job{a, b}) {
			t.Fatalf("ListDeadLetters = %+v, want a then b", got)
		}
		if dls[0].Code != catalog.FailInternal || dls[0].Attempts != 1 {
			t.Errorf("dead letter = %+v, want the second failure's", dls[0])
		}
	})
}

func testEnqueueDropsDeadLetter(t *testing.T, h Harness) {
	a := add(t, h)
	// A zero FailedAt is the store's now.
	bury(t, h, catalog.DeadLetter{Job: a, Code: catalog.FailFetch, Detail: "blob store down", Attempts: 3})
	if dls := listDead(t, h, 0); len(dls) != 1 || dls[0].FailedAt.IsZero() || dls[0].FailedAt.Location() != time.UTC {
		t.Errorf("ListDeadLetters = %+v, want one failed now, in UTC", dls)
	}
	enqueue(t, h, a) // reprocessing: the job is no longer dead
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Errorf("ListDeadLetters after Enqueue = %+v, want none", dls)
	}
	expectDue(t, h, a)
}

func testDeleteProduct(t *testing.T, h Harness) {
	a, b, keep := add(t, h), add(t, h), add(t, h)
	bury(t, h, catalog.DeadLetter{Job: b, Code: catalog.FailInternal, Detail: "x", Attempts: 1, FailedAt: at(0)})
	for _, j := range []catalog.Job{a, b} {
		if err := h.Store.DeleteProduct(t.Context(), j.ProductID); err != nil {
			t.Fatalf("DeleteProduct: %v", err)
		}
	}
	expectDue(t, h, keep)
	expectGone(t, h, a)
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Errorf("dead letters survived their product: %+v", dls)
	}
	if _, err := h.Store.ReviveDeadLetter(t.Context(), b.ImageID); !catalog.IsNotFound(err) {
		t.Errorf("ReviveDeadLetter(deleted) error = %v, want not found", err)
	}
}

func testRequeueImage(t *testing.T, h Harness) {
	a, other := add(t, h), add(t, h)
	startAttempt(t, h, a)
	startAttempt(t, h, a)
	bury(t, h, catalog.DeadLetter{Job: a, Code: catalog.FailTimeout, Detail: "slow", Attempts: 2, FailedAt: at(0)})
	markPublished(t, h, other)
	expectDue(t, h)

	p, err := h.Store.GetProduct(t.Context(), a.ProductID)
	if err != nil {
		t.Fatalf("GetProduct: %v", err)
	}
	img := p.Images[0]
	img.Status, img.Error, img.RecipeVersion = catalog.StatusPending, nil, 7
	n := *p
	n.Images, n.Version, n.UpdatedAt = nil, p.Version+1, at(time.Minute)
	if err := h.Store.RequeueImage(t.Context(), &n, &img); err != nil {
		t.Fatalf("RequeueImage: %v", err)
	}
	expectDue(t, h, a)
	if n := startAttempt(t, h, a); n != 1 {
		t.Errorf("StartAttempt after RequeueImage = %d, want 1", n)
	}
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Errorf("dead letter kept after RequeueImage: %+v", dls)
	}
	got, err := h.Store.GetProduct(t.Context(), a.ProductID)
	if err != nil {
		t.Fatalf("GetProduct: %v", err)
	}
	if got.Version != n.Version || got.Images[0].Status != catalog.StatusPending || got.Images[0].RecipeVersion != 7 {
		t.Errorf("after RequeueImage: version %d, image %+v; want version %d and the image as given", got.Version, got.Images[0], n.Version)
	}

	t.Run("stale version", func(t *testing.T) {
		finish(t, h, a)
		err := h.Store.RequeueImage(t.Context(), &n, &img) // n.Version is the stored one
		if !errors.Is(err, catalog.ErrVersionConflict) {
			t.Fatalf("RequeueImage(stale) error = %v, want ErrVersionConflict", err)
		}
		expectDue(t, h) // nothing queued by the write that lost
	})
	t.Run("unknown image", func(t *testing.T) {
		ghost := img
		ghost.ID = newID(t)
		m := n
		m.Version++
		if err := h.Store.RequeueImage(t.Context(), &m, &ghost); !catalog.IsNotFound(err) {
			t.Fatalf("RequeueImage(unknown image) error = %v, want not found", err)
		}
		expectDue(t, h)
	})
}

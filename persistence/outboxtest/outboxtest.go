// Package outboxtest is the conformance suite of catalog.JobOutbox and
// catalog.DeadLetters: every store that keeps image jobs (the embedded
// SQLite one, PostgreSQL, ...) runs the very same tests from its own
// _test.go with Run.
package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/storetest"
)

// Store is what the suite drives: a product store whose AddImage writes the
// job rows of the outbox, and that keeps dead letters; and what the orphan
// sweeper asks of it.
type Store interface {
	catalog.ProductStore
	catalog.JobOutbox
	catalog.DeadLetters
	// RequeueImage records a change of an existing image (as SaveImage)
	// and queues its job again as Enqueue does, in one transaction.
	RequeueImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error
	// ExistingImages returns the ids among ids of images that exist.
	ExistingImages(ctx context.Context, ids []string) (map[string]bool, error)
	// TryLease takes or renews the lease name for holder for ttl; false
	// while another holder's runs. ReleaseLease gives it up.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
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
		{"ClaimDueOldestFirst", testClaimDue},
		{"ClaimDueIsDisjoint", testClaimDueDisjoint},
		{"MarkPublishedUnderClaim", testMarkPublished},
		{"UnclaimGivesBack", testUnclaim},
		{"ClaimJobOnce", testClaimJob},
		{"DeadDeliveryRepublished", testDeadDelivery},
		{"LostMessageRepublished", testLostMessage},
		{"RescheduleAfterDelay", testReschedule},
		{"EnqueueResets", testEnqueue},
		{"FinishJobRemoves", testFinish},
		{"BuryListRevive", testBury},
		{"EnqueueDropsDeadLetter", testEnqueueDropsDeadLetter},
		{"DeleteProductDropsJobs", testDeleteProduct},
		{"RequeueImage", testRequeueImage},
		{"ExistingImages", testExistingImages},
		{"Lease", testLease},
		{"TraceParentTravels", testTraceParent},
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
	p := &catalog.Product{ID: storetest.NewID(t), UserID: 1, Name: "Chair", Price: 100, Currency: "EUR",
		CreatedAt: at(0), UpdatedAt: at(0), Version: 1}
	if err := h.Store.CreateProduct(t.Context(), p); err != nil {
		t.Fatalf("CreateProduct: %v", err)
	}
	img := &catalog.Image{ID: storetest.NewID(t), ProductID: p.ID, Status: catalog.StatusPending, CreatedAt: at(0)}
	p.Version++
	if err := h.Store.AddImage(t.Context(), p, img); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	h.Advance(time.Second)
	return catalog.Job{ImageID: img.ID, ProductID: p.ID}
}

// relayLease and jobLease are the leases the suite claims with; a relay
// publishes again a job that no delivery claimed for redeliver after it
// was published (longer than any other test waits).
const (
	relayLease = 10 * time.Second
	jobLease   = time.Minute
	redeliver  = time.Hour
)

// claimDue claims up to n jobs for a relay.
func claimDue(t *testing.T, h Harness, n int) ([]catalog.Job, int64) {
	t.Helper()
	jobs, token, err := h.Store.ClaimDue(t.Context(), n, relayLease, redeliver)
	if err != nil {
		t.Fatalf("ClaimDue(%d): %v", n, err)
	}
	if jobs == nil {
		t.Fatalf("ClaimDue(%d) = nil, want a non-nil slice", n)
	}
	return jobs, token
}

// expectClaimed checks that a relay claims exactly want, in that order,
// and returns the claim's token.
func expectClaimed(t *testing.T, h Harness, want ...catalog.Job) int64 {
	t.Helper()
	got, token := claimDue(t, h, 100)
	if !slices.Equal(got, want) {
		t.Errorf("ClaimDue = %+v, want %+v", got, want)
	}
	return token
}

// publish claims exactly jobs for a relay and marks them published.
func publish(t *testing.T, h Harness, jobs ...catalog.Job) {
	t.Helper()
	token := expectClaimed(t, h, jobs...)
	markPublished(t, h, token, jobs...)
}

func markPublished(t *testing.T, h Harness, token int64, jobs ...catalog.Job) {
	t.Helper()
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ImageID
	}
	if err := h.Store.MarkPublished(t.Context(), token, ids); err != nil {
		t.Fatalf("MarkPublished(%v): %v", ids, err)
	}
}

// claim claims a delivered job and returns its claim.
func claim(t *testing.T, h Harness, job catalog.Job) catalog.JobClaim {
	t.Helper()
	c, err := h.Store.ClaimJob(t.Context(), job.ImageID, jobLease)
	if err != nil {
		t.Fatalf("ClaimJob(%s): %v", job.ImageID, err)
	}
	return c
}

func expectBusy(t *testing.T, h Harness, job catalog.Job) {
	t.Helper()
	if c, err := h.Store.ClaimJob(t.Context(), job.ImageID, jobLease); !errors.Is(err, catalog.ErrJobBusy) {
		t.Errorf("ClaimJob(%s) = %+v, %v; want ErrJobBusy", job.ImageID, c, err)
	}
}

func expectGone(t *testing.T, h Harness, job catalog.Job) {
	t.Helper()
	if _, err := h.Store.ClaimJob(t.Context(), job.ImageID, jobLease); !catalog.IsNotFound(err) {
		t.Errorf("ClaimJob(%s) error = %v, want not found", job.ImageID, err)
	}
}

func reschedule(t *testing.T, h Harness, job catalog.Job, token int64, delay time.Duration) {
	t.Helper()
	if err := h.Store.Reschedule(t.Context(), job.ImageID, token, delay); err != nil {
		t.Fatalf("Reschedule(%s, %v): %v", job.ImageID, delay, err)
	}
}

func finish(t *testing.T, h Harness, job catalog.Job, token int64) {
	t.Helper()
	if err := h.Store.FinishJob(t.Context(), job.ImageID, token); err != nil {
		t.Fatalf("FinishJob(%s): %v", job.ImageID, err)
	}
}

func enqueue(t *testing.T, h Harness, job catalog.Job) {
	t.Helper()
	if err := h.Store.Enqueue(t.Context(), job); err != nil {
		t.Fatalf("Enqueue(%s): %v", job.ImageID, err)
	}
}

func bury(t *testing.T, h Harness, dl catalog.DeadLetter, token int64) {
	t.Helper()
	if err := h.Store.BuryJob(t.Context(), dl, token); err != nil {
		t.Fatalf("BuryJob(%s): %v", dl.Job.ImageID, err)
	}
}

// claimAndBury claims a job as a delivery does and buries it.
func claimAndBury(t *testing.T, h Harness, dl catalog.DeadLetter) {
	t.Helper()
	bury(t, h, dl, claim(t, h, dl.Job).Token)
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

func testClaimDue(t *testing.T, h Harness) {
	if jobs, _ := claimDue(t, h, 10); len(jobs) != 0 {
		t.Fatalf("ClaimDue on an empty outbox = %+v", jobs)
	}
	a, b, c := add(t, h), add(t, h), add(t, h)
	if got, _ := claimDue(t, h, 0); len(got) != 0 {
		t.Errorf("ClaimDue(0) = %+v, want none", got)
	}
	if got, _ := claimDue(t, h, 2); !slices.Equal(got, []catalog.Job{a, b}) {
		t.Errorf("ClaimDue(2) = %+v, want a and b (oldest first)", got)
	}
	// Claimed jobs are not claimed again while the claim runs...
	expectClaimed(t, h, c)
	expectClaimed(t, h)
	// ... and are, oldest first, once a relay that died lets it run out.
	h.Advance(relayLease - time.Millisecond)
	expectClaimed(t, h)
	h.Advance(time.Millisecond)
	expectClaimed(t, h, a, b, c)
}

func testClaimDueDisjoint(t *testing.T, h Harness) {
	const relays, jobs = 4, 40
	var added []catalog.Job
	for range jobs {
		added = append(added, add(t, h))
	}
	var mu sync.Mutex
	var got []catalog.Job
	var wg sync.WaitGroup
	for range relays {
		wg.Go(func() {
			for {
				claimed, _, err := h.Store.ClaimDue(t.Context(), 3, relayLease, redeliver)
				if err != nil {
					t.Errorf("ClaimDue: %v", err)
					return
				}
				if len(claimed) == 0 {
					return
				}
				mu.Lock()
				got = append(got, claimed...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !slices.Equal(imageIDs(got), imageIDs(added)) {
		t.Errorf("%d relays claimed %d jobs, want each of the %d once", relays, len(got), len(added))
	}
}

func imageIDs(jobs []catalog.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ImageID
	}
	slices.Sort(out)
	return out
}

func testMarkPublished(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	token := expectClaimed(t, h, a, b)
	markPublished(t, h, token+1, a)                                         // another claim's token: nothing
	markPublished(t, h, token, a, catalog.Job{ImageID: storetest.NewID(t)}) // an unknown id is ignored
	markPublished(t, h, token)                                              // nothing
	h.Advance(relayLease)
	expectClaimed(t, h, b) // a is published; b's claim ran out
	// Published jobs are still jobs: they stay until their outcome is stored.
	if c := claim(t, h, a); c.Attempt != 1 {
		t.Errorf("ClaimJob of a published job: attempt %d, want 1", c.Attempt)
	}
}

func testUnclaim(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	token := expectClaimed(t, h, a, b)
	unclaim := func(token int64, jobs ...catalog.Job) {
		t.Helper()
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ImageID
		}
		if err := h.Store.Unclaim(t.Context(), token, ids); err != nil {
			t.Fatalf("Unclaim(%v): %v", ids, err)
		}
	}
	unclaim(token+1, a, b) // another claim's token: nothing
	expectClaimed(t, h)
	unclaim(token, a, catalog.Job{ImageID: storetest.NewID(t)}) // an unknown id is ignored
	unclaim(token)                                              // nothing
	again := expectClaimed(t, h, a)                             // given back at once; b still claimed
	markPublished(t, h, again, a)
	unclaim(again, a) // published already: it stays published
	h.Advance(relayLease)
	expectClaimed(t, h, b)
}

func testClaimJob(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	publish(t, h, a, b)
	first := claim(t, h, a)
	if first.Attempt != 1 {
		t.Errorf("first ClaimJob: attempt %d, want 1", first.Attempt)
	}
	// A second delivery while the first runs is a duplicate: not counted.
	expectBusy(t, h, a)
	expectBusy(t, h, a)
	finish(t, h, a, first.Token)
	expectGone(t, h, a)
	expectGone(t, h, catalog.Job{ImageID: storetest.NewID(t)})

	t.Run("before it is marked published", func(t *testing.T) {
		c := add(t, h)
		token := expectClaimed(t, h, c)
		// The broker delivers c before its relay marks it published: the
		// delivery takes it, and the relay's late mark changes nothing.
		if got := claim(t, h, c); got.Attempt != 1 {
			t.Errorf("ClaimJob: attempt %d, want 1", got.Attempt)
		}
		markPublished(t, h, token, c)
		h.Advance(relayLease)
		expectClaimed(t, h) // neither unpublished nor expired: c runs
		expectBusy(t, h, c)
	})
	t.Run("a duplicate of an unpublished job", func(t *testing.T) {
		d := add(t, h)
		// A message published twice (a relay died after the broker had it
		// but before it was marked) claims the job as it waits to be
		// published again: the relay leaves it alone now.
		if got := claim(t, h, d); got.Attempt != 1 {
			t.Errorf("ClaimJob: attempt %d, want 1", got.Attempt)
		}
		expectClaimed(t, h) // b is published and waits for its delivery; d runs
		if got := claim(t, h, b); got.Attempt != 1 {
			t.Errorf("ClaimJob(b): attempt %d, want 1", got.Attempt)
		}
	})
}

func testDeadDelivery(t *testing.T, h Harness) {
	a := add(t, h)
	publish(t, h, a)
	c := claim(t, h, a)
	// The consumer dies: its lease runs out and the job is published again.
	h.Advance(jobLease - time.Millisecond)
	expectClaimed(t, h)
	expectBusy(t, h, a)
	h.Advance(time.Millisecond)
	token := expectClaimed(t, h, a)
	markPublished(t, h, token, a)
	// The dead delivery's outcome changes nothing now.
	finish(t, h, a, c.Token)
	again := claim(t, h, a)
	if again.Attempt != 2 {
		t.Errorf("ClaimJob after a dead delivery: attempt %d, want 2 (the start that died counts)", again.Attempt)
	}
	finish(t, h, a, again.Token)
	expectGone(t, h, a)
}

// testLostMessage: a job published and claimed by no delivery for the
// redelivery interval is published again, as its message may be lost for
// good (a broker wiped or replaced, retention expired, an unclean leader
// election); the clock starts again at each publication. The lost message
// counted no attempt, and whichever of the two messages comes second is a
// duplicate that changes nothing.
func testLostMessage(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	publish(t, h, a, b)
	cb := claim(t, h, b) // b's message arrives; a's was lost
	finish(t, h, b, cb.Token)
	h.Advance(redeliver - time.Millisecond)
	expectClaimed(t, h)
	h.Advance(time.Millisecond)
	if jobs, _, err := h.Store.ClaimDue(t.Context(), 100, relayLease, 0); err != nil || len(jobs) != 0 {
		t.Errorf("ClaimDue with no redelivery = %+v, %v; want none", jobs, err)
	}
	token := expectClaimed(t, h, a)
	markPublished(t, h, token, a)
	h.Advance(redeliver - time.Millisecond)
	expectClaimed(t, h) // published again a moment ago: its message may come yet
	h.Advance(time.Millisecond)
	publish(t, h, a) // lost again

	// One of the messages arrives at last: it claims the job, counting the
	// first attempt; the other is a duplicate, while it runs and after.
	c := claim(t, h, a)
	if c.Attempt != 1 {
		t.Errorf("ClaimJob of a job published again: attempt %d, want 1 (the lost messages never ran)", c.Attempt)
	}
	expectBusy(t, h, a)
	h.Advance(jobLease - time.Millisecond)
	expectClaimed(t, h) // claimed: the relay leaves it to its delivery
	finish(t, h, a, c.Token)
	expectGone(t, h, a)
	h.Advance(redeliver)
	expectClaimed(t, h)
}

func testReschedule(t *testing.T, h Harness) {
	a := add(t, h)
	publish(t, h, a)
	c := claim(t, h, a)
	reschedule(t, h, a, c.Token+1, 0) // not the lease's token: nothing
	expectBusy(t, h, a)
	reschedule(t, h, a, c.Token, time.Minute)
	expectClaimed(t, h)
	// A duplicate delivered before the job is due again is not run.
	expectBusy(t, h, a)
	h.Advance(59 * time.Second)
	expectClaimed(t, h)
	h.Advance(time.Second)
	publish(t, h, a)
	again := claim(t, h, a)
	if again.Attempt != 2 {
		t.Errorf("ClaimJob after a reschedule: attempt %d, want 2 (attempts are kept)", again.Attempt)
	}

	t.Run("no delay", func(t *testing.T) {
		reschedule(t, h, a, again.Token, 0)
		expectClaimed(t, h, a)
	})
	t.Run("gone", func(t *testing.T) {
		b := add(t, h)
		publish(t, h, b)
		c := claim(t, h, b)
		finish(t, h, b, c.Token)
		reschedule(t, h, b, c.Token, 0) // the outcome is stored already: nothing to do
		reschedule(t, h, catalog.Job{ImageID: storetest.NewID(t)}, c.Token, 0)
		expectGone(t, h, b)
	})
}

func testEnqueue(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	publish(t, h, a, b)
	c := claim(t, h, a)
	reschedule(t, h, a, c.Token, time.Hour)
	c = claim(t, h, b)
	expectClaimed(t, h)

	enqueue(t, h, a) // due now, unpublished, attempts reset
	enqueue(t, h, b) // its running delivery loses its lease
	expectClaimed(t, h, a, b)
	if got := claim(t, h, a); got.Attempt != 1 {
		t.Errorf("ClaimJob after Enqueue: attempt %d, want 1", got.Attempt)
	}
	finish(t, h, b, c.Token) // the old delivery of b: nothing
	got := claim(t, h, b)
	finish(t, h, b, got.Token)
	enqueue(t, h, b) // the job of an existing image comes back
	h.Advance(relayLease)
	expectClaimed(t, h, b)

	err := h.Store.Enqueue(t.Context(), catalog.Job{ImageID: storetest.NewID(t), ProductID: a.ProductID})
	if !catalog.IsNotFound(err) {
		t.Errorf("Enqueue(unknown image) error = %v, want not found", err)
	}
}

func testFinish(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	publish(t, h, a, b)
	ca, cb := claim(t, h, a), claim(t, h, b)
	finish(t, h, a, cb.Token) // another lease's token: nothing
	expectBusy(t, h, a)
	finish(t, h, a, ca.Token)
	finish(t, h, b, cb.Token)
	h.Advance(jobLease)
	expectClaimed(t, h)
	expectGone(t, h, a)
	expectGone(t, h, b)
	finish(t, h, a, ca.Token) // again: no error
	finish(t, h, catalog.Job{ImageID: storetest.NewID(t)}, ca.Token)
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Errorf("finished jobs listed as dead: %+v", dls)
	}
}

func testBury(t *testing.T, h Harness) {
	a, b, c := add(t, h), add(t, h), add(t, h)
	for range 2 {
		ca := claim(t, h, a)
		reschedule(t, h, a, ca.Token, 0)
	}
	dlA := catalog.DeadLetter{Job: a, Code: catalog.FailCorruptImage, Detail: "the PNG ends early", Attempts: 3, FailedAt: at(time.Minute)}
	dlB := catalog.DeadLetter{Job: b, Code: catalog.FailTimeout, Detail: "took over 60s", Attempts: 5, FailedAt: at(2 * time.Minute)}
	ca := claim(t, h, a)
	if ca.Attempt != 3 {
		t.Errorf("third ClaimJob: attempt %d, want 3", ca.Attempt)
	}
	bury(t, h, dlA, ca.Token+1) // another lease's token: nothing
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Fatalf("buried under another lease's token: %+v", dls)
	}
	bury(t, h, dlA, ca.Token)
	claimAndBury(t, h, dlB)
	expectClaimed(t, h, c)
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
	h.Advance(relayLease)
	expectClaimed(t, h, c, a) // a is due now, after c
	if got := claim(t, h, a); got.Attempt != 1 {
		t.Errorf("ClaimJob of a revived job: attempt %d, want 1", got.Attempt)
	}
	if got := deadJobs(listDead(t, h, 0)); !slices.Equal(got, []catalog.Job{b}) {
		t.Errorf("ListDeadLetters after the revival = %+v, want [b]", got)
	}
	for _, id := range []string{a.ImageID, storetest.NewID(t)} {
		if _, err := h.Store.ReviveDeadLetter(t.Context(), id); !catalog.IsNotFound(err) {
			t.Errorf("ReviveDeadLetter(%s) error = %v, want not found", id, err)
		}
	}

	t.Run("gone job", func(t *testing.T) {
		cc := claim(t, h, c)
		finish(t, h, c, cc.Token)
		bury(t, h, catalog.DeadLetter{Job: c, Code: catalog.FailInternal, Detail: "late", Attempts: 1}, cc.Token)
		if got := deadJobs(listDead(t, h, 0)); !slices.Equal(got, []catalog.Job{b}) {
			t.Errorf("burying a finished job listed it: %+v", got)
		}
	})
	t.Run("failed again", func(t *testing.T) {
		h.Advance(jobLease)
		claimAndBury(t, h, catalog.DeadLetter{Job: a, Code: catalog.FailInternal, Detail: "again", Attempts: 1, FailedAt: at(time.Hour)})
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
	claimAndBury(t, h, catalog.DeadLetter{Job: a, Code: catalog.FailFetch, Detail: "blob store down", Attempts: 3})
	if dls := listDead(t, h, 0); len(dls) != 1 || dls[0].FailedAt.IsZero() || dls[0].FailedAt.Location() != time.UTC {
		t.Errorf("ListDeadLetters = %+v, want one failed now, in UTC", dls)
	}
	enqueue(t, h, a) // reprocessing: the job is no longer dead
	if dls := listDead(t, h, 0); len(dls) != 0 {
		t.Errorf("ListDeadLetters after Enqueue = %+v, want none", dls)
	}
	expectClaimed(t, h, a)
}

func testDeleteProduct(t *testing.T, h Harness) {
	a, b, keep := add(t, h), add(t, h), add(t, h)
	claimAndBury(t, h, catalog.DeadLetter{Job: b, Code: catalog.FailInternal, Detail: "x", Attempts: 1, FailedAt: at(0)})
	for _, j := range []catalog.Job{a, b} {
		if err := h.Store.DeleteProduct(t.Context(), j.ProductID); err != nil {
			t.Fatalf("DeleteProduct: %v", err)
		}
	}
	expectClaimed(t, h, keep)
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
	ca := claim(t, h, a)
	reschedule(t, h, a, ca.Token, 0)
	claimAndBury(t, h, catalog.DeadLetter{Job: a, Code: catalog.FailTimeout, Detail: "slow", Attempts: 2, FailedAt: at(0)})
	publish(t, h, other)
	expectClaimed(t, h)

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
	expectClaimed(t, h, a)
	ca = claim(t, h, a)
	if ca.Attempt != 1 {
		t.Errorf("ClaimJob after RequeueImage: attempt %d, want 1", ca.Attempt)
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
		finish(t, h, a, ca.Token)
		err := h.Store.RequeueImage(t.Context(), &n, &img) // n.Version is the stored one
		if !catalog.IsVersionConflict(err) {
			t.Fatalf("RequeueImage(stale) error = %v, want a version conflict", err)
		}
		h.Advance(relayLease)
		expectClaimed(t, h) // nothing queued by the write that lost
	})
	t.Run("unknown image", func(t *testing.T) {
		ghost := img
		ghost.ID = storetest.NewID(t)
		m := n
		m.Version++
		if err := h.Store.RequeueImage(t.Context(), &m, &ghost); !catalog.IsNotFound(err) {
			t.Fatalf("RequeueImage(unknown image) error = %v, want not found", err)
		}
		expectClaimed(t, h)
	})
}

func testExistingImages(t *testing.T, h Harness) {
	a, b := add(t, h), add(t, h)
	if err := h.Store.DeleteProduct(t.Context(), b.ProductID); err != nil {
		t.Fatalf("DeleteProduct: %v", err)
	}
	ghost := storetest.NewID(t)
	got, err := h.Store.ExistingImages(t.Context(), []string{a.ImageID, b.ImageID, ghost, "not-an-id"})
	if err != nil {
		t.Fatalf("ExistingImages: %v", err)
	}
	if len(got) != 1 || !got[a.ImageID] {
		t.Errorf("ExistingImages = %v, want only %s", got, a.ImageID)
	}
	if got, err := h.Store.ExistingImages(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("ExistingImages(nil) = %v, %v; want none", got, err)
	}
}

func testLease(t *testing.T, h Harness) {
	const ttl = time.Minute
	take := func(holder string, want bool) {
		t.Helper()
		got, err := h.Store.TryLease(t.Context(), "sweep", holder, ttl)
		if err != nil {
			t.Fatalf("TryLease(%s): %v", holder, err)
		}
		if got != want {
			t.Errorf("TryLease(%s) = %v, want %v", holder, got, want)
		}
	}
	take("a", true)
	take("b", false)
	take("a", true) // renewed
	h.Advance(ttl - time.Millisecond)
	take("b", false)
	h.Advance(time.Millisecond)
	take("b", true) // a's ran out
	take("a", false)
	if err := h.Store.ReleaseLease(t.Context(), "sweep", "a"); err != nil { // not a's: nothing
		t.Fatal(err)
	}
	take("a", false)
	if err := h.Store.ReleaseLease(t.Context(), "sweep", "b"); err != nil {
		t.Fatal(err)
	}
	take("a", true)
	if got, err := h.Store.TryLease(t.Context(), "other", "b", ttl); err != nil || !got {
		t.Errorf("TryLease(other, b) = %v, %v; want a lease of its own", got, err)
	}
}

// testTraceParent: a job keeps the trace of the request that wrote it (the
// W3C traceparent of ctx's span), whether written with its image or queued
// again, so that the worker continues that trace.
func testTraceParent(t *testing.T, h Harness) {
	traced := func(spanID byte) (context.Context, string) {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, spanID}, TraceFlags: trace.FlagsSampled})
		return trace.ContextWithSpanContext(t.Context(), sc), fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
	}
	ctx, want := traced(8)
	p := &catalog.Product{ID: storetest.NewID(t), UserID: 1, Name: "Chair", Price: 100, Currency: "EUR",
		CreatedAt: at(0), UpdatedAt: at(0), Version: 1}
	if err := h.Store.CreateProduct(ctx, p); err != nil {
		t.Fatalf("CreateProduct: %v", err)
	}
	img := &catalog.Image{ID: storetest.NewID(t), ProductID: p.ID, Status: catalog.StatusPending, CreatedAt: at(0)}
	p.Version++
	if err := h.Store.AddImage(ctx, p, img); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	jobs, token := claimDue(t, h, 10)
	if len(jobs) != 1 || jobs[0].TraceParent != want {
		t.Fatalf("ClaimDue after AddImage = %+v, want one job with traceparent %s", jobs, want)
	}
	markPublished(t, h, token, jobs[0])
	c := claim(t, h, jobs[0])
	finish(t, h, jobs[0], c.Token)

	ctx, want = traced(9)
	if err := h.Store.Enqueue(ctx, catalog.Job{ImageID: img.ID, ProductID: p.ID}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if jobs, _ = claimDue(t, h, 10); len(jobs) != 1 || jobs[0].TraceParent != want {
		t.Fatalf("ClaimDue after Enqueue = %+v, want one job with traceparent %s", jobs, want)
	}
}

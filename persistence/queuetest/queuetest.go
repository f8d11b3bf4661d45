// Package queuetest is the conformance suite of catalog.JobQueue: the
// embedded SQLite queue and the brokers that come later run the very same
// tests from their own _test.go with Run.
package queuetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
)

// Harness drives one queue under test.
type Harness struct {
	// Queue returns the queue as it is now (Crash may replace it).
	Queue func() catalog.JobQueue
	// Add creates a job that is ready for delivery and returns it.
	Add func(t *testing.T) catalog.Job
	// Crash simulates the death of every consumer: deliveries neither acked
	// nor retried before it must be delivered again after it, soon (within
	// a few seconds).
	Crash func(t *testing.T)
	// DeadLetters returns where the queue's dead letters are kept, as it is
	// now (Crash may replace it).
	DeadLetters func() catalog.DeadLetters
}

// replayTrace is the W3C traceparent of a dead-letter replay's request.
const replayTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// Run runs the suite. open must return a harness over a new, empty queue for
// each call; it should register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"EveryJobDelivered", testEveryJobDelivered},
		{"ConcurrentReceivers", testConcurrentReceivers},
		{"AckRemoves", testAckRemoves},
		{"RetryRedelivers", testRetry},
		{"RetryWithoutDelay", testRetryNow},
		{"RedeliveredAfterCrash", testCrash},
		{"ReceiveCancelled", testReceiveCancelled},
		{"AddWakesReceiver", testWake},
		{"DeadLetterRemovesAndKeeps", testDeadLetter},
		{"ReviveRedelivers", testRevive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := open(t)
			if h.Queue == nil || h.Add == nil || h.Crash == nil || h.DeadLetters == nil {
				t.Fatal("queuetest: the harness must set Queue, Add, Crash and DeadLetters")
			}
			tt.fn(t, h)
		})
	}
}

// patience bounds every wait for a delivery that must come.
const patience = 10 * time.Second

// quiet is how long a queue that must stay empty is watched.
const quiet = 300 * time.Millisecond

func receive(t *testing.T, h Harness) catalog.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	d, err := h.Queue().Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return d
}

// expectEmpty checks that nothing is delivered for a while.
func expectEmpty(t *testing.T, h Harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), quiet)
	defer cancel()
	d, err := h.Queue().Receive(ctx)
	if err == nil {
		t.Fatalf("Receive delivered %+v (attempt %d), want nothing", d.Job(), d.Attempt())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an empty queue: error = %v, want context.DeadlineExceeded", err)
	}
}

func ack(t *testing.T, d catalog.Delivery) {
	t.Helper()
	if err := d.Ack(t.Context()); err != nil {
		t.Fatalf("Ack(%s): %v", d.Job().ImageID, err)
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

func testEveryJobDelivered(t *testing.T, h Harness) {
	var added, got []catalog.Job
	for range 10 {
		added = append(added, h.Add(t))
	}
	for range added {
		d := receive(t, h)
		if d.Attempt() != 1 {
			t.Errorf("job %s: first Attempt() = %d, want 1", d.Job().ImageID, d.Attempt())
		}
		got = append(got, d.Job())
		ack(t, d)
	}
	if !slices.Equal(imageIDs(got), imageIDs(added)) {
		t.Errorf("delivered %v, want each of %v once", imageIDs(got), imageIDs(added))
	}
	for _, j := range got {
		i := slices.IndexFunc(added, func(a catalog.Job) bool { return a.ImageID == j.ImageID })
		if added[i] != j {
			t.Errorf("delivered job %+v, added %+v", j, added[i])
		}
	}
	expectEmpty(t, h)
}

func testConcurrentReceivers(t *testing.T, h Harness) {
	const receivers, each = 3, 3
	var added []catalog.Job
	for range receivers * each {
		added = append(added, h.Add(t))
	}
	var mu sync.Mutex
	var got []catalog.Delivery
	var wg sync.WaitGroup
	for range receivers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), patience)
			defer cancel()
			for range each {
				// Held, not acked, until all are received: a job leased to
				// one receiver must not go to another.
				d, err := h.Queue().Receive(ctx)
				if err != nil {
					t.Errorf("Receive: %v", err)
					return
				}
				mu.Lock()
				got = append(got, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var jobs []catalog.Job
	for _, d := range got {
		jobs = append(jobs, d.Job())
		ack(t, d)
	}
	if !slices.Equal(imageIDs(jobs), imageIDs(added)) {
		t.Errorf("concurrent receivers got %v, want each of %v once", imageIDs(jobs), imageIDs(added))
	}
	expectEmpty(t, h)
}

func testAckRemoves(t *testing.T, h Harness) {
	job := h.Add(t)
	d := receive(t, h)
	if d.Job() != job {
		t.Fatalf("delivered %+v, want %+v", d.Job(), job)
	}
	ack(t, d)
	expectEmpty(t, h)
	h.Crash(t)
	expectEmpty(t, h) // an acked job is not delivered again, even after a crash
}

func testRetry(t *testing.T, h Harness) {
	const delay = 300 * time.Millisecond
	job := h.Add(t)
	d := receive(t, h)
	start := time.Now()
	if err := d.Retry(t.Context(), delay); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	again := receive(t, h)
	// A millisecond of slack for stores that keep coarser times.
	if elapsed := time.Since(start); elapsed < delay-time.Millisecond {
		t.Errorf("redelivered after %v, before the delay of %v", elapsed, delay)
	}
	if again.Job() != job {
		t.Errorf("redelivered %+v, want %+v", again.Job(), job)
	}
	if again.Attempt() != d.Attempt()+1 {
		t.Errorf("redelivery Attempt() = %d, want %d", again.Attempt(), d.Attempt()+1)
	}
	ack(t, again)
	expectEmpty(t, h)
}

func testRetryNow(t *testing.T, h Harness) {
	job := h.Add(t)
	d := receive(t, h)
	if err := d.Retry(t.Context(), 0); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	again := receive(t, h)
	if again.Job() != job || again.Attempt() != 2 {
		t.Errorf("redelivered %+v attempt %d, want %+v attempt 2", again.Job(), again.Attempt(), job)
	}
	ack(t, again)
}

func testCrash(t *testing.T, h Harness) {
	job := h.Add(t)
	d := receive(t, h)
	if d.Attempt() != 1 {
		t.Fatalf("first Attempt() = %d, want 1", d.Attempt())
	}
	expectEmpty(t, h) // leased to the consumer that is about to die
	h.Crash(t)
	again := receive(t, h)
	if again.Job() != job {
		t.Fatalf("after the crash, delivered %+v, want %+v", again.Job(), job)
	}
	// The attempt that died is counted.
	if again.Attempt() != 2 {
		t.Errorf("after the crash, Attempt() = %d, want 2", again.Attempt())
	}
	ack(t, again)
	expectEmpty(t, h)
}

func testReceiveCancelled(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		d, err := h.Queue().Receive(ctx)
		if err == nil {
			err = errors.New("delivered " + d.Job().ImageID + " from an empty queue")
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Receive error = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive did not return within 2s of its context's cancellation")
	}
}

func testWake(t *testing.T, h Harness) {
	got := make(chan catalog.Delivery, 1)
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	go func() {
		d, err := h.Queue().Receive(ctx)
		if err != nil {
			errc <- err
			return
		}
		got <- d
	}()
	time.Sleep(100 * time.Millisecond) // the receiver is waiting by now
	job := h.Add(t)
	select {
	case d := <-got:
		if d.Job() != job {
			t.Errorf("woken with %+v, want %+v", d.Job(), job)
		}
		ack(t, d)
	case err := <-errc:
		t.Fatalf("Receive: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("a job added while a receiver waited was not delivered within 5s")
	}
}

// deadLetter returns the dead letter of imageID, if it is listed.
func deadLetter(t *testing.T, h Harness, imageID string) (catalog.DeadLetter, bool) {
	t.Helper()
	dls, err := h.DeadLetters().ListDeadLetters(t.Context(), 0)
	if err != nil {
		t.Fatalf("ListDeadLetters: %v", err)
	}
	for _, dl := range dls {
		if dl.Job.ImageID == imageID {
			return dl, true
		}
	}
	return catalog.DeadLetter{}, false
}

func testDeadLetter(t *testing.T, h Harness) {
	job := h.Add(t)
	d := receive(t, h)
	if d.Job() != job {
		t.Fatalf("delivered %+v, want %+v", d.Job(), job)
	}
	before := time.Now()
	if err := d.DeadLetter(t.Context(), catalog.FailCorruptImage, "the PNG ends early"); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	dl, ok := deadLetter(t, h, job.ImageID)
	if !ok {
		t.Fatalf("dead letter of %s not listed", job.ImageID)
	}
	if dl.Job != job || dl.Code != catalog.FailCorruptImage || dl.Detail != "the PNG ends early" || dl.Attempts != d.Attempt() {
		t.Errorf("dead letter = %+v, want job %+v, code %s, the detail given and %d attempts",
			dl, job, catalog.FailCorruptImage, d.Attempt())
	}
	if dl.FailedAt.Location() != time.UTC || dl.FailedAt.Before(before.Add(-time.Minute)) {
		t.Errorf("dead letter FailedAt = %v, want about %v in UTC", dl.FailedAt, before.UTC())
	}
	expectEmpty(t, h)
	h.Crash(t)
	expectEmpty(t, h) // a dead letter is not delivered again, even after a crash
	if _, ok := deadLetter(t, h, job.ImageID); !ok {
		t.Errorf("dead letter of %s lost in the crash", job.ImageID)
	}
}

func testRevive(t *testing.T, h Harness) {
	job := h.Add(t)
	d := receive(t, h)
	if err := d.Retry(t.Context(), 0); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	d = receive(t, h)
	if d.Attempt() != 2 {
		t.Fatalf("second delivery Attempt() = %d, want 2", d.Attempt())
	}
	if err := d.DeadLetter(t.Context(), catalog.FailTimeout, "took too long"); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if dl, _ := deadLetter(t, h, job.ImageID); dl.Attempts != 2 {
		t.Errorf("dead letter Attempts = %d, want 2", dl.Attempts)
	}
	// The replay runs within the trace of the request that asked for it.
	replay := traceparent.With(t.Context(), replayTrace)
	revived, err := h.DeadLetters().ReviveDeadLetter(replay, job.ImageID)
	if err != nil {
		t.Fatalf("ReviveDeadLetter: %v", err)
	}
	want := job
	want.TraceParent = replayTrace
	if revived != want {
		t.Errorf("ReviveDeadLetter = %+v, want %+v", revived, want)
	}
	again := receive(t, h)
	if again.Job() != want || again.Attempt() != 1 {
		t.Errorf("revived job delivered as %+v attempt %d, want %+v attempt 1 (the replay's traceparent kept)", again.Job(), again.Attempt(), want)
	}
	if _, ok := deadLetter(t, h, job.ImageID); ok {
		t.Errorf("dead letter still listed after its revival")
	}
	if _, err := h.DeadLetters().ReviveDeadLetter(t.Context(), job.ImageID); !catalog.IsNotFound(err) {
		t.Errorf("ReviveDeadLetter(revived) error = %v, want not found", err)
	}
	ack(t, again)
	expectEmpty(t, h)
}

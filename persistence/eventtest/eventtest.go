// Package eventtest is the conformance suite of catalog.EventLog and
// catalog.WebhookLog: the in-process log of the embedded default and the one
// every node of a cluster shares run the very same tests from their own
// _test.go with Run.
package eventtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Log is what the suite drives.
type Log interface {
	catalog.EventLog
	catalog.WebhookLog
}

// Harness drives one log under test.
type Harness struct {
	Log Log
	// Other is a second handle on the same log, as another node holds it
	// (the same value when the log lives in one process's memory).
	Other Log
	// Retention is how long the log keeps an event.
	Retention time.Duration
	// Advance moves the clock the log reads forward by d.
	Advance func(d time.Duration)
	// Now is that clock.
	Now func() time.Time
}

// Run runs the suite. open must return a harness over a new, empty log for
// each call; it should register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"AppendAfter", testAppendAfter},
		{"AppendTwiceKeepsTheFirst", testDuplicate},
		{"OrderedBySeq", testOrder},
		{"Limit", testLimit},
		{"Retention", testRetention},
		{"OtherNodeReads", testOtherReads},
		{"WatchHearsOtherNodes", testWatch},
		{"WebhookAttempts", testAttempts},
		{"ConcurrentProducts", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func event(h Harness, product string, seq int64, typ catalog.EventType) catalog.Event {
	data, _ := json.Marshal(map[string]any{"seq": seq, "name": fmt.Sprintf("v%d", seq)})
	e := catalog.Event{ProductID: product, Seq: seq, Type: typ, At: h.Now().UTC().Truncate(time.Microsecond), Data: data}
	if typ != catalog.EventProductUpdated && typ != catalog.EventProductCreated && typ != catalog.EventProductDeleted {
		e.ImageID = newID()
	}
	return e
}

func mustAppend(t *testing.T, l catalog.EventLog, e catalog.Event) {
	t.Helper()
	if err := l.Append(t.Context(), e); err != nil {
		t.Fatalf("Append(%s #%d): %v", e.ProductID, e.Seq, err)
	}
}

func seqs(evs []catalog.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func after(t *testing.T, l catalog.EventLog, product string, from int64, limit int) []catalog.Event {
	t.Helper()
	evs, err := l.After(t.Context(), product, from, limit)
	if err != nil {
		t.Fatalf("After(%s, %d): %v", product, from, err)
	}
	return evs
}

func wantSeqs(t *testing.T, got []catalog.Event, want ...int64) {
	t.Helper()
	if fmt.Sprint(seqs(got)) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", seqs(got), want)
	}
}

func testAppendAfter(t *testing.T, h Harness) {
	a, b := newID(), newID()
	var appended []catalog.Event
	for seq, typ := range []catalog.EventType{catalog.EventProductCreated, catalog.EventImagePending,
		catalog.EventImageProcessing, catalog.EventImageReady, catalog.EventProductUpdated} {
		e := event(h, a, int64(seq+1), typ)
		mustAppend(t, h.Log, e)
		appended = append(appended, e)
		mustAppend(t, h.Log, event(h, b, int64(seq+1), catalog.EventProductUpdated))
	}
	got := after(t, h.Log, a, 0, 100)
	wantSeqs(t, got, 1, 2, 3, 4, 5)
	for i, e := range got {
		w := appended[i]
		if e.ProductID != a || e.Type != w.Type || e.ImageID != w.ImageID || !e.At.Equal(w.At) {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
		var gd, wd map[string]any
		if err := json.Unmarshal(e.Data, &gd); err != nil {
			t.Fatalf("event %d data %q: %v", i, e.Data, err)
		}
		_ = json.Unmarshal(w.Data, &wd)
		if fmt.Sprint(gd) != fmt.Sprint(wd) {
			t.Errorf("event %d data %s, want %s", i, e.Data, w.Data)
		}
	}
	wantSeqs(t, after(t, h.Log, a, 3, 100), 4, 5)
	wantSeqs(t, after(t, h.Log, a, 5, 100))
	wantSeqs(t, after(t, h.Log, newID(), 0, 100))
}

func testDuplicate(t *testing.T, h Harness) {
	p := newID()
	first := event(h, p, 1, catalog.EventProductCreated)
	mustAppend(t, h.Log, first)
	second := event(h, p, 1, catalog.EventProductUpdated)
	second.Data = json.RawMessage(`{"other":true}`)
	mustAppend(t, h.Log, second)
	mustAppend(t, h.Other, second)
	got := after(t, h.Log, p, 0, 100)
	wantSeqs(t, got, 1)
	if got[0].Type != catalog.EventProductCreated {
		t.Fatalf("the second append of #1 replaced the first: %+v", got[0])
	}
}

func testOrder(t *testing.T, h Harness) {
	p := newID()
	for _, seq := range []int64{3, 1, 2, 5} {
		mustAppend(t, h.Log, event(h, p, seq, catalog.EventProductUpdated))
	}
	wantSeqs(t, after(t, h.Log, p, 0, 100), 1, 2, 3, 5)
	wantSeqs(t, after(t, h.Log, p, 2, 100), 3, 5)
	wantSeqs(t, after(t, h.Log, p, 4, 100), 5)
}

func testLimit(t *testing.T, h Harness) {
	p := newID()
	for seq := int64(1); seq <= 10; seq++ {
		mustAppend(t, h.Log, event(h, p, seq, catalog.EventProductUpdated))
	}
	wantSeqs(t, after(t, h.Log, p, 0, 3), 1, 2, 3)
	wantSeqs(t, after(t, h.Log, p, 8, 3), 9, 10)
}

func testRetention(t *testing.T, h Harness) {
	p := newID()
	mustAppend(t, h.Log, event(h, p, 1, catalog.EventProductCreated))
	mustAppend(t, h.Log, event(h, p, 2, catalog.EventProductUpdated))
	h.Advance(h.Retention / 2)
	mustAppend(t, h.Log, event(h, p, 3, catalog.EventProductUpdated))
	h.Advance(h.Retention/2 + time.Second)
	// #1 and #2 are past the window, #3 is not.
	mustAppend(t, h.Log, event(h, p, 4, catalog.EventProductUpdated))
	wantSeqs(t, after(t, h.Log, p, 0, 100), 3, 4)
	h.Advance(h.Retention + time.Second)
	wantSeqs(t, after(t, h.Log, p, 0, 100))
}

func testOtherReads(t *testing.T, h Harness) {
	p := newID()
	mustAppend(t, h.Log, event(h, p, 1, catalog.EventProductCreated))
	mustAppend(t, h.Other, event(h, p, 2, catalog.EventProductUpdated))
	wantSeqs(t, after(t, h.Other, p, 0, 100), 1, 2)
	wantSeqs(t, after(t, h.Log, p, 0, 100), 1, 2)
}

// testWatch: a watcher on one node hears of appends on the other. A watch
// may take a moment to be in place (a connection to open), so appends are
// repeated, each with a new Seq, until one is heard.
func testWatch(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(t.Context())
	heard := make(chan string, 64)
	done := make(chan error, 1)
	go func() {
		done <- h.Other.Watch(ctx, func(id string) {
			if id == "" { // any product: said when a watch (re)connects
				return
			}
			select {
			case heard <- id:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	p := newID()
	deadline := time.Now().Add(10 * time.Second)
	for seq := int64(1); ; seq++ {
		mustAppend(t, h.Log, event(h, p, seq, catalog.EventProductUpdated))
		select {
		case id := <-heard:
			if id != p {
				t.Fatalf("heard of product %s, want %s", id, p)
			}
			return
		case err := <-done:
			t.Fatalf("Watch returned before its context ended: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watcher heard of %d appends in 10 s", seq)
		}
	}
}

func testAttempts(t *testing.T, h Harness) {
	ctx := t.Context()
	got, err := h.Log.ListAttempts(ctx, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListAttempts of an empty log: %v, %v", got, err)
	}
	p := newID()
	at := h.Now().UTC().Truncate(time.Microsecond)
	for i, outcome := range []string{catalog.WebhookRetrying, catalog.WebhookRetrying, catalog.WebhookDelivered} {
		a := catalog.WebhookAttempt{ID: "msg_" + p + "_3", Endpoint: "http://127.0.0.1:9/hook", EventType: catalog.EventImageReady,
			ProductID: p, Seq: 3, Attempt: i + 1, Outcome: outcome, HTTPStatus: 500, Error: "500 Internal Server Error",
			At: at.Add(time.Duration(i) * time.Second), DurationMS: int64(i)}
		if outcome == catalog.WebhookDelivered {
			a.HTTPStatus, a.Error = 204, ""
		}
		if err := h.Log.RecordAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	got, err = h.Other.ListAttempts(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("ListAttempts: %d attempts, want 3: %+v", len(got), got)
	}
	for i, want := range []int{3, 2, 1} {
		if got[i].Attempt != want {
			t.Fatalf("attempt %d of the list is #%d, want #%d (newest first)", i, got[i].Attempt, want)
		}
	}
	first := got[2]
	if first.ID != "msg_"+p+"_3" || first.ProductID != p || first.Seq != 3 || first.Outcome != catalog.WebhookRetrying ||
		first.HTTPStatus != 500 || first.Error == "" || !first.At.Equal(at) || first.EventType != catalog.EventImageReady {
		t.Errorf("attempt read back as %+v", first)
	}
	if got[0].Outcome != catalog.WebhookDelivered || got[0].Error != "" || got[0].DurationMS != 2 {
		t.Errorf("last attempt read back as %+v", got[0])
	}
	got, err = h.Log.ListAttempts(ctx, 1)
	if err != nil || len(got) != 1 || got[0].Attempt != 3 {
		t.Fatalf("ListAttempts(1) = %+v, %v; want the newest", got, err)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	const products, each = 8, 20
	ids := make([]string, products)
	var wg sync.WaitGroup
	errs := make(chan error, products)
	for i := range ids {
		ids[i] = newID()
		wg.Add(1)
		go func(p string) {
			defer wg.Done()
			for seq := int64(1); seq <= each; seq++ {
				if err := h.Log.Append(context.Background(), event(h, p, seq, catalog.EventProductUpdated)); err != nil {
					errs <- err
					return
				}
			}
		}(ids[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, p := range ids {
		if got := after(t, h.Log, p, 0, 100); len(got) != each || got[0].Seq != 1 || got[each-1].Seq != each {
			t.Fatalf("product %s: %v, want 1…%d", p, seqs(got), each)
		}
	}
}

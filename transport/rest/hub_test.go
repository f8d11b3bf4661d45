package rest

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

const hubProduct = "01937a4e-7b8c-7def-8a12-3456789abcde"

func appendN(t *testing.T, log catalog.EventLog, from, to int64, data []byte) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := log.Append(context.Background(), catalog.Event{ProductID: hubProduct, Seq: seq,
			Type: catalog.EventProductUpdated, At: time.Now(), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
}

func receive(t *testing.T, s *subscription) catalog.Event {
	t.Helper()
	select {
	case e := <-s.c:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return catalog.Event{}
}

// TestHubFansOutInOrder: two subscribers of a product each get its new
// events, in order, whoever appended them.
func TestHubFansOutInOrder(t *testing.T) {
	log := memory.NewEvents(memory.EventOptions{})
	h := newHub(log, 16, zap.NewNop())
	defer h.close()
	a, b := h.subscribe(hubProduct, 0), h.subscribe(hubProduct, 0)
	other := h.subscribe("01937a4e-7b8c-7def-8a12-3456789abcdf", 0)
	appendN(t, log, 1, 5, []byte(`{}`))
	for _, s := range []*subscription{a, b} {
		for want := int64(1); want <= 5; want++ {
			if e := receive(t, s); e.Seq != want {
				t.Fatalf("got #%d, want #%d", e.Seq, want)
			}
		}
	}
	select {
	case e := <-other.c:
		t.Fatalf("a subscriber of another product got %+v", e)
	default:
	}
	h.unsubscribe(a)
	h.unsubscribe(b)
	h.unsubscribe(other)
	if n := h.subscribers(); n != 0 {
		t.Fatalf("%d subscribers after all left", n)
	}
}

// TestHubDropsStalledSubscriber: a subscriber that reads nothing is dropped
// when its buffer is full, and what the hub holds for it stays its buffer:
// ten times more events do not grow the heap.
func TestHubDropsStalledSubscriber(t *testing.T) {
	log := memory.NewEvents(memory.EventOptions{MaxBytes: 1 << 20})
	h := newHub(log, 8, zap.NewNop())
	defer h.close()
	stalled := h.subscribe(hubProduct, 0)
	reader := h.subscribe(hubProduct, 0)
	data, _ := json.Marshal(map[string]string{"description": strings.Repeat("x", 10_000)})
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// One event at a time, read by the reader before the next: a reader
	// that keeps up is never dropped.
	pass := func(from, to int64) {
		for seq := from; seq <= to; seq++ {
			appendN(t, log, seq, seq, data)
			if e := receive(t, reader); e.Seq != seq {
				t.Fatalf("reader got #%d, want #%d", e.Seq, seq)
			}
		}
	}
	pass(1, 100)
	select {
	case <-stalled.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled subscriber was not dropped")
	}
	if !stalled.slow.Load() || h.dropped.Load() != 1 || len(stalled.c) != 8 {
		t.Fatalf("slow %v, dropped %d, buffered %d; want a drop with 8 events held", stalled.slow.Load(), h.dropped.Load(), len(stalled.c))
	}
	before := heap()
	pass(101, 1100) // 10 MB more through the hub
	if grew := int64(heap()) - int64(before); grew > 4<<20 {
		t.Errorf("the heap grew by %d KiB while 1000 events of 10 KB passed a stalled subscriber", grew>>10)
	}
	if h.dropped.Load() != 1 {
		t.Errorf("dropped %d times, want once (the stalled one)", h.dropped.Load())
	}
}

func TestContiguous(t *testing.T) {
	evs := func(seqs ...int64) []catalog.Event {
		var out []catalog.Event
		for _, s := range seqs {
			out = append(out, catalog.Event{Seq: s})
		}
		return out
	}
	tests := []struct {
		name          string
		from, current int64
		backlog       []catalog.Event
		want          bool
	}{
		{"nothing missed", 5, 5, nil, true},
		{"all there", 2, 5, evs(3, 4, 5), true},
		{"newer ones too", 2, 4, evs(3, 4, 5, 6), true},
		{"the first expired", 2, 5, evs(4, 5), false},
		{"a hole", 2, 5, evs(3, 5), false},
		{"none retained", 2, 5, nil, false},
		{"an id of the future", 9, 5, nil, false},
	}
	for _, tt := range tests {
		if got := contiguous(tt.from, tt.current, tt.backlog); got != tt.want {
			t.Errorf("%s: contiguous = %v, want %v", tt.name, got, tt.want)
		}
	}
}

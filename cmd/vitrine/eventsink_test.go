package main

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

const sinkProduct = "01937a4e-7b8c-7def-8a12-3456789abcde"

// flakyLog is an event log that refuses appends while it is down, and
// remembers the order of those it took.
type flakyLog struct {
	*memory.Events
	mu       sync.Mutex
	down     bool
	appended []int64
}

func (l *flakyLog) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

func (l *flakyLog) Append(ctx context.Context, e catalog.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return errors.New("the event log is unreachable")
	}
	l.appended = append(l.appended, e.Seq)
	return l.Events.Append(ctx, e)
}

func (l *flakyLog) order() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.appended...)
}

func sinkEvent(seq int64) catalog.Event {
	return catalog.Event{ProductID: sinkProduct, Seq: seq, Type: catalog.EventProductUpdated, At: time.Now(), Data: []byte(`{}`)}
}

// TestEventSinkRetriesRefusedEvent: an event the log refuses (its product
// change is stored already) is not dropped: it is appended once the log
// takes appends again, and the product's next event, emitted meanwhile,
// after it, so the log receives them in order.
func TestEventSinkRetriesRefusedEvent(t *testing.T) {
	log := &flakyLog{Events: memory.NewEvents(memory.EventOptions{}), down: true}
	sink := newEventSink(log, nil, zap.NewNop())
	defer sink.Close(context.Background())
	sink.Emit(context.Background(), sinkEvent(1))
	sink.Emit(context.Background(), sinkEvent(2))
	log.setDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for len(log.order()) < 2 {
		if time.Now().After(deadline) {
			evs, _ := log.After(context.Background(), sinkProduct, 0, 10)
			t.Fatalf("the log holds %d events 10 s after it came back, want 2 (both refused at first)", len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := log.order(); got[0] != 1 || got[1] != 2 {
		t.Fatalf("appended in the order %v, want [1 2]", got)
	}
}

// TestEventSinkGivesUpVisibly: an event the log keeps refusing is retried
// a bounded number of times, then counted as lost and logged as an error,
// and the product's next event is appended.
func TestEventSinkGivesUpVisibly(t *testing.T) {
	log := &flakyLog{Events: memory.NewEvents(memory.EventOptions{}), down: true}
	core, logs := observer.New(zapcore.WarnLevel)
	sink := newRetryingSink(log, nil, zap.New(core), retryOptions{attempts: 3, minBackoff: time.Millisecond, maxBackoff: 4 * time.Millisecond, maxQueued: 10})
	defer sink.Close(context.Background())
	sink.Emit(context.Background(), sinkEvent(1))
	deadline := time.Now().Add(10 * time.Second)
	for sink.Lost() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("lost %d, pending %d after 10 s, want the event given up", sink.Lost(), sink.Pending())
		}
		time.Sleep(time.Millisecond)
	}
	if f, p := sink.Failed(), sink.Pending(); f != 3 || p != 0 {
		t.Errorf("failed appends %d, pending %d; want 3 attempts, none pending", f, p)
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.Int64("seq", 1)).Len(); n != 1 {
		t.Errorf("%d error logs of the lost event, want 1", n)
	}
	log.setDown(false)
	sink.Emit(context.Background(), sinkEvent(2))
	if got := log.order(); len(got) != 1 || got[0] != 2 {
		t.Errorf("appended %v, want [2]: the next event no longer waits", got)
	}
}

// TestEventSinkFlushesOnClose: an event still waiting for its retry when
// the node stops is tried once more, not dropped with the process.
func TestEventSinkFlushesOnClose(t *testing.T) {
	log := &flakyLog{Events: memory.NewEvents(memory.EventOptions{}), down: true}
	sink := newRetryingSink(log, nil, zap.NewNop(), retryOptions{attempts: 3, minBackoff: time.Hour, maxBackoff: time.Hour, maxQueued: 10})
	sink.Emit(context.Background(), sinkEvent(1))
	log.setDown(false)
	sink.Close(context.Background())
	if got := log.order(); len(got) != 1 || got[0] != 1 || sink.Lost() != 0 {
		t.Fatalf("appended %v, lost %d; want [1], none lost", got, sink.Lost())
	}
}

// TestEventSinkQueueBounded: the events waiting for the log are bounded;
// one past the bound is counted as lost, not held.
func TestEventSinkQueueBounded(t *testing.T) {
	log := &flakyLog{Events: memory.NewEvents(memory.EventOptions{}), down: true}
	sink := newRetryingSink(log, nil, zap.NewNop(), retryOptions{attempts: 3, minBackoff: time.Hour, maxBackoff: time.Hour, maxQueued: 1})
	defer sink.Close(context.Background())
	sink.Emit(context.Background(), sinkEvent(1))
	sink.Emit(context.Background(), sinkEvent(2))
	if p, l := sink.Pending(), sink.Lost(); p != 1 || l != 1 {
		t.Fatalf("pending %d, lost %d; want 1 held and 1 lost", p, l)
	}
}

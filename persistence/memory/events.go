package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// EventOptions bound an in-process event log.
type EventOptions struct {
	// Retention is how long an event is kept (1 h).
	Retention time.Duration
	// MaxBytes bounds the data of all kept events (32 MiB): past it the
	// oldest go first, whatever their age.
	MaxBytes int
	// MaxAttempts bounds the webhook attempts kept (1000).
	MaxAttempts int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Events is the embedded catalog.EventLog and catalog.WebhookLog: one
// node's events in its memory, for the single node of the embedded default.
// It is bounded by age and by bytes; a restart forgets everything, which a
// subscriber resuming after it sees as a gap (and reloads).
type Events struct {
	opts EventOptions

	mu       sync.Mutex
	products map[string][]catalog.Event // by product, ordered by Seq
	fifo     []eventRef                 // every kept event, in append order
	head     int                        // fifo[head:] are kept
	bytes    int
	watchers map[int]func(string)
	nextW    int
	attempts []catalog.WebhookAttempt // ring, newest at (next-1)
	next     int
}

type eventRef struct {
	product string
	seq     int64
	at      time.Time
	size    int
}

var (
	_ catalog.EventLog   = (*Events)(nil)
	_ catalog.WebhookLog = (*Events)(nil)
)

// NewEvents returns an empty event log.
func NewEvents(opts EventOptions) *Events {
	if opts.Retention <= 0 {
		opts.Retention = time.Hour
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 32 << 20
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Events{opts: opts, products: map[string][]catalog.Event{}, watchers: map[int]func(string){}}
}

// eventSize is what an event costs the byte bound: its data and a fixed
// allowance for the rest.
func eventSize(e catalog.Event) int { return len(e.Data) + len(e.ProductID) + len(e.ImageID) + 128 }

// Append keeps e and tells the watchers.
func (l *Events) Append(_ context.Context, e catalog.Event) error {
	e.Data = slices.Clone(e.Data)
	l.mu.Lock()
	evs := l.products[e.ProductID]
	i, found := slices.BinarySearchFunc(evs, e.Seq, bySeq)
	if found {
		l.mu.Unlock()
		return nil
	}
	l.products[e.ProductID] = slices.Insert(evs, i, e)
	size := eventSize(e)
	l.fifo = append(l.fifo, eventRef{product: e.ProductID, seq: e.Seq, at: e.At, size: size})
	l.bytes += size
	l.evict()
	notify := make([]func(string), 0, len(l.watchers))
	for _, w := range l.watchers {
		notify = append(notify, w)
	}
	l.mu.Unlock()
	for _, w := range notify {
		w(e.ProductID)
	}
	return nil
}

// bySeq orders events by their sequence number, for binary searches.
func bySeq(x catalog.Event, seq int64) int { return cmp.Compare(x.Seq, seq) }

// evict drops the oldest events while they are too many bytes or too old.
func (l *Events) evict() {
	cutoff := l.opts.Now().Add(-l.opts.Retention)
	for l.head < len(l.fifo) {
		r := l.fifo[l.head]
		if l.bytes <= l.opts.MaxBytes && !r.at.Before(cutoff) {
			break
		}
		l.drop(r)
		l.fifo[l.head] = eventRef{}
		l.head++
	}
	// Reclaim the consumed front of the queue once it is half of it.
	if l.head > 1024 && l.head*2 > len(l.fifo) {
		l.fifo = slices.Clone(l.fifo[l.head:])
		l.head = 0
	}
}

func (l *Events) drop(r eventRef) {
	l.bytes -= r.size
	evs := l.products[r.product]
	i, found := slices.BinarySearchFunc(evs, r.seq, bySeq)
	if !found {
		return
	}
	evs = slices.Delete(evs, i, i+1)
	if len(evs) == 0 {
		delete(l.products, r.product)
		return
	}
	l.products[r.product] = evs
}

// After returns the kept events of productID after the given Seq.
func (l *Events) After(_ context.Context, productID string, after int64, limit int) ([]catalog.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evict()
	evs := l.products[productID]
	i, found := slices.BinarySearchFunc(evs, after, bySeq)
	if found {
		i++
	}
	evs = evs[i:]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	out := make([]catalog.Event, len(evs))
	for j, e := range evs {
		e.Data = slices.Clone(e.Data)
		out[j] = e
	}
	return out, nil
}

// Watch tells notify of every append until ctx ends.
func (l *Events) Watch(ctx context.Context, notify func(string)) error {
	l.mu.Lock()
	id := l.nextW
	l.nextW++
	l.watchers[id] = notify
	l.mu.Unlock()
	notify("") // appends before now told no one
	<-ctx.Done()
	l.mu.Lock()
	delete(l.watchers, id)
	l.mu.Unlock()
	return nil
}

// RecordAttempt keeps a webhook attempt, forgetting the oldest past the bound.
func (l *Events) RecordAttempt(_ context.Context, a catalog.WebhookAttempt) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.attempts) < l.opts.MaxAttempts {
		l.attempts = append(l.attempts, a)
		l.next = len(l.attempts) % l.opts.MaxAttempts
		return nil
	}
	l.attempts[l.next] = a
	l.next = (l.next + 1) % l.opts.MaxAttempts
	return nil
}

// ListAttempts returns the kept attempts, newest first.
func (l *Events) ListAttempts(_ context.Context, limit int) ([]catalog.WebhookAttempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.attempts)
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]catalog.WebhookAttempt, 0, limit)
	for i := 1; i <= limit; i++ {
		out = append(out, l.attempts[(l.next-i+n)%n])
	}
	return out, nil
}

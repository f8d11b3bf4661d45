package rest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Events is what the event streams need of the event log.
type Events interface {
	After(ctx context.Context, productID string, after int64, limit int) ([]catalog.Event, error)
	Watch(ctx context.Context, notify func(productID string)) error
}

// hub fans the events of the log out to this node's subscribers. It reads
// a product's new events once, whoever appended them on whichever node,
// and hands them to each subscriber of the product through a bounded
// buffer: a subscriber that falls behind by more than that buffer is
// dropped (its stream ends; the client resumes with Last-Event-ID), so a
// stalled client never makes the node hold more.
type hub struct {
	log    Events
	buffer int
	logger *zap.Logger

	mu     sync.Mutex
	subs   map[string]map[*subscription]struct{}
	cursor map[string]int64 // per product with subscribers: the last Seq fanned out
	dirty  map[string]bool
	all    bool // every product with subscribers may have new events
	closed bool
	wake   chan struct{}

	stop    context.CancelFunc
	wg      sync.WaitGroup
	dropped atomic.Int64 // subscribers dropped for being too slow
}

// subscription is one subscriber's view of one product's events.
type subscription struct {
	product string
	c       chan catalog.Event
	done    chan struct{} // closed when the subscriber is dropped or the hub closes
	once    sync.Once
	slow    atomic.Bool // dropped for falling behind
}

func (s *subscription) end(slow bool) {
	s.once.Do(func() {
		s.slow.Store(slow)
		close(s.done)
	})
}

// deliver hands evs to the subscriber without waiting; when its buffer is
// full it is dropped, and deliver returns false (once).
func (s *subscription) deliver(evs []catalog.Event) bool {
	select {
	case <-s.done:
		return true // already ended
	default:
	}
	for _, e := range evs {
		select {
		case s.c <- e:
		default:
			s.end(true)
			return false
		}
	}
	return true
}

// hubFetch is the most events read from the log at once.
const hubFetch = 200

func newHub(log Events, buffer int, logger *zap.Logger) *hub {
	ctx, stop := context.WithCancel(context.Background())
	h := &hub{log: log, buffer: buffer, logger: logger, subs: map[string]map[*subscription]struct{}{},
		cursor: map[string]int64{}, dirty: map[string]bool{}, wake: make(chan struct{}, 1), stop: stop}
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		for ctx.Err() == nil {
			if err := log.Watch(ctx, h.notify); err != nil {
				logger.Warn("watch events", zap.Error(err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	go func() {
		defer h.wg.Done()
		h.run(ctx)
	}()
	return h
}

// notify is the log's news that productID ("": any product) may have new
// events.
func (h *hub) notify(productID string) {
	h.mu.Lock()
	switch {
	case productID == "":
		h.all = true
	case h.subs[productID] != nil:
		h.dirty[productID] = true
	default:
		h.mu.Unlock()
		return // nobody here listens to it
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// subscribe registers a subscriber of productID's events after Seq from.
// Events from the log arrive on the subscription's channel in Seq order,
// possibly with some at or before from (the caller skips those).
func (h *hub) subscribe(productID string, from int64) *subscription {
	s := &subscription{product: productID, c: make(chan catalog.Event, h.buffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.end(false)
		return s
	}
	if h.subs[productID] == nil {
		h.subs[productID] = map[*subscription]struct{}{}
		h.cursor[productID] = from
	}
	h.subs[productID][s] = struct{}{}
	return s
}

// unsubscribe forgets s.
func (h *hub) unsubscribe(s *subscription) {
	if s == nil {
		return
	}
	s.end(false)
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.subs[s.product]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, s.product)
			delete(h.cursor, s.product)
			delete(h.dirty, s.product)
		}
	}
}

// subscribers counts this node's subscribers.
func (h *hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}

// close ends every subscription and stops the hub.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for _, set := range h.subs {
		for s := range set {
			s.end(false)
		}
	}
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
}

func (h *hub) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		for _, p := range h.takeDirty() {
			h.fanOut(ctx, p)
		}
	}
}

// takeDirty returns the products to read, and forgets that they were.
func (h *hub) takeDirty() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	if h.all {
		for p := range h.subs {
			out = append(out, p)
		}
	} else {
		for p := range h.dirty {
			out = append(out, p)
		}
	}
	h.all = false
	clear(h.dirty)
	return out
}

// fanOut reads productID's events after its cursor and hands them to its
// subscribers; a subscriber whose buffer is full is dropped.
func (h *hub) fanOut(ctx context.Context, productID string) {
	for {
		h.mu.Lock()
		from, ok := h.cursor[productID]
		h.mu.Unlock()
		if !ok {
			return
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		evs, err := h.log.After(c, productID, from, hubFetch)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("read events", zap.String("product_id", productID), zap.Error(err))
				h.mu.Lock()
				h.dirty[productID] = true // try again at the next news
				h.mu.Unlock()
			}
			return
		}
		if len(evs) == 0 {
			return
		}
		h.mu.Lock()
		if h.cursor[productID] == from {
			h.cursor[productID] = evs[len(evs)-1].Seq
		}
		for s := range h.subs[productID] {
			if !s.deliver(evs) {
				h.dropped.Add(1)
			}
		}
		h.mu.Unlock()
		if len(evs) < hubFetch {
			return
		}
	}
}

// EventSubscribers counts the event streams open on this node.
func (s *Server) EventSubscribers() int {
	if s.hub == nil {
		return 0
	}
	return s.hub.subscribers()
}

// DroppedSubscribers counts the event streams this node ended because
// their client fell behind.
func (s *Server) DroppedSubscribers() int64 {
	if s.hub == nil {
		return 0
	}
	return s.hub.dropped.Load()
}

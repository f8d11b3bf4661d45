package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// A product's events as Server-Sent Events (GET /products/{id}/events).
//
// With Accept: text/event-stream the answer is a stream that stays open:
// without Last-Event-ID it starts at the product's current version (its
// first line sets the client's last event id to it), with one it first
// replays the retained events after that id. When events after that id are
// no longer retained (the window passed, or the log was restarted) it sends
// a stream.reset event instead: the client reloads the product and goes on
// from the id of the reset. Events follow one another (each id is the last
// plus one): when a live stream gets one that does not follow the last it
// sent (the log lacked some when they were fanned out: their append was
// late, or failed for good), it first sends those missing from the log,
// and when the log cannot give them all, a stream.reset whose id is the
// one before that event, so the client reloads the product rather than
// missing a change unaware. Comments keep idle connections alive
// (heartbeats). The stream ends when the product is deleted (after
// product.deleted), when the subscriber falls behind by more than the
// node's buffer, after the stream's maximum age, or when the node leaves;
// the client reconnects with Last-Event-ID and misses nothing retained.
//
// Without text/event-stream in Accept (curl, a poll) the answer is the
// retained events after Last-Event-ID (all of them without it), in the same
// format, and it ends at once.

// eventsPage is the most events read from the log at once.
const eventsPage = 500

func (s *Server) productEvents(ctx *fasthttp.RequestCtx, p principal) {
	productID := pathID(ctx, "id")
	if err := onlyParams(ctx.QueryArgs()); err != nil {
		writeError(ctx, err)
		return
	}
	from, resume, err := lastEventID(ctx)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if s.hub == nil {
		writeError(ctx, catalog.Errorf(catalog.KindUnavailable, "events_unavailable", "this server keeps no events"))
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	current, exists := int64(0), true
	prod, err := s.products.Get(c, productID)
	switch {
	case catalog.IsNotFound(err):
		exists = false
		if !resume {
			writeError(ctx, err)
			return
		}
	case err != nil:
		writeError(ctx, err)
		return
	default:
		current = versionOf(prod.ETag)
	}
	stream := acceptsEventStream(ctx) && !ctx.IsHead()
	if !resume && stream {
		from = current // live from now
	}
	var sub *subscription
	release := func() {}
	if stream && exists {
		var ok bool
		if release, ok = s.streams.acquire(ctx, s.streamClient(ctx, p)); !ok {
			return
		}
		sub = s.hub.subscribe(productID, from) // before reading: nothing falls in between
	}
	backlog, err := s.deps.Events.After(c, productID, from, eventsPage)
	if err != nil {
		if sub != nil {
			s.hub.unsubscribe(sub)
		}
		release()
		writeError(ctx, err)
		return
	}
	if !exists && (len(backlog) == 0 || backlog[len(backlog)-1].Type != catalog.EventProductDeleted) {
		writeError(ctx, catalog.NotFound("product %s does not exist", productID))
		return
	}
	start := streamStart{from: from, backlog: backlog, more: len(backlog) == eventsPage, live: stream}
	if resume && exists && !contiguous(from, current, backlog) {
		// Events the client has not seen are gone: it reloads instead.
		start.reset, start.from = true, current
	}
	ctx.Response.Header.Set("Content-Type", "text/event-stream; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
	// HEAD is never a stream: nothing was subscribed.
	if ctx.IsHead() {
		return
	}
	if !stream {
		var buf strings.Builder
		w := bufio.NewWriter(&buf)
		last := start.writeStart(w, productID, current, resume)
		fmt.Fprintf(w, ": %d retained events after %d; send Accept: text/event-stream to stay subscribed\n\n", len(backlog), last)
		_ = w.Flush()
		ctx.SetBodyString(buf.String())
		return
	}
	ctx.Response.Header.Set("Connection", "keep-alive")
	conn := ctx.Conn() // the writer runs after the handler, when ctx no longer has it
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		defer s.hub.unsubscribe(sub)
		s.stream(conn, w, sub, productID, current, resume, start)
	})
}

// streamStart is where a stream begins: after Seq from, with the events
// already read, or with a reset.
type streamStart struct {
	from    int64
	backlog []catalog.Event
	more    bool // the backlog is one full page: more may follow
	reset   bool
	live    bool // a stream, not a poll
}

// writeStart writes the start of an answer and its backlog, as it is; it
// returns the last Seq written.
func (st streamStart) writeStart(w *bufio.Writer, productID string, current int64, resume bool) int64 {
	last := st.writeHead(w, productID, current, resume)
	for _, e := range st.backlog {
		if e.Seq > last {
			writeEventOf(w, e)
			last = e.Seq
		}
	}
	return last
}

// writeHead writes the start of an answer: the reconnection delay, and a
// reset or the client's last event id; it returns the Seq the client is at.
func (st streamStart) writeHead(w *bufio.Writer, productID string, current int64, resume bool) int64 {
	_, _ = w.WriteString("retry: 2000\n")
	switch {
	case st.reset:
		writeReset(w, productID, current, "events after the Last-Event-ID are no longer retained; reload the product")
		return current
	case !resume && st.live:
		fmt.Fprintf(w, "id: %d\n\n", st.from) // the client resumes from here
	default:
		_, _ = w.WriteString("\n")
	}
	return st.from
}

// writeReset writes a stream.reset event: the client reloads the product
// and goes on from seq, its id.
func writeReset(w *bufio.Writer, productID string, seq int64, reason string) {
	data, _ := json.Marshal(map[string]any{"product_id": productID, "seq": seq, "reason": reason})
	writeEvent(w, strconv.FormatInt(seq, 10), "stream.reset", data)
}

// stream writes a subscriber's events until the product is deleted, the
// subscriber falls behind, the stream's maximum age, or the node leaves.
// Each flush extends the connection's write deadline: a client that stops
// reading is cut off after EventsWriteTimeout.
func (s *Server) stream(conn net.Conn, w *bufio.Writer, sub *subscription, productID string, current int64, resume bool, st streamStart) {
	flush := func() bool {
		_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.EventsWriteTimeout))
		return w.Flush() == nil
	}
	last := st.writeHead(w, productID, current, resume)
	for _, e := range st.backlog {
		if e.Seq > last {
			last = s.writeNext(w, productID, last, e)
		}
	}
	if endsStream(st.backlog) || !flush() {
		return
	}
	for more := st.more; more; {
		c, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		page, err := s.deps.Events.After(c, productID, last, eventsPage)
		cancel()
		if err != nil {
			return
		}
		for _, e := range page {
			last = s.writeNext(w, productID, last, e)
		}
		if endsStream(page) || !flush() {
			return
		}
		more = len(page) == eventsPage
	}
	heartbeat := time.NewTicker(s.cfg.EventsHeartbeat)
	defer heartbeat.Stop()
	maxAge := time.NewTimer(s.cfg.EventsMaxAge)
	defer maxAge.Stop()
	for {
		select {
		case e := <-sub.c:
			if e.Seq <= last {
				continue
			}
			last = s.writeNext(w, productID, last, e)
			if e.Type == catalog.EventProductDeleted {
				flush()
				return
			}
		case <-sub.done:
			if sub.slow.Load() {
				_, _ = w.WriteString(": dropped: this client fell behind; reconnect with Last-Event-ID\n\n")
			}
			flush()
			return
		case <-heartbeat.C:
			_, _ = w.WriteString(": heartbeat\n\n")
		case <-maxAge.C:
			_, _ = w.WriteString(": the stream reached its maximum age; reconnect with Last-Event-ID\n\n")
			flush()
			return
		}
		if !flush() {
			return
		}
	}
}

// writeNext writes e, an event after last, and returns its Seq. Seqs of a
// product follow one another (catalog.Event), so an event that does not
// follow last means the stream did not get some: the hub read the log while
// they were missing from it (their append failed and was retried, or was
// given up). Those the log has now are written first; when it cannot give
// them all, a stream.reset precedes e, so the client reloads the product
// instead of missing a change unaware.
func (s *Server) writeNext(w *bufio.Writer, productID string, last int64, e catalog.Event) int64 {
	if e.Seq > last+1 {
		if got := s.backfill(w, productID, last, e.Seq); got < e.Seq-1 {
			writeReset(w, productID, e.Seq-1, fmt.Sprintf("events #%d to #%d could not be read; reload the product", got+1, e.Seq-1))
		}
	}
	writeEventOf(w, e)
	return e.Seq
}

// backfill writes the log's events of productID after last and before
// next, as long as each follows the one before; it returns the last Seq
// written (last when none).
func (s *Server) backfill(w *bufio.Writer, productID string, last, next int64) int64 {
	for last < next-1 {
		c, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		page, err := s.deps.Events.After(c, productID, last, eventsPage)
		cancel()
		if err != nil || len(page) == 0 {
			return last
		}
		for _, e := range page {
			if e.Seq != last+1 || e.Seq >= next {
				return last
			}
			writeEventOf(w, e)
			last = e.Seq
		}
	}
	return last
}

func endsStream(evs []catalog.Event) bool {
	return len(evs) > 0 && evs[len(evs)-1].Type == catalog.EventProductDeleted
}

// contiguous reports whether backlog holds every event after from up to
// current, the product's version: then the client misses nothing.
func contiguous(from, current int64, backlog []catalog.Event) bool {
	if from > current {
		return false // an id of the future: not one this product gave
	}
	next := from + 1
	for _, e := range backlog {
		if e.Seq > current {
			break
		}
		if e.Seq != next {
			return false
		}
		next++
	}
	return next > current || len(backlog) == eventsPage
}

func writeEventOf(w *bufio.Writer, e catalog.Event) {
	data, err := json.Marshal(e)
	if err != nil {
		return
	}
	writeEvent(w, strconv.FormatInt(e.Seq, 10), string(e.Type), data)
}

// writeEvent writes one event; every line of data is a data: field.
func writeEvent(w *bufio.Writer, id, typ string, data []byte) {
	fmt.Fprintf(w, "id: %s\nevent: %s\n", id, typ)
	for _, line := range strings.Split(string(data), "\n") {
		_, _ = w.WriteString("data: ")
		_, _ = w.WriteString(line)
		_, _ = w.WriteString("\n")
	}
	_, _ = w.WriteString("\n")
}

// lastEventID reads the Last-Event-ID header: a Seq the client saw.
func lastEventID(ctx *fasthttp.RequestCtx) (int64, bool, error) {
	h := string(ctx.Request.Header.Peek("Last-Event-ID"))
	if h == "" { // absent, or empty as a client without a last id may send it
		return 0, false, nil
	}
	n, err := strconv.ParseInt(h, 10, 64)
	if err != nil || n < 0 || strings.TrimLeft(h, "0123456789") != "" {
		return 0, false, &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_header",
			Detail: "Last-Event-ID must be the id of an event this stream sent (a whole number), got " + strconv.Quote(h),
			Fields: []catalog.FieldError{{Field: "Last-Event-ID", Detail: "must be a whole number ≥ 0"}}}
	}
	return n, true, nil
}

// acceptsEventStream reports whether the client asks for a live stream.
func acceptsEventStream(ctx *fasthttp.RequestCtx) bool {
	return strings.Contains(strings.ToLower(string(ctx.Request.Header.Peek("Accept"))), "text/event-stream")
}

// versionOf reads the version from a product's ETag, "id.version".
func versionOf(etag string) int64 {
	etag = strings.Trim(etag, `"`)
	i := strings.LastIndexByte(etag, '.')
	n, _ := strconv.ParseInt(etag[i+1:], 10, 64)
	return n
}

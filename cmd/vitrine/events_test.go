package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sseEvent is one event of a stream, as a client parses it.
type sseEvent struct {
	ID, Type string
	Data     map[string]any
}

// sseStream reads Server-Sent Events from a response body in the
// background.
type sseStream struct {
	t        testing.TB
	res      *http.Response
	events   chan sseEvent
	comments chan string
	ended    chan error // the body's end (nil: EOF)
}

// openStream opens a product's event stream with Accept:
// text/event-stream, and Last-Event-ID when lastID is not "".
func (a *testApp) openStream(productID, lastID string, header ...string) *sseStream {
	a.t.Helper()
	return openSSE(a.t, a.base, productID, lastID, header...)
}

// openSSE opens a product's event stream on the vitrine at base.
func openSSE(t testing.TB, base, productID, lastID string, header ...string) *sseStream {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/products/"+productID+"/events", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("open stream: %d %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream Content-Type %q", ct)
	}
	s := &sseStream{t: t, res: res, events: make(chan sseEvent, 1000), comments: make(chan string, 1000), ended: make(chan error, 1)}
	t.Cleanup(func() { res.Body.Close() })
	go s.read()
	return s
}

func (s *sseStream) read() {
	r := bufio.NewReader(s.res.Body)
	var ev sseEvent
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			s.ended <- err
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if len(data) > 0 {
				_ = json.Unmarshal([]byte(strings.Join(data, "\n")), &ev.Data)
				s.events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			select {
			case s.comments <- strings.TrimSpace(line[1:]):
			default:
			}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Type = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
}

// next returns the next event, failing after a minute.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case e := <-s.events:
		return e
	case err := <-s.ended:
		s.ended <- err // for whoever waits for the end next
		select {
		case e := <-s.events: // read before the end
			return e
		default:
		}
		s.t.Fatalf("the stream ended (%v) while an event was expected", err)
	case <-time.After(time.Minute):
		s.t.Fatal("no event in a minute")
	}
	return sseEvent{}
}

// expect reads events until one of type typ, and returns the types seen.
func (s *sseStream) expect(typ string) (sseEvent, []string) {
	s.t.Helper()
	var seen []string
	for {
		e := s.next()
		seen = append(seen, e.Type)
		if e.Type == typ {
			return e, seen
		}
	}
}

// TestEventStream follows one product through its events: the stream
// starts at its current version, sees an upload become ready and a patch,
// resumes after a disconnect with Last-Event-ID without a gap or a
// duplicate, and ends with the product's deletion.
func TestEventStream(t *testing.T) {
	// With a logger that writes: the request line of a stream is written
	// while its body is still to come.
	app, logs := startAppLogged(t, t.TempDir(), map[string]string{"VITRINE_EVENTS_HEARTBEAT": "100ms"})
	p := app.createProduct(`{"name":"Stream","price":"3","user_id":1}`)
	id := p["id"].(string)

	s := app.openStream(id, "")
	select {
	case c := <-s.comments:
		if c != "heartbeat" {
			t.Fatalf("comment %q", c)
		}
	case <-time.After(time.Minute):
		t.Fatal("no heartbeat in a minute")
	}
	r := app.uploadFile(id, filepath.Join(corpusDir(t), "gray_hopper.jpg"), false)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	imageID := r.json(t)["id"].(string)
	ready, seen := s.expect("image.ready")
	if strings.Join(seen, ",") != "image.pending,image.processing,image.ready" {
		t.Errorf("events %v, want pending, processing, ready", seen)
	}
	if ready.ID != "4" || ready.Data["image_id"] != imageID || ready.Data["product_id"] != id {
		t.Errorf("image.ready = %+v", ready)
	}
	data, _ := ready.Data["data"].(map[string]any)
	if data["status"] != "ready" || len(data["variants"].([]any)) == 0 || data["placeholder"] == "" {
		t.Errorf("image.ready carries %v, want the ready image", data)
	}
	// Ready with its AVIF files still to come; then they land.
	if got := fileStatuses(data); got["webp"] != "ready" || got["jpeg"] != "ready" || got["avif"] != "pending" {
		t.Errorf("image.ready: files %v, want webp and jpeg ready, avif pending", got)
	}
	landed := s.next()
	if landed.Type != "image.formats_ready" || landed.ID != "5" {
		t.Fatalf("after image.ready: %+v, want image.formats_ready #5", landed)
	}
	if got := fileStatuses(landed.Data["data"].(map[string]any)); got["avif"] != "ready" || len(got) != 3 {
		t.Errorf("image.formats_ready: files %v, want all ready", got)
	}
	if r := app.do("PATCH", "/products/"+id, strings.NewReader(`{"name":"Renamed"}`), "Content-Type", "application/merge-patch+json"); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	upd := s.next()
	if upd.Type != "product.updated" || upd.ID != "6" {
		t.Fatalf("after the patch: %+v", upd)
	}
	if d, _ := upd.Data["data"].(map[string]any); d["name"] != "Renamed" || d["etag"] != `"`+id+`.6"` {
		t.Errorf("product.updated carries %v", upd.Data["data"])
	}
	s.res.Body.Close()

	// Changes while disconnected, then a resume from the last id seen.
	for i := 0; i < 3; i++ {
		body := fmt.Sprintf(`{"description":"change %d"}`, i)
		if r := app.do("PATCH", "/products/"+id, strings.NewReader(body), "Content-Type", "application/merge-patch+json"); r.Status != http.StatusOK {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
	}
	s = app.openStream(id, "6")
	for want := 7; want <= 9; want++ {
		if e := s.next(); e.ID != strconv.Itoa(want) || e.Type != "product.updated" {
			t.Fatalf("resumed stream: %+v, want #%d", e, want)
		}
	}
	if r := app.do("POST", "/products/"+id+"/images/"+imageID+"/reprocess", nil); r.Status != http.StatusAccepted {
		t.Fatalf("reprocess: %d %s", r.Status, r.Body)
	}
	if e := s.next(); e.ID != "10" || e.Type != "image.pending" {
		t.Fatalf("after a reprocess: %+v, want image.pending #10", e)
	}
	s.expect("image.formats_ready")

	// The same events, without a stream: a poll that ends.
	r = app.do("GET", "/products/"+id+"/events", nil, "Last-Event-ID", "8")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("poll: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if got := strings.Count(string(r.Body), "\nevent: "); got != 5 {
		t.Errorf("poll after #8 has %d events, want #9…#13:\n%s", got, r.Body)
	}
	// An id this product never gave: reload.
	reset := app.openStream(id, "999").next()
	if reset.Type != "stream.reset" || reset.ID != "13" {
		t.Errorf("resume from a future id: %+v, want stream.reset #13", reset)
	}

	// Deletion ends the stream after product.deleted.
	if r := app.do("DELETE", "/products/"+id, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	if e := s.next(); e.Type != "product.deleted" || e.ID != "14" {
		t.Fatalf("after the delete: %+v", e)
	}
	select {
	case err := <-s.ended:
		if err != nil {
			t.Fatalf("the stream broke instead of ending: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the stream stayed open after product.deleted")
	}
	// A resume after the deletion still gets it; a new stream is a 404.
	if e := app.openStream(id, "13").next(); e.Type != "product.deleted" {
		t.Errorf("resume after the deletion: %+v", e)
	}
	expectProblem(t, app.do("GET", "/products/"+id+"/events", nil, "Accept", "text/event-stream"), http.StatusNotFound, "events of a deleted product")
	expectProblem(t, app.do("GET", "/products/"+id+"/events", nil, "Last-Event-ID", "x1"), http.StatusBadRequest, "a malformed Last-Event-ID")
	if !strings.Contains(logs.String(), `"route":"/products/{id}/events","path":"/products/`+id+`/events","status":200,"bytes":-1`) {
		t.Error("no request line for a stream (bytes -1)")
	}
}

// TestStalledSubscriberDropped: a client that stops reading its stream is
// dropped once it falls behind, and the node's memory does not grow with
// what it did not read.
func TestStalledSubscriberDropped(t *testing.T) {
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_ADMIN_TOKEN": adminToken}) // for /metrics
	id := app.createProduct(`{"name":"Stall","price":"3","user_id":1}`)["id"].(string)

	// A client with a tiny receive buffer that reads the header, then nothing.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if ctlErr := c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); ctlErr != nil {
			return ctlErr
		}
		return err
	}}
	conn, err := dialer.Dial("tcp", app.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /products/%s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", id); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("stream status %q, %v", status, err)
	}
	deadline := time.Now().Add(time.Minute)
	for app.server.EventSubscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	// 10 KB descriptions: each event is over 10 KB; the loop ends soon after
	// the drop (the kernel's socket buffers and the subscriber's buffer of
	// 256 events fill first).
	desc := strings.Repeat("d", 9_900)
	for i := 0; i < 3000; i++ {
		body := fmt.Sprintf(`{"description":"%s%03d"}`, desc[:9_900-3], i)
		if r := app.do("PATCH", "/products/"+id, strings.NewReader(body), "Content-Type", "application/merge-patch+json"); r.Status != http.StatusOK {
			t.Fatalf("patch %d: %d %s", i, r.Status, r.Body)
		}
		if app.server.DroppedSubscribers() > 0 {
			break
		}
	}
	deadline = time.Now().Add(time.Minute)
	for app.server.DroppedSubscribers() != 1 || app.server.EventSubscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled subscriber was not dropped: %d dropped, %d subscribed",
				app.server.DroppedSubscribers(), app.server.EventSubscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fams := app.scrape(); sample(fams, "vitrine_event_subscribers_dropped_total") != 1 || sample(fams, "vitrine_event_subscribers") != 0 {
		t.Errorf("metrics: %v dropped, %v subscribed; want 1 and 0",
			sample(fams, "vitrine_event_subscribers_dropped_total"), sample(fams, "vitrine_event_subscribers"))
	}
	// What the node holds for it is bounded by its buffer (256 events of
	// about 10 KB), not by what it missed; the event log itself keeps up to
	// its bound (32 MiB) whatever the subscribers do.
	if grew := int64(heap()) - int64(before); grew > 48<<20 {
		t.Errorf("heap grew by %d MiB while a subscriber stalled", grew>>20)
	}
}

// fileStatuses maps each format of an image document's variants to its
// files' status ("mixed" when they differ).
func fileStatuses(img map[string]any) map[string]string {
	out := map[string]string{}
	for _, v := range img["variants"].([]any) {
		v := v.(map[string]any)
		f, st := v["format"].(string), v["status"].(string)
		if old, ok := out[f]; ok && old != st {
			st = "mixed"
		}
		out[f] = st
	}
	return out
}

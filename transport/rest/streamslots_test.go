package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address local, and never reuses one (each stream its own connection).
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// stream is an answer to a request for a live event stream; close ends
// an open one (the test's cleanup does too).
type stream struct {
	answer
	close func()
}

// openStream asks for a live event stream; on 200 it returns the open
// stream after its first line arrived, otherwise the closed answer and
// its problem's type.
func openStream(t *testing.T, c *http.Client, base string) (*stream, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/products/"+hubProduct+"/events", http.NoBody)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		var p struct{ Type string }
		_ = json.NewDecoder(res.Body).Decode(&p)
		return &stream{answer: answer{StatusCode: res.StatusCode, Header: res.Header}, close: func() {}}, p.Type
	}
	if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
		t.Fatalf("the stream's first line: %v", err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return &stream{answer: answer{StatusCode: res.StatusCode, Header: res.Header}, close: func() { res.Body.Close() }}, ""
}

// TestEventStreamsBounded: one client address cannot hold more live event
// streams than its share (429, Retry-After) nor all clients together more
// than the node's most (503); polls are not streams and still answer; a
// closed stream gives its slot back.
func TestEventStreamsBounded(t *testing.T) {
	s := New(Config{EventStreamsPerClient: 3, EventStreams: 5, EventsHeartbeat: 20 * time.Millisecond},
		Deps{Products: &stubProducts{}, Events: memory.NewEvents(memory.EventOptions{})}, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()
	a, b := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")

	var held []*stream
	for range 3 {
		res, typ := openStream(t, a, base)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of client A: %d %s", len(held)+1, res.StatusCode, typ)
		}
		held = append(held, res)
	}
	res, typ := openStream(t, a, base)
	if res.StatusCode != http.StatusTooManyRequests || typ != problemType("too_many_streams") || res.Header.Get("Retry-After") == "" {
		t.Fatalf("client A's 4th stream: %d %q Retry-After %q, want 429 too_many_streams with Retry-After", res.StatusCode, typ, res.Header.Get("Retry-After"))
	}
	poll, err := a.Get(base + "/products/" + hubProduct + "/events")
	if err != nil {
		t.Fatal(err)
	}
	if poll.StatusCode != http.StatusOK {
		t.Errorf("a poll from client A holding its streams: %d, want 200", poll.StatusCode)
	}
	_, _ = io.Copy(io.Discard, poll.Body)
	poll.Body.Close()

	for i := range 2 {
		if res, typ := openStream(t, b, base); res.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of client B: %d %s", i+1, res.StatusCode, typ)
		}
	}
	if res, typ := openStream(t, b, base); res.StatusCode != http.StatusServiceUnavailable || typ != problemType("streams_exhausted") {
		t.Fatalf("a 6th stream on the node: %d %q, want 503 streams_exhausted", res.StatusCode, typ)
	}

	// Client A closes one: its slot comes back once the node notices (at
	// the next heartbeat it writes).
	held[0].close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, typ := openStream(t, a, base)
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client A after closing a stream: still %d %s", res.StatusCode, typ)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.streams.mu.Lock()
	got := s.streams.total
	s.streams.mu.Unlock()
	if got != 5 {
		t.Errorf("%d slots held, want 5", got)
	}
}

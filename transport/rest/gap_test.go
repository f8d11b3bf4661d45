package rest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// unreadableLog is an event log whose reads fail while down is set.
type unreadableLog struct {
	*memory.Events
	down bool
}

func (l *unreadableLog) After(ctx context.Context, productID string, after int64, limit int) ([]catalog.Event, error) {
	if l.down {
		return nil, errors.New("the event log is unreachable")
	}
	return l.Events.After(ctx, productID, after, limit)
}

// streamGap runs a live stream of hubProduct that starts at version 0 and
// that the hub hands events 1, 3 and 4 (product.deleted, which ends it),
// with the log holding 1 to 4 and answering reads unless down; it returns
// the stream's events as (id, type) pairs, "id" alone for a bare id line.
func streamGap(t *testing.T, down bool) []string {
	t.Helper()
	log := &unreadableLog{Events: memory.NewEvents(memory.EventOptions{}), down: down}
	ev := func(seq int64, typ catalog.EventType) catalog.Event {
		return catalog.Event{ProductID: hubProduct, Seq: seq, Type: typ, At: time.Now(), Data: []byte(`{}`)}
	}
	all := []catalog.Event{ev(1, catalog.EventProductCreated), ev(2, catalog.EventProductUpdated),
		ev(3, catalog.EventProductUpdated), ev(4, catalog.EventProductDeleted)}
	for _, e := range all {
		if err := log.Events.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{cfg: Config{RequestTimeout: time.Second, EventsWriteTimeout: time.Second,
		EventsHeartbeat: time.Hour, EventsMaxAge: time.Hour}, deps: Deps{Events: log}}
	sub := &subscription{product: hubProduct, c: make(chan catalog.Event, 8), done: make(chan struct{})}
	sub.c <- all[0] // the hub read the log when 2 was not in it yet
	sub.c <- all[2]
	sub.c <- all[3]
	conn, peer := net.Pipe()
	defer conn.Close()
	defer peer.Close()
	var out strings.Builder
	w := bufio.NewWriter(&out)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s.stream(conn, w, sub, hubProduct, 0, false, streamStart{from: 0, live: true})
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end at product.deleted")
	}
	var got []string
	for block := range strings.SplitSeq(out.String(), "\n\n") {
		var id, typ string
		for line := range strings.SplitSeq(block, "\n") {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				typ = v
			}
		}
		switch {
		case id != "" && typ != "":
			got = append(got, id+" "+typ)
		case id != "":
			got = append(got, id)
		}
	}
	return got
}

// TestStreamBackfillsGap: a live stream that the hub hands event 3 right
// after 1 sends 2 first, read from the log: its client misses nothing.
func TestStreamBackfillsGap(t *testing.T) {
	got := streamGap(t, false)
	want := []string{"0", "1 product.created", "2 product.updated", "3 product.updated", "4 product.deleted"}
	if !slices.Equal(got, want) {
		t.Fatalf("stream sent %q, want %q", got, want)
	}
}

// TestStreamResetsOnUnreadableGap: when the log cannot give the missing
// event, the stream says so with a stream.reset (id 2: the client reloads
// the product and goes on) before 3, never skipping 2 silently.
func TestStreamResetsOnUnreadableGap(t *testing.T) {
	got := streamGap(t, true)
	want := []string{"0", "1 product.created", "2 stream.reset", "3 product.updated", "4 product.deleted"}
	if !slices.Equal(got, want) {
		t.Fatalf("stream sent %q, want %q", got, want)
	}
}

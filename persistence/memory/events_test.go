package memory_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/eventtest"
	"github.com/vitrine-dev/vitrine/persistence/fakeclock"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

func TestEventsConformance(t *testing.T) {
	eventtest.Run(t, func(t *testing.T) eventtest.Harness {
		c := fakeclock.At(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
		l := memory.NewEvents(memory.EventOptions{Retention: time.Minute, Now: c.Now})
		return eventtest.Harness{Log: l, Other: l, Retention: time.Minute, Advance: c.Advance, Now: c.Now}
	})
}

// TestEventsBoundedBytes: however many events are appended, the log keeps
// no more than its byte bound, dropping the oldest first.
func TestEventsBoundedBytes(t *testing.T) {
	const maxBytes = 64 << 10
	l := memory.NewEvents(memory.EventOptions{MaxBytes: maxBytes})
	data, _ := json.Marshal(map[string]string{"description": strings.Repeat("x", 1000)})
	ctx := context.Background()
	const n = 1000
	for seq := int64(1); seq <= n; seq++ {
		if err := l.Append(ctx, catalog.Event{ProductID: "p", Seq: seq, Type: catalog.EventProductUpdated, At: time.Now(), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := l.After(ctx, "p", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) == 0 || len(kept)*len(data) > maxBytes {
		t.Fatalf("kept %d events of %d bytes, bound %d bytes", len(kept), len(data), maxBytes)
	}
	if kept[len(kept)-1].Seq != n || kept[0].Seq != n-int64(len(kept))+1 {
		t.Fatalf("kept #%d…#%d, want the newest", kept[0].Seq, kept[len(kept)-1].Seq)
	}
}

func TestWebhookAttemptsBounded(t *testing.T) {
	l := memory.NewEvents(memory.EventOptions{MaxAttempts: 5})
	for i := 1; i <= 12; i++ {
		if err := l.RecordAttempt(context.Background(), catalog.WebhookAttempt{Attempt: i}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := l.ListAttempts(context.Background(), 100)
	if len(got) != 5 || got[0].Attempt != 12 || got[4].Attempt != 8 {
		t.Fatalf("kept %+v, want #12…#8", got)
	}
}

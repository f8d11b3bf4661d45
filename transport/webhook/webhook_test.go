package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// The test vector of the Standard Webhooks specification's reference
// libraries: secret, message id, timestamp, payload and the signature they
// make.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// A well-formed signature of something else.
	specWrongSignature = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

func TestSignSpecVector(t *testing.T) {
	for _, secret := range []string{specSecret, strings.TrimPrefix(specSecret, "whsec_")} {
		k, err := ParseSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Sign(specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload)); got != specSignature {
			t.Fatalf("Sign with %q = %s, want %s", secret, got, specSignature)
		}
	}
}

func TestVerifySpecVector(t *testing.T) {
	k, err := ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	signedAt := time.Unix(specTimestamp, 0)
	header := func(sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, specMsgID)
		h.Set(HeaderTimestamp, strconv.Itoa(specTimestamp))
		h.Set(HeaderSignature, sig)
		return h
	}
	tolerance := 5 * time.Minute
	tests := []struct {
		name    string
		header  http.Header
		payload string
		now     time.Time
		ok      bool
	}{
		{"the vector", header(specSignature), specPayload, signedAt, true},
		{"several signatures, one valid", header("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + specSignature), specPayload, signedAt, true},
		{"wrong signature", header(specWrongSignature), specPayload, signedAt, false},
		{"other payload", header(specSignature), `{"test": 2432232315}`, signedAt, false},
		{"too old", header(specSignature), specPayload, signedAt.Add(tolerance + time.Second), false},
		{"too new", header(specSignature), specPayload, signedAt.Add(-tolerance - time.Second), false},
		{"no id", func() http.Header { h := header(specSignature); h.Del(HeaderID); return h }(), specPayload, signedAt, false},
		{"no timestamp", func() http.Header { h := header(specSignature); h.Del(HeaderTimestamp); return h }(), specPayload, signedAt, false},
		{"no signature", header(""), specPayload, signedAt, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k.Verify(tt.header, []byte(tt.payload), tt.now, tolerance)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	if _, err := ParseSecret(NewSecret()); err != nil {
		t.Errorf("a new secret does not parse: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_not base64!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted it", bad)
		}
	}
}

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a loopback endpoint answering with the statuses given, then 204.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{header: r.Header.Clone(), body: body}
		mu.Lock()
		status := http.StatusNoContent
		if len(statuses) > 0 {
			status, statuses = statuses[0], statuses[1:]
		}
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func testEvent() catalog.Event {
	return catalog.Event{ProductID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Seq: 7, Type: catalog.EventImageReady,
		ImageID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", At: time.Now().UTC(), Data: json.RawMessage(`{"status":"ready"}`)}
}

func waitFor(t *testing.T, got <-chan received) received {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing in 10 s")
	}
	return received{}
}

// TestRetryAfter500: the first attempt gets a 500 from a loopback receiver,
// the second succeeds; both are signed, carry the same webhook-id, and the
// log has both attempts.
func TestRetryAfter500(t *testing.T) {
	srv, got := receiver(t, http.StatusInternalServerError)
	secret, _ := ParseSecret(NewSecret())
	log := memory.NewEvents(memory.EventOptions{})
	var mu sync.Mutex
	var observed []string
	observe := func(outcome string, _ time.Duration) { mu.Lock(); observed = append(observed, outcome); mu.Unlock() }
	d := New(Config{Endpoints: []string{srv.URL + "/hook"}, Secret: secret, RetryBase: 10 * time.Millisecond, Observe: observe}, log, zap.NewNop())
	defer d.Close()
	e := testEvent()
	d.Emit(context.Background(), e)

	first, second := waitFor(t, got), waitFor(t, got)
	for i, r := range []received{first, second} {
		if err := secret.Verify(r.header, r.body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
	if id := first.header.Get(HeaderID); id == "" || id != second.header.Get(HeaderID) || id != MessageID(e) {
		t.Errorf("webhook-id %q then %q, want %q twice", id, second.header.Get(HeaderID), MessageID(e))
	}
	var payload struct {
		Type      string        `json:"type"`
		Timestamp time.Time     `json:"timestamp"`
		Data      catalog.Event `json:"data"`
	}
	if err := json.Unmarshal(second.body, &payload); err != nil {
		t.Fatalf("payload: %v\n%s", err, second.body)
	}
	if payload.Type != string(e.Type) || payload.Data.ProductID != e.ProductID || payload.Data.Seq != e.Seq || payload.Timestamp.IsZero() {
		t.Errorf("payload %s", second.body)
	}

	var attempts []catalog.WebhookAttempt
	deadline := time.Now().Add(10 * time.Second)
	for len(attempts) < 2 && time.Now().Before(deadline) {
		attempts, _ = log.ListAttempts(context.Background(), 10)
		time.Sleep(10 * time.Millisecond)
	}
	if len(attempts) != 2 {
		t.Fatalf("log has %d attempts, want 2: %+v", len(attempts), attempts)
	}
	if a := attempts[1]; a.Attempt != 1 || a.Outcome != catalog.WebhookRetrying || a.HTTPStatus != 500 || a.Error == "" {
		t.Errorf("first attempt logged as %+v", a)
	}
	if a := attempts[0]; a.Attempt != 2 || a.Outcome != catalog.WebhookDelivered || a.HTTPStatus != 204 || a.ID != MessageID(e) {
		t.Errorf("second attempt logged as %+v", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(observed, []string{catalog.WebhookRetrying, catalog.WebhookDelivered}) {
		t.Errorf("observed outcomes %v, want retrying then delivered", observed)
	}
}

// TestGivesUp: an endpoint that always fails gets MaxAttempts tries, then
// the delivery is failed.
func TestGivesUp(t *testing.T) {
	srv, got := receiver(t, 500, 502, 503, 500, 500, 500)
	secret, _ := ParseSecret(NewSecret())
	log := memory.NewEvents(memory.EventOptions{})
	d := New(Config{Endpoints: []string{srv.URL}, Secret: secret, RetryBase: time.Millisecond, MaxAttempts: 3}, log, zap.NewNop())
	defer d.Close()
	d.Emit(context.Background(), testEvent())
	for range 3 {
		waitFor(t, got)
	}
	var attempts []catalog.WebhookAttempt
	deadline := time.Now().Add(10 * time.Second)
	for (len(attempts) == 0 || attempts[0].Outcome != catalog.WebhookFailed) && time.Now().Before(deadline) {
		attempts, _ = log.ListAttempts(context.Background(), 10)
		time.Sleep(10 * time.Millisecond)
	}
	if len(attempts) != 3 || attempts[0].Outcome != catalog.WebhookFailed || attempts[0].Attempt != 3 || attempts[0].HTTPStatus != 503 {
		t.Fatalf("attempts %+v, want 3 ending failed with 503", attempts)
	}
	select {
	case r := <-got:
		t.Fatalf("a fourth attempt reached the receiver: %s", r.body)
	case <-time.After(50 * time.Millisecond):
	}
}

// stalling is an endpoint that answers nothing until release is closed.
func stalling(t *testing.T, release <-chan struct{}) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBoundedQueue: with an endpoint that does not answer, deliveries past
// the queue's bound are dropped and logged, not kept.
func TestBoundedQueue(t *testing.T) {
	release := make(chan struct{})
	srv := stalling(t, release)
	defer close(release)
	secret, _ := ParseSecret(NewSecret())
	log := memory.NewEvents(memory.EventOptions{})
	d := New(Config{Endpoints: []string{srv.URL}, Secret: secret, Queue: 3, Workers: 1}, log, zap.NewNop())
	defer d.Close()
	for seq := int64(1); seq <= 20; seq++ {
		e := testEvent()
		e.Seq = seq
		d.Emit(context.Background(), e)
	}
	var attempts []catalog.WebhookAttempt
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		attempts, _ = log.ListAttempts(context.Background(), 100)
		if len(attempts) >= 17 || time.Now().After(deadline) {
			break
		}
	}
	if len(attempts) != 17 {
		t.Fatalf("%d attempts logged, want 17 dropped", len(attempts))
	}
	for _, a := range attempts {
		if a.Outcome != catalog.WebhookDropped || a.Seq <= 3 {
			t.Fatalf("logged %+v, want only #4… dropped", a)
		}
	}
}

// stuckLog is a webhook log whose writes wait until released.
type stuckLog struct {
	catalog.WebhookLog
	release chan struct{}
}

func (l stuckLog) RecordAttempt(ctx context.Context, a catalog.WebhookAttempt) error {
	select {
	case <-l.release:
	case <-ctx.Done():
	}
	return l.WebhookLog.RecordAttempt(context.WithoutCancel(ctx), a)
}

// TestEmitDoesNotWaitForTheLog: Emit runs on a product actor's turn; with
// the queue full and the webhook log not answering, it still returns (the
// drops are recorded later, by the dispatcher's own goroutine).
func TestEmitDoesNotWaitForTheLog(t *testing.T) {
	release := make(chan struct{})
	srv := stalling(t, release)
	secret, _ := ParseSecret(NewSecret())
	log := memory.NewEvents(memory.EventOptions{})
	d := New(Config{Endpoints: []string{srv.URL}, Secret: secret, Queue: 2, Workers: 1}, stuckLog{log, release}, zap.NewNop())
	defer d.Close()
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for seq := int64(1); seq <= 10; seq++ {
			e := testEvent()
			e.Seq = seq
			d.Emit(context.Background(), e)
		}
	}()
	select {
	case <-emitted:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Emit waited for the webhook log")
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		attempts, _ := log.ListAttempts(context.Background(), 100)
		if len(attempts) >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d drops recorded once the log answered, want 8", len(attempts))
		}
	}
}

func TestEventFilter(t *testing.T) {
	srv, got := receiver(t)
	secret, _ := ParseSecret(NewSecret())
	d := New(Config{Endpoints: []string{srv.URL}, Secret: secret, Events: []catalog.EventType{catalog.EventImageFailed}},
		memory.NewEvents(memory.EventOptions{}), zap.NewNop())
	defer d.Close()
	ready := testEvent()
	d.Emit(context.Background(), ready)
	failed := testEvent()
	failed.Type, failed.Seq = catalog.EventImageFailed, 8
	d.Emit(context.Background(), failed)
	r := waitFor(t, got)
	if !strings.Contains(string(r.body), `"image.failed"`) {
		t.Fatalf("delivered %s, want only the image.failed event", r.body)
	}
	select {
	case r := <-got:
		t.Fatalf("a filtered event was delivered: %s", r.body)
	case <-time.After(50 * time.Millisecond):
	}
}

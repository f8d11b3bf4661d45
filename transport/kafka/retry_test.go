package kafka

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRetry: fn is called until it succeeds or attempts run out, pausing
// between tries; the last error comes back, joined with the context's when
// that ended the tries.
func TestRetry(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	err := retry(t.Context(), 3, time.Millisecond, func(context.Context) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 3 {
		t.Errorf("always failing: %v after %d calls, want boom after 3", err, calls)
	}
	calls = 0
	err = retry(t.Context(), 5, time.Millisecond, func(context.Context) error {
		calls++
		if calls < 3 {
			return boom
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("failing twice: %v after %d calls, want nil after 3", err, calls)
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls = 0
	err = retry(ctx, 100, time.Hour, func(context.Context) error { calls++; cancel(); return boom })
	if !errors.Is(err, boom) || !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("context ended: %v after %d calls, want boom and canceled after 1", err, calls)
	}
}

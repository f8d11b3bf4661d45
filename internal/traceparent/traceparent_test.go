package traceparent

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	if got := Of(ctx); got != "" {
		t.Fatalf("Of(no span) = %q, want \"\"", got)
	}
	for _, tp := range []string{"", "garbage"} {
		if got := Of(With(ctx, tp)); got != "" {
			t.Fatalf("Of(With(%q)) = %q, want \"\"", tp, got)
		}
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	continued := With(ctx, tp)
	if sc := trace.SpanContextFromContext(continued); !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("With(%q) span context = %+v, want the remote trace", tp, sc)
	}
	if got := Of(continued); got != tp {
		t.Fatalf("Of(With(%q)) = %q, want it back", tp, got)
	}
}

// Package traceparent carries a trace across what is not a call: an actor
// message, a job row, a Kafka message. It is the W3C traceparent string of
// the OpenTelemetry span in a context, and back: context plumbing only,
// below every layer that carries one (actors, persistence, transport).
package traceparent

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Of is ctx's span as a W3C traceparent, or "" without one (tracing off).
func Of(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// With is ctx continuing the trace of a W3C traceparent ("" or garbage:
// ctx unchanged).
func With(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

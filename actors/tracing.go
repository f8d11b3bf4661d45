package actors

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
)

// Trace context crosses the actor boundary as a W3C traceparent string in
// the command (internal/traceparent), so a grain on another node continues
// the caller's trace.

// tracerOf is the named tracer of tp, or nil when tracing is off.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer("github.com/vitrine-dev/vitrine/actors")
}

// startSpan starts a span when tracing is on and ctx carries a trace; the
// returned end function ends it (a no-op otherwise), recording *errp.
func startSpan(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, func(errp *error)) {
	if tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, func(*error) {}
	}
	ctx, span := tracer.Start(ctx, name, opts...)
	return ctx, func(errp *error) {
		if errp != nil && *errp != nil {
			span.RecordError(*errp)
			span.SetStatus(codes.Error, (*errp).Error())
		}
		span.End()
	}
}

// commandSpanName names a grain command's span.
func commandSpanName(cmd *actorspb.ProductCommand) string {
	return "grain " + cmd.Op.String()
}

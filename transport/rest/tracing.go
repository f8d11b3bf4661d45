package rest

import (
	"context"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.21.0"
	"go.opentelemetry.io/otel/trace"
)

// traceCtx is the context a handler's work runs in: the request's span's
// when tracing is on, else the background (the hot path makes none).
func traceCtx(ctx *fasthttp.RequestCtx) context.Context {
	if x, ok := ctx.UserValue(exchangeKey).(*exchange); ok && x.trace != nil {
		return x.trace
	}
	return context.Background()
}

// headerCarrier reads and writes W3C trace context in fasthttp headers.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string        { return []string{"traceparent", "tracestate"} }

var traceContext = propagation.TraceContext{}

// startSpan opens the request's server span, continuing a trace the client
// sent (traceparent); the route is named when the router matched one.
func (s *Server) startSpan(ctx *fasthttp.RequestCtx, x *exchange) trace.Span {
	parent := traceContext.Extract(context.Background(), headerCarrier{&ctx.Request.Header})
	c, span := s.tracer.Start(parent, "HTTP "+string(ctx.Method()), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPMethod(string(ctx.Method())), semconv.URLPath(string(ctx.Path()))))
	x.trace = c
	return span
}

// endSpan closes the request's span with its route and status.
func endSpan(ctx *fasthttp.RequestCtx, span trace.Span, x *exchange) {
	route := x.route
	status := ctx.Response.StatusCode()
	if route != "" {
		span.SetName(string(ctx.Method()) + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(semconv.HTTPStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, "")
	}
	if x.err != nil {
		span.RecordError(x.err)
	}
	if id := x.requestID(); id != "" {
		span.SetAttributes(attribute.String("vitrine.request_id", id))
	}
	span.End()
}

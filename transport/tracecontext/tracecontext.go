// Package tracecontext forwards to internal/traceparent, where carrying a
// trace as a W3C traceparent string now lives (below the layers that use
// it). It stays for the importers not moved yet (persistence's stores and
// conformance suites); new code imports internal/traceparent.
package tracecontext

import (
	"context"

	"github.com/vitrine-dev/vitrine/internal/traceparent"
)

// Of is ctx's span as a W3C traceparent, or "" without one (tracing off):
// traceparent.Of.
func Of(ctx context.Context) string { return traceparent.Of(ctx) }

// With is ctx continuing the trace of a W3C traceparent ("" or garbage:
// ctx unchanged): traceparent.With.
func With(ctx context.Context, tp string) context.Context { return traceparent.With(ctx, tp) }

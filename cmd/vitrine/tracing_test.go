package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// TestTracingFollowsAnUpload: one upload is one trace, from the client's
// traceparent through the HTTP span, the product's grain and the outbox
// write, across the job queue, to the worker's job span and its libvips,
// storage and grain spans.
func TestTracingFollowsAnUpload(t *testing.T) {
	rec, tp := spanRecorder()
	checkUploadTrace(t, startAppWith(t, t.TempDir(), nil, zap.NewNop(), tp), rec)
}

// spanRecorder is a tracer provider whose ended spans the recorder keeps.
func spanRecorder() (*tracetest.SpanRecorder, trace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
}

// checkUploadTrace runs one traced upload on app and checks its span tree,
// made of the spans that recs (one per process) recorded.
func checkUploadTrace(t *testing.T, app *testApp, recs ...*tracetest.SpanRecorder) {
	ended := func() []sdktrace.ReadOnlySpan {
		var all []sdktrace.ReadOnlySpan
		for _, r := range recs {
			all = append(all, r.Ended()...)
		}
		return all
	}

	p := app.createProduct(`{"name":"Traced lamp","price":"12.00","user_id":1}`)
	data, err := os.ReadFile(filepath.Join(corpusDir(t), "photo_mate_wood.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	body, ct := multipartBody(t, "file", "wood.jpg", data)
	r := app.do("POST", "/products/"+p["id"].(string)+"/images", body, "Content-Type", ct,
		"traceparent", fmt.Sprintf("00-%s-%s-01", clientTrace, clientSpan))
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if img := app.waitImage(r.Header.Get("Location"), 60*time.Second); img["status"] != "ready" {
		t.Fatalf("image not ready: %v", img)
	}

	// The job's span ends after the image is saved: wait for it.
	var spans []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); ; {
		spans = ofTrace(ended(), clientTrace)
		if named(spans, "image job") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	// path is the names from a span up to the root, for failure messages
	// and for the ancestry checks.
	path := func(s sdktrace.ReadOnlySpan) string {
		var names []string
		for s != nil {
			names = append(names, s.Name())
			s = byID[s.Parent().SpanID()]
		}
		return strings.Join(names, " < ")
	}
	var all bytes.Buffer
	for _, s := range spans {
		fmt.Fprintf(&all, "  %s\n", path(s))
	}

	request := named(spans, "POST /products/{id}/images")
	if request == nil {
		t.Fatalf("no server span for the upload in trace %s:\n%s", clientTrace, &all)
	}
	if got := request.Parent().SpanID().String(); got != clientSpan || !request.Parent().IsRemote() {
		t.Errorf("the upload's span continues %s (remote %v), want the client's span %s", got, request.Parent().IsRemote(), clientSpan)
	}
	want := map[string]string{
		"grain ADD_IMAGE":       "grain ADD_IMAGE < POST /products/{id}/images",
		"outbox: image and job": "outbox: image and job < grain ADD_IMAGE < POST /products/{id}/images",
		"image job":             "image job < outbox: image and job < grain ADD_IMAGE < POST /products/{id}/images",
		"read original":         "read original < image job < ",
		"libvips process":       "libvips process < image job < ",
		"store variants":        "store variants < image job < ",
		"grain SAVE_IMAGE":      "grain SAVE_IMAGE < image job < ",
	}
	for name, prefix := range want {
		s := named(spans, name)
		if s == nil {
			t.Errorf("no %q span in the upload's trace:\n%s", name, &all)
			continue
		}
		if got := path(s); !strings.HasPrefix(got, prefix) {
			t.Errorf("span %q sits at %q, want under %q", name, got, prefix)
		}
	}
	job := named(spans, "image job")
	if job == nil {
		return
	}
	if job.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("the job's span is a %v span, want consumer", job.SpanKind())
	}
	attrs := map[string]string{}
	for _, a := range job.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["vitrine.outcome"] != "ready" || attrs["vitrine.product_id"] != p["id"] {
		t.Errorf("the job's span has attributes %v, want outcome ready and the product's id", attrs)
	}
}

// ofTrace is the spans of one trace.
func ofTrace(spans []sdktrace.ReadOnlySpan, traceID string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID().String() == traceID {
			out = append(out, s)
		}
	}
	return out
}

// named is the first span called name, or nil.
func named(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

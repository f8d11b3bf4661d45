package main

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMediaFileSemantics: /media serves the local directory's files with
// the HTTP semantics of a file server, as it streams S3's
// (TestRealBackendsMediaProxy): ETag and Last-Modified, ranges,
// conditional requests, HEAD.
func TestMediaFileSemantics(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	p := app.createProduct(`{"name":"Served","price":"1","user_id":1}`)
	r := app.uploadFile(p["id"].(string), filepath.Join(corpusDir(t), "photo_mate_wood.jpg"), true)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	img := app.waitImage(r.Header.Get("Location"), 2*time.Minute)
	url := img["variants"].([]any)[0].(map[string]any)["url"].(string)
	checkMediaSemantics(t, app, url)
	full := app.fetch(url)
	// If-Range naming the file's ETag or date: the range; several ranges:
	// the whole file (RFC 9110 allows it).
	for _, ir := range []string{full.Header.Get("ETag"), full.Header.Get("Last-Modified")} {
		if got := app.do("GET", url, nil, "Range", "bytes=0-9", "If-Range", ir); got.Status != http.StatusPartialContent || !bytes.Equal(got.Body, full.Body[:10]) {
			t.Errorf("Range with If-Range %s: %d, %d bytes; want 206 and the first 10", ir, got.Status, len(got.Body))
		}
	}
	if got := app.do("GET", url, nil, "Range", "bytes=0-1,5-6"); got.Status != http.StatusOK || !bytes.Equal(got.Body, full.Body) {
		t.Errorf("two ranges: %d, %d bytes; want 200 and the whole file", got.Status, len(got.Body))
	}
	if got := app.do("GET", url, nil, "If-None-Match", `W/"x", `+full.Header.Get("ETag")); got.Status != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag second in a list: %d, want 304", got.Status)
	}
}

// checkMediaSemantics checks a variant's /media URL answers as a file
// server does.
func checkMediaSemantics(t *testing.T, app *testApp, url string) {
	t.Helper()
	full := app.fetch(url)
	if full.Status != http.StatusOK || full.Header.Get("ETag") == "" || full.Header.Get("Last-Modified") == "" ||
		full.Header.Get("Accept-Ranges") != "bytes" || full.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("GET %s: %d %v", url, full.Status, full.Header)
	}
	size := len(full.Body)
	tests := []struct {
		name   string
		header []string
		status int
		body   []byte
		check  func(h http.Header) string
	}{
		{"range", []string{"Range", "bytes=10-29"}, http.StatusPartialContent, full.Body[10:30], func(h http.Header) string {
			return h.Get("Content-Range") + " want " + fmt.Sprintf("bytes 10-29/%d", size)
		}},
		{"suffix range", []string{"Range", "bytes=-5"}, http.StatusPartialContent, full.Body[size-5:], nil},
		{"if-none-match", []string{"If-None-Match", full.Header.Get("ETag")}, http.StatusNotModified, nil, nil},
		{"if-modified-since", []string{"If-Modified-Since", full.Header.Get("Last-Modified")}, http.StatusNotModified, nil, nil},
		{"modified since", []string{"If-Modified-Since", time.Now().Add(-24 * time.Hour).UTC().Format(http.TimeFormat)}, http.StatusOK, full.Body, nil},
		{"stale etag", []string{"If-None-Match", `"stale"`}, http.StatusOK, full.Body, nil},
		{"if-range", []string{"Range", "bytes=0-9", "If-Range", `"other"`}, http.StatusOK, full.Body, nil},
		{"unsatisfiable", []string{"Range", fmt.Sprintf("bytes=%d-", size+100)}, http.StatusRequestedRangeNotSatisfiable, nil, func(h http.Header) string {
			return h.Get("Content-Range") + " want " + fmt.Sprintf("bytes */%d", size)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := app.do("GET", url, nil, tt.header...)
			if got.Status != tt.status {
				t.Fatalf("%d, want %d: %s", got.Status, tt.status, got.Body)
			}
			if tt.body != nil && !bytes.Equal(got.Body, tt.body) {
				t.Errorf("body of %d bytes, want %d", len(got.Body), len(tt.body))
			}
			if tt.check != nil {
				if got, want, _ := strings.Cut(tt.check(got.Header), " want "); got != want {
					t.Errorf("Content-Range %q, want %q", got, want)
				}
			}
		})
	}
	head := app.do("HEAD", url, nil)
	if head.Status != http.StatusOK || len(head.Body) != 0 || head.Header.Get("Content-Length") != strconv.Itoa(size) ||
		head.Header.Get("ETag") != full.Header.Get("ETag") || head.Header.Get("Content-Type") != full.Header.Get("Content-Type") {
		t.Errorf("HEAD: %d, %d bytes, %v", head.Status, len(head.Body), head.Header)
	}
	if r := app.fetch(strings.Replace(url, "/r2/", "/r9/", 1)); r.Status != http.StatusNotFound {
		t.Errorf("a missing variant: %d, want 404", r.Status)
	}
}

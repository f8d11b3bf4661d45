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
	// The tags a CDN purges by: the image's and its product's.
	_, rest, _ := strings.Cut(url, "/media/products/")
	if ids := strings.Split(rest, "/"); len(ids) < 3 || full.Header.Get("Surrogate-Key") != "image-"+ids[1]+" product-"+ids[0] ||
		full.Header.Get("Cache-Tag") != "image-"+ids[1]+",product-"+ids[0] {
		t.Errorf("GET %s: Surrogate-Key %q, Cache-Tag %q; want the image's and the product's tags", url, full.Header.Get("Surrogate-Key"), full.Header.Get("Cache-Tag"))
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
	if r := app.fetch(strings.Replace(url, "/r3/", "/r9/", 1)); r.Status != http.StatusNotFound {
		t.Errorf("a missing variant: %d, want 404", r.Status)
	}
}

// TestMediaNegotiation: a variant's negotiated URL (its renditions' url)
// answers the format the client accepts, on the local directory; on S3 in
// TestRealBackendsMediaProxy.
func TestMediaNegotiation(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	p := app.createProduct(`{"name":"Negotiated","price":"1","user_id":1}`)
	r := app.uploadFile(p["id"].(string), filepath.Join(corpusDir(t), "photo_mate_wood.jpg"), true)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	location := r.Header.Get("Location")
	img := app.waitImage(location, 2*time.Minute)
	checkNegotiation(t, app, img)
	// The product's representation carries the renditions too.
	prod := app.do("GET", "/products/"+p["id"].(string), nil).json(t)
	if got := prod["primary_image"].(map[string]any)["renditions"]; fmt.Sprint(got) != fmt.Sprint(img["renditions"]) {
		t.Errorf("the product's primary_image renditions %v differ from the image's %v", got, img["renditions"])
	}
	// Deleted: its negotiated URLs are gone with it.
	url := img["renditions"].([]any)[0].(map[string]any)["url"].(string)
	if d := app.do("DELETE", location, nil); d.Status != http.StatusNoContent {
		t.Fatalf("delete the image: %d %s", d.Status, d.Body)
	}
	expectProblem(t, app.fetch(url), http.StatusNotFound, "the negotiated URL of a deleted image")
}

// checkNegotiation checks the renditions of a ready image made by the
// default recipe (WebP, JPEG and AVIF, all made) and what their negotiated
// URLs answer.
func checkNegotiation(t *testing.T, app *testApp, img map[string]any) {
	t.Helper()
	renditions, _ := img["renditions"].([]any)
	var names []string
	for _, r := range renditions {
		names = append(names, r.(map[string]any)["name"].(string))
	}
	if strings.Join(names, ",") != "thumb,small,medium,large" {
		t.Fatalf("renditions %v, want thumb, small, medium and large: %v", names, img["renditions"])
	}
	// Each rendition: its variants' sizes, its formats the variants' files,
	// its url theirs without the extension.
	byURL := map[string]map[string]any{}
	for _, v := range img["variants"].([]any) {
		byURL[v.(map[string]any)["url"].(string)] = v.(map[string]any)
	}
	medium := renditions[2].(map[string]any)
	for _, r := range renditions {
		r := r.(map[string]any)
		var formats []string
		for _, f := range r["formats"].([]any) {
			f := f.(map[string]any)
			v := byURL[f["url"].(string)]
			if v == nil || v["name"] != r["name"] || v["format"] != f["format"] || v["bytes"] != f["bytes"] ||
				v["width"] != r["width"] || v["height"] != r["height"] || f["url"] != r["url"].(string)+"."+f["format"].(string) {
				t.Errorf("rendition %v: format %v does not match a variant (%v)", r["name"], f, v)
			}
			formats = append(formats, f["format"].(string))
		}
		if strings.Join(formats, ",") != "webp,jpeg,avif" {
			t.Errorf("rendition %v: formats %v, want webp, jpeg and avif", r["name"], formats)
		}
	}
	url := medium["url"].(string)
	webp, jpeg, avif := app.fetch(url+".webp"), app.fetch(url+".jpeg"), app.fetch(url+".avif")
	if webp.Status != http.StatusOK || jpeg.Status != http.StatusOK || avif.Status != http.StatusOK {
		t.Fatalf("the medium files: %d, %d, %d", webp.Status, jpeg.Status, avif.Status)
	}
	chrome := "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
	for _, c := range []struct {
		name, accept string
		want         response
		format       string
	}{
		{"a browser naming avif", chrome, avif, "avif"},
		{"a browser naming webp", "image/webp,image/*,*/*;q=0.8", webp, "webp"},
		{"avif refused", "image/avif;q=0,image/webp", webp, "webp"},
		{"no Accept", "", jpeg, "jpeg"},
		{"curl", "*/*", jpeg, "jpeg"},
		{"webp preferred by q", "image/jpeg;q=0.5,image/webp", webp, "webp"},
		{"jpeg preferred by q", "image/webp;q=0.2,image/jpeg", jpeg, "jpeg"},
		{"only formats vitrine cannot make", "image/png,image/gif", jpeg, "jpeg"},
		{"huge", strings.Repeat("text/plain;q=0.1,", 400) + "image/webp", jpeg, "jpeg"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := app.do("GET", url, nil, "Accept", c.accept)
			if got.Status != http.StatusOK || !bytes.Equal(got.Body, c.want.Body) {
				t.Fatalf("%d, %d bytes; want 200 and the %s file (%d bytes): %s", got.Status, len(got.Body), c.format, len(c.want.Body), got.Body)
			}
			if got.Header.Get("Content-Type") != c.want.Header.Get("Content-Type") || got.Header.Get("Vary") != "Accept" ||
				got.Header.Get("Content-Location") != url+"."+c.format || got.Header.Get("ETag") != c.want.Header.Get("ETag") {
				t.Errorf("headers %v; want the %s file's, Vary: Accept and Content-Location %s", got.Header, c.format, url+"."+c.format)
			}
		})
	}
	// Conditional and range requests as on the file's own URL.
	if got := app.do("GET", url, nil, "Accept", chrome, "If-None-Match", avif.Header.Get("ETag")); got.Status != http.StatusNotModified || got.Header.Get("Vary") != "Accept" {
		t.Errorf("If-None-Match: %d %v; want 304 with Vary", got.Status, got.Header)
	}
	if got := app.do("GET", url, nil, "Accept", chrome, "Range", "bytes=0-9"); got.Status != http.StatusPartialContent || !bytes.Equal(got.Body, avif.Body[:10]) {
		t.Errorf("Range: %d, %d bytes; want 206 and the avif file's first 10", got.Status, len(got.Body))
	}
	if got := app.do("HEAD", url, nil, "Accept", chrome); got.Status != http.StatusOK || len(got.Body) != 0 || got.Header.Get("Content-Type") != "image/avif" {
		t.Errorf("HEAD: %d, %d bytes, %v", got.Status, len(got.Body), got.Header)
	}
	if got := app.do("GET", url, nil, "Accept", chrome); got.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control %q with every format made; want the immutable one", got.Header.Get("Cache-Control"))
	}
	refused := expectProblem(t, app.do("GET", url, nil, "Accept", "image/jpeg;q=0, image/webp;q=0, image/avif;q=0"), http.StatusNotAcceptable, "every format refused")
	if !strings.Contains(fmt.Sprint(refused["detail"]), "avif, webp, jpeg") {
		t.Errorf("406 detail %q does not name the formats served", refused["detail"])
	}
	// An Accept of 16 KiB puts the header over the server's limit.
	expectProblem(t, app.do("GET", url, nil, "Accept", strings.Repeat("image/webp;q=0.5,", 16<<10/17+1)), http.StatusRequestHeaderFieldsTooLarge, "an Accept of 16 KiB")
	// Negotiated URLs of nothing.
	imageID, productID := img["id"].(string), img["product_id"].(string)
	for _, path := range []string{
		strings.Replace(url, "/medium", "/nosuch", 1),
		strings.Replace(url, "/r3/", "/r9/", 1),
		strings.Replace(url, imageID, "00000000-0000-4000-8000-000000000000", 1),
		strings.Replace(url, productID, "00000000-0000-4000-8000-000000000000", 1),
		strings.Replace(url, imageID, "not-an-id", 1),
		strings.Replace(url, "/r3/medium", "/medium", 1),
		strings.Replace(url, "/r3/medium", "/r3/x/medium", 1),
	} {
		expectProblem(t, app.do("GET", path, nil, "Accept", chrome), http.StatusNotFound, path)
	}
}

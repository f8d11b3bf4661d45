package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/media"

	"github.com/vitrine-dev/vitrine/transport/rest"
)

// lampPhoto is the repository's own photo: 1200×900.
const lampPhoto = "../../testdata/desk-lamp.jpg"

// readyLamp uploads the lamp photo to a new product and waits until it is
// ready: the product's id and the image's /media prefix for on-demand URLs.
func readyLamp(t *testing.T, app *testApp) (productID, imageID, location string) {
	t.Helper()
	p := app.createProduct(`{"name":"On demand","price":"1","user_id":1}`)
	productID = p["id"].(string)
	r := app.uploadFile(productID, lampPhoto, false)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	location = r.Header.Get("Location")
	img := app.waitImage(location, 2*time.Minute)
	if img["status"] != "ready" {
		t.Fatalf("image: %v", img)
	}
	return productID, img["id"].(string), location
}

// rendersCounted is the node's vitrine_renders_total of that outcome.
func rendersCounted(t *testing.T, app *testApp, outcome string) int {
	t.Helper()
	mfs, err := app.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vitrine_renders_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "outcome", outcome) {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	t.Fatalf("no vitrine_renders_total{outcome=%q}", outcome)
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// sizeOf decodes the header of an image file: its width and height.
func sizeOf(t *testing.T, data []byte) (int, int) {
	t.Helper()
	h, err := testEngine.Probe(data)
	if err != nil {
		t.Fatalf("the answer is no image: %v", err)
	}
	return h.Width, h.Height
}

// TestOnDemandWidths: widths made on request from the original, snapped up
// to the ladder and never larger than the image, stored once and served
// from storage afterwards (one libvips run), with the file semantics of
// /media; bad widths, ratios and formats get clear 400s; a deleted image's
// renders go with it.
func TestOnDemandWidths(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	productID, imageID, location := readyLamp(t, app)
	base := "/media/products/" + productID + "/" + imageID + "/"

	first := app.fetch(base + "w300.webp")
	if first.Status != http.StatusOK || first.Header.Get("Content-Type") != "image/webp" {
		t.Fatalf("w300.webp: %d %v %s", first.Status, first.Header, first.Body)
	}
	if w, h := sizeOf(t, first.Body); w != 304 || h != 228 {
		t.Errorf("w300.webp is %dx%d; want 304x228 (300 snapped up to the ladder's 304, the image's 4:3)", w, h)
	}
	if cc := first.Header.Get("Cache-Control"); cc != "public, max-age=86400" {
		t.Errorf("Cache-Control %q", cc)
	}
	if cl := first.Header.Get("Content-Location"); !strings.HasSuffix(cl, "/od/w304.webp") {
		t.Errorf("Content-Location %q; want the stored file's URL", cl)
	}
	// Every width of the same rung is the same file, made once.
	for _, w := range []string{"w300.webp", "w289.webp", "w304.webp"} {
		again := app.fetch(base + w)
		if again.Status != http.StatusOK || !bytes.Equal(again.Body, first.Body) {
			t.Errorf("%s: %d, %d bytes; want the same file as w300.webp", w, again.Status, len(again.Body))
		}
	}
	if n := rendersCounted(t, app, "made"); n != 1 {
		t.Errorf("%d renders made for one rung; want 1", n)
	}
	// The stored file answers as /media files do: ETag, 304, ranges, 416.
	checkRenderedSemantics(t, app, base+"w300.webp", first)

	// Never enlarged: wider than the image is the image's own width.
	if r := app.fetch(base + "w2000.jpg"); r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("w2000.jpg: %d %s", r.Status, r.Body)
	} else if w, h := sizeOf(t, r.Body); w != 1200 || h != 900 {
		t.Errorf("w2000.jpg of a 1200x900 image is %dx%d; want 1200x900", w, h)
	}
	// A cover crop of a ratio, and the widest crop the image holds.
	if r := app.fetch(base + "ar1x1/w200.webp"); r.Status != http.StatusOK {
		t.Errorf("ar1x1/w200.webp: %d %s", r.Status, r.Body)
	} else if w, h := sizeOf(t, r.Body); w != 208 || h != 208 {
		t.Errorf("ar1x1/w200.webp is %dx%d; want 208x208", w, h)
	}
	if r := app.fetch(base + "ar2x2/w2048.webp"); r.Status != http.StatusOK {
		t.Errorf("ar2x2/w2048.webp: %d %s", r.Status, r.Body)
	} else if w, h := sizeOf(t, r.Body); w != 900 || h != 900 {
		t.Errorf("ar2x2/w2048.webp of a 1200x900 image is %dx%d; want 900x900 (2x2 is 1x1, the widest square it holds)", w, h)
	}
	// Without an extension: the best format the client accepts.
	neg := app.do("GET", base+"w400", nil, "Accept", "image/avif,image/webp,*/*")
	if neg.Status != http.StatusOK || neg.Header.Get("Content-Type") != "image/avif" || neg.Header.Get("Vary") != "Accept" ||
		!strings.HasSuffix(neg.Header.Get("Content-Location"), "/od/w400.avif") {
		t.Errorf("w400 accepting AVIF: %d %v", neg.Status, neg.Header)
	}
	if r := app.do("GET", base+"w400", nil); r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("w400 without Accept: %d %v; want the JPEG fallback", r.Status, r.Header)
	}
	expectProblem(t, app.do("GET", base+"w400", nil, "Accept", "image/avif;q=0, image/webp;q=0, image/jpeg;q=0, */*;q=0"), http.StatusNotAcceptable, "w400 refusing every format")

	for _, bad := range []struct{ path, code string }{
		{"w0.webp", "invalid_width"},
		{"w-5.webp", "invalid_width"},
		{"w1000000000.webp", "invalid_width"},
		{"wabc.webp", "invalid_width"},
		{"w.webp", "invalid_width"},
		{"w2049.webp", "invalid_width"},
		{"w300.png", "invalid_format"},
		{"w300.gif", "invalid_format"},
		{"ar0x1/w300.webp", "invalid_aspect_ratio"},
		{"ar100000x1/w300.webp", "invalid_aspect_ratio"},
		{"ar33x1/w300.webp", "invalid_aspect_ratio"},
		{"arx/w300.webp", "invalid_aspect_ratio"},
		{"ar1x1x1/w300.webp", "invalid_aspect_ratio"},
	} {
		p := expectProblem(t, app.fetch(base+bad.path), http.StatusBadRequest, bad.path)
		if p["code"] != bad.code {
			t.Errorf("%s: code %v, want %s", bad.path, p["code"], bad.code)
		}
	}
	expectProblem(t, app.fetch("/media/products/"+productID+"/0192a0a0-0000-7000-8000-000000000000/w300.webp"), http.StatusNotFound, "a render of an image that does not exist")

	// Deleted: the renders go with the image.
	if d := app.do("DELETE", location, nil); d.Status != http.StatusNoContent {
		t.Fatalf("delete the image: %d %s", d.Status, d.Body)
	}
	expectProblem(t, app.fetch(base+"w300.webp"), http.StatusNotFound, "a render of a deleted image")
	if n := app.storedFiles(productID); n != 0 {
		t.Errorf("%d files left of the deleted image; want 0", n)
	}
}

// checkRenderedSemantics checks a stored render answers as a /media file.
func checkRenderedSemantics(t *testing.T, app *testApp, path string, full response) {
	t.Helper()
	etag := full.Header.Get("ETag")
	if etag == "" || full.Header.Get("Last-Modified") == "" || full.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("%s: %v; want ETag, Last-Modified and Accept-Ranges", path, full.Header)
	}
	if r := app.do("GET", path, nil, "If-None-Match", etag); r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", r.Status)
	}
	if r := app.do("GET", path, nil, "If-Modified-Since", full.Header.Get("Last-Modified")); r.Status != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d, want 304", r.Status)
	}
	if r := app.do("GET", path, nil, "Range", "bytes=0-9"); r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, full.Body[:10]) {
		t.Errorf("Range: %d, %d bytes; want 206 and 10", r.Status, len(r.Body))
	}
	past := fmt.Sprintf("bytes=%d-", len(full.Body)+10)
	if r := app.do("GET", path, nil, "Range", past); r.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d, want 416", r.Status)
	}
}

// TestOnDemandBounded: a thousand distinct widths of one image asked at
// once make at most the ladder's rungs (fewer: the image is 1,200 px), each
// once; what the queue cannot take gets 503 with Retry-After, and the
// server goes on serving.
func TestOnDemandBounded(t *testing.T) {
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_RENDER_QUEUE": "4"})
	productID, imageID, _ := readyLamp(t, app)
	base := app.base + "/media/products/" + productID + "/" + imageID + "/"
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxConnsPerHost: 200, MaxIdleConnsPerHost: 200}}
	var mu sync.Mutex
	status := map[int]int{}
	noRetryAfter := 0
	var wg sync.WaitGroup
	for w := 1; w <= 1000; w++ {
		wg.Go(func() {
			res, err := client.Get(fmt.Sprintf("%sw%d.webp", base, w))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				status[-1]++
				return
			}
			_ = res.Body.Close()
			status[res.StatusCode]++
			if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
				noRetryAfter++
			}
		})
	}
	wg.Wait()
	t.Logf("1,000 distinct widths at once: %v (status: count); renders made %d, refused busy %d", status, rendersCounted(t, app, "made"), rendersCounted(t, app, "busy"))
	if status[http.StatusOK]+status[http.StatusServiceUnavailable] != 1000 || status[http.StatusServiceUnavailable] == 0 || noRetryAfter > 0 {
		t.Errorf("answers %v (%d 503s without Retry-After); want only 200s and 503s, some 503s, each with Retry-After", status, noRetryAfter)
	}
	if made := rendersCounted(t, app, "made"); made > 75 {
		t.Errorf("%d renders made; the ladder has 75 rungs up to the image's 1,200 px", made)
	}
	if r := app.do("GET", "/products/"+productID, nil); r.Status != http.StatusOK {
		t.Errorf("a product read after the flood: %d", r.Status)
	}
	if r := app.fetch(base + "w320.webp"); r.Status != http.StatusOK {
		t.Errorf("a render after the flood: %d %s", r.Status, r.Body)
	}
}

// TestOnDemandSigned: with signing keys, on-demand URLs need a signature
// of their path by one of the keys (the old and the new during a
// rotation), unexpired; anything else is 403.
func TestOnDemandSigned(t *testing.T) {
	oldKey, newKey := strings.Repeat("ab", 32), strings.Repeat("cd", 16)
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_MEDIA_SIGNING_KEY": newKey + "," + oldKey})
	productID, imageID, _ := readyLamp(t, app)
	path := "/media/products/" + productID + "/" + imageID + "/w320.webp"
	other := "/media/products/" + productID + "/" + imageID + "/w640.webp"
	key := func(h string) []byte { b, _ := hex.DecodeString(h); return b }
	for _, c := range []struct {
		what, url string
		status    int
		code      string
	}{
		{"unsigned", path, http.StatusForbidden, "signature_required"},
		{"signed by the old key", path + "?" + rest.SignMedia(key(oldKey), path, time.Time{}), http.StatusOK, ""},
		{"signed by the new key, expiring later", path + "?" + rest.SignMedia(key(newKey), path, time.Now().Add(time.Hour)), http.StatusOK, ""},
		{"expired", path + "?" + rest.SignMedia(key(newKey), path, time.Now().Add(-time.Minute)), http.StatusForbidden, "signature_expired"},
		{"signed for another path", path + "?" + rest.SignMedia(key(newKey), other, time.Time{}), http.StatusForbidden, "invalid_signature"},
		{"signed by an unknown key", path + "?" + rest.SignMedia(key(strings.Repeat("ef", 16)), path, time.Time{}), http.StatusForbidden, "invalid_signature"},
		{"malformed", path + "?sig=not*base64", http.StatusForbidden, "invalid_signature"},
		{"short", path + "?sig=AAAA", http.StatusForbidden, "invalid_signature"},
		{"expiry changed", strings.Replace(path+"?"+rest.SignMedia(key(newKey), path, time.Now().Add(time.Hour)), "exp=", "exp=1", 1), http.StatusForbidden, "invalid_signature"},
		{"expiry not a number", path + "?exp=soon&" + rest.SignMedia(key(newKey), path, time.Time{}), http.StatusForbidden, "invalid_signature"},
	} {
		r := app.fetch(c.url)
		if r.Status != c.status {
			t.Errorf("%s: %d, want %d\n%s", c.what, r.Status, c.status, r.Body)
			continue
		}
		if c.code != "" {
			if p := r.json(t); p["code"] != c.code {
				t.Errorf("%s: code %v, want %s", c.what, p["code"], c.code)
			}
		}
	}
	// The recipe's own variants need no signature.
	img := app.do("GET", "/products/"+productID+"/images/"+imageID, nil).json(t)
	if u := img["variants"].([]any)[0].(map[string]any)["url"].(string); app.fetch(u).Status != http.StatusOK {
		t.Errorf("a recipe variant %s with signing on: not served", u)
	}
}

// TestOnDemandNewRecipe: renders are stored (a restart serves them, making
// nothing) beside their recipe version's variants: processing the image with a new recipe version removes them
// with the old variants, and the same URL then makes a new file; a new
// focal point names new crops.
func TestOnDemandNewRecipe(t *testing.T) {
	dir := t.TempDir()
	app := startApp(t, dir, nil)
	productID, imageID, location := readyLamp(t, app)
	base := "/media/products/" + productID + "/" + imageID + "/"
	old := app.fetch(base + "w320.webp")
	if old.Status != http.StatusOK || !strings.Contains(old.Header.Get("Content-Location"), "/r3/od/w320.webp") {
		t.Fatalf("w320.webp: %d %v", old.Status, old.Header)
	}
	oldFile := filepath.Join(dir, "files", "products", productID, imageID, "r3", "od", "w320.webp")
	if _, err := os.Stat(oldFile); err != nil {
		t.Fatalf("the render is not stored where expected: %v", err)
	}
	// A new focal point: the crop's URL names a new file at once.
	before := app.fetch(base + "ar1x1/w200.webp").Header.Get("Content-Location")
	if r := app.doJSON("PATCH", location, `{"focal_point":{"x":0.1,"y":0.9}}`); r.Status != http.StatusOK {
		t.Fatalf("patch the focal point: %d %s", r.Status, r.Body)
	}
	crop := app.fetch(base + "ar1x1/w200.webp")
	if after := crop.Header.Get("Content-Location"); crop.Status != http.StatusOK || after == before || !strings.Contains(after, "-f1000-9000.webp") {
		t.Errorf("the crop after a new focal point: %d, Content-Location %q (before %q)", crop.Status, after, before)
	}
	// The old crop goes once the image's new crops are made.
	_, rel, _ := strings.Cut(before, "/media/")
	oldCrop := filepath.Join(dir, "files", filepath.FromSlash(rel))
	deadline := time.Now().Add(time.Minute)
	for _, err := os.Stat(oldCrop); !os.IsNotExist(err); _, err = os.Stat(oldCrop) {
		if time.Now().After(deadline) {
			t.Fatalf("the crop %s made around the old focus is still stored (%v)", oldCrop, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	app.stop()

	r4, err := media.ParseRecipe([]byte(`{"version":4,"variants":[{"name":"medium","width":800,"height":800,"formats":[{"format":"webp","quality":80}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	eng := *testEngine
	eng.recipe = r4
	app = startAppEngine(t, dir, nil, zap.NewNop(), nil, &eng)
	// Stored: after the restart the same file is served, nothing made.
	if r := app.fetch(base + "w320.webp"); r.Status != http.StatusOK || !bytes.Equal(r.Body, old.Body) || rendersCounted(t, app, "made") != 0 {
		t.Errorf("w320.webp after a restart: %d, %d bytes (%d before), %d renders made; want the stored file, none made",
			r.Status, len(r.Body), len(old.Body), rendersCounted(t, app, "made"))
	}
	if r := app.do("POST", location+"/reprocess", nil); r.Status != http.StatusAccepted {
		t.Fatalf("reprocess: %d %s", r.Status, r.Body)
	}
	deadline = time.Now().Add(time.Minute)
	for app.do("GET", location, nil).json(t)["recipe_version"] != float64(4) {
		if time.Now().After(deadline) {
			t.Fatalf("the image was not processed with recipe 4: %s", app.do("GET", location, nil).Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old version's files go right after the new one is recorded.
	for _, err := os.Stat(oldFile); !os.IsNotExist(err); _, err = os.Stat(oldFile) {
		if time.Now().After(deadline) {
			t.Fatalf("the render of recipe 3 is still stored after recipe 4 (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	again := app.fetch(base + "w320.webp")
	if again.Status != http.StatusOK || !strings.Contains(again.Header.Get("Content-Location"), "/r4/od/w320.webp") {
		t.Errorf("w320.webp after recipe 4: %d %v", again.Status, again.Header)
	}
}

// TestOnDemandOff: with no render workers, nothing is made on demand: 404.
func TestOnDemandOff(t *testing.T) {
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_RENDER_WORKERS": "0"})
	productID, imageID, _ := readyLamp(t, app)
	expectProblem(t, app.fetch("/media/products/"+productID+"/"+imageID+"/w320.webp"), http.StatusNotFound, "a width on demand with VITRINE_RENDER_WORKERS=0")
}

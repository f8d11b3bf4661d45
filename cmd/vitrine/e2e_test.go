package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
)

func TestProductsEndToEnd(t *testing.T) { testProducts(t, nil) }

func testProducts(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), env)

	// Create.
	r := app.doJSON("POST", "/products", `{"name":"Desk Lamp","description":"brass","price":"19.99","currency":"EUR","user_id":7}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	p := r.json(t)
	id, _ := p["id"].(string)
	if r.Header.Get("Location") != "/products/"+id || r.Header.Get("ETag") == "" {
		t.Errorf("Location %q, ETag %q", r.Header.Get("Location"), r.Header.Get("ETag"))
	}
	if p["price"] != "19.99" || p["currency"] != "EUR" || p["name"] != "Desk Lamp" || p["version"] != 1.0 {
		t.Errorf("created product: %s", r.Body)
	}
	if imgs, ok := p["images"].([]any); !ok || len(imgs) != 0 {
		t.Errorf("images = %v, want []", p["images"])
	}

	// Read, conditional read, unknown and malformed ids.
	r = app.do("GET", "/products/"+id, nil)
	etag := r.Header.Get("ETag")
	if r.Status != http.StatusOK || r.json(t)["id"] != id || etag == "" {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if r = app.do("GET", "/products/"+id, nil, "If-None-Match", etag); r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.Status)
	}
	expectProblem(t, app.do("GET", "/products/01937a4e-7b8c-7def-8a12-3456789abcde", nil), 404, "unknown id")
	expectProblem(t, app.do("GET", "/products/not-a-uuid", nil), 404, "malformed id")
	expectProblem(t, app.do("GET", "/products/"+strings.ToUpper(id), nil), 404, "upper-case id")

	// PATCH with a stale and a fresh ETag; PUT replaces.
	r = app.do("PATCH", "/products/"+id, strings.NewReader(`{"price":"24.50"}`), "Content-Type", "application/merge-patch+json", "If-Match", etag)
	if r.Status != http.StatusOK || r.json(t)["price"] != "24.50" || r.json(t)["description"] != "brass" {
		t.Fatalf("patch with fresh ETag: %d %s", r.Status, r.Body)
	}
	newTag := r.Header.Get("ETag")
	expectProblem(t, app.do("PATCH", "/products/"+id, strings.NewReader(`{"price":"1"}`), "Content-Type", "application/merge-patch+json", "If-Match", etag), 412, "stale If-Match")
	r = app.do("PATCH", "/products/"+id, strings.NewReader(`{"description":null}`), "Content-Type", "application/merge-patch+json", "If-Match", newTag)
	if r.Status != http.StatusOK || r.json(t)["description"] != "" {
		t.Fatalf("patch removing description: %d %s", r.Status, r.Body)
	}
	expectProblem(t, app.do("PATCH", "/products/"+id, strings.NewReader(`{"price":"1.234"}`), "Content-Type", "application/merge-patch+json"), 400, "patch to an invalid price")
	expectProblem(t, app.do("PATCH", "/products/"+id, strings.NewReader(`{"name":null}`), "Content-Type", "application/merge-patch+json"), 400, "patch removing the name")
	r = app.doJSON("PUT", "/products/"+id, `{"name":"Floor Lamp","price":99,"user_id":7}`)
	if got := r.json(t); r.Status != http.StatusOK || got["name"] != "Floor Lamp" || got["price"] != "99.00" || got["currency"] != "USD" {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	expectProblem(t, app.doJSON("PUT", "/products/"+id, `{"name":"x","price":1,"user_id":7}`, "If-Match", etag), 412, "put with stale If-Match")
	if r = app.do("GET", "/products/"+id, nil); r.json(t)["name"] != "Floor Lamp" {
		t.Errorf("read after put: %s", r.Body)
	}

	// Delete.
	if r = app.do("DELETE", "/products/"+id, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	expectProblem(t, app.do("GET", "/products/"+id, nil), 404, "get after delete")
	expectProblem(t, app.do("DELETE", "/products/"+id, nil), 404, "delete twice")
}

func TestListEndToEnd(t *testing.T) { testList(t, nil) }

func testList(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), env)
	var ids []string // in creation order
	for i := 0; i < 23; i++ {
		user := 1 + i%3
		name := fmt.Sprintf("Chair %02d", i)
		if i%5 == 0 {
			name = fmt.Sprintf("Table Ëxtra %02d", i)
		}
		p := app.createProduct(fmt.Sprintf(`{"name":%q,"price":"%d.50","user_id":%d}`, name, 10+i, user))
		ids = append(ids, p["id"].(string))
	}
	list := func(query string) (items []map[string]any, next string) {
		t.Helper()
		r := app.do("GET", "/products?"+query, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.Status, r.Body)
		}
		var page struct {
			Items      []map[string]any `json:"items"`
			NextCursor *string          `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		if page.NextCursor != nil {
			next = *page.NextCursor
		}
		return page.Items, next
	}

	// Default page: 20 newest first, then the rest.
	items, next := list("")
	if len(items) != 20 || next == "" || items[0]["id"] != ids[22] {
		t.Fatalf("first page: %d items, next %q", len(items), next)
	}
	// Walk every page with limit 4: each product once, newest first.
	var walked []string
	cursor := ""
	for pages := 0; pages < 20; pages++ {
		items, next := list("limit=4&cursor=" + url.QueryEscape(cursor))
		for _, it := range items {
			walked = append(walked, it["id"].(string))
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(walked) != len(ids) {
		t.Fatalf("walked %d products, want %d", len(walked), len(ids))
	}
	for i, id := range walked {
		if id != ids[len(ids)-1-i] {
			t.Fatalf("walk position %d: %s, want %s", i, id, ids[len(ids)-1-i])
		}
	}

	// Each filter.
	count := func(query string) int {
		t.Helper()
		items, _ := list(query + "&limit=100")
		return len(items)
	}
	if n := count("user_id=2"); n != 8 {
		t.Errorf("user_id=2: %d, want 8", n)
	}
	if n := count("min_price=20&max_price=25.50"); n != 6 { // 20.50 .. 25.50 -> i = 10..15
		t.Errorf("price range: %d, want 6", n)
	}
	if n := count("min_price=32.50"); n != 1 {
		t.Errorf("min_price: %d, want 1", n)
	}
	if n := count("q=table%20%C3%8BXTRA"); n != 5 {
		t.Errorf("q case-insensitive: %d, want 5", n)
	}
	if n := count("q=chair&user_id=1&max_price=20"); n != 3 { // i in 3,6,9 (0 is a table)
		t.Errorf("combined filters: %d, want 3", n)
	}
	if n := count("q=%25"); n != 0 {
		t.Errorf("q=%%: %d, want 0 (a literal percent)", n)
	}
	if n := count("min_price=9&max_price=1"); n != 0 {
		t.Errorf("an empty price range: %d, want 0", n)
	}

	// Bad parameters.
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "user_id=-1", "user_id=abc", "min_price=1.234",
		"max_price=-5", "cursor=garbage", "colour=red", "limit=5&limit=6", "q=" + strings.Repeat("x", 201)} {
		expectProblem(t, app.do("GET", "/products?"+q, nil), 400, "list "+q)
	}
}

func TestImagesEndToEnd(t *testing.T) { testImages(t, nil) }

func testImages(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), env)
	dir := corpusDir(t)
	p := app.createProduct(`{"name":"Camera","price":"499","user_id":1}`)
	id := p["id"].(string)

	cases := []struct {
		file      string
		multipart bool
		portrait  bool // displayed orientation after EXIF
		alpha     bool
	}{
		{file: "photo_mate_wood.jpg", multipart: true},                 // large JPEG, 2560x1920
		{file: "photo_iphonex_p3_orient6_gps.jpg", portrait: true},     // stored landscape, EXIF 6, GPS, Display P3
		{file: "png_rgba_2048x1536.png", multipart: true, alpha: true}, // PNG with alpha
		{file: "orient_landscape_8.jpg", multipart: true},              // stored portrait, EXIF 8: displayed landscape
	}
	locations := map[string]string{}
	for _, c := range cases {
		r := app.uploadFile(id, filepath.Join(dir, c.file), c.multipart)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %s: %d %s", c.file, r.Status, r.Body)
		}
		img := r.json(t)
		if img["status"] != "pending" || !strings.HasPrefix(r.Header.Get("Location"), "/products/"+id+"/images/") {
			t.Fatalf("upload %s: %s, Location %q", c.file, r.Body, r.Header.Get("Location"))
		}
		locations[c.file] = r.Header.Get("Location")
	}
	var files []string
	for _, c := range cases {
		img := app.waitImage(locations[c.file], 2*time.Minute)
		if img["status"] != "ready" {
			t.Fatalf("%s: %v", c.file, img)
		}
		orig := img["original"].(map[string]any)
		if sha, _ := orig["sha256"].(string); len(sha) != 64 || orig["bytes"].(float64) <= 0 || img["processed_at"] == nil {
			t.Errorf("%s: original %v, processed_at %v", c.file, orig, img["processed_at"])
		}
		if ph, _ := img["placeholder"].(string); len(ph) < 6 {
			t.Errorf("%s: placeholder %q", c.file, ph)
		}
		if dc, _ := img["dominant_color"].(string); len(dc) != 7 || dc[0] != '#' {
			t.Errorf("%s: dominant_color %q", c.file, dc)
		}
		if img["recipe_version"] != float64(media.DefaultRecipeVersion) || img["animated"] != false {
			t.Errorf("%s: recipe_version %v animated %v", c.file, img["recipe_version"], img["animated"])
		}
		variants := img["variants"].([]any)
		seen := map[string]bool{}
		for _, v := range variants {
			v := v.(map[string]any)
			name, format := v["name"].(string), v["format"].(string)
			seen[name+"."+format] = true
			r := app.fetch(v["url"].(string))
			if r.Status != http.StatusOK {
				t.Fatalf("%s %s.%s: GET %s: %d", c.file, name, format, v["url"], r.Status)
			}
			if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
				t.Errorf("%s: Cache-Control %q", v["url"], cc)
			}
			h, err := testEngine.Probe(r.Body)
			if err != nil {
				t.Fatalf("%s %s.%s: the variant does not decode: %v", c.file, name, format, err)
			}
			wantCT := map[string]string{"webp": "image/webp", "jpeg": "image/jpeg", "avif": "image/avif"}[format]
			if h.ContentType != wantCT || r.Header.Get("Content-Type") != wantCT {
				t.Errorf("%s %s.%s: content %q, header %q", c.file, name, format, h.ContentType, r.Header.Get("Content-Type"))
			}
			if h.Width != int(v["width"].(float64)) || h.Height != int(v["height"].(float64)) || int64(len(r.Body)) != int64(v["bytes"].(float64)) {
				t.Errorf("%s %s.%s: file %dx%d %d bytes, described %v", c.file, name, format, h.Width, h.Height, len(r.Body), v)
			}
			box := map[string]int{"thumb": 200, "small": 400, "medium": 800, "large": 1600}[name]
			if box == 0 || h.Width > box || h.Height > box || (h.Width != box && h.Height != box && h.Width < int(orig["width"].(float64)) && h.Height < int(orig["height"].(float64))) {
				t.Errorf("%s %s: %dx%d does not fit the %d box", c.file, name, h.Width, h.Height, box)
			}
			if name == "thumb" { // cover: cropped to fill its square box
				if h.Width != h.Height {
					t.Errorf("%s thumb.%s: %dx%d, want a square", c.file, format, h.Width, h.Height)
				}
			} else if c.portrait != (h.Height > h.Width) {
				t.Errorf("%s %s.%s: %dx%d, want portrait=%v", c.file, name, format, h.Width, h.Height, c.portrait)
			}
			if tags := exifTags(t, r.Body); len(tags) > 0 {
				t.Errorf("%s %s.%s keeps metadata: %v", c.file, name, format, tags)
			}
			if app.blobs != nil { // the proxy streams the stored bytes
				key := catalog.VariantKey(id, img["id"].(string), media.DefaultRecipeVersion, name, format)
				if !bytes.Equal(r.Body, app.storedBlob(key)) {
					t.Errorf("%s %s.%s: GET %s is not the object %s", c.file, name, format, v["url"], key)
				}
			}
			files = append(files, v["url"].(string))
		}
		// Originals are never served, and the bucket is private.
		original := catalog.OriginalKey(id, img["id"].(string))
		if r := app.fetch("/media/" + original); r.Status != http.StatusNotFound {
			t.Errorf("%s: GET /media/%s answers %d, want 404", c.file, original, r.Status)
		}
		if app.blobs != nil {
			if status := app.anonymousBucketGet(original); status != http.StatusForbidden {
				t.Errorf("%s: the original in the bucket answers %d to an anonymous GET, want 403", c.file, status)
			}
			if status := app.anonymousBucketGet(catalog.VariantKey(id, img["id"].(string), media.DefaultRecipeVersion, "large", "jpeg")); status != http.StatusForbidden {
				t.Errorf("%s: a variant in the bucket answers %d to an anonymous GET, want 403 (vitrine serves it)", c.file, status)
			}
		}
		for _, want := range []string{"thumb.webp", "thumb.jpeg", "thumb.avif", "small.webp", "small.jpeg", "small.avif",
			"medium.webp", "medium.jpeg", "medium.avif", "large.webp", "large.jpeg", "large.avif"} {
			if !seen[want] {
				t.Errorf("%s: no %s variant in %v", c.file, want, seen)
			}
		}
	}

	// The product embeds its images in the same form.
	r := app.do("GET", "/products/"+id, nil)
	imgs := r.json(t)["images"].([]any)
	if len(imgs) != len(cases) || imgs[0].(map[string]any)["status"] != "ready" {
		t.Fatalf("product images: %s", r.Body)
	}

	// Delete: 404 afterwards and the files are gone. They are counted first,
	// so that a count of none afterwards means deleted, not looked for in
	// the wrong place.
	if n := app.storedFiles(id); n != len(files)+len(cases) {
		t.Errorf("%d files of the product in storage, want %d (the variants and an original per image)", n, len(files)+len(cases))
	}
	if r := app.do("DELETE", "/products/"+id, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	expectProblem(t, app.do("GET", "/products/"+id, nil), 404, "get after delete")
	expectProblem(t, app.do("GET", locations[cases[0].file], nil), 404, "image after delete")
	for _, f := range files {
		if r := app.fetch(f); r.Status != http.StatusNotFound {
			t.Errorf("%s after delete: %d", f, r.Status)
		}
	}
	if n := app.storedFiles(id); n != 0 {
		t.Errorf("%d files of the product remain in storage", n)
	}
}

func TestRestartResumesPendingJobs(t *testing.T) { testRestart(t, nil) }

func testRestart(t *testing.T, env map[string]string) {
	dir := t.TempDir()
	// An api-only process accepts the upload; no worker runs it.
	api := startApp(t, dir, with(env, "VITRINE_ROLE", "api"))
	p := api.createProduct(`{"name":"Vase","price":"12","user_id":3}`)
	r := api.uploadFile(p["id"].(string), filepath.Join(corpusDir(t), "photo_mate_twowings.jpg"), true)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	location := r.Header.Get("Location")
	time.Sleep(300 * time.Millisecond)
	if img := api.do("GET", location, nil).json(t); img["status"] != "pending" {
		t.Fatalf("status before restart: %v", img["status"])
	}
	api.stop()

	// Started again on the same data directory, it finishes the job.
	app := startApp(t, dir, env)
	if img := app.waitImage(location, 2*time.Minute); img["status"] != "ready" {
		t.Fatalf("after restart: %v", img)
	}
}

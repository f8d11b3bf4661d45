package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

func TestGalleryEndToEnd(t *testing.T) { testGallery(t, nil) }

// imageIDs lists the ids of a page or a product's images, in order, and
// checks that each one's position is its index from first.
func imageIDs(t *testing.T, items []any, first int) []string {
	t.Helper()
	var ids []string
	for i, it := range items {
		img := it.(map[string]any)
		if img["position"] != float64(first+i) {
			t.Errorf("image %v at index %d has position %v", img["id"], first+i, img["position"])
		}
		ids = append(ids, img["id"].(string))
	}
	return ids
}

// testGallery manages a product's images as a shop does: lists them in
// pages, captions and moves them, orders them at once, retries only what
// can succeed, and removes them with their files.
func testGallery(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), env)
	p := app.createProduct(`{"name":"Gallery","price":"10","user_id":1}`)
	id := p["id"].(string)
	if p["primary_image"] != nil {
		t.Errorf("a product without images has primary_image %v", p["primary_image"])
	}
	jpeg, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		r := app.uploadBytes(id, "x.png", distinctPNG(t, 100+i), true)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Body)
		}
		if img := r.json(t); img["position"] != float64(i) || img["alt"] != "" {
			t.Errorf("upload %d: position %v alt %v, want %d and \"\"", i, img["position"], img["alt"], i)
		}
		ids = append(ids, r.json(t)["id"].(string))
	}
	// A JPEG cut short: accepted (its header is sound), then failed for
	// good by the worker.
	r := app.uploadBytes(id, "cut.jpg", jpeg[:len(jpeg)/2], false)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload of a cut JPEG: %d %s", r.Status, r.Body)
	}
	ids = append(ids, r.json(t)["id"].(string))
	for _, img := range ids {
		app.waitImage("/products/"+id+"/images/"+img, 2*time.Minute)
	}
	broken := app.do("GET", "/products/"+id+"/images/"+ids[3], nil).json(t)
	if e, _ := broken["error"].(map[string]any); broken["status"] != "failed" || e["code"] != catalog.FailCorruptImage || e["retryable"] != false {
		t.Fatalf("the cut JPEG: %v", broken)
	}
	pr := expectProblem(t, app.do("POST", "/products/"+id+"/images/"+ids[3]+"/reprocess", nil), http.StatusConflict, "reprocess a corrupt image")
	if pr["code"] != "not_retryable" {
		t.Errorf("reprocess a corrupt image: code %v, want not_retryable", pr["code"])
	}

	// Pages in gallery order.
	page := app.do("GET", "/products/"+id+"/images?limit=3", nil)
	if page.Status != http.StatusOK || page.Header.Get("ETag") == "" {
		t.Fatalf("list images: %d %s (ETag %q)", page.Status, page.Body, page.Header.Get("ETag"))
	}
	doc := page.json(t)
	got := imageIDs(t, doc["items"].([]any), 0)
	next, _ := doc["next_cursor"].(string)
	if next == "" {
		t.Fatalf("first page of 3 of 4 images has no next_cursor: %s", page.Body)
	}
	doc = app.do("GET", "/products/"+id+"/images?limit=3&cursor="+next, nil).json(t)
	got = append(got, imageIDs(t, doc["items"].([]any), 3)...)
	if !slices.Equal(got, ids) || doc["next_cursor"] != nil {
		t.Errorf("pages: %v then next_cursor %v, want %v then null", got, doc["next_cursor"], ids)
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?cursor=3", "?cursor=p-1", "?sort=position", "?limit=2&limit=3"} {
		expectProblem(t, app.do("GET", "/products/"+id+"/images"+bad, nil), http.StatusBadRequest, "list images"+bad)
	}
	expectProblem(t, app.do("GET", "/products/01937a4e-7b8c-7def-8a12-3456789abcde/images", nil), http.StatusNotFound, "images of no product")

	prod := app.do("GET", "/products/"+id, nil)
	if primary, _ := prod.json(t)["primary_image"].(map[string]any); primary["id"] != ids[0] || len(primary["variants"].([]any)) == 0 || primary["placeholder"] == "" {
		t.Errorf("primary_image %v, want image %s with its variants and placeholder", primary, ids[0])
	}
	etag := prod.Header.Get("ETag")

	// Alt text: trimmed, validated, conditional on the product's ETag.
	patch := func(img, body string, header ...string) response {
		return app.do("PATCH", "/products/"+id+"/images/"+img, strings.NewReader(body),
			append([]string{"Content-Type", "application/merge-patch+json"}, header...)...)
	}
	r = patch(ids[1], `{"alt":"  Oak chair, front  "}`, "If-Match", etag)
	if r.Status != http.StatusOK || r.json(t)["alt"] != "Oak chair, front" || r.Header.Get("ETag") == etag || r.Header.Get("ETag") == "" {
		t.Fatalf("patch alt: %d %s (ETag %q, was %q)", r.Status, r.Body, r.Header.Get("ETag"), etag)
	}
	expectProblem(t, patch(ids[1], `{"alt":"stale"}`, "If-Match", etag), http.StatusPreconditionFailed, "patch alt with a stale If-Match")
	for name, body := range map[string]string{
		"control characters":   `{"alt":"a\u0007b"}`,
		"a line break":         `{"alt":"a\nb"}`,
		"10,000 characters":    `{"alt":"` + strings.Repeat("x", 10_000) + `"}`,
		"a number":             `{"alt":5}`,
		"an unknown field":     `{"caption":"x"}`,
		"an unknown null":      `{"1":null}`,
		"position not numeric": `{"position":"first"}`,
		"a negative position":  `{"position":-1}`,
		"a fractional one":     `{"position":1.5}`,
		"not an object":        `["alt"]`,
		"not JSON":             `{"alt":`,
		"a focal point past 1": `{"focal_point":{"x":1.5,"y":0}}`,
		"a negative one":       `{"focal_point":{"x":0.5,"y":-0.1}}`,
		"one not numbers":      `{"focal_point":{"x":"0.5","y":"0.5"}}`,
		"one without y":        `{"focal_point":{"x":0.5}}`,
		"one with z":           `{"focal_point":{"x":0.5,"y":0.5,"z":0}}`,
		"one as an array":      `{"focal_point":[0.5,0.5]}`,
	} {
		expectProblem(t, patch(ids[1], body), http.StatusBadRequest, "patch with "+name)
	}
	pr = expectProblem(t, patch(ids[1], `{"position":4}`), http.StatusUnprocessableEntity, "a position past the end")
	if pr["code"] != "position_out_of_range" {
		t.Errorf("a position past the end: code %v", pr["code"])
	}
	if r := patch(ids[1], `{"alt":null}`); r.Status != http.StatusOK || r.json(t)["alt"] != "" {
		t.Errorf("alt null clears it: %d %s", r.Status, r.Body)
	}
	if r := patch(ids[1], `{"alt":"Oak chair, front"}`); r.Status != http.StatusOK {
		t.Fatalf("patch alt again: %d %s", r.Status, r.Body)
	}

	// A focal point: the crops are made again around it, the other
	// variants stand, the old crops go once the new ones are recorded.
	testFocalPoint(t, app, id, ids[0], patch)

	// Moving one image shifts the others; position 0 is the primary.
	r = patch(ids[2], `{"position":0}`)
	if r.Status != http.StatusOK || r.json(t)["position"] != 0.0 {
		t.Fatalf("move to 0: %d %s", r.Status, r.Body)
	}
	prodDoc := app.do("GET", "/products/"+id, nil).json(t)
	order := imageIDs(t, prodDoc["images"].([]any), 0)
	if want := []string{ids[2], ids[0], ids[1], ids[3]}; !slices.Equal(order, want) {
		t.Errorf("after moving the third image first: %v, want %v", order, want)
	}
	if primary, _ := prodDoc["primary_image"].(map[string]any); primary["id"] != ids[2] {
		t.Errorf("primary_image %v after the move, want %s", primary["id"], ids[2])
	}
	if alt := prodDoc["images"].([]any)[2].(map[string]any)["alt"]; alt != "Oak chair, front" {
		t.Errorf("the alt text after a move: %v", alt)
	}

	// The whole order at once, or nothing.
	other := app.createProduct(`{"name":"Other","price":"1","user_id":1}`)
	r = app.uploadBytes(other["id"].(string), "y.png", distinctPNG(t, 200), true)
	foreign := r.json(t)["id"].(string)
	put := func(list ...string) response {
		return app.doJSON("PUT", "/products/"+id+"/images/order", `{"image_ids":["`+strings.Join(list, `","`)+`"]}`)
	}
	for name, list := range map[string][]string{
		"a missing id":    {ids[0], ids[1], ids[2]},
		"a duplicated id": {ids[0], ids[1], ids[2], ids[3], ids[3]},
		"a foreign id":    {ids[0], ids[1], ids[2], foreign},
		"not an id":       {ids[0], ids[1], ids[2], "x"},
	} {
		pr := expectProblem(t, put(list...), http.StatusUnprocessableEntity, "order with "+name)
		if pr["code"] != "invalid_order" || len(pr["errors"].([]any)) == 0 {
			t.Errorf("order with %s: %v", name, pr)
		}
	}
	for name, body := range map[string]string{"no list": `{}`, "not a list": `{"image_ids":"x"}`, "unknown field": `{"image_ids":[],"x":1}`, "not JSON": `[`} {
		expectProblem(t, app.doJSON("PUT", "/products/"+id+"/images/order", body), http.StatusBadRequest, "order with "+name)
	}
	if now := imageIDs(t, app.do("GET", "/products/"+id, nil).json(t)["images"].([]any), 0); !slices.Equal(now, order) {
		t.Errorf("refused orders changed the gallery: %v, want %v", now, order)
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	r = put(reversed...)
	if r.Status != http.StatusOK || r.Header.Get("ETag") == "" {
		t.Fatalf("order: %d %s", r.Status, r.Body)
	}
	if now := imageIDs(t, r.json(t)["images"].([]any), 0); !slices.Equal(now, reversed) {
		t.Errorf("after ordering %v: %v", reversed, now)
	}
	// The failed image is first: the primary image is the first that has
	// variants.
	if primary, _ := r.json(t)["primary_image"].(map[string]any); primary["id"] != ids[2] {
		t.Errorf("primary_image %v, want the first ready image %s", primary["id"], ids[2])
	}

	// Removing an image: its files go, the others move up, the version
	// changes, a second delete finds nothing.
	filesBefore := app.storedFiles(id)
	if filesBefore != 3*(len(recipeVariants)+1)+1 {
		t.Errorf("%d files stored before the delete, want %d", filesBefore, 3*(len(recipeVariants)+1)+1)
	}
	stale := r.Header.Get("ETag")
	if r := patch(ids[0], `{"alt":"bump"}`); r.Status != http.StatusOK {
		t.Fatalf("patch: %d", r.Status)
	}
	expectProblem(t, app.do("DELETE", "/products/"+id+"/images/"+ids[1], nil, "If-Match", stale), http.StatusPreconditionFailed, "delete with a stale If-Match")
	before := app.do("GET", "/products/"+id, nil).Header.Get("ETag")
	r = app.do("DELETE", "/products/"+id+"/images/"+ids[1], nil, "If-Match", before)
	if r.Status != http.StatusNoContent || r.Header.Get("ETag") == "" || r.Header.Get("ETag") == before {
		t.Fatalf("delete image: %d %s (ETag %q, was %q)", r.Status, r.Body, r.Header.Get("ETag"), before)
	}
	expectProblem(t, app.do("DELETE", "/products/"+id+"/images/"+ids[1], nil), http.StatusNotFound, "delete again")
	expectProblem(t, app.do("GET", "/products/"+id+"/images/"+ids[1], nil), http.StatusNotFound, "get a deleted image")
	expectProblem(t, app.do("DELETE", "/products/"+id+"/images/"+foreign, nil), http.StatusNotFound, "delete another product's image")
	for _, v := range recipeVariants {
		name, format, _ := strings.Cut(v, ".")
		if r := app.fetch("/media/" + catalog.VariantKey(id, ids[1], 2, name, format)); r.Status != http.StatusNotFound {
			t.Errorf("/media of the deleted image's %s: %d", v, r.Status)
		}
	}
	if n := app.storedFiles(id); n != filesBefore-(len(recipeVariants)+1) {
		t.Errorf("%d files after the delete, want %d", n, filesBefore-(len(recipeVariants)+1))
	}
	// The failed image goes too: nothing is left "2 of 3 ready".
	if r := app.do("DELETE", "/products/"+id+"/images/"+ids[3], nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete the failed image: %d %s", r.Status, r.Body)
	}
	if now := imageIDs(t, app.do("GET", "/products/"+id, nil).json(t)["images"].([]any), 0); !slices.Equal(now, []string{ids[2], ids[0]}) {
		t.Errorf("after the deletes: %v, want %v", now, []string{ids[2], ids[0]})
	}

	// Each change is one event.
	events := string(app.do("GET", "/products/"+id+"/events", nil).Body)
	for _, typ := range []string{"image.updated", "image.reordered", "image.deleted"} {
		if !strings.Contains(events, "event: "+typ+"\n") {
			t.Errorf("no %s event in\n%s", typ, events)
		}
	}

	// The order's resource offers PUT alone.
	for _, method := range []string{"GET", "PATCH", "DELETE"} {
		if r := app.do(method, "/products/"+id+"/images/order", nil); r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "OPTIONS, PUT" {
			t.Errorf("%s .../images/order: %d, Allow %q; want 405 (it is no image)", method, r.Status, r.Header.Get("Allow"))
		}
	}
	if r := app.do("OPTIONS", "/products/"+id+"/images/order", nil); r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "OPTIONS, PUT" {
		t.Errorf("OPTIONS .../images/order: %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
	// A bad value is refused as such whatever the If-Match says.
	expectProblem(t, patch(ids[0], `{"alt":5}`, "If-Match", `"stale"`), http.StatusBadRequest, "a bad image patch with a stale If-Match")
	expectProblem(t, app.do("PATCH", "/products/"+id, strings.NewReader(`{"name":""}`), "Content-Type", "application/merge-patch+json", "If-Match", `"stale"`),
		http.StatusBadRequest, "a bad product patch with a stale If-Match")
	expectProblem(t, app.do("PUT", "/products/"+id+"/images/order", strings.NewReader(`{"image_ids":["x"]}`), "Content-Type", "application/json", "If-Match", `"stale"`),
		http.StatusUnprocessableEntity, "an order of no ids with a stale If-Match")

	// A product patch naming an unknown field is refused, null or not.
	expectProblem(t, app.do("PATCH", "/products/"+id, strings.NewReader(`{"1":null}`), "Content-Type", "application/merge-patch+json"),
		http.StatusBadRequest, "product patch with an unknown null field")
}

// TestDeleteImageWhileProcessing: an image deleted while it is queued or
// while its job runs leaves no file behind once its job ends, as a deleted
// product does; the product's other images keep theirs.
func TestDeleteImageWhileProcessing(t *testing.T) { testDeleteImageWhileProcessing(t, nil) }

func testDeleteImageWhileProcessing(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), with(env, "VITRINE_WORKERS", "1"))
	p := app.createProduct(`{"name":"Race","price":"1","user_id":1}`)
	id := p["id"].(string)
	keep := app.uploadBytes(id, "keep.png", distinctPNG(t, 300), true).json(t)["id"].(string)
	app.waitImage("/products/"+id+"/images/"+keep, time.Minute)
	const n = 4
	var doomed []string
	for i := range n {
		r := app.uploadBytes(id, "x.png", largePNG(t, 310+i), true)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Body)
		}
		doomed = append(doomed, r.json(t)["id"].(string))
	}
	// The first while it is processing (one worker: the others queued).
	location := "/products/" + id + "/images/" + doomed[0]
	caught := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if app.do("GET", location, nil).json(t)["status"] == "processing" {
			caught = true
			break
		}
	}
	for i, img := range doomed {
		if r := app.do("DELETE", "/products/"+id+"/images/"+img, nil); r.Status != http.StatusNoContent {
			t.Errorf("delete image %d: %d %s", i, r.Status, r.Body)
		}
	}
	app.settle(3 * time.Minute)
	if n := app.storedFiles(id); n != len(recipeVariants)+1 {
		t.Errorf("%d files of the product remain, want %d (the kept image's)", n, len(recipeVariants)+1)
	}
	for _, img := range doomed {
		for _, v := range recipeVariants {
			name, format, _ := strings.Cut(v, ".")
			if r := app.fetch("/media/" + catalog.VariantKey(id, img, 2, name, format)); r.Status != http.StatusNotFound {
				t.Errorf("/media of deleted image %s %s: %d", img, v, r.Status)
			}
		}
	}
	if img := app.do("GET", "/products/"+id+"/images/"+keep, nil).json(t); img["status"] != "ready" || img["position"] != 0.0 {
		t.Errorf("the kept image: %v %v", img["status"], img["position"])
	}
	t.Logf("first image caught processing: %v", caught)
}

// testFocalPoint sets, moves and clears the focal point of a ready image
// and checks its variants: the cover ones made again around it (their
// files under new keys, the old ones removed), the others untouched.
func testFocalPoint(t *testing.T, app *testApp, productID, imageID string, patch func(img, body string, header ...string) response) {
	t.Helper()
	location := "/products/" + productID + "/images/" + imageID
	variantsOf := func(img map[string]any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, v := range img["variants"].([]any) {
			v := v.(map[string]any)
			out[v["name"].(string)+"."+v["format"].(string)] = v
		}
		return out
	}
	// waitCrops polls until the thumbs were cropped around want (nil: by
	// attention).
	waitCrops := func(want map[string]any) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			img := app.do("GET", location, nil).json(t)
			thumb := variantsOf(img)["thumb.webp"]
			got, _ := thumb["focal_point"].(map[string]any)
			if fmt.Sprint(got) == fmt.Sprint(want) && thumb["fit"] == "cover" {
				return img
			}
			if time.Now().After(deadline) {
				t.Fatalf("the thumb was not cropped around %v: %v", want, thumb)
			}
		}
	}
	before := app.do("GET", location, nil).json(t)
	old := variantsOf(before)
	for _, focus := range []string{`{"x":0,"y":1}`, `{"x":0.75,"y":0.25}`} {
		r := patch(imageID, `{"focal_point":`+focus+`}`)
		if r.Status != http.StatusOK || r.json(t)["status"] != "ready" {
			t.Fatalf("set focal point %s: %d %s", focus, r.Status, r.Body)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(focus), &want); err != nil {
			t.Fatal(err)
		}
		if fp := fmt.Sprint(r.json(t)["focal_point"]); fp != fmt.Sprint(want) {
			t.Errorf("focal_point %s, want %v", fp, want)
		}
		after := waitCrops(want)
		now := variantsOf(after)
		for name, v := range now {
			if v["fit"] == "cover" {
				if v["url"] == old[name]["url"] {
					t.Errorf("%s: the crop kept its URL %v", name, v["url"])
				}
				if r := app.fetch(v["url"].(string)); r.Status != http.StatusOK {
					t.Errorf("the new crop %s: %d", v["url"], r.Status)
				}
				if r := app.fetch(old[name]["url"].(string)); r.Status != http.StatusNotFound {
					t.Errorf("the old crop %s after the new one: %d, want 404", old[name]["url"], r.Status)
				}
			} else if v["url"] != old[name]["url"] || v["fit"] != "inside" {
				t.Errorf("%s: an uncropped variant changed: %v (was %v)", name, v, old[name])
			}
		}
		if after["placeholder"] != before["placeholder"] || after["status"] != "ready" {
			t.Errorf("a new crop changed the image: %v %v", after["status"], after["placeholder"])
		}
		old = now
	}
	// null: back to the attention crop.
	if r := patch(imageID, `{"focal_point":null}`); r.Status != http.StatusOK || r.json(t)["focal_point"] != nil {
		t.Fatalf("clear the focal point: %d %s", r.Status, r.Body)
	}
	waitCrops(nil)
	app.settle(time.Minute)
	// Every variant file there is, and no other.
	img := app.do("GET", location, nil).json(t)
	if n := len(img["variants"].([]any)); n != len(recipeVariants) {
		t.Errorf("%d variants after the crops, want %d", n, len(recipeVariants))
	}
}

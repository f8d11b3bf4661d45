package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/media"
)

// TestCorpusAcceptsReachReady: every file the corpus marks accept is
// processed, displayed the right way up, with every variant.
func TestCorpusAcceptsReachReady(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	dir := corpusDir(t)
	p := app.createProduct(`{"name":"Corpus","price":"1","user_id":1}`)
	id := p["id"].(string)
	type upload struct {
		row      manifestRow
		location string
	}
	var ups []upload
	n := 0
	for _, row := range readManifest(t) {
		if row.Expected != "accept" {
			continue
		}
		if n%90 == 89 { // a product holds at most 100 images
			p = app.createProduct(`{"name":"Corpus","price":"1","user_id":1}`)
			id = p["id"].(string)
		}
		n++
		r := app.uploadFile(id, filepath.Join(dir, row.File), true)
		if r.Status != http.StatusAccepted && r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", row.File, r.Status, r.Body)
			continue
		}
		ups = append(ups, upload{row, r.Header.Get("Location")})
	}
	for _, u := range ups {
		img := app.waitImage(u.location, 3*time.Minute)
		if img["status"] != "ready" {
			t.Errorf("%s: %v %v", u.row.File, img["status"], img["error"])
			continue
		}
		// Displayed orientation: stored size, swapped when EXIF says 5-8.
		w, h := u.row.Width, u.row.Height
		if u.row.OrientationFix == "yes" && strings.Contains(u.row.Category, "orientation-") {
			for _, o := range []string{"-5", "-6", "-7", "-8"} {
				if strings.Contains(u.row.Category, "orientation"+o) && !strings.HasPrefix(u.row.Format, "heic") && !strings.HasPrefix(u.row.Format, "avif") {
					w, h = h, w
				}
			}
		}
		variants, _ := img["variants"].([]any)
		if len(variants) != media.DefaultRecipe().Outputs() {
			t.Errorf("%s: %d variants, want %d", u.row.File, len(variants), media.DefaultRecipe().Outputs())
		}
		for _, v := range variants {
			v := v.(map[string]any)
			vw, vh := int(v["width"].(float64)), int(v["height"].(float64))
			if v["name"] == "thumb" || w == 0 || h == 0 {
				continue // thumb may be cropped to its box
			}
			// The aspect ratio survives resizing, within rounding.
			if d := float64(vw)/float64(vh) - float64(w)/float64(h); (w > 8 && h > 8) && (d > 0.05*float64(w)/float64(h) || -d > 0.05*float64(w)/float64(h)) {
				t.Errorf("%s %s.%s: %dx%d, source displays %dx%d", u.row.File, v["name"], v["format"], vw, vh, w, h)
			}
		}
	}
}

// TestBombsRefusedFromTheHeader: decompression bombs get 422 at upload,
// and the process's peak memory does not move (nothing was decoded).
func TestBombsRefusedFromTheHeader(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	p := app.createProduct(`{"name":"Bombs","price":"1","user_id":1}`)
	before := vmHWM(t, os.Getpid())
	for file, code := range map[string]string{
		"bomb_lottapixel_64250x64250.jpg": "too_many_pixels",
		"bomb_png_65536x65536.png":        "too_many_pixels",
		"bomb_gif_frame_flood_1x1.gif":    "too_many_frames",
	} {
		r := app.uploadFile(p["id"].(string), filepath.Join(corpusDir(t), file), true)
		pr := expectProblem(t, r, http.StatusUnprocessableEntity, file)
		if pr["code"] != code || !strings.Contains(pr["type"].(string), code) {
			t.Errorf("%s: code %v type %v, want %s", file, pr["code"], pr["type"], code)
		}
	}
	if grew := vmHWM(t, os.Getpid()) - before; grew > 100<<10 {
		t.Errorf("peak memory grew by %d MiB while refusing bombs", grew>>10)
	}
}

// TestDedupe: the same bytes uploaded to the same product again return the
// existing image, without a second job.
func TestDedupe(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	p := app.createProduct(`{"name":"Dedupe","price":"1","user_id":1}`)
	id := p["id"].(string)
	file := filepath.Join(corpusDir(t), "gray_hopper.jpg")
	first := app.uploadFile(id, file, true)
	if first.Status != http.StatusAccepted {
		t.Fatalf("first upload: %d", first.Status)
	}
	second := app.uploadFile(id, file, false)
	if second.Status != http.StatusOK || second.json(t)["id"] != first.json(t)["id"] || second.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("second upload: %d %s", second.Status, second.Body)
	}
	app.waitImage(first.Header.Get("Location"), time.Minute)
	if imgs := app.do("GET", "/products/"+id, nil).json(t)["images"].([]any); len(imgs) != 1 {
		t.Errorf("the product has %d images, want 1", len(imgs))
	}
	// Another product gets its own image of the same bytes.
	other := app.createProduct(`{"name":"Other","price":"1","user_id":1}`)
	if r := app.uploadFile(other["id"].(string), file, true); r.Status != http.StatusAccepted {
		t.Errorf("same bytes, other product: %d", r.Status)
	}
}

// TestImportFromURL: an image is fetched by a worker from an allowlisted
// loopback server; without the allowlist the SSRF guard refuses it, and
// a redirect to it, before connecting.
func TestImportFromURL(t *testing.T) {
	photo, err := os.ReadFile(filepath.Join(corpusDir(t), "photo_mate_twowings.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/photo.jpg":
			w.Header().Set("Content-Type", "image/jpeg")
			w.Write(photo)
		case "/readme.jpg":
			w.Write([]byte("not an image"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer fixture.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(fixture.URL, "http://"))

	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_FETCH_ALLOW": "127.0.0.1"})
	p := app.createProduct(`{"name":"Imported","price":"1","user_id":1}`)
	id := p["id"].(string)
	importURL := func(u string) string {
		t.Helper()
		r := app.doJSON("POST", "/products/"+id+"/images", fmt.Sprintf(`{"url":%q}`, u))
		if r.Status != http.StatusAccepted {
			t.Fatalf("import %s: %d %s", u, r.Status, r.Body)
		}
		return r.Header.Get("Location")
	}
	img := app.waitImage(importURL(fixture.URL+"/photo.jpg"), time.Minute)
	if img["status"] != "ready" || img["original"].(map[string]any)["width"] != 2560.0 {
		t.Fatalf("import: %v", img)
	}
	img = app.waitImage(importURL(fixture.URL+"/readme.jpg"), time.Minute)
	if e, _ := img["error"].(map[string]any); img["status"] != "failed" || e["code"] != "unsupported_format" {
		t.Errorf("import of a text file: %v", img)
	}
	img = app.waitImage(importURL(fixture.URL+"/missing.jpg"), time.Minute)
	if e, _ := img["error"].(map[string]any); img["status"] != "failed" || e["code"] != "fetch_failed" {
		t.Errorf("import of a 404: %v", img)
	}
	for _, body := range []string{`{"url":"file:///etc/passwd"}`, `{"url":"ftp://x/y"}`, `{"url":""}`, `{"link":"http://x/"}`, `{"url":5}`} {
		expectProblem(t, app.doJSON("POST", "/products/"+id+"/images", body), http.StatusBadRequest, body)
	}

	// Loopback not allowlisted: refused without a connection to it.
	guarded := startApp(t, t.TempDir(), nil)
	gp := guarded.createProduct(`{"name":"Guarded","price":"1","user_id":1}`)
	before := hits.Load()
	for _, u := range []string{fixture.URL + "/photo.jpg", "http://localhost:" + port + "/photo.jpg", "http://[::1]:" + port + "/photo.jpg"} {
		r := guarded.doJSON("POST", "/products/"+gp["id"].(string)+"/images", fmt.Sprintf(`{"url":%q}`, u))
		if r.Status != http.StatusAccepted {
			t.Fatalf("import %s: %d", u, r.Status)
		}
		img := guarded.waitImage(r.Header.Get("Location"), time.Minute)
		if e, _ := img["error"].(map[string]any); img["status"] != "failed" || e["code"] != "fetch_failed" || !strings.Contains(e["detail"].(string), "refused") {
			t.Errorf("import of %s with loopback not allowlisted: %v", u, img)
		}
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the fixture server was reached %d times while not allowlisted", n)
	}
}

// TestReprocess: an image is processed again on request; it keeps its
// variants while pending and ends ready.
func TestReprocess(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	p := app.createProduct(`{"name":"Again","price":"1","user_id":1}`)
	id := p["id"].(string)
	r := app.uploadFile(id, filepath.Join(corpusDir(t), "gray_hopper.jpg"), true)
	loc := r.Header.Get("Location")
	first := app.waitImage(loc, time.Minute)
	r = app.do("POST", loc+"/reprocess", nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("reprocess: %d %s", r.Status, r.Body)
	}
	if got := r.json(t); got["status"] != "pending" || len(got["variants"].([]any)) != len(first["variants"].([]any)) {
		t.Errorf("right after reprocess: %s", r.Body)
	}
	again := app.waitImage(loc, time.Minute)
	if again["status"] != "ready" || again["processed_at"] == first["processed_at"] {
		t.Errorf("after reprocess: %v (first processed %v)", again["processed_at"], first["processed_at"])
	}
	expectProblem(t, app.do("POST", "/products/"+id+"/images/01937a4e-7b8c-7def-8a12-3456789abcde/reprocess", nil), 404, "reprocess unknown image")
}

func TestAdminAPI(t *testing.T) {
	closed := startApp(t, t.TempDir(), nil)
	expectProblem(t, closed.do("GET", "/admin/dead-letters", nil), http.StatusUnauthorized, "admin without credentials, even in development")

	const token = "an-admin-token-for-tests"
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_ADMIN_TOKEN": token})
	expectProblem(t, app.do("GET", "/admin/dead-letters", nil), http.StatusUnauthorized, "no token")
	expectProblem(t, app.do("GET", "/admin/dead-letters", nil, "Authorization", "Bearer wrong"), http.StatusUnauthorized, "wrong token")
	r := app.do("GET", "/admin/dead-letters", nil, "Authorization", "Bearer "+token)
	items, ok := r.json(t)["items"].([]any)
	if r.Status != http.StatusOK || !ok || len(items) != 0 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	expectProblem(t, app.do("POST", "/admin/dead-letters/01937a4e-7b8c-7def-8a12-3456789abcde/replay", nil, "Authorization", "Bearer "+token), 404, "replay unknown")
}

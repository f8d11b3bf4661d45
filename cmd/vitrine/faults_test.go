package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The variants of the default recipe (version 3).
var recipeVariants = []string{"thumb.webp", "thumb.jpeg", "thumb.avif", "small.webp", "small.jpeg", "small.avif",
	"medium.webp", "medium.jpeg", "medium.avif", "large.webp", "large.jpeg", "large.avif"}

// settle waits until no job is queued or running anywhere in the app.
func (a *testApp) settle(within time.Duration) {
	a.t.Helper()
	pending, ok := a.db.(interface {
		PendingJobs(ctx context.Context) (int, error)
	})
	if !ok {
		a.t.Fatal("the database does not count its pending jobs")
	}
	deadline := time.Now().Add(within)
	quiet := 0
	for quiet < 5 { // five looks in a row, 20 ms apart, with nothing in flight
		n, err := pending.PendingJobs(context.Background())
		if err != nil {
			a.t.Fatal(err)
		}
		if n == 0 && (a.pool == nil || a.pool.InFlight() == 0) {
			quiet++
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("jobs still under way after %v: %d pending", within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeleteRaces(t *testing.T) { testDeleteRaces(t, nil) }

// testDeleteRaces uploads images to products and deletes most of them
// while their jobs are waiting, running or done; uploads race with the
// deletes too. Once every job has ended, no file of a deleted product is
// stored and no /media URL of one answers; the products kept have all
// their images ready.
func testDeleteRaces(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), with(env, "VITRINE_WORKERS", "2"))
	const products, perProduct = 24, 4
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	type target struct {
		id     string
		mode   int // 0 kept; deleted 1 at a random time, 2 while its first image is processed, 3 at once
		delay  time.Duration
		images []string
		first  chan string // the first image accepted
	}
	targets := make([]*target, products)
	for i := range targets {
		p := app.createProduct(`{"name":"Race","price":"1","user_id":1}`)
		targets[i] = &target{id: p["id"].(string), mode: i % 4, delay: time.Duration(rng.IntN(1500)) * time.Millisecond,
			first: make(chan string, 1)}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, tg := range targets {
		wg.Go(func() {
			start := time.Now()
			var deletes sync.WaitGroup
			if tg.mode != 0 {
				deletes.Go(func() {
					switch tg.mode {
					case 1:
						time.Sleep(time.Until(start.Add(tg.delay)))
					case 2: // mid-job: its variants are about to be written
						location := "/products/" + tg.id + "/images/" + <-tg.first
						for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
							if app.do("GET", location, nil).json(t)["status"] == "processing" {
								break
							}
						}
					}
					if r := app.do("DELETE", "/products/"+tg.id, nil); r.Status != http.StatusNoContent {
						t.Errorf("delete %s: %d %s", tg.id, r.Status, r.Body)
					}
				})
			}
			for j := range perProduct {
				data := distinctPNG(t, i*perProduct+j)
				if tg.mode == 2 && j == 0 {
					// Long enough to be caught processing. (Only the first:
					// the others may reach the product deleted, and a large
					// body refused before it is read can be reset.)
					data = largePNG(t, i*perProduct+j)
				}
				r := app.uploadBytes(tg.id, "x.png", data, true)
				switch {
				case r.Status == http.StatusAccepted:
					id := r.json(t)["id"].(string)
					mu.Lock()
					tg.images = append(tg.images, id)
					mu.Unlock()
					select {
					case tg.first <- id:
					default:
					}
				case r.Status == http.StatusNotFound && tg.mode != 0: // the delete came first
				default:
					t.Errorf("upload to %s: %d %s", tg.id, r.Status, r.Body)
				}
			}
			deletes.Wait()
		})
	}
	wg.Wait()
	app.settle(3 * time.Minute)
	var deleted, kept, images int
	for _, tg := range targets {
		images += len(tg.images)
		if tg.mode == 0 {
			kept++
			for _, id := range tg.images {
				if img := app.do("GET", "/products/"+tg.id+"/images/"+id, nil).json(t); img["status"] != "ready" {
					t.Errorf("image %s of a kept product: %v", id, img["status"])
				}
			}
			if n := app.storedFiles(tg.id); n != len(tg.images)*(len(recipeVariants)+1) {
				t.Errorf("kept product %s: %d files, want %d", tg.id, n, len(tg.images)*(len(recipeVariants)+1))
			}
			continue
		}
		deleted++
		if n := app.storedFiles(tg.id); n != 0 {
			t.Errorf("deleted product %s (deletion mode %d): %d files remain", tg.id, tg.mode, n)
		}
		for _, id := range tg.images {
			for _, v := range recipeVariants {
				name, format, _ := strings.Cut(v, ".")
				if r := app.fetch("/media/" + catalog.VariantKey(tg.id, id, 2, name, format)); r.Status != http.StatusNotFound {
					t.Errorf("deleted product %s: /media of %s answers %d", tg.id, v, r.Status)
				}
			}
		}
	}
	t.Logf("seed %d: %d products deleted, %d kept, %d images accepted", seed, deleted, kept, images)
}

func TestGC(t *testing.T) { testGC(t, nil) }

// testGC plants orphan files (of images that do not exist) beside the
// files of live images; vitrine gc --dry-run counts them and removes
// nothing, vitrine gc removes them and leaves the live files alone.
func testGC(t *testing.T, env map[string]string) {
	dir := t.TempDir()
	app := startApp(t, dir, env)
	p := app.createProduct(`{"name":"Live","price":"1","user_id":1}`)
	id := p["id"].(string)
	r := app.uploadBytes(id, "x.png", distinctPNG(t, 1), true)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if img := app.waitImage(r.Header.Get("Location"), time.Minute); img["status"] != "ready" {
		t.Fatalf("image: %v", img)
	}
	live := app.storedFiles(id)
	ghost := uuid.NewString()
	planted := []string{
		catalog.OriginalKey(ghost, uuid.NewString()),
		catalog.VariantKey(ghost, uuid.NewString(), 2, "thumb", "webp"),
		catalog.VariantKey(id, uuid.NewString(), 2, "large", "jpeg"), // a deleted image of a live product
	}
	for _, key := range planted {
		app.plant(key)
	}
	// S3 states times in whole seconds (truncated, so a file looks up to 1 s
	// older than it is): the grace leaves the young orphan room for that and
	// for the two runs of gc.
	grace := "3s"
	if app.blobs == nil { // on the local directory the planted files are made old
		grace = "1h"
		for _, key := range planted {
			old := time.Now().Add(-2 * time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "files", filepath.FromSlash(key)), old, old); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		time.Sleep(3200 * time.Millisecond) // S3 keeps its own times: let them age past the grace
	}
	young := catalog.OriginalKey(uuid.NewString(), uuid.NewString()) // an upload under way
	app.plant(young)

	gcRun := func(args ...string) string {
		t.Helper()
		vars := map[string]string{"VITRINE_DATA_DIR": dir, "VITRINE_ENV": "development"}
		for k, v := range env {
			vars[k] = v
		}
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"gc", "--grace", grace}, args...), func(k string) string { return vars[k] }, &stdout, &stderr); err != nil {
			t.Fatalf("vitrine gc %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	out := gcRun("--dry-run")
	if !strings.Contains(out, fmt.Sprintf("%d orphans", len(planted))) || !strings.Contains(out, "would remove (dry run) 3") ||
		!strings.Contains(out, "1 younger orphans left") {
		t.Errorf("vitrine gc --dry-run said: %s", out)
	}
	if n := app.storedFiles(ghost); n != 2 {
		t.Errorf("a dry run removed files: %d of the ghost product left, want 2", n)
	}
	out = gcRun()
	if !strings.Contains(out, "removed 3;") {
		t.Errorf("vitrine gc said: %s", out)
	}
	if n := app.storedFiles(ghost); n != 0 {
		t.Errorf("%d orphan files of the ghost product left", n)
	}
	if n := app.storedFiles(id); n != live {
		t.Errorf("the live product has %d files after gc, want its %d", n, live)
	}
	if n := app.storedFiles(strings.Split(young, "/")[1]); n != 1 {
		t.Errorf("the young orphan was removed")
	}
	t.Logf("vitrine gc: %s", strings.TrimSpace(out))
}

// plant writes a file straight into the app's file store.
func (a *testApp) plant(key string) {
	a.t.Helper()
	if a.blobs != nil {
		a.putBlob(key, []byte("orphan"))
		return
	}
	path := filepath.Join(a.dir, "files", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("orphan"), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// distinctPNG makes a small PNG whose bytes differ from every other call.
func distinctPNG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(r.IntN(256)), uint8(x * 4), uint8(y * 5), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// largePNG makes a 1200×900 PNG whose bytes differ from every other call.
func largePNG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 1200, 900))
	r := rand.New(rand.NewPCG(uint64(seed), 11))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

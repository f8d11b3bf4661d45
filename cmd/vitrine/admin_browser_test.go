//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The admin page in a real Chromium (Debian's, installed by
// scripts/install-deps --test), driven by chromedp: sign in, create a
// product, drop three corpus photos on it, watch each upload's progress bar
// finish and each status turn ready without a reload, see the thumbnails,
// meet the "changed by someone else" message after an edit in a second tab,
// and delete the product. Each step leaves a screenshot in out/admin-e2e/.

// e2ePhotos are three real photos of the corpus (MANIFEST.tsv: accepted).
var e2ePhotos = []string{"photo_mate_twowings.jpg", "photo_mate_wood.jpg", "photo_adobergb_2000x1072.jpg"}

// screenshotDir is out/admin-e2e at the repository's root (gitignored).
func screenshotDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "out", "admin-e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless Chromium with a fresh profile and returns a
// context of its first tab; it fails (never skips) without Chromium.
func browser(t *testing.T) (context.Context, *browserLog) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run scripts/install-deps --test (make test does)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx, watchTab(t, ctx)
}

// browserLog keeps what a tab reported: console errors, uncaught
// exceptions and Content Security Policy violations.
type browserLog struct {
	mu       sync.Mutex
	problems []string
}

// watchTab starts the tab of ctx and keeps its problems.
func watchTab(t *testing.T, ctx context.Context) *browserLog {
	t.Helper()
	b := &browserLog{}
	if err := chromedp.Listen(ctx, b.hear); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the log domain: %v", err)
	}
	return b
}

func (b *browserLog) hear(ev any) {
	var msg string
	switch e := ev.(type) {
	case *cdpruntime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *cdpruntime.EventConsoleAPICalled:
		if e.Type == cdpruntime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value))
			}
			msg = "console.error: " + strings.Join(parts, " ")
		}
	case *log.EventEntryAdded:
		// Network errors are answers the page expects (a 412 is the
		// conflict it shows); CSP violations are source "security".
		if e.Entry.Level == log.EntryLevelError && e.Entry.Source != log.EntrySourceNetwork {
			msg = "log: " + e.Entry.Text + " " + e.Entry.URL
		}
	}
	if msg != "" {
		b.mu.Lock()
		b.problems = append(b.problems, msg)
		b.mu.Unlock()
	}
}

func (b *browserLog) check(t *testing.T, what string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("%s: the page reported %s", what, p)
	}
	b.problems = nil
}

// step runs actions with a time limit and saves a screenshot named name.
func step(t *testing.T, ctx context.Context, dir, name string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		shot(t, ctx, dir, name+"-failed")
		t.Fatalf("%s: %v", name, err)
	}
	shot(t, ctx, dir, name)
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100)) // 100: a PNG
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}

// eval evaluates a JavaScript expression in a tab.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until polls a JavaScript expression until it is true.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))
}

// signIn signs a tab in with key and waits for the product list.
func signIn(key string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), key),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("view-products")),
	)
}

// typeInto replaces the value of a field as a user does: clear it, type.
func typeInto(id, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ""`, id)),
		chromedp.SendKeys(chromedp.ID(id), text))
}

// drop drags files from outside the page onto the element with the given
// id, as a user dropping them from a file manager does.
func drop(id string, files []string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		js := fmt.Sprintf(`(() => { const r = document.getElementById(%q).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`, id)
		at, err := chromedp.Evaluate[[2]float64](js)(ctx, tg)
		if err != nil {
			return err
		}
		data := &input.DragData{Items: []*input.DragDataItem{}, Files: files, DragOperationsMask: 1}
		for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
			if _, err := cdp.Call(ctx, tg, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: at[0], Y: at[1], Data: data}); err != nil {
				return fmt.Errorf("%s: %w", typ, err)
			}
		}
		return nil
	})
}

func TestAdminPageInChromium(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv())
	_, key := app.makeKey("admin", 0)
	// The page at localhost, where variant URLs point (VITRINE_PUBLIC_URL's default).
	base := "http://" + strings.Replace(app.Addr(), "127.0.0.1", "localhost", 1)
	dir := screenshotDir(t)
	accepted := map[string]bool{}
	for _, r := range readManifest(t) {
		accepted[r.File] = r.Expected == "accept"
	}
	var photos []string
	for _, f := range e2ePhotos {
		if !accepted[f] {
			t.Fatalf("%s is not an accepted photo of the corpus", f)
		}
		photos = append(photos, filepath.Join(corpusDir(t), f))
	}

	tab1, log1 := browser(t)
	step(t, tab1, dir, "01-signin", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.ID("key")))
	step(t, tab1, dir, "02-signed-in", signIn(key))
	log1.check(t, "sign in")

	// Create a product.
	step(t, tab1, dir, "03-created",
		chromedp.Click(chromedp.ID("nav-new")),
		chromedp.WaitVisible(chromedp.ID("p-name")),
		chromedp.SendKeys(chromedp.ID("p-name"), "Desk lamp"),
		chromedp.SendKeys(chromedp.ID("p-description"), "Brass, with a linen shade."),
		chromedp.SendKeys(chromedp.ID("p-price"), "49.90"),
		chromedp.SendKeys(chromedp.ID("p-user"), "7"),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("dropzone")),
	)
	productID := eval[string](t, tab1, `location.hash.slice("#/products/".length)`)
	if !validUUID(productID) {
		t.Fatalf("after create the page shows product %q", productID)
	}
	if r := app.do("GET", "/products/"+productID, nil); r.Status != http.StatusOK || r.json(t)["name"] != "Desk lamp" {
		t.Fatalf("the created product: %d %s", r.Status, r.Body)
	}

	// Drop three photos; a marker on window proves the page never reloads.
	step(t, tab1, dir, "04-dropped",
		chromedp.Evaluate[chromedp.Void](`window.__noReload = true`),
		drop("dropzone", photos),
		until(`document.querySelectorAll("#cards li.card").length === 3`),
	)
	step(t, tab1, dir, "05-ready",
		until(`[...document.querySelectorAll("#cards li.card")].every(c => c.dataset.state === "ready")`),
		until(`[...document.querySelectorAll("#cards li.card .stage img")].length === 3 &&
			[...document.querySelectorAll("#cards li.card .stage img")].every(i => i.complete && i.naturalWidth > 0 && i.classList.contains("loaded"))`),
	)
	bars := eval[[]struct {
		Value, Max float64
		Name       string
	}](t, tab1, `[...document.querySelectorAll("#cards li.card")].map(c => ({Value: c.querySelector("progress").value,
			Max: c.querySelector("progress").max, Name: c.querySelector(".name").textContent}))`)
	if !eval[bool](t, tab1, `window.__noReload === true`) {
		t.Error("the page reloaded while the photos were processed")
	}
	names := map[string]bool{}
	for _, b := range bars {
		names[b.Name] = true
		if b.Max != 1 || b.Value != 1 {
			t.Errorf("progress bar of %s at %v of %v, want finished", b.Name, b.Value, b.Max)
		}
	}
	for _, f := range e2ePhotos {
		if !names[f] {
			t.Errorf("no card for %s: %v", f, names)
		}
	}
	p := app.do("GET", "/products/"+productID, nil).json(t)
	if imgs, _ := p["images"].([]any); len(imgs) != 3 {
		t.Fatalf("the product has %d images, want 3", len(imgs))
	}
	log1.check(t, "uploads")

	// The list shows the product with its thumbnail (its BlurHash first).
	step(t, tab1, dir, "06-list-thumbnails",
		chromedp.Click(chromedp.ID("nav-products")),
		until(`[...document.querySelectorAll("#product-rows tr")].some(r => r.textContent.includes("Desk lamp") &&
			r.querySelector("canvas") && r.querySelector("img.loaded") && r.querySelector("img").naturalWidth > 0)`),
	)

	// Two tabs edit the product: the second saves first, the first is told.
	step(t, tab1, dir, "07-editing",
		chromedp.Navigate(base+"/admin/#/products/"+productID),
		chromedp.WaitVisible(chromedp.ID("p-name")),
		until(`document.querySelector("#p-name").value === "Desk lamp"`),
		typeInto("p-name", "Desk lamp (tab 1)"),
	)
	tab2, cancel2 := chromedp.NewContext(tab1)
	defer cancel2()
	log2 := watchTab(t, tab2)
	step(t, tab2, dir, "08-second-tab-saved",
		chromedp.Navigate(base+"/admin/"),
		signIn(key),
		chromedp.Navigate(base+"/admin/#/products/"+productID),
		until(`document.querySelector("#p-name").value === "Desk lamp"`),
		typeInto("p-name", "Desk lamp (tab 2)"),
		chromedp.Click(chromedp.ID("save")),
		until(`document.querySelector("#status").textContent === "Saved."`),
	)
	step(t, tab1, dir, "09-conflict",
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("conflict")),
	)
	conflict := eval[string](t, tab1, `document.querySelector("#conflict").textContent`)
	if !strings.Contains(conflict, "changed by someone else") {
		t.Errorf("the conflict message reads %q", conflict)
	}
	if got := app.do("GET", "/products/"+productID, nil).json(t)["name"]; got != "Desk lamp (tab 2)" {
		t.Errorf("after the conflict the product is named %v, want the second tab's name", got)
	}
	step(t, tab1, dir, "10-reloaded",
		chromedp.Click(chromedp.ID("conflict-reload")),
		until(`document.querySelector("#p-name").value === "Desk lamp (tab 2)" && document.querySelector("#conflict").hidden`),
	)
	log1.check(t, "conflict")
	log2.check(t, "second tab")

	// Delete it.
	step(t, tab1, dir, "11-deleted",
		chromedp.Click(chromedp.ID("delete")),
		chromedp.WaitVisible(chromedp.ID("confirm-delete")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		chromedp.WaitVisible(chromedp.ID("view-products")),
		until(`document.querySelector("#status").textContent === "Product deleted."`),
		until(`![...document.querySelectorAll("#product-rows tr")].some(r => r.textContent.includes("Desk lamp"))`),
	)
	if r := app.do("GET", "/products/"+productID, nil); r.Status != http.StatusNotFound {
		t.Errorf("after the delete GET answers %d", r.Status)
	}
	step(t, tab1, dir, "12-dead-letters",
		chromedp.Click(chromedp.ID("nav-dead")),
		chromedp.WaitVisible(chromedp.ID("view-dead")),
		until(`!document.querySelector("#dead-empty").hidden`),
	)
	log1.check(t, "delete")
}

func validUUID(s string) bool {
	return len(s) == 36 && strings.Count(s, "-") == 4
}

// The gallery of a product on the admin page: five photos set up through
// the API (three ready, a JPEG cut in half that failed for good, and an
// import of a URL that answered 503, which failed but may be retried),
// then, in Chromium: the primary-photo badge, Retry only where retrying
// can help (and the retry itself), alt text saved and refused, a photo
// dragged with the mouse and moved with the keyboard (the badge following
// the order), a removal kept and one confirmed, and a removal refused with
// 412 because the photos changed while the page was not told. Each result
// is checked in the page and through the API. Screenshots go to
// out/admin-e2e/gallery-*.png.
func TestAdminGalleryInChromium(t *testing.T) {
	photo, err := os.ReadFile(filepath.Join(corpusDir(t), e2ePhotos[1]))
	if err != nil {
		t.Fatal(err)
	}
	var healed atomic.Bool // the import's server answers 503 until then
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healed.Load() {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(photo)
	}))
	defer fixture.Close()
	// One attempt per job: the import meeting a 503 fails at once, as
	// retryable.
	app := startApp(t, t.TempDir(), productionEnv("VITRINE_FETCH_ALLOW", "127.0.0.1", "VITRINE_JOB_MAX_ATTEMPTS", "1"))
	_, key := app.makeKey("admin", 0)
	auth := bearer(key)
	base := "http://" + strings.Replace(app.Addr(), "127.0.0.1", "localhost", 1)
	dir := screenshotDir(t)

	r := app.doJSON("POST", "/products", `{"name":"Reading chair","price":"249","user_id":7}`, auth...)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.json(t)["id"].(string)
	upload := func(data []byte) string {
		t.Helper()
		r := app.do("POST", "/products/"+id+"/images", bytes.NewReader(data), append([]string{"Content-Type", "image/jpeg"}, auth...)...)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		return r.json(t)["id"].(string)
	}
	var ids []string
	for _, f := range e2ePhotos {
		data, err := os.ReadFile(filepath.Join(corpusDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, upload(data))
	}
	a, b, c := ids[0], ids[1], ids[2]
	hopper, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	cut := upload(hopper[:len(hopper)/2])
	r = app.doJSON("POST", "/products/"+id+"/images", fmt.Sprintf(`{"url":%q}`, fixture.URL+"/chair.jpg"), auth...)
	if r.Status != http.StatusAccepted {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	flaky := r.json(t)["id"].(string)
	for _, img := range []string{a, b, c} {
		if got := app.waitImage("/products/"+id+"/images/"+img, 2*time.Minute); got["status"] != "ready" {
			t.Fatalf("photo %s: %v", img, got)
		}
	}
	for img, want := range map[string]struct {
		code      string
		retryable bool
	}{cut: {"corrupt_image", false}, flaky: {"fetch_failed", true}} {
		got := app.waitImage("/products/"+id+"/images/"+img, 2*time.Minute)
		if e, _ := got["error"].(map[string]any); got["status"] != "failed" || e["code"] != want.code || e["retryable"] != want.retryable {
			t.Fatalf("image %s: %v, want failed with %s, retryable %v", img, got, want.code, want.retryable)
		}
	}

	tab, tabLog := browser(t)

	// orderIs checks the gallery's order in the page and, once the page's
	// request is done, through the API, and which photo is primary in both.
	orderIs := func(what string, want []string, primary string) {
		t.Helper()
		if got := eval[[]string](t, tab, `[...document.querySelectorAll("#cards li.card")].map(li => li.dataset.imageId || "")`); !slices.Equal(got, want) {
			t.Errorf("%s: the page shows %v, want %v", what, got, want)
		}
		badges := eval[[]string](t, tab, `[...document.querySelectorAll("#cards .badge")].filter(b => !b.hidden).map(b => b.closest("li").dataset.imageId)`)
		if !slices.Equal(badges, []string{primary}) {
			t.Errorf("%s: primary badges on %v, want on %s only", what, badges, primary)
		}
		var got []string
		var doc map[string]any
		for deadline := time.Now().Add(30 * time.Second); ; {
			doc = app.do("GET", "/products/"+id, nil).json(t)
			got = got[:0]
			for _, img := range doc["images"].([]any) {
				got = append(got, img.(map[string]any)["id"].(string))
			}
			if slices.Equal(got, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the API has the order %v, want %v", what, got, want)
		}
		if p, _ := doc["primary_image"].(map[string]any); p["id"] != primary {
			t.Errorf("%s: the API's primary_image is %v, want %s", what, p["id"], primary)
		}
	}
	card := func(img string) string { return `#cards li[data-image-id="` + img + `"]` }
	js := func(img, expr string) string { // expr about the card's element li
		return fmt.Sprintf(`(li => %s)(document.querySelector(%q))`, expr, card(img))
	}

	step(t, tab, dir, "gallery-01-loaded",
		chromedp.Navigate(base+"/admin/"),
		signIn(key),
		chromedp.Navigate(base+"/admin/#/products/"+id),
		until(`document.querySelectorAll("#cards li.card").length === 5`),
		until(`[...document.querySelectorAll("#cards li.card .stage img")].filter(i => i.classList.contains("loaded") && i.naturalWidth > 0).length === 3`),
	)
	orderIs("as uploaded", []string{a, b, c, cut, flaky}, a)
	tabLog.check(t, "load")

	// Retry only where retrying can mend the failure; the reason shown.
	if eval[bool](t, tab, js(cut, `li.querySelector("button.retry").hidden`)) != true {
		t.Error("the photo that failed for good (corrupt_image, not retryable) offers Retry")
	}
	if reason := eval[string](t, tab, js(cut, `li.querySelector(".reason").textContent`)); !strings.Contains(reason, "corrupt_image") {
		t.Errorf("the failed photo's reason reads %q", reason)
	}
	if eval[bool](t, tab, js(flaky, `!li.querySelector("button.retry").hidden && li.dataset.state === "failed"`)) != true {
		t.Error("the photo whose import met a 503 (retryable) offers no Retry")
	}
	for _, img := range []string{a, b, c} {
		if eval[bool](t, tab, js(img, `li.querySelector("button.retry").hidden`)) != true {
			t.Errorf("the ready photo %s offers Retry", img)
		}
	}
	// The page's rules, as units: Retry only for a retryable failure (the
	// case above, and one the server makes only when its storage or a
	// fetch fails), the primary photo the first that has variants, a move,
	// and a move carried onto a gallery changed meanwhile.
	units, err := chromedp.Run(tab, chromedp.Evaluate[map[string]any](`import(new URL("assets/app.js", location.href)).then(m => ({
		retry: [m.canRetry({status: "failed", error: {code: "storage_unavailable", detail: "", retryable: true}}),
			m.canRetry({status: "failed", error: {code: "corrupt_image", detail: "", retryable: false}}),
			m.canRetry({status: "failed"}),
			m.canRetry({status: "ready", error: null})].join(),
		primary: String(m.primaryOf(["x", "y", "z"], new Map([["x", {variants: []}], ["y", {variants: [{}]}], ["z", {variants: [{}]}]]))),
		moved: m.moved(["a", "b", "c"], "c", 0).join(),
		rebased: m.rebased(["b", "a", "c"], ["a", "b", "d"]).join(),
	}))`, chromedp.EvalAwaitPromise))
	want := map[string]any{"retry": "true,false,false,false", "primary": "y", "moved": "c,a,b", "rebased": "b,a,d"}
	if err != nil || fmt.Sprint(units) != fmt.Sprint(want) {
		t.Errorf("the page's rules: %v (%v), want %v", units, err, want)
	}

	// Alt text: saved with Enter; a refused one shows the server's reason
	// beside its field.
	altOf := func(img string) string { return card(img) + " .alt input" }
	step(t, tab, dir, "gallery-02-alt",
		chromedp.Click(chromedp.CSS(altOf(a))),
		chromedp.SendKeys(chromedp.CSS(altOf(a)), "Oak armchair, front view"),
		chromedp.KeyEvent(kb.Enter),
		until(`document.querySelector("#status").textContent.includes("saved")`),
		chromedp.Click(chromedp.CSS(altOf(b))),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error { // pasted
			_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: strings.Repeat("x", 1001)})
			return err
		}),
		chromedp.KeyEvent(kb.Tab),
		until(js(b, `li.querySelector(".alt .error").textContent !== ""`)),
	)
	if alt := app.do("GET", "/products/"+id+"/images/"+a, nil).json(t)["alt"]; alt != "Oak armchair, front view" {
		t.Errorf("the saved alt text is %q in the API", alt)
	}
	refused := eval[struct {
		Text, Invalid string
		Described     bool
	}](t, tab, js(b, `({Text: li.querySelector(".alt .error").textContent, Invalid: li.querySelector(".alt input").getAttribute("aria-invalid"),
		Described: li.querySelector(".alt input").getAttribute("aria-describedby").split(" ").includes(li.querySelector(".alt .error").id)})`))
	if !strings.Contains(refused.Text, "at most 1000 characters") || refused.Invalid != "true" || !refused.Described {
		t.Errorf("the refused alt text: %+v, want the server's reason, aria-invalid and aria-describedby", refused)
	}
	if alt := app.do("GET", "/products/"+id+"/images/"+b, nil).json(t)["alt"]; alt != "" {
		t.Errorf("a refused alt text is %q in the API", alt)
	}
	step(t, tab, dir, "gallery-03-alt-fixed",
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, altOf(b))),
		chromedp.Click(chromedp.CSS(altOf(b))),
		chromedp.SendKeys(chromedp.CSS(altOf(b)), "Oak armchair, side view"),
		chromedp.KeyEvent(kb.Enter),
		until(js(b, `li.querySelector(".alt .error").textContent === "" && !li.querySelector(".alt input").hasAttribute("aria-invalid")`)),
	)
	if alt := app.do("GET", "/products/"+id+"/images/"+b, nil).json(t)["alt"]; alt != "Oak armchair, side view" {
		t.Errorf("the corrected alt text is %q in the API", alt)
	}
	tabLog.check(t, "alt text")

	// Retry the import, now that its server answers.
	healed.Store(true)
	step(t, tab, dir, "gallery-04-retried",
		chromedp.Click(chromedp.CSS(card(flaky)+" button.retry")),
		until(js(flaky, `li.dataset.state === "ready" && li.querySelector("button.retry").hidden && li.querySelector("img.loaded") !== null`)),
	)
	if got := app.do("GET", "/products/"+id+"/images/"+flaky, nil).json(t); got["status"] != "ready" {
		t.Errorf("after Retry the import is %v", got["status"])
	}
	tabLog.check(t, "retry")

	// The mouse: drag the third photo onto the first one's place; it
	// becomes the primary photo.
	step(t, tab, dir, "gallery-05-dragged",
		chromedp.DragAndDrop(chromedp.CSS(card(c)+" .handle"), chromedp.CSS(card(a)+" .handle")),
		until(js(c, `li.dataset.position === "0"`)),
	)
	orderIs("after the drag", []string{c, a, b, cut, flaky}, c)

	// The keyboard: Alt+→ on the focused photo moves it later, the focus
	// stays on it, and the move is announced.
	step(t, tab, dir, "gallery-06-keyboard",
		chromedp.Focus(chromedp.CSS(card(c))),
		chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(chromedp.ModifierAlt)),
		until(js(c, `li.dataset.position === "1"`)),
	)
	orderIs("after Alt+→", []string{a, c, b, cut, flaky}, a)
	if got := eval[string](t, tab, `document.activeElement.dataset.imageId || document.activeElement.tagName`); got != c {
		t.Errorf("after Alt+→ the focus is on %s, want the moved photo %s", got, c)
	}
	if s := eval[string](t, tab, `document.querySelector("#status").textContent`); !strings.Contains(s, "moved to position 2 of 5") || !strings.Contains(s, "is the primary photo now") {
		t.Errorf("after Alt+→ the page announces %q", s)
	}
	// The failed photo moved first with Alt+← three times: the primary
	// photo is still the first that has variants.
	step(t, tab, dir, "gallery-07-failed-first",
		chromedp.Focus(chromedp.CSS(card(cut))),
		chromedp.KeyEvent(kb.ArrowLeft+kb.ArrowLeft+kb.ArrowLeft, chromedp.KeyModifiers(chromedp.ModifierAlt)),
		until(js(cut, `li.dataset.position === "0"`)),
	)
	orderIs("after Alt+← ×3", []string{cut, a, c, b, flaky}, a)
	if h := eval[string](t, tab, `location.hash`); h != "#/products/"+id {
		t.Errorf("after the keyboard moves the page is at %q", h)
	}
	tabLog.check(t, "reorder")

	// Remove: the dialog asks first, with the focus on "Keep it"; keeping
	// removes nothing.
	step(t, tab, dir, "gallery-08-remove-asked",
		chromedp.Click(chromedp.CSS(card(b)+" button.remove")),
		until(`document.querySelector("#remove-dialog").open`),
	)
	if f := eval[string](t, tab, `document.activeElement.id`); f != "remove-no" {
		t.Errorf("the removal dialog opens with the focus on %q, want remove-no", f)
	}
	step(t, tab, dir, "gallery-09-remove-kept",
		chromedp.Click(chromedp.ID("remove-no")),
		until(`!document.querySelector("#remove-dialog").open`),
	)
	if eval[bool](t, tab, js(b, `li !== null && document.activeElement === li.querySelector("button.remove")`)) != true {
		t.Error("after Keep it the photo is gone or its Remove button lost the focus")
	}
	orderIs("after Keep it", []string{cut, a, c, b, flaky}, a)
	step(t, tab, dir, "gallery-10-removed",
		chromedp.Click(chromedp.CSS(card(b)+" button.remove")),
		until(`document.querySelector("#remove-dialog").open`),
		chromedp.Click(chromedp.ID("remove-yes")),
		until(`document.querySelector(`+strconv.Quote(card(b))+`) === null && document.querySelector("#status").textContent.endsWith("removed.")`),
	)
	if r := app.do("GET", "/products/"+id+"/images/"+b, nil); r.Status != http.StatusNotFound {
		t.Errorf("the removed photo: GET answers %d", r.Status)
	}
	orderIs("after the removal", []string{cut, a, c, flaky}, a)
	tabLog.check(t, "remove")

	// Changes made elsewhere show without a reload, from the product's
	// events: image.updated (alt text), image.reordered, image.deleted.
	api := func(method, path, body, contentType string) {
		t.Helper()
		r := app.do(method, "/products/"+id+path, strings.NewReader(body), append([]string{"Content-Type", contentType}, auth...)...)
		if r.Status/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
	}
	if _, err := chromedp.Run(tab, chromedp.Evaluate[chromedp.Void](`window.__noReload = true`)); err != nil {
		t.Fatalf("mark the page: %v", err)
	}
	api("PATCH", "/images/"+c, `{"alt":"Oak armchair, back view"}`, "application/merge-patch+json")
	api("PUT", "/images/order", fmt.Sprintf(`{"image_ids":[%q,%q,%q,%q]}`, a, cut, c, flaky), "application/json")
	api("DELETE", "/images/"+cut, "", "application/json")
	step(t, tab, dir, "gallery-11-live",
		until(js(c, `li.querySelector(".alt input").value === "Oak armchair, back view"`)),
		until(`document.querySelector(`+strconv.Quote(card(cut))+`) === null`),
	)
	orderIs("after changes through the API", []string{a, c, flaky}, a)
	if !eval[bool](t, tab, `window.__noReload === true`) {
		t.Error("the page reloaded to show changes made elsewhere")
	}
	tabLog.check(t, "live")

	// A stale page: its events blocked, the photos changed through the
	// API, a removal (asked with the Delete key) is refused with 412; the
	// page reloads the photos and says so. Then it removes it.
	block := func(patterns ...string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			var bp []*network.BlockPattern
			for _, p := range patterns {
				bp = append(bp, &network.BlockPattern{URLPattern: p, Block: true})
			}
			_, err := cdp.Call(ctx, tg, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: bp})
			return err
		})
	}
	step(t, tab, dir, "gallery-12-no-events",
		block("*://*:*/products/*/events"),
		chromedp.Reload(),
		until(`document.querySelectorAll("#cards li.card").length === 3`),
	)
	api("PATCH", "/images/"+a, `{"alt":"Changed in another tab"}`, "application/merge-patch+json")
	step(t, tab, dir, "gallery-13-conflict",
		chromedp.Focus(chromedp.CSS(card(flaky))),
		chromedp.KeyEvent(kb.Delete),
		until(`document.querySelector("#remove-dialog").open`),
		chromedp.Click(chromedp.ID("remove-yes")),
		until(`document.querySelector("#gallery-error").textContent.includes("was not removed")`),
		until(js(a, `li.querySelector(".alt input").value === "Changed in another tab"`)),
	)
	if r := app.do("GET", "/products/"+id+"/images/"+flaky, nil); r.Status != http.StatusOK {
		t.Errorf("a removal refused with 412 removed the photo: GET answers %d", r.Status)
	}
	// A move and an alt text refused with 412 because of a change that
	// does not touch them (another photo's alt text) are sent again, on the
	// gallery as it is now, without bothering the user.
	api("PATCH", "/images/"+a, `{"alt":"Changed again"}`, "application/merge-patch+json")
	step(t, tab, dir, "gallery-14-moved-on-stale",
		chromedp.Focus(chromedp.CSS(card(c))),
		chromedp.KeyEvent(kb.ArrowLeft, chromedp.KeyModifiers(chromedp.ModifierAlt)),
		until(js(a, `li.querySelector(".alt input").value === "Changed again"`)),
	)
	orderIs("after a move on a stale page", []string{c, a, flaky}, c)
	api("PATCH", "/images/"+a, `{"alt":"Changed a third time"}`, "application/merge-patch+json")
	step(t, tab, dir, "gallery-15-alt-on-stale",
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, altOf(c))),
		chromedp.Click(chromedp.CSS(altOf(c))),
		chromedp.SendKeys(chromedp.CSS(altOf(c)), "Oak armchair, seen from the left"),
		chromedp.KeyEvent(kb.Enter),
		until(js(a, `li.querySelector(".alt input").value === "Changed a third time"`)),
		until(`document.querySelector("#status").textContent.endsWith("saved.")`),
	)
	if alt := app.do("GET", "/products/"+id+"/images/"+c, nil).json(t)["alt"]; alt != "Oak armchair, seen from the left" {
		t.Errorf("the alt text saved on a stale page is %q in the API", alt)
	}
	if e := eval[string](t, tab, `document.querySelector("#gallery-error").textContent + `+strconv.Quote(" ")+` + [...document.querySelectorAll("#cards .alt .error")].map(p => p.textContent).join("")`); strings.TrimSpace(e) != "" {
		t.Errorf("a change refused with 412 and sent again still shows %q", e)
	}
	step(t, tab, dir, "gallery-16-removed-again",
		chromedp.Click(chromedp.CSS(card(flaky)+" button.remove")),
		until(`document.querySelector("#remove-dialog").open`),
		chromedp.Click(chromedp.ID("remove-yes")),
		until(`document.querySelector(`+strconv.Quote(card(flaky))+`) === null && document.querySelector("#status").textContent.endsWith("removed.")`),
		block(),
	)
	orderIs("after the second removal", []string{c, a}, c)
	tabLog.check(t, "conflict")
}

// The rest of the admin page in Chromium: a photo's focal point and the
// import page.
//
// Focal point: a click on a ready photo's picture sets it (checked through
// the API, within 0.02 of the spot clicked), the marker and the frame of
// the square thumbnail's crop are drawn around it (clamped to the picture
// as the server cuts it), and once the server has cut the new crop the
// card shows that thumbnail (its URL as the API has it). With the
// keyboard: Set focal point, arrows, Enter; then Reset crop, back to the
// automatic crop (focal_point null).
//
// Import: a file dropped on the import page (3 good rows, 1 bad) is sent,
// its progress followed to completed, "3 applied, 1 failed" and the bad
// row's line shown, its errors downloaded as NDJSON; a file whose line 2
// is not JSON is refused with the server's detail naming line 2, and
// nothing of it applied; a text file is refused with the 415's detail; the
// session's imports are listed, and one can be opened again.
//
// Screenshots go to out/admin-e2e/focal-*.png and import-*.png.
func TestAdminFocalAndImportInChromium(t *testing.T) {
	srv, _ := photoServer(t)
	app := startApp(t, t.TempDir(), productionEnv("VITRINE_FETCH_ALLOW", "127.0.0.1/32"))
	_, key := app.makeKey("admin", 0)
	auth := bearer(key)
	base := "http://" + strings.Replace(app.Addr(), "127.0.0.1", "localhost", 1)
	dir := screenshotDir(t)

	// A product with one landscape photo (2000×1072), ready.
	r := app.doJSON("POST", "/products", `{"name":"Garden bench","price":"180","user_id":7}`, auth...)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.json(t)["id"].(string)
	data, err := os.ReadFile(filepath.Join(corpusDir(t), "photo_adobergb_2000x1072.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	r = app.do("POST", "/products/"+id+"/images", bytes.NewReader(data), append([]string{"Content-Type", "image/jpeg"}, auth...)...)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	img := r.json(t)["id"].(string)
	location := "/products/" + id + "/images/" + img
	if got := app.waitImage(location, 2*time.Minute); got["status"] != "ready" {
		t.Fatalf("the photo: %v", got)
	}

	// focusOf is a focal point as the API has it (nil: none).
	focusOf := func(v any) *[2]float64 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		return &[2]float64{m["x"].(float64), m["y"].(float64)}
	}
	near := func(a, b *[2]float64) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return math.Abs(a[0]-b[0]) <= 0.02 && math.Abs(a[1]-b[1]) <= 0.02
	}
	// thumbOf is the image's thumb variant the page shows (WebP).
	thumbOf := func(doc map[string]any) map[string]any {
		for _, v := range doc["variants"].([]any) {
			if v := v.(map[string]any); v["name"] == "thumb" && v["format"] == "webp" {
				return v
			}
		}
		t.Fatalf("no thumb.webp: %v", doc["variants"])
		return nil
	}
	// focusIs waits until the API's image has the focal point want (nil:
	// none) and its cover crops were cut around it; it returns the image.
	focusIs := func(what string, want *[2]float64) map[string]any {
		t.Helper()
		var doc map[string]any
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			doc = app.do("GET", location, nil).json(t)
			got := focusOf(doc["focal_point"])
			if near(got, want) {
				made := true
				for _, v := range doc["variants"].([]any) {
					if v := v.(map[string]any); v["fit"] == "cover" && fmt.Sprint(v["focal_point"]) != fmt.Sprint(doc["focal_point"]) {
						made = false
					}
				}
				if made {
					return doc
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the API's image has the focal point %v and thumb %v, want %v", what, doc["focal_point"], thumbOf(doc), want)
			}
		}
	}

	tab, tabLog := browser(t)
	card := `#cards li[data-image-id="` + img + `"]`
	js := func(expr string) string { // expr about the card's element li
		return fmt.Sprintf(`(li => %s)(document.querySelector(%q))`, expr, card)
	}
	step(t, tab, dir, "focal-01-loaded",
		chromedp.Navigate(base+"/admin/"),
		signIn(key),
		chromedp.Navigate(base+"/admin/#/products/"+id),
		until(js(`li !== null && !li.querySelector(".crop").hidden && li.querySelector(".stage img.loaded") !== null &&
			li.querySelector(".stage img").naturalWidth > 0 && li.querySelector(".crop-thumb img").complete`)),
	)
	// The picture is the whole photo, not its square thumbnail.
	aspect := eval[float64](t, tab, js(`(r => r.width / r.height)(li.querySelector(".stage img").getBoundingClientRect())`))
	if math.Abs(aspect-2000.0/1072) > 0.03 {
		t.Errorf("the card's picture has the aspect ratio %.3f, want the photo's %.3f", aspect, 2000.0/1072)
	}
	if !eval[bool](t, tab, js(`li.querySelector(".focal-marker").hidden && li.querySelector(".crop-window").hidden`)) {
		t.Error("a photo without a focal point shows a marker or a crop frame")
	}

	// The page's rules, as units: the crop frame (as vips/process.go's
	// cropAround cuts), the keyboard's steps kept on the picture, the
	// import's Content-Type by file name and its counts.
	units, err := chromedp.Run(tab, chromedp.Evaluate[map[string]any](`import(new URL("assets/app.js", location.href)).then(m => {
		const w = (p, ...a) => Object.values(m.cropWindow(p, ...a)).map(v => v.toFixed(3)).join();
		return {
			wide: w({x: 0.8, y: 0.3}, 2000, 1000, 200, 200), wideLeft: w({x: 0, y: 1}, 2000, 1000, 200, 200),
			tall: w({x: 0.5, y: 0.9}, 1000, 2000, 200, 200), centre: w({x: 0.5, y: 0.5}, 1000, 2000, 200, 200),
			box: w({x: 0.5, y: 0.5}, 1000, 1000, 400, 200),
			nudged: Object.values(m.nudged({x: 0.98, y: 0.02}, 0.05, -0.05)).join(),
			types: [m.importType("a.NDJSON", ""), m.importType("b.jsonl", ""), m.importType("c.csv", "application/vnd.ms-excel"), m.importType("d.txt", "text/plain")].join(),
			counts: m.importCounts({total: 4, applied: 3, failed: 1, pending: 0}) + "; " + m.importCounts({total: 1, applied: 0, failed: 0, pending: 1}),
		};
	})`, chromedp.EvalAwaitPromise))
	wantUnits := map[string]any{
		"wide": "0.500,0.000,0.500,1.000", "wideLeft": "0.000,0.000,0.500,1.000",
		"tall": "0.000,0.500,1.000,0.500", "centre": "0.000,0.250,1.000,0.500",
		"box":    "0.000,0.250,1.000,0.500",
		"nudged": "1,0",
		"types":  "application/x-ndjson,application/x-ndjson,text/csv,text/plain",
		"counts": "3 applied, 1 failed (of 4 rows); 0 applied, 0 failed, 1 pending (of 1 row)",
	}
	if err != nil || fmt.Sprint(units) != fmt.Sprint(wantUnits) {
		t.Errorf("the page's rules: %v (%v), want %v", units, err, wantUnits)
	}

	// clickAt clicks the card's picture at fx, fy of its width and height.
	clickAt := func(fx, fy float64) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			at, err := chromedp.Evaluate[[2]float64](fmt.Sprintf(`(() => { const i = document.querySelector(%q); i.scrollIntoView({block: "center"});
				const r = i.getBoundingClientRect(); return [r.left + %g * r.width, r.top + %g * r.height]; })()`, card+" .stage img", fx, fy))(ctx, tg)
			if err != nil {
				return err
			}
			_, err = chromedp.MouseClickXY(at[0], at[1])(ctx, tg)
			return err
		})
	}
	// shown is where the page draws the marker and the crop frame, as
	// fractions of the picture.
	type frame struct{ MarkerX, MarkerY, Left, Top, Width, Height float64 }
	shown := func() frame {
		return eval[frame](t, tab, js(`(() => { const p = li.querySelector(".stage img").getBoundingClientRect();
			const m = li.querySelector(".focal-marker").getBoundingClientRect(), w = li.querySelector(".crop-window").getBoundingClientRect();
			return {MarkerX: (m.left + m.width / 2 - p.left) / p.width, MarkerY: (m.top + m.height / 2 - p.top) / p.height,
				Left: (w.left - p.left) / p.width, Top: (w.top - p.top) / p.height, Width: w.width / p.width, Height: w.height / p.height}; })()`))
	}
	// The square crop of the 2000×1072 photo is 1072/2000 of its width and
	// its whole height; around x 0.8 it meets the right edge.
	side := 1072.0 / 2000
	frameIs := func(what string, p [2]float64) {
		t.Helper()
		f := shown()
		left := min(max(0, p[0]-side/2), 1-side)
		if math.Abs(f.MarkerX-p[0]) > 0.02 || math.Abs(f.MarkerY-p[1]) > 0.02 {
			t.Errorf("%s: the marker is at %.3f, %.3f, want %.3f, %.3f", what, f.MarkerX, f.MarkerY, p[0], p[1])
		}
		if math.Abs(f.Left-left) > 0.02 || math.Abs(f.Width-side) > 0.02 || math.Abs(f.Top) > 0.02 || math.Abs(f.Height-1) > 0.02 {
			t.Errorf("%s: the crop frame is at %+v, want left %.3f, width %.3f, the whole height", what, f, left, side)
		}
	}
	// thumbShown waits until the card shows the thumb the API has, its crop made.
	thumbShown := func(doc map[string]any) chromedp.Action[chromedp.Void] {
		return until(js(fmt.Sprintf(`li.dataset.crop === "made" && li.querySelector(".crop-thumb img").getAttribute("src") === %q &&
			li.querySelector(".crop-thumb img").complete && li.querySelector(".crop-thumb img").naturalWidth > 0`, thumbOf(doc)["url"])))
	}

	// The mouse: a click at 80% across, 30% down.
	before := thumbOf(app.do("GET", location, nil).json(t))["url"]
	clicked := [2]float64{0.8, 0.3}
	step(t, tab, dir, "focal-02-clicked", clickAt(clicked[0], clicked[1]))
	doc := focusIs("after the click", &clicked)
	frameIs("after the click", clicked)
	thumb := thumbOf(doc)
	if thumb["url"] == before || fmt.Sprint(thumb["focal_point"]) != fmt.Sprint(doc["focal_point"]) {
		t.Errorf("after the click the thumb is %v (was %v), want a new crop around %v", thumb, before, doc["focal_point"])
	}
	step(t, tab, dir, "focal-03-cropped", thumbShown(doc))
	if s := eval[string](t, tab, `document.querySelector("#status").textContent`); !strings.Contains(s, "new thumbnail") {
		t.Errorf("after the new crop the page announces %q", s)
	}
	tabLog.check(t, "focal point by a click")

	// The keyboard: Set focal point, ← ×3 and ↓ ×2 (5% each), Enter.
	at := *focusOf(doc["focal_point"])
	keyed := [2]float64{at[0] - 0.15, at[1] + 0.1}
	step(t, tab, dir, "focal-04-keyboard",
		chromedp.Click(chromedp.CSS(card+" button.focus-set")),
		until(js(`document.activeElement === li.querySelector(".stage") && li.querySelector(".stage").getAttribute("role") === "slider"`)),
		chromedp.KeyEvent(kb.ArrowLeft+kb.ArrowLeft+kb.ArrowLeft+kb.ArrowDown+kb.ArrowDown),
		until(js(`li.querySelector(".stage").getAttribute("aria-valuetext") === `+strconv.Quote(fmt.Sprintf("%d%% across, %d%% down", int(math.Round(keyed[0]*100)), int(math.Round(keyed[1]*100)))))),
	)
	frameIs("while moved with the keyboard", keyed)
	if got := focusOf(app.do("GET", location, nil).json(t)["focal_point"]); !near(got, &at) {
		t.Errorf("moving the point with the arrows, before Enter, saved %v", got)
	}
	step(t, tab, dir, "focal-05-keyed", chromedp.KeyEvent(kb.Enter))
	doc = focusIs("after the arrows and Enter", &keyed)
	step(t, tab, dir, "focal-06-keyed-cropped", thumbShown(doc))
	frameIs("after the arrows and Enter", keyed)
	if got := eval[string](t, tab, `document.activeElement.className`); !strings.Contains(got, "focus-set") {
		t.Errorf("after Enter the focus is on %q, want the Set focal point button", got)
	}
	tabLog.check(t, "focal point by the keyboard")

	// Reset crop: no focal point, the automatic crop again.
	step(t, tab, dir, "focal-07-reset", chromedp.Click(chromedp.CSS(card+" button.focus-reset")))
	doc = focusIs("after Reset crop", nil)
	if doc["focal_point"] != nil {
		t.Errorf("after Reset crop the API's focal_point is %v", doc["focal_point"])
	}
	step(t, tab, dir, "focal-08-reset-cropped", thumbShown(doc),
		until(js(`li.querySelector(".focal-marker").hidden && li.querySelector(".crop-window").hidden && li.querySelector("button.focus-reset").hidden`)))
	if s := eval[string](t, tab, js(`li.querySelector(".crop-state").textContent`)); !strings.Contains(s, "Automatic crop") {
		t.Errorf("after Reset crop the card says %q", s)
	}
	tabLog.check(t, "reset crop")

	// The import page: a file with 3 good rows and 1 bad one, dropped.
	photo := func(n int) string { return srv.URL + "/photo/" + strconv.Itoa(n) + ".png" }
	files := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("catalog.ndjson", strings.Join([]string{
		`{"sku":"I-1","name":"Oak chair","price":"49.90","user_id":61,"images":[{"url":"` + photo(1) + `","alt":"Front"}]}`,
		`{"sku":"I-2","name":"Table","price":"120","user_id":61,"images":[{"url":"` + photo(2) + `","alt":"Top"}]}`,
		`{"sku":"I-3","name":"Lamp","price":"minus one","user_id":61}`,
		`{"sku":"I-4","name":"Shelf","price":"80","user_id":61}`,
	}, "\n")+"\n")
	downloads := t.TempDir()
	step(t, tab, dir, "import-01-page",
		chromedp.Click(chromedp.ID("nav-import")),
		chromedp.WaitVisible(chromedp.ID("import-drop")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
			return err
		}),
		// Every state the progress bar shows, kept.
		chromedp.Evaluate[chromedp.Void](`window.__progress = []; new MutationObserver(() => {
			const b = document.getElementById("import-progress");
			window.__progress.push(b.getAttribute("aria-valuenow") + " " + b.dataset.status);
		}).observe(document.getElementById("import-progress"), {attributes: true, attributeFilter: ["aria-valuenow", "data-status"]})`),
	)
	step(t, tab, dir, "import-02-completed",
		drop("import-drop", []string{good}),
		until(`document.querySelector("#import-state").dataset.status === "completed"`),
		until(`document.querySelectorAll("#import-rows tr").length === 1`),
	)
	importID := eval[string](t, tab, `location.hash.slice("#/import/".length)`)
	if !validUUID(importID) {
		t.Fatalf("after the drop the page shows import %q", importID)
	}
	imp := app.waitImport("/imports/"+importID, time.Minute, auth...)
	if rows := imp["rows"].(map[string]any); rows["applied"] != 3.0 || rows["failed"] != 1.0 {
		t.Errorf("the API's import: %v", rows)
	}
	page := eval[struct {
		Counts, Line, Code, Detail, Now, Max, Text, Name string
		Progress                                         []string
		Recent                                           int
	}](t, tab, `(() => { const b = document.getElementById("import-progress"), row = document.querySelector("#import-rows tr");
		return {Counts: document.querySelector("#import-counts").textContent, Line: row.cells[0].textContent, Code: row.cells[1].textContent,
			Detail: row.cells[2].textContent, Now: b.getAttribute("aria-valuenow"), Max: b.getAttribute("aria-valuemax"),
			Text: b.getAttribute("aria-valuetext"), Name: document.querySelector("#import-name").textContent, Progress: window.__progress,
			Recent: document.querySelectorAll("#import-recent li").length}; })()`)
	if !strings.Contains(page.Counts, "3 applied, 1 failed") || page.Line != "3" || !strings.Contains(page.Detail, "price") || page.Name != "catalog.ndjson" {
		t.Errorf("the completed import shows %+v, want 3 applied, 1 failed, and line 3's error about the price", page)
	}
	if page.Now != "100" || page.Max != "100" || !strings.Contains(page.Text, "4 of 4 rows done") {
		t.Errorf("the progress bar at the end: aria-valuenow %s of %s, %q", page.Now, page.Max, page.Text)
	}
	if p := page.Progress; len(p) < 2 || p[0] == "100 completed" || p[len(p)-1] != "100 completed" {
		t.Errorf("the progress bar showed %v, want the accepted import first and completed last", p)
	}
	if page.Recent != 1 {
		t.Errorf("%d imports listed, want 1", page.Recent)
	}
	if got := app.productsBySKU(61); len(got) != 3 || got["I-1"] == nil || got["I-2"] == nil || got["I-4"] == nil {
		t.Errorf("the imported products: %v", got)
	}
	// All the errors, downloaded.
	saved := filepath.Join(downloads, "import-"+importID+"-errors.ndjson")
	step(t, tab, dir, "import-03-downloaded",
		chromedp.Click(chromedp.ID("import-download")),
		until(`document.querySelector("#status").textContent.includes("downloaded")`),
	)
	var errs []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		errs, err = os.ReadFile(saved)
		if err == nil && bytes.HasSuffix(errs, []byte("\n")) || time.Now().After(deadline) {
			break
		}
	}
	if lines := strings.Split(strings.TrimSpace(string(errs)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"line":3`) {
		t.Errorf("the downloaded errors (%v): %q, want one line, line 3's", err, errs)
	}
	tabLog.check(t, "import")

	// A file whose line 2 is not JSON is refused whole, naming line 2.
	bad := write("broken.ndjson", `{"sku":"M-1","name":"ok","price":"1","user_id":62}`+"\n"+`{"sku":`+"\n")
	step(t, tab, dir, "import-04-refused",
		chromedp.SetUploadFiles(chromedp.ID("import-file"), []string{bad}),
		until(`document.querySelector("#import-error").textContent.includes("line 2")`),
	)
	if e := eval[string](t, tab, `document.querySelector("#import-error").textContent`); !strings.Contains(e, "broken.ndjson") || !strings.Contains(e, "400") {
		t.Errorf("the refused file: the page says %q", e)
	}
	if got := app.productsBySKU(62); len(got) != 0 {
		t.Errorf("the refused file applied %v", got)
	}
	// A text file: the 415's detail.
	text := write("notes.txt", "sku,name\n")
	step(t, tab, dir, "import-05-unsupported",
		chromedp.SetUploadFiles(chromedp.ID("import-file"), []string{text}),
		until(`document.querySelector("#import-error").textContent.includes("notes.txt")`),
	)
	if e := eval[string](t, tab, `document.querySelector("#import-error").textContent`); !strings.Contains(e, "415") || !strings.Contains(e, "text/plain") {
		t.Errorf("the text file: the page says %q", e)
	}
	// Back to the session's import, from the list.
	step(t, tab, dir, "import-06-again",
		chromedp.Navigate(base+"/admin/#/products"),
		chromedp.WaitVisible(chromedp.ID("view-products")),
		chromedp.Click(chromedp.ID("nav-import")),
		chromedp.WaitVisible(chromedp.ID("import-recent")),
		chromedp.Click(chromedp.CSS("#import-recent a")),
		until(`location.hash === "#/import/`+importID+`" && document.querySelector("#import-counts").textContent.includes("3 applied, 1 failed") &&
			document.querySelectorAll("#import-rows tr").length === 1`),
	)
	tabLog.check(t, "refused imports")
}

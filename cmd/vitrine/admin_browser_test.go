//go:build integration

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
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
		until(`[...document.querySelectorAll("#cards li.card img")].length === 3 &&
			[...document.querySelectorAll("#cards li.card img")].every(i => i.complete && i.naturalWidth > 0 && i.classList.contains("loaded"))`),
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

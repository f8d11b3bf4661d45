package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// TestImportExportCLI: vitrine import sends a file and follows it to its
// summary (exit 1 when rows failed); vitrine export writes the products
// in the form vitrine import reads back.
func TestImportExportCLI(t *testing.T) {
	app := startApp(t, t.TempDir(), nil)
	dir := t.TempDir()
	file := filepath.Join(dir, "catalog.ndjson")
	rows := `{"sku":"K-1","name":"Kettle","price":"30","user_id":51}
{"sku":"K-2","name":"Cup","price":"4.50","user_id":51}
{"sku":"K-3","name":"Saucer","price":"free","user_id":51}
`
	if err := os.WriteFile(file, []byte(rows), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, nil, "import", file, "--url", app.base)
	if err == nil || !strings.Contains(err.Error(), "1 rows failed") {
		t.Fatalf("import with a bad row: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"3 rows, 2 applied, 1 failed", "line 3: validation: price", "/errors"} {
		if !strings.Contains(out, want) {
			t.Errorf("import summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "import accepted: "+app.base+"/imports/") {
		t.Errorf("stderr does not name the import:\n%s", errOut)
	}
	exported := filepath.Join(dir, "export.csv")
	if _, errOut, err := runCLI(t, nil, "export", "--url", app.base, "--user-id", "51", "--format", "csv", "--out", exported); err != nil {
		t.Fatalf("export: %v\n%s", err, errOut)
	}
	data, err := os.ReadFile(exported)
	if err != nil || !strings.HasPrefix(string(data), "id,sku,name,description,price,currency,user_id\n") || strings.Count(string(data), "\n") != 3 {
		t.Fatalf("exported CSV: %v\n%s", err, data)
	}
	out, errOut, err = runCLI(t, nil, "import", exported, "--url", app.base)
	if err != nil || !strings.Contains(out, "2 rows, 2 applied, 0 failed") {
		t.Errorf("import of the export: %v\n%s\n%s", err, out, errOut)
	}
	_, _, err = runCLI(t, nil, "import", filepath.Join(dir, "missing.ndjson"), "--url", app.base)
	if err == nil {
		t.Error("import of a missing file succeeded")
	}
	if _, _, err := runCLI(t, nil, "import", "--url", app.base); err == nil || !strings.Contains(err.Error(), "give one FILE") {
		t.Errorf("import without a file: %v", err)
	}
}

// TestImportCLIInterrupted: Ctrl-C while the rows are applied leaves the
// import running in vitrine; the command prints its URL and the import
// completes without it.
func TestImportCLIInterrupted(t *testing.T) {
	// The photos are held until released, and the backlog takes one job:
	// the import waits at its second image for as long as the test likes.
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(distinctPNG(t, len(r.URL.Path)))
	}))
	defer srv.Close()
	defer once.Do(func() { close(release) })
	app := startApp(t, t.TempDir(), map[string]string{"VITRINE_FETCH_ALLOW": "127.0.0.1/32", "VITRINE_MAX_BACKLOG": "1"})
	file := filepath.Join(t.TempDir(), "catalog.ndjson")
	var b strings.Builder
	for i := range 3 {
		b.WriteString(`{"sku":"I-` + string(rune('a'+i)) + `","name":"x","price":"1","user_id":52,"images":[{"url":"` + srv.URL + `/p` + strings.Repeat("x", i) + `.png"}]}` + "\n")
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errOut := &watchedBuffer{seen: make(chan struct{}), want: "import accepted: "}
	var out strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"import", file, "--url", app.base}, func(string) string { return "" }, &out, errOut)
	}()
	select {
	case <-errOut.seen:
	case <-time.After(time.Minute):
		t.Fatal("the import was not accepted")
	}
	time.Sleep(700 * time.Millisecond) // a poll or two: the rows wait on the backlog
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("interrupted import: %v", err)
	}
	location := strings.TrimSpace(out.String())
	if !strings.HasPrefix(location, app.base+"/imports/") || !strings.Contains(errOut.String(), "goes on in vitrine") {
		t.Fatalf("interrupted import printed %q\n%s", location, errOut.String())
	}
	id := strings.TrimPrefix(location, app.base)
	if imp := app.do("GET", id, nil).json(t); imp["status"] == "completed" {
		t.Fatalf("the import completed before the interruption: %v", imp)
	}
	once.Do(func() { close(release) })
	imp := app.waitImport(id, time.Minute)
	if imp["rows"].(map[string]any)["applied"] != 3.0 {
		t.Errorf("after the interruption: %v", imp)
	}
	app.settle(time.Minute)
	products := app.productsBySKU(52)
	if len(products) != 3 {
		t.Errorf("%d products imported, want 3", len(products))
	}
	for sku, p := range products {
		imgs := p["images"].([]any)
		if len(imgs) != 1 || imgs[0].(map[string]any)["status"] != string(catalog.StatusReady) {
			t.Errorf("%s: %v", sku, imgs)
		}
	}
}

// watchedBuffer is a buffer that closes seen once want is written to it.
type watchedBuffer struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

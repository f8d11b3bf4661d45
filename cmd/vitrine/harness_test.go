package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// testEngine is the process's one libvips runtime, shared by every app the
// tests start (libvips cannot be started twice in a process).
var testEngine *engine

// atExit runs after every test of the package (shared temporary files).
var atExit []func()

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		testEngine, err = startEngine(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start libvips:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	for _, f := range atExit {
		f()
	}
	if testEngine != nil {
		testEngine.Shutdown()
	}
	os.Exit(code)
}

// corpusDir is ../shared/corpus/public beside the repository, or $VITRINE_CORPUS/public.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VITRINE_CORPUS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "corpus")
	}
	dir = filepath.Join(dir, "public")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Fatalf("image corpus not found at %s (set VITRINE_CORPUS): %v", dir, err)
	}
	return dir
}

type manifestRow struct {
	File, Category, Expected, OrientationFix, Format string
	Width, Height                                    int
}

func readManifest(t testing.TB) []manifestRow {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir(t), "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []manifestRow
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for line := 2; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 7 {
			t.Fatalf("MANIFEST.tsv line %d has %d columns, want 7 or more", line, len(cols))
		}
		r := manifestRow{File: cols[0], Category: cols[1], Expected: cols[2], OrientationFix: cols[3], Format: cols[6]}
		if r.Expected != "accept" && r.Expected != "reject" {
			t.Fatalf("MANIFEST.tsv line %d: expected %q", line, r.Expected)
		}
		// A size is a number, or "-" where the manifest has none (Width
		// and Height stay 0, which the tests treat as unknown).
		for _, c := range []struct {
			s string
			n *int
		}{{cols[4], &r.Width}, {cols[5], &r.Height}} {
			if n, err := strconv.Atoi(c.s); err == nil {
				*c.n = n
			} else if c.s != "-" {
				t.Fatalf("MANIFEST.tsv line %d: size %q", line, c.s)
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil || len(rows) == 0 {
		t.Fatalf("MANIFEST.tsv: %d rows, %v", len(rows), err)
	}
	return rows
}

// testApp is a vitrine started in-process on a loopback port.
type testApp struct {
	*App
	t     testing.TB
	base  string
	dir   string
	blobs *blobReader // set when files live in S3
}

func startApp(t testing.TB, dir string, env map[string]string) *testApp {
	t.Helper()
	log := zap.NewNop()
	if os.Getenv("VITRINE_TEST_LOG") != "" {
		log, _ = newLogger("console", "info", os.Stderr)
	}
	return startAppWithLog(t, dir, env, log)
}

// startAppLogged starts a vitrine whose JSON log lines (debug and up) are
// kept in the returned buffer.
func startAppLogged(t testing.TB, dir string, env map[string]string) (*testApp, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	log, err := newLogger("json", "debug", buf)
	if err != nil {
		t.Fatal(err)
	}
	return startAppWithLog(t, dir, env, log), buf
}

// lockedBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startAppWithLog(t testing.TB, dir string, env map[string]string, log *zap.Logger) *testApp {
	t.Helper()
	return startAppWith(t, dir, env, log, nil)
}

// startAppWith starts a vitrine with a logger and a tracer provider (nil:
// tracing off).
func startAppWith(t testing.TB, dir string, env map[string]string, log *zap.Logger, tracer trace.TracerProvider) *testApp {
	t.Helper()
	return startAppEngine(t, dir, env, log, tracer, testEngine)
}

// startAppEngine starts a vitrine on an engine of its own (the process's
// libvips runtime with another recipe: VITRINE_RECIPE_FILE is read when
// the engine starts, once per test process).
func startAppEngine(t testing.TB, dir string, env map[string]string, log *zap.Logger, tracer trace.TracerProvider, eng *engine) *testApp {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	// Development mode on loopback: anonymous writes, as `make run` has;
	// the access tests ask for production.
	vars := map[string]string{"VITRINE_ADDR": "127.0.0.1:0", "VITRINE_DATA_DIR": dir, "VITRINE_WORKERS": "2",
		"VITRINE_ENV": "development", "VITRINE_RATE_ANONYMOUS": "0", "VITRINE_RATE_ANONYMOUS_WRITES": "0"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := parseConfig(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	app, err := Start(context.Background(), cfg, log, eng, tracer)
	if err != nil {
		t.Fatalf("start vitrine: %v", err)
	}
	ta := &testApp{App: app, t: t, base: "http://" + app.Addr(), dir: dir, blobs: openBlobs(t, cfg)}
	t.Cleanup(func() { ta.stop() })
	return ta
}

func (a *testApp) stop() {
	if a.App == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		a.t.Errorf("close vitrine: %v", err)
	}
	a.App = nil
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return v
}

func (a *testApp) do(method, path string, body io.Reader, header ...string) response {
	a.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = a.base + path
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		a.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

func (a *testApp) doJSON(method, path, body string, header ...string) response {
	a.t.Helper()
	return a.do(method, path, strings.NewReader(body), append([]string{"Content-Type", "application/json"}, header...)...)
}

// expectProblem checks an RFC 9457 answer with the given status.
func expectProblem(t testing.TB, r response, status int, what string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	p := r.json(t)
	for _, k := range []string{"type", "title", "status", "detail", "code"} {
		if _, ok := p[k]; !ok {
			t.Errorf("%s: problem lacks %q: %s", what, k, r.Body)
		}
	}
	if d, _ := p["detail"].(string); d == "" {
		t.Errorf("%s: problem has no detail: %s", what, r.Body)
	}
	return p
}

func (a *testApp) createProduct(body string) map[string]any {
	a.t.Helper()
	r := a.doJSON("POST", "/products", body)
	if r.Status != http.StatusCreated {
		a.t.Fatalf("create product: %d %s", r.Status, r.Body)
	}
	return r.json(a.t)
}

func multipartBody(t testing.TB, field, name string, data []byte) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part, err := w.CreateFormFile(field, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, w.FormDataContentType()
}

func (a *testApp) uploadFile(productID, path string, multipartForm bool) response {
	a.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.uploadBytes(productID, filepath.Base(path), data, multipartForm)
}

func (a *testApp) uploadBytes(productID, name string, data []byte, multipartForm bool) response {
	a.t.Helper()
	if multipartForm {
		body, ct := multipartBody(a.t, "file", name, data)
		return a.do("POST", "/products/"+productID+"/images", body, "Content-Type", ct)
	}
	return a.do("POST", "/products/"+productID+"/images", bytes.NewReader(data), "Content-Type", "image/jpeg")
}

// waitImage polls an image until it is failed, or ready with every file
// made (none pending).
func (a *testApp) waitImage(location string, timeout time.Duration) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := a.do("GET", location, nil)
		if r.Status != http.StatusOK {
			a.t.Fatalf("GET %s: %d %s", location, r.Status, r.Body)
		}
		img := r.json(a.t)
		if s := img["status"]; (s == "ready" && !filesPending(img)) || s == "failed" {
			return img
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("image %s still %v after %s", location, img["status"], timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// filesPending reports whether an image document has variant files
// still pending (its slow formats being made).
func filesPending(img map[string]any) bool {
	variants, _ := img["variants"].([]any)
	for _, v := range variants {
		if v.(map[string]any)["status"] == "pending" {
			return true
		}
	}
	return false
}

// with returns a copy of env with k set to v.
func with(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// fetch downloads a variant by its URL, anonymously, as a browser would:
// vitrine serves /media from its file store or streams it from S3 (whose
// bucket stays private). A URL that is a path is vitrine's own.
func (a *testApp) fetch(rawURL string) response {
	a.t.Helper()
	return a.do("GET", rawURL, nil)
}

// storedFiles counts the files kept for a product.
func (a *testApp) storedFiles(productID string) int {
	a.t.Helper()
	if a.blobs != nil {
		return a.countBlobs(productID)
	}
	n := 0
	// fn never fails the walk: a directory that is missing holds no file.
	_ = filepath.WalkDir(filepath.Join(a.dir, "files", "products", productID), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// exifTags lists the metadata tags exiftool finds in data, beyond the file's
// own structure (File:, ExifTool:, and composite tags).
func exifTags(t testing.TB, data []byte) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("exiftool", "-j", "-G", "-a", f).Output()
	if err != nil {
		t.Fatalf("exiftool: %v", err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(out, &docs); err != nil || len(docs) != 1 {
		t.Fatalf("exiftool output: %v %s", err, out)
	}
	var tags []string
	for k, v := range docs[0] {
		group, tag, _ := strings.Cut(k, ":")
		switch group {
		case "SourceFile", "File", "ExifTool", "Composite", "JFIF", "RIFF", "PNG":
			continue
		case "QuickTime": // AVIF's HEIF boxes: structure, unless they name a picture's own data
			if !slices.Contains(heifMetadata, tag) && (tag != "ColorProfiles" || v == "nclx") {
				continue
			}
		}
		tags = append(tags, k)
	}
	return tags
}

// heifMetadata are HEIF box tags that would carry a picture's own metadata
// rather than its structure (a colour profile other than nclx's code
// points is one too).
var heifMetadata = []string{"Make", "Model", "Software", "Artist", "Author", "Copyright", "Title", "Description",
	"CreateDate", "ModifyDate", "ContentCreateDate", "Keywords", "UserComment", "GPSCoordinates"}

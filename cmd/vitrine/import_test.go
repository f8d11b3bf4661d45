package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestImportEndToEnd(t *testing.T) { testImport(t, nil) }

// photoServer serves a distinct PNG at /photo/N.png, on 127.0.0.1, and
// counts the requests.
func photoServer(t testing.TB) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/photo/%d.png", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(distinctPNG(t, 5000+n))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// waitImport polls an import until it is completed.
func (a *testApp) waitImport(location string, timeout time.Duration, header ...string) map[string]any {
	a.t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		r := a.do("GET", location, nil, header...)
		if r.Status != http.StatusOK {
			a.t.Fatalf("GET %s: %d %s", location, r.Status, r.Body)
		}
		imp := r.json(a.t)
		if imp["status"] == "completed" {
			return imp
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("import %s still %v after %s: %s", location, imp["status"], timeout, r.Body)
		}
	}
}

// productsBySKU lists the products of an owner by SKU.
func (a *testApp) productsBySKU(owner int) map[string]map[string]any {
	a.t.Helper()
	out := map[string]map[string]any{}
	cursor := ""
	for {
		page := a.do("GET", fmt.Sprintf("/products?user_id=%d&limit=100&cursor=%s", owner, cursor), nil).json(a.t)
		for _, it := range page["items"].([]any) {
			p := it.(map[string]any)
			if sku, ok := p["sku"].(string); ok {
				out[sku] = p
			}
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

func (a *testApp) postImport(contentType, body string, header ...string) response {
	a.t.Helper()
	return a.do("POST", "/imports", strings.NewReader(body), append([]string{"Content-Type", contentType}, header...)...)
}

// testImport imports a catalog as NDJSON and as CSV: good rows apply, bad
// rows fail alone with their line, a blocked image host fails its row,
// the same file again changes nothing, and files that cannot be read are
// refused whole, naming their first bad line, with nothing applied.
func testImport(t *testing.T, env map[string]string) {
	srv, hits := photoServer(t)
	app := startApp(t, t.TempDir(), with(env, "VITRINE_FETCH_ALLOW", "127.0.0.1/32", "VITRINE_IMPORT_MAX_ROWS", "20",
		"VITRINE_IMPORT_MAX_BYTES", "65536"))
	photo := func(n int) string { return srv.URL + "/photo/" + strconv.Itoa(n) + ".png" }
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	lines := []string{
		`{"sku":"A-1","name":"Oak chair","price":"49.90","currency":"EUR","user_id":41,"images":[{"url":"` + photo(1) + `","alt":"Front"},{"url":"` + photo(2) + `"}]}`,
		``, // blank lines are skipped
		`{"sku":"A-2","name":"Table","price":"120","user_id":41,"images":[{"url":"` + photo(3) + `"}]}`,
		`{"sku":"A-3","name":"Lamp","price":"minus one","user_id":41}`,
		`{"name":"No SKU","price":"1","user_id":41}`,
		`{"sku":"A-4","name":"Shelf","price":"80","user_id":41,"images":[{"url":"http://127.0.0.2:` + port + `/photo/4.png"}]}`,
		`{"sku":"A-2","name":"Table, last wins","price":"125","user_id":41,"images":[{"url":"` + photo(3) + `","alt":"Top"}]}`,
		`{"sku":"A-5","name":"Bench","price":"60","user_id":41,"colour":"red"}`,
	}
	file := strings.Join(lines, "\n") + "\n"
	r := app.postImport("application/x-ndjson", file)
	if r.Status != http.StatusAccepted || !strings.HasPrefix(r.Header.Get("Location"), "/imports/") {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	if rows := r.json(t)["rows"].(map[string]any); rows["total"] != 7.0 || rows["pending"] != 7.0 {
		t.Errorf("accepted import rows %v, want 7 pending", rows)
	}
	imp := app.waitImport(r.Header.Get("Location"), 2*time.Minute)
	rows := imp["rows"].(map[string]any)
	if rows["total"] != 7.0 || rows["applied"] != 2.0 || rows["failed"] != 5.0 || rows["pending"] != 0.0 || imp["finished_at"] == nil {
		t.Fatalf("import: %v", imp)
	}
	failed := map[float64]string{}
	for _, e := range imp["errors"].([]any) {
		e := e.(map[string]any)
		failed[e["line"].(float64)] = e["code"].(string) + ": " + e["detail"].(string)
	}
	for line, want := range map[float64]string{3: "superseded: line 7", 4: "price", 5: "sku is required", 6: "127.0.0.2", 8: "colour"} {
		if !strings.Contains(failed[line], want) {
			t.Errorf("line %v: error %q, want one naming %q (all: %v)", line, failed[line], want, failed)
		}
	}
	stream := app.do("GET", r.Header.Get("Location")+"/errors", nil)
	if n := bytes.Count(stream.Body, []byte("\n")); stream.Status != http.StatusOK || n != 5 || stream.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("errors stream: %d, %d lines, %q\n%s", stream.Status, n, stream.Header.Get("Content-Type"), stream.Body)
	}

	products := app.productsBySKU(41)
	if len(products) != 2 || products["A-2"]["name"] != "Table, last wins" || products["A-1"]["price"] != "49.90" {
		t.Fatalf("imported products: %v", products)
	}
	// The images arrive; their alt texts are set.
	want := map[string][]string{"A-1": {"Front", ""}, "A-2": {"Top"}}
	for sku, alts := range want {
		p := products[sku]
		imgs := p["images"].([]any)
		if len(imgs) != len(alts) {
			t.Fatalf("%s: %d images, want %d", sku, len(imgs), len(alts))
		}
		for i, it := range imgs {
			img := app.waitImage("/products/"+p["id"].(string)+"/images/"+it.(map[string]any)["id"].(string), time.Minute)
			if img["status"] != "ready" || img["alt"] != alts[i] || img["position"] != float64(i) {
				t.Errorf("%s image %d: %v alt %q position %v; want ready, %q, %d", sku, i, img["status"], img["alt"], img["position"], alts[i], i)
			}
		}
	}
	fetched := hits.Load()
	if fetched != 3 {
		t.Errorf("%d fetches of photos, want 3", fetched)
	}

	// The same file again changes nothing: no version moves, no photo is
	// fetched again.
	app.settle(time.Minute)
	products = app.productsBySKU(41)
	r = app.postImport("application/x-ndjson", file)
	if r.Status != http.StatusAccepted {
		t.Fatalf("import again: %d %s", r.Status, r.Body)
	}
	app.waitImport(r.Header.Get("Location"), time.Minute)
	app.settle(time.Minute)
	for sku, p := range app.productsBySKU(41) {
		if before := products[sku]; p["version"] != before["version"] {
			t.Errorf("%s: version %v after the same import, was %v", sku, p["version"], before["version"])
		}
	}
	if n := hits.Load(); n != fetched {
		t.Errorf("the same import fetched %d photos again", n-fetched)
	}

	// The export reads back in: NDJSON and CSV of the owner's products,
	// imported again, change nothing — an uploaded photo too (exported as
	// its largest variant's URL, on this vitrine's /media).
	up := app.uploadBytes(products["A-1"]["id"].(string), "up.png", distinctPNG(t, 4242), true)
	if up.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", up.Status, up.Body)
	}
	app.waitImage(up.Header.Get("Location"), time.Minute)
	app.settle(time.Minute)
	products = app.productsBySKU(41)
	testExportRoundTrip(t, app, 41, products)

	// CSV: a BOM, quoted commas, quotes and a line break, CRLF and LF
	// mixed; the record's line is where it starts.
	csvFile := "\uFEFFsku,name,description,price,currency,user_id,image_1_url,image_1_alt\r\n" +
		"C-1,\"Sofa, large\",\"A \"\"deep\"\" seat\nwith two lines\",399,EUR,42," + photo(10) + ",Sofa\n" +
		"C-2,Rug,,oops,EUR,42,,\r\n" +
		"C-3,Stool,,15,USD,42,,\n"
	r = app.postImport("text/csv; charset=utf-8", csvFile)
	if r.Status != http.StatusAccepted {
		t.Fatalf("CSV import: %d %s", r.Status, r.Body)
	}
	imp = app.waitImport(r.Header.Get("Location"), time.Minute)
	if rows := imp["rows"].(map[string]any); rows["applied"] != 2.0 || rows["failed"] != 1.0 {
		t.Errorf("CSV import rows %v", rows)
	}
	if errs := imp["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["line"] != 4.0 {
		t.Errorf("CSV errors %v, want one at line 4", errs)
	}
	csvProducts := app.productsBySKU(42)
	if p := csvProducts["C-1"]; p["name"] != "Sofa, large" || p["description"] != "A \"deep\" seat\nwith two lines" || len(p["images"].([]any)) != 1 {
		t.Errorf("C-1: %v", p)
	}

	// Files that cannot be read are refused whole, at their first bad line.
	before := len(app.productsBySKU(43))
	many := strings.Repeat(`{"sku":"M","name":"x","price":"1","user_id":43}`+"\n", 21)
	for _, tt := range []struct {
		name, ct, body string
		status         int
		line           string
	}{
		{"JSON error", "application/x-ndjson", `{"sku":"B-1","name":"ok","price":"1","user_id":43}` + "\n{\"sku\":\n{}\n", 400, "line 2"},
		{"not an object", "application/x-ndjson", `{"sku":"B-1","name":"ok","price":"1","user_id":43}` + "\n[1,2]\n", 400, "line 2"},
		{"two values on a line", "application/x-ndjson", `{"sku":"B-1","name":"ok","price":"1","user_id":43} {}` + "\n", 400, "line 1"},
		{"not UTF-8", "application/x-ndjson", `{"sku":"B-1","name":"ok","price":"1","user_id":43}` + "\n{\"name\":\"\xff\xfe\"}\n", 400, "line 2"},
		{"CSV column count", "text/csv", "sku,name,price,user_id\nB-1,ok,1,43\nB-2,ok,1\n", 400, "line 3"},
		{"CSV unknown column", "text/csv", "sku,name,price,user_id,colour\nB-1,ok,1,43,red\n", 400, "line 1"},
		{"CSV bare quote", "text/csv", "sku,name,price,user_id\nB-1,o\"k,1,43\n", 400, "line 2"},
		{"CSV not UTF-8", "text/csv", "sku,name,price,user_id\nB-1,\xff,1,43\n", 400, "line 2"},
		{"CSV empty", "text/csv", "", 400, "line 1"},
		{"too many rows", "application/x-ndjson", many, 413, "20"},
		{"too many bytes", "application/x-ndjson", strings.Repeat(" ", 70_000), 413, "65536"},
		{"another type", "application/json", `[]`, 415, "x-ndjson"},
	} {
		pr := expectProblem(t, app.postImport(tt.ct, tt.body), tt.status, tt.name)
		if d, _ := pr["detail"].(string); !strings.Contains(d, tt.line) {
			t.Errorf("%s: detail %q does not name %q", tt.name, d, tt.line)
		}
	}
	// A body without a length is cut at the limit too.
	chunked := io.MultiReader(strings.NewReader(`{"sku":"B-9","name":"ok","price":"1","user_id":43}`+"\n"), strings.NewReader(strings.Repeat("\n", 80_000)))
	r = app.do("POST", "/imports", io.NopCloser(chunked), "Content-Type", "application/x-ndjson")
	expectProblem(t, r, 413, "a chunked body over the limit")
	if after := len(app.productsBySKU(43)); after != before {
		t.Errorf("refused files applied %d products", after-before)
	}
	expectProblem(t, app.do("GET", "/imports/01937a4e-7b8c-7def-8a12-3456789abcde", nil), 404, "an unknown import")
	expectProblem(t, app.do("GET", "/imports/x", nil), 404, "a malformed import id")
}

// TestImportOwners: an import by a key bound to an owner touches only that
// owner's products, and only keys that may write them see it.
func TestImportOwners(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv())
	_, own := app.makeKey("write", 7)
	_, other := app.makeKey("write", 8)
	_, read := app.makeKey("read", 0)
	file := `{"sku":"O-1","name":"Mine","price":"1"}` + "\n" + `{"sku":"O-2","name":"Theirs","price":"1","user_id":8}` + "\n"
	expectProblem(t, app.postImport("application/x-ndjson", file, bearer(read)...), 403, "import with a read key")
	expectProblem(t, app.postImport("application/x-ndjson", file), 401, "import without a key")
	r := app.postImport("application/x-ndjson", file, bearer(own)...)
	if r.Status != http.StatusAccepted {
		t.Fatalf("import: %d %s", r.Status, r.Body)
	}
	imp := app.waitImport(r.Header.Get("Location"), time.Minute, bearer(own)...)
	errs := imp["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["line"] != 2.0 || errs[0].(map[string]any)["code"] != "forbidden" {
		t.Errorf("errors %v, want line 2 forbidden", errs)
	}
	if p := app.productsBySKU(7); p["O-1"] == nil {
		t.Errorf("the owner's row was not applied: %v", p)
	}
	if p := app.productsBySKU(8); len(p) != 0 {
		t.Errorf("the other owner got products: %v", p)
	}
	expectProblem(t, app.do("GET", r.Header.Get("Location"), nil, bearer(other)...), 404, "another owner's import")
	expectProblem(t, app.do("GET", r.Header.Get("Location")+"/errors", nil, bearer(other)...), 404, "another owner's import errors")
	// An export by an owner's key holds its products only.
	lines := readNDJSON(t, app.do("GET", "/products/export", nil, bearer(own)...).Body)
	if len(lines) != 1 || lines[0]["sku"] != "O-1" {
		t.Errorf("the owner's export: %v", lines)
	}
	expectProblem(t, app.do("GET", "/products/export?user_id=8", nil, bearer(own)...), 403, "export another owner's products")
}

// testExportRoundTrip exports an owner's products as NDJSON and as CSV,
// checks both against the products, and imports each back: nothing
// changes.
func testExportRoundTrip(t *testing.T, app *testApp, owner int, products map[string]map[string]any) {
	t.Helper()
	r := app.do("GET", fmt.Sprintf("/products/export?user_id=%d", owner), nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	lines := readNDJSON(t, r.Body)
	if len(lines) != len(products) {
		t.Fatalf("export has %d products, want %d", len(lines), len(products))
	}
	for _, l := range lines {
		p := products[l["sku"].(string)]
		if p == nil || l["id"] != p["id"] || l["name"] != p["name"] || l["price"] != p["price"] ||
			len(l["images"].([]any)) != len(p["images"].([]any)) {
			t.Errorf("exported %v, product %v", l, p)
		}
	}
	csvOut := app.do("GET", fmt.Sprintf("/products/export?user_id=%d", owner), nil, "Accept", "text/csv")
	if csvOut.Status != http.StatusOK || !strings.HasPrefix(csvOut.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: %d %q", csvOut.Status, csvOut.Header.Get("Content-Type"))
	}
	records, err := csv.NewReader(bytes.NewReader(csvOut.Body)).ReadAll()
	if err != nil || len(records) != len(products)+1 || !slices.Contains(records[0], "image_3_url") {
		t.Fatalf("CSV export: %v, %d records, header %v", err, len(records), records[0])
	}
	for _, again := range []struct{ ct, body string }{{"application/x-ndjson", string(r.Body)}, {"text/csv", string(csvOut.Body)}} {
		r := app.postImport(again.ct, again.body)
		if r.Status != http.StatusAccepted {
			t.Fatalf("import the %s export: %d %s", again.ct, r.Status, r.Body)
		}
		if imp := app.waitImport(r.Header.Get("Location"), time.Minute); imp["rows"].(map[string]any)["failed"] != 0.0 {
			t.Errorf("the %s export imported with errors: %v", again.ct, imp["errors"])
		}
		app.settle(time.Minute)
		for sku, p := range app.productsBySKU(owner) {
			if p["version"] != products[sku]["version"] {
				t.Errorf("%s: version %v after importing its %s export, was %v", sku, p["version"], again.ct, products[sku]["version"])
			}
		}
	}
	expectProblem(t, app.do("GET", "/products/export", nil, "Accept", "image/png"), 406, "export as PNG")
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		r := app.do(method, "/products/export", nil)
		expectProblem(t, r, 405, method+" /products/export")
		if r.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s /products/export: Allow %q", method, r.Header.Get("Allow"))
		}
	}
	expectProblem(t, app.do("GET", "/products/export?limit=5", nil), 400, "export with a limit")
}

// readNDJSON decodes the lines of an NDJSON body.
func readNDJSON(t testing.TB, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("not NDJSON: %v: %s", err, sc.Text())
		}
		out = append(out, v)
	}
	return out
}

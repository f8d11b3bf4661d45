package rest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
)

// stubProducts answers from fixed values; the real service is covered end
// to end in cmd/vitrine.
type stubProducts struct {
	filter catalog.ProductFilter
	page   []actors.Product // what List returns
	panic  bool
	image  *catalog.Image // what Image returns (nil: not found)
}

func (s *stubProducts) Get(_ context.Context, id string) (actors.Product, error) {
	if s.panic {
		panic("boom")
	}
	if id != "01937a4e-7b8c-7def-8a12-3456789abcde" {
		return actors.Product{}, catalog.NotFound("product %q does not exist", id)
	}
	return actors.Product{ID: id, ETag: `"x.1"`, Body: []byte(`{"id":"` + id + `"}`)}, nil
}
func (s *stubProducts) Create(context.Context, []byte, int64) (actors.Product, error) {
	return actors.Product{}, catalog.Unavailable("the database", nil)
}
func (s *stubProducts) Replace(context.Context, string, []byte, string, int64) (actors.Product, error) {
	return actors.Product{}, nil
}
func (s *stubProducts) Patch(context.Context, string, []byte, string, int64) (actors.Product, error) {
	return actors.Product{}, nil
}
func (s *stubProducts) Delete(context.Context, string, string, int64) error { return nil }
func (s *stubProducts) List(_ context.Context, f catalog.ProductFilter) ([]actors.Product, error) {
	s.filter = f
	return s.page, nil
}
func (s *stubProducts) Image(_ context.Context, productID, imageID string) (*catalog.Image, []byte, error) {
	if s.image == nil || s.image.ProductID != productID || s.image.ID != imageID {
		return nil, nil, catalog.NotFound("no")
	}
	img := *s.image
	return &img, nil, nil
}

func serve(t *testing.T, s *Server) *http.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}}
}

func TestRequestLogAndID(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	products := &stubProducts{}
	c := serve(t, New(Config{}, Deps{Products: products}, zap.New(core)))

	req, _ := http.NewRequest("GET", "http://x/products/01937a4e-7b8c-7def-8a12-3456789abcde", http.NoBody)
	req.Header.Set("X-Request-ID", "abc-123")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Request-ID") != "abc-123" {
		t.Errorf("X-Request-ID = %q, want the client's", res.Header.Get("X-Request-ID"))
	}
	req.Header.Set("X-Request-ID", "bad id with spaces")
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if id := res.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Errorf("generated X-Request-ID = %q", id)
	}

	lines := logs.FilterMessage("request").All()
	if len(lines) != 2 {
		t.Fatalf("%d request log lines, want one per request", len(lines))
	}
	f := lines[0].ContextMap()
	if f["method"] != "GET" || f["route"] != "/products/{id}" || f["status"] != int64(200) || f["request_id"] != "abc-123" || f["bytes"] == nil || f["latency"] == nil {
		t.Errorf("log fields: %v", f)
	}
}

func TestProblemsFromErrors(t *testing.T) {
	products := &stubProducts{}
	c := serve(t, New(Config{AnonymousWrites: true}, Deps{Products: products}, zap.NewNop()))

	res, err := c.Post("http://x/products", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var p problem
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatalf("decode the problem: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || p.Code != "unavailable" || p.Type != "urn:vitrine:problem:unavailable" {
		t.Errorf("unavailable: %d %+v retry-after %q", res.StatusCode, p, res.Header.Get("Retry-After"))
	}

	products.panic = true
	res, err = c.Get("http://x/products/01937a4e-7b8c-7def-8a12-3456789abcde")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatalf("decode the problem: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" || strings.Contains(p.Detail, "boom") {
		t.Errorf("panic: %d %+v", res.StatusCode, p)
	}
}

func TestParseFilter(t *testing.T) {
	var args fasthttp.Args
	args.Parse("user_id=5&min_price=1.5&max_price=20&q=%20Lamp%20&limit=7")
	f, err := parseFilter(&args)
	if err != nil {
		t.Fatal(err)
	}
	if f.UserID != 5 || *f.MinPrice != 150 || *f.MaxPrice != 2000 || f.Query != "lamp" || f.Limit != 7 {
		t.Errorf("filter = %+v", f)
	}
	for _, q := range []string{"limit=0", "limit=101", "user_id=0", "min_price=abc", "cursor=!!", "foo=1", "q=a&q=b"} {
		var a fasthttp.Args
		a.Parse(q)
		if _, err := parseFilter(&a); catalog.ErrorKind(err) != catalog.KindInvalid {
			t.Errorf("%s: err = %v, want invalid", q, err)
		}
	}
}

// A list page is the products' rendered bodies as they are, and a cursor
// when the store found one more than the limit.
func TestListPage(t *testing.T) {
	products := &stubProducts{}
	c := serve(t, New(Config{MaxUploadBytes: 1 << 20, RequestTimeout: time.Second}, Deps{Products: products}, zap.NewNop()))
	get := func(query string) (int, string) {
		t.Helper()
		res, err := c.Get("http://x/products" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if st, body := get(""); st != 200 || body != `{"items":[],"next_cursor":null}` || products.filter.Limit != 21 {
		t.Errorf("empty page: %d %s (limit asked %d)", st, body, products.filter.Limit)
	}
	id := func(n int) string { return fmt.Sprintf("01937a4e-7b8c-7def-8a12-%012d", n) }
	products.page = []actors.Product{{ID: id(3), Body: []byte(`{"id":"` + id(3) + `", "name": "a \"b\""}`)}, {ID: id(2), Body: []byte(`{"id":"` + id(2) + `"}`)}, {ID: id(1), Body: []byte(`{}`)}}
	st, body := get("?limit=2")
	want := `{"items":[{"id":"` + id(3) + `", "name": "a \"b\""},{"id":"` + id(2) + `"}],"next_cursor":"` + id(2) + `"}`
	if st != 200 || body != want || products.filter.Limit != 3 {
		t.Errorf("page:\n got %d %s\nwant %s", st, body, want)
	}
	var page struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page.Items) != 2 || page.NextCursor == nil {
		t.Errorf("the page is not the JSON it should be: %+v %v", page, err)
	}
	products.page = products.page[:2]
	if _, body := get("?limit=2"); !strings.HasSuffix(body, `"}],"next_cursor":null}`) {
		t.Errorf("last page: %s", body)
	}
}

var requestIDField = regexp.MustCompile(`"request_id":"[^"]*"`)

// TestHotReadAnswersAsTheRouter sends the same requests to a server with
// the hot read's shortcut (dispatch) and to one without it: every answer
// must be the same, the ones the shortcut takes and the ones it leaves to
// the router alike.
func TestHotReadAnswersAsTheRouter(t *testing.T) {
	const id = "01937a4e-7b8c-7def-8a12-3456789abcde"
	answer := func(s *Server, method, uri string, header map[string]string) (int, string, string) {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(uri)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
		s.srv.Handler(&ctx)
		var h []string
		for k, v := range ctx.Response.Header.All() {
			if string(k) != "X-Request-Id" && string(k) != "X-Request-ID" {
				h = append(h, string(k)+": "+string(v))
			}
		}
		// Each server numbers its requests: the ids differ by design.
		body := requestIDField.ReplaceAllString(string(ctx.Response.Body()), `"request_id":"…"`)
		return ctx.Response.StatusCode(), strings.Join(h, "\n"), body
	}
	hot := New(Config{}, Deps{Products: &stubProducts{}}, zap.NewNop())
	if hot.hotGet == nil {
		t.Fatal("no hot route registered")
	}
	routed := New(Config{}, Deps{Products: &stubProducts{}}, zap.NewNop())
	routed.hotGet = nil
	for _, c := range []struct {
		method, uri string
		header      map[string]string
	}{
		{"GET", "/products/" + id, nil},
		{"GET", "/products/" + id, map[string]string{"If-None-Match": `"x.1"`}},
		{"GET", "/products/" + id, map[string]string{"Origin": "https://shop.example"}},
		{"GET", "/products/" + id + "?fields=x", nil},
		{"HEAD", "/products/" + id, nil},
		{"GET", "/products/" + strings.ToUpper(id), nil},
		{"GET", "/products/%30" + id[1:], nil},
		{"GET", "/products/" + id + "/", nil},
		{"GET", "/products//" + id[1:], nil},
		{"GET", "/products/./" + id[2:], nil},
		{"GET", "/products/01937a4e-7b8c-7def-8a12-3456789abcdf", nil},
		{"GET", "/products/01937a4e_7b8c_7def_8a12_3456789abcde", nil},
		{"GET", "/products/export", nil},
		{"GET", "/products/" + id + "/images", nil},
		{"POST", "/products/" + id, nil},
	} {
		hs, hh, hb := answer(hot, c.method, c.uri, c.header)
		rs, rh, rb := answer(routed, c.method, c.uri, c.header)
		if hs != rs || hh != rh || hb != rb {
			t.Errorf("%s %s %v:\nshortcut %d\n%s\n%s\nrouter %d\n%s\n%s", c.method, c.uri, c.header, hs, hh, hb, rs, rh, rb)
		}
	}
}

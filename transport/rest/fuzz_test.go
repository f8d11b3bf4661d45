package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"go.uber.org/zap"
)

// Fuzz targets of what the front door parses from a client before anything
// else sees it. Seeds: testdata/fuzz/<target>.

// FuzzCursor sends any cursor to GET /products through the front door: a
// cursor the server issued (a page's next_cursor, a product id) reaches
// the store as the page's start, and anything else is a 400 naming the
// cursor, never a 5xx and never a page started elsewhere.
func FuzzCursor(f *testing.F) {
	f.Add("01937a4e-7b8c-7def-8a12-3456789abcde")
	f.Add("01937A4E-7B8C-7DEF-8A12-3456789ABCDE")
	f.Add("MDE5MzdhNGUtN2I4Yy03ZGVmLThhMTItMzQ1Njc4OWFiY2Rl")
	f.Add("")
	f.Add("01937a4e-7b8c-7def-8a12-3456789abcde\x00")
	f.Add("01937a4e-7b8c-7def-8a12-3456789abcde&limit=1")
	products := &stubProducts{page: []actors.Product{{ID: "01937a4e-7b8c-7def-8a12-3456789abcdf", ETag: `"y.1"`, Body: []byte(`{"id":"01937a4e-7b8c-7def-8a12-3456789abcdf"}`)}}}
	s := New(Config{}, Deps{Products: products}, zap.NewNop())
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	f.Fuzz(func(t *testing.T, v string) {
		var args fasthttp.Args
		args.Set("cursor", v)
		var req fasthttp.Request
		req.SetRequestURI("/products?" + args.String())
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, remote, nil)
		products.filter = catalog.ProductFilter{}
		s.srv.Handler(&ctx)
		status, body := ctx.Response.StatusCode(), ctx.Response.Body()
		switch {
		case v == "" || catalog.ValidID(v):
			if status != http.StatusOK || products.filter.After != v {
				t.Fatalf("cursor %q: %d, the store was asked for the page after %q: %s", v, status, products.filter.After, body)
			}
			// The page's next cursor leads on from its last product.
			var page struct {
				NextCursor string `json:"next_cursor"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatalf("cursor %q: page %s: %v", v, body, err)
			}
			if page.NextCursor != "" && page.NextCursor != encodeCursor(products.page[0].ID) {
				t.Fatalf("next_cursor %q, want the last product's", page.NextCursor)
			}
		default:
			if status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"field":"cursor"`)) {
				t.Fatalf("cursor %q: %d %s, want a 400 naming the cursor", v, status, body)
			}
			if products.filter.After != "" {
				t.Fatalf("cursor %q reached the store as %q", v, products.filter.After)
			}
		}
	})
}

// FuzzMultipart: parsing an upload's multipart body never panics, returns
// at most limit bytes, and every refusal is a client error.
func FuzzMultipart(f *testing.F) {
	const boundary = "XyZ"
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n\x1a\nabc\r\n--XyZ--\r\n"))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XyZ--\r\n"))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\xff\xd8\xff\xe0\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\xff\xd8\xff\r\n--XyZ--\r\n"))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nGIF89a"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		const limit = 1 << 10
		data, err := readMultipartFile(bytes.NewReader(body), boundary, limit, make([]byte, 0, 64))
		if err != nil {
			var e *catalog.Error
			if !errors.As(err, &e) || (e.Kind != catalog.KindInvalid && e.Kind != catalog.KindTooLarge && e.Kind != catalog.KindUnsupportedMedia) {
				t.Fatalf("refusal %v is not a client error", err)
			}
			return
		}
		if len(data) == 0 || len(data) > limit {
			t.Fatalf("accepted %d bytes (limit %d)", len(data), limit)
		}
	})
}

// FuzzIdempotencyKey: a key is accepted exactly when it is 1 to 255
// printable ASCII characters, and taken as sent.
func FuzzIdempotencyKey(f *testing.F) {
	f.Add([]byte(`"8e03978e-40d5-43e8-bc93-6894a57f9324"`))
	f.Add([]byte("order-42"))
	f.Add([]byte(""))
	f.Add([]byte("caf\xc3\xa9"))
	f.Add([]byte(strings.Repeat("k", 256)))
	f.Fuzz(func(t *testing.T, h []byte) {
		key, err := parseIdempotencyKey(h)
		trimmed := strings.TrimSpace(string(h))
		printable := trimmed != "" && len(trimmed) <= MaxIdempotencyKeyLength
		for i := 0; i < len(trimmed); i++ {
			printable = printable && trimmed[i] >= 0x20 && trimmed[i] <= 0x7e
		}
		if (err == nil) != printable {
			t.Fatalf("parseIdempotencyKey(%q) = %q, %v; printable %v", h, key, err, printable)
		}
		if err == nil && key != trimmed {
			t.Fatalf("key %q is not the value as sent %q", key, trimmed)
		}
	})
}

// FuzzAuthorization: the Bearer parser never panics and accepts only a
// token68 after the scheme, which it returns unchanged.
func FuzzAuthorization(f *testing.F) {
	f.Add([]byte("Bearer vtr_abcdefghijklmnopqrstuvwxyz234567"))
	f.Add([]byte("bearer   abc=="))
	f.Add([]byte("Basic dXNlcjpwYXNz"))
	f.Add([]byte("Bearer "))
	f.Add([]byte("Bearer a b"))
	f.Fuzz(func(t *testing.T, h []byte) {
		token, ok := bearerToken(h)
		if !ok {
			return
		}
		if token == "" || len(token) > 512 || strings.ContainsAny(token, " \t\r\n,\"") {
			t.Fatalf("bearerToken(%q) accepted %q", h, token)
		}
		if !strings.HasSuffix(string(h), token) || !strings.EqualFold(string(h[:6]), "Bearer") {
			t.Fatalf("bearerToken(%q) = %q: not the header's token", h, token)
		}
	})
}

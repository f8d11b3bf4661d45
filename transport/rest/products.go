package rest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
)

// productCacheControl makes clients and caches revalidate a product every
// time (its ETag makes that cheap): a product changes without notice.
const productCacheControl = "no-cache"

func writeProduct(ctx *fasthttp.RequestCtx, status int, etag string, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("ETag", etag)
	// Both constant and canonical: set without normalizing or copying.
	ctx.Response.Header.SetCanonical([]byte("Cache-Control"), []byte(productCacheControl))
	ctx.SetBody(body)
}

// writeWriteError answers a failed write; a 412 carries the current ETag.
func writeWriteError(ctx *fasthttp.RequestCtx, err error) {
	var stale *actors.StaleError
	if errors.As(err, &stale) {
		ctx.Response.Header.Set("ETag", stale.ETag)
	}
	writeError(ctx, err)
}

// jsonBody returns the request body when it is a JSON document within
// limits. A body over the limit is refused from its Content-Length (or
// after limit+1 bytes of a chunked one), never read whole.
func (s *Server) jsonBody(ctx *fasthttp.RequestCtx, types ...string) ([]byte, error) {
	if ct := string(ctx.Request.Header.ContentType()); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		ok := false
		for _, t := range types {
			ok = ok || (err == nil && mt == t)
		}
		if !ok {
			return nil, catalog.Errorf(catalog.KindUnsupportedMedia, "unsupported_content_type",
				"Content-Type must be %s, got %q", strings.Join(types, " or "), ct)
		}
	}
	limit := s.cfg.MaxJSONBytes
	if n := ctx.Request.Header.ContentLength(); n > limit {
		s.lingerClose(ctx)
		return nil, catalog.Errorf(catalog.KindTooLarge, "body_too_large", "the JSON body is %d bytes, over the limit of %d", n, limit)
	}
	body, err := io.ReadAll(io.LimitReader(ctx.RequestBodyStream(), int64(limit)+1))
	if err != nil {
		return nil, readError(err)
	}
	if len(body) > limit {
		return nil, catalog.Errorf(catalog.KindTooLarge, "body_too_large", "the JSON body is over the limit of %d bytes", limit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, catalog.Errorf(catalog.KindInvalid, "malformed_json", "the body is empty; a JSON object is required")
	}
	return body, nil
}

func (s *Server) createProduct(ctx *fasthttp.RequestCtx, who principal) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.idempotent(ctx, who, func() []byte { return body }, func() {
		c, cancel := s.reqCtx(ctx)
		defer cancel()
		p, err := s.products.Create(c, body, who.owner)
		if err != nil {
			writeError(ctx, err)
			return
		}
		ctx.Response.Header.Set("Location", "/products/"+p.ID)
		writeProduct(ctx, http.StatusCreated, p.ETag, p.Body)
	})
}

func (s *Server) getProduct(ctx *fasthttp.RequestCtx, _ principal) {
	// The hot path: no per-request context or timer; a cache miss is
	// bounded by the service's own timeout.
	id := exchangeOf(ctx).hotID
	if id == "" {
		id = pathID(ctx, "id")
	}
	p, err := s.products.Get(traceCtx(ctx), id)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if p.Source != "" {
		// Where the answer came from: cache, grain (on this node),
		// remote-grain (an actor hop to another node) or store.
		ctx.Response.Header.SetCanonical([]byte("X-Vitrine-Source"), []byte(p.Source))
	}
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && noneMatchHits(string(inm), p.ETag) {
		// A 304 carries what the 200 would have said about caching.
		ctx.Response.Header.Set("ETag", p.ETag)
		ctx.Response.Header.Set("Cache-Control", productCacheControl)
		ctx.SetStatusCode(http.StatusNotModified)
		return
	}
	writeProduct(ctx, http.StatusOK, p.ETag, p.Body)
}

// noneMatchHits implements If-None-Match with weak comparison.
func noneMatchHits(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

func (s *Server) replaceProduct(ctx *fasthttp.RequestCtx, who principal) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	p, err := s.products.Replace(c, pathID(ctx, "id"), body, string(ctx.Request.Header.Peek("If-Match")), who.owner)
	if err != nil {
		writeWriteError(ctx, err)
		return
	}
	writeProduct(ctx, http.StatusOK, p.ETag, p.Body)
}

func (s *Server) patchProduct(ctx *fasthttp.RequestCtx, who principal) {
	body, err := s.jsonBody(ctx, "application/merge-patch+json", "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	p, err := s.products.Patch(c, pathID(ctx, "id"), body, string(ctx.Request.Header.Peek("If-Match")), who.owner)
	if err != nil {
		writeWriteError(ctx, err)
		return
	}
	writeProduct(ctx, http.StatusOK, p.ETag, p.Body)
}

func (s *Server) deleteProduct(ctx *fasthttp.RequestCtx, who principal) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	if err := s.products.Delete(c, pathID(ctx, "id"), string(ctx.Request.Header.Peek("If-Match")), who.owner); err != nil {
		writeWriteError(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

// listParams are the query parameters GET /products accepts.
var listParams = map[string]bool{"user_id": true, "min_price": true, "max_price": true, "q": true, "limit": true, "cursor": true}

// MaxListLimit is the largest page.
const MaxListLimit = 100

func parseFilter(args *fasthttp.Args) (catalog.ProductFilter, error) {
	f := catalog.ProductFilter{Limit: 20}
	var errs []catalog.FieldError
	bad := func(field, format string, a ...any) {
		errs = append(errs, catalog.FieldError{Field: field, Detail: fmt.Sprintf(format, a...)})
	}
	seen := map[string]bool{}
	for k, v := range args.All() {
		key, val := string(k), string(v)
		if !listParams[key] {
			bad(key, "unknown query parameter; accepted: user_id, min_price, max_price, q, limit, cursor")
			continue
		}
		if seen[key] {
			bad(key, "given more than once")
			continue
		}
		seen[key] = true
		switch key {
		case "user_id":
			n, ok := catalog.IntegralInt64(val)
			if !ok || n <= 0 {
				bad(key, "must be a positive integer, got %q", val)
				continue
			}
			f.UserID = n
		case "min_price", "max_price":
			p, err := catalog.ParsePrice(val)
			if err != nil {
				bad(key, "%v", err)
				continue
			}
			if key == "min_price" {
				f.MinPrice = &p
			} else {
				f.MaxPrice = &p
			}
		case "q":
			if n := len([]rune(val)); n > catalog.MaxNameLength {
				bad(key, "must be at most %d characters, got %d", catalog.MaxNameLength, n)
				continue
			}
			f.Query = strings.ToLower(strings.TrimSpace(val))
		case "limit":
			n, ok := catalog.IntegralInt64(val)
			if !ok || n < 1 || n > MaxListLimit {
				bad(key, "must be an integer from 1 to %d, got %q", MaxListLimit, val)
				continue
			}
			f.Limit = int(n)
		case "cursor":
			if val == "" { // an empty cursor asks for the first page
				continue
			}
			after, ok := decodeCursor(val)
			if !ok {
				bad(key, "is not a cursor this server issued; use next_cursor from the previous page")
				continue
			}
			f.After = after
		}
	}
	if len(errs) > 0 {
		parts := make([]string, len(errs))
		for i, e := range errs {
			parts[i] = e.Field + " " + e.Detail
		}
		return f, &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_query", Detail: strings.Join(parts, "; "), Fields: errs}
	}
	return f, nil
}

// A cursor is the id of the last product of a page: pages are walked by
// id (newest first), so the next page starts below it. Clients treat it as
// opaque and send back next_cursor as given.
func encodeCursor(id string) string { return id }

func decodeCursor(v string) (string, bool) {
	return v, catalog.ValidID(v)
}

func (s *Server) listProducts(ctx *fasthttp.RequestCtx, _ principal) {
	f, err := parseFilter(ctx.QueryArgs())
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Cache-Control", productCacheControl)
	if f.MinPrice != nil && f.MaxPrice != nil && *f.MinPrice > *f.MaxPrice {
		writeListPage(ctx, nil, "") // an empty range: nothing to find
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	limit := f.Limit
	f.Limit++ // one more tells whether another page follows
	items, err := s.products.List(c, f)
	if err != nil {
		writeError(ctx, err)
		return
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(items[limit-1].ID)
	}
	writeListPage(ctx, items, next)
}

// writeListPage writes {"items":[…],"next_cursor":…} from the products'
// rendered bodies, without decoding or encoding them again, into the
// response's own (pooled) body buffer.
func writeListPage(ctx *fasthttp.RequestCtx, items []actors.Product, next string) {
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	r := &ctx.Response
	r.ResetBody()
	r.AppendBodyString(`{"items":[`)
	for i, p := range items {
		if i > 0 {
			r.AppendBodyString(",")
		}
		r.AppendBody(p.Body)
	}
	r.AppendBodyString(`],"next_cursor":`)
	if next == "" {
		r.AppendBodyString("null}")
		return
	}
	r.AppendBodyString(`"` + next + `"}`) // a uuid: nothing to escape
}

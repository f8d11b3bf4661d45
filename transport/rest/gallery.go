package rest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
)

// Gallery manages a product's images as a gallery. Writes take If-Match on
// the product's ETag ("" for none) and the owner the caller's key is bound
// to (0: any).
type Gallery interface {
	// DeleteImage removes an image and its files; it returns the
	// product's new ETag.
	DeleteImage(ctx context.Context, productID, imageID, ifMatch string, owner int64) (string, error)
	// PatchImage applies a merge patch of alt and position; it returns the
	// image and the product's new ETag.
	PatchImage(ctx context.Context, productID, imageID string, patch []byte, ifMatch string, owner int64) ([]byte, string, error)
	// OrderImages puts the gallery in the order of {"image_ids": [...]}.
	OrderImages(ctx context.Context, productID string, body []byte, ifMatch string, owner int64) (actors.Product, error)
}

// imageListParams are the query parameters GET /products/{id}/images accepts.
var imageListParams = map[string]bool{"limit": true, "cursor": true}

// An image list's cursor is the position the next page starts at: pages
// walk the gallery in order. Clients treat it as opaque.
func encodeImageCursor(position int) string { return "p" + strconv.Itoa(position) }

func decodeImageCursor(v string) (int, bool) {
	digits, ok := strings.CutPrefix(v, "p")
	if !ok || digits == "" || len(digits) > 4 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// listImages answers a page of a product's images in gallery order, as
// {"items": [...], "next_cursor": …}, with the product's ETag.
func (s *Server) listImages(ctx *fasthttp.RequestCtx, _ principal) {
	limit, from, err := parseImagePage(ctx.QueryArgs())
	if err != nil {
		writeError(ctx, err)
		return
	}
	p, err := s.products.Get(traceCtx(ctx), pathID(ctx, "id"))
	if err != nil {
		writeError(ctx, err)
		return
	}
	var doc struct {
		Images []json.RawMessage `json:"images"`
	}
	if err := json.Unmarshal(p.Body, &doc); err != nil {
		writeError(ctx, fmt.Errorf("decode product %s: %w", p.ID, err))
		return
	}
	items := doc.Images[min(from, len(doc.Images)):]
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeImageCursor(from + limit)
	}
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("ETag", p.ETag)
	ctx.Response.Header.Set("Cache-Control", productCacheControl)
	r := &ctx.Response
	r.ResetBody()
	r.AppendBodyString(`{"items":[`)
	for i, img := range items {
		if i > 0 {
			r.AppendBodyString(",")
		}
		r.AppendBody(img)
	}
	r.AppendBodyString(`],"next_cursor":`)
	if next == "" {
		r.AppendBodyString("null}")
		return
	}
	r.AppendBodyString(`"` + next + `"}`) // p and digits: nothing to escape
}

func parseImagePage(args *fasthttp.Args) (limit, from int, err error) {
	limit = 20
	var errs []catalog.FieldError
	bad := func(field, format string, a ...any) {
		errs = append(errs, catalog.FieldError{Field: field, Detail: fmt.Sprintf(format, a...)})
	}
	seen := map[string]bool{}
	for k, v := range args.All() {
		key, val := string(k), string(v)
		switch {
		case !imageListParams[key]:
			bad(key, "unknown query parameter; accepted: limit, cursor")
		case seen[key]:
			bad(key, "given more than once")
		case key == "limit":
			n, ok := catalog.IntegralInt64(val)
			if !ok || n < 1 || n > MaxListLimit {
				bad(key, "must be an integer from 1 to %d, got %q", MaxListLimit, val)
				break
			}
			limit = int(n)
		case key == "cursor" && val != "": // an empty cursor asks for the first page
			n, ok := decodeImageCursor(val)
			if !ok {
				bad(key, "is not a cursor this server issued; use next_cursor from the previous page")
				break
			}
			from = n
		}
		seen[key] = true
	}
	if len(errs) > 0 {
		parts := make([]string, len(errs))
		for i, e := range errs {
			parts[i] = e.Field + " " + e.Detail
		}
		return 0, 0, &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_query", Detail: strings.Join(parts, "; "), Fields: errs}
	}
	return limit, from, nil
}

func (s *Server) deleteImage(ctx *fasthttp.RequestCtx, who principal) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	etag, err := s.deps.Gallery.DeleteImage(c, pathID(ctx, "id"), pathID(ctx, "image_id"), string(ctx.Request.Header.Peek("If-Match")), who.owner)
	if err != nil {
		writeWriteError(ctx, err)
		return
	}
	if etag != "" {
		ctx.Response.Header.Set("ETag", etag) // the product's, after the delete
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) patchImage(ctx *fasthttp.RequestCtx, who principal) {
	body, err := s.jsonBody(ctx, "application/merge-patch+json", "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	out, etag, err := s.deps.Gallery.PatchImage(c, pathID(ctx, "id"), pathID(ctx, "image_id"), body, string(ctx.Request.Header.Peek("If-Match")), who.owner)
	if err != nil {
		writeWriteError(ctx, err)
		return
	}
	ctx.Response.Header.Set("ETag", etag) // the product's
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

func (s *Server) orderImages(ctx *fasthttp.RequestCtx, who principal) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	p, err := s.deps.Gallery.OrderImages(c, pathID(ctx, "id"), body, string(ctx.Request.Header.Peek("If-Match")), who.owner)
	if err != nil {
		writeWriteError(ctx, err)
		return
	}
	writeProduct(ctx, http.StatusOK, p.ETag, p.Body)
}

package rest

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Renders makes files on demand: once for the cluster, through the grain
// of the image's product.
type Renders interface {
	Render(ctx context.Context, productID, imageID string, r catalog.Render) (catalog.RenderResult, error)
}

// cacheRendered is the Cache-Control of an on-demand URL: what it names
// changes when the image's recipe or focal point does, so a day rather
// than a year (the stored file's own URL, in Content-Location, is
// immutable).
const cacheRendered = "public, max-age=86400"

// onDemandPath reports whether a /media key is an on-demand URL:
// products/{id}/{image}/w{width}[.{format}] or
// products/{id}/{image}/ar{x}x{y}/w{width}[.{format}].
func onDemandPath(key string) bool {
	parts := strings.Split(key, "/")
	if len(parts) < 4 || parts[0] != "products" {
		return false
	}
	switch len(parts) {
	case 4:
		return strings.HasPrefix(parts[3], "w")
	case 5:
		return strings.HasPrefix(parts[3], "ar")
	}
	return false
}

// parseOnDemand reads an on-demand URL's key (onDemandPath): the product,
// the image and the render asked for, whose Format is "" when the URL
// names none (negotiated). Errors are KindInvalid, with what is wrong.
func parseOnDemand(key string) (productID, imageID string, r catalog.Render, err error) {
	parts := strings.Split(key, "/")
	productID, imageID = parts[1], parts[2]
	last := parts[len(parts)-1]
	if len(parts) == 5 {
		x, y, ok := strings.Cut(strings.TrimPrefix(parts[3], "ar"), "x")
		ax, errX := smallNumber(x)
		ay, errY := smallNumber(y)
		if !ok || errX != nil || errY != nil {
			return "", "", r, catalog.Errorf(catalog.KindInvalid, "invalid_aspect_ratio",
				"an aspect ratio is ar{x}x{y} with x and y 1 to %d (ar1x1, ar4x3), not %q", catalog.MaxAspectTerm, parts[3])
		}
		if r.AspectX, r.AspectY, err = catalog.Reduce(ax, ay); err != nil {
			return "", "", r, err
		}
	}
	name, ext, hasExt := strings.Cut(strings.TrimPrefix(last, "w"), ".")
	if hasExt {
		switch ext {
		case "webp", "avif":
			r.Format = ext
		case "jpg", "jpeg":
			r.Format = "jpeg"
		default:
			return "", "", r, catalog.Errorf(catalog.KindInvalid, "invalid_format",
				"files are made on demand as .avif, .webp or .jpg (or without an extension: the best the client accepts), not .%s", ext)
		}
	}
	if r.Width, err = smallNumber(name); err != nil {
		return "", "", r, catalog.Errorf(catalog.KindInvalid, "invalid_width", "a width is w{pixels}, 1 to %d digits, not %q", maxDigits, "w"+name)
	}
	return productID, imageID, r, nil
}

// maxDigits bounds the numbers of on-demand URLs.
const maxDigits = 5

// smallNumber parses 1 to maxDigits decimal digits (no sign).
func smallNumber(s string) (int, error) {
	if s == "" || len(s) > maxDigits {
		return 0, strconv.ErrSyntax
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.Atoi(s)
}

// mediaOnDemand answers an on-demand URL: the stored render when it was
// made before, else it asks the image's grain to make it (once for the
// whole cluster, however many ask at once) and then answers it. With
// signing keys, the URL must be signed (see verifySignature).
func (s *Server) mediaOnDemand(ctx *fasthttp.RequestCtx, key string) {
	if len(s.cfg.SigningKeys) > 0 {
		if err := verifySignature(s.cfg.SigningKeys, "/media/"+key, ctx.QueryArgs(), s.now()); err != nil {
			writeError(ctx, err)
			return
		}
	}
	productID, imageID, r, err := parseOnDemand(key)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if s.deps.Renders == nil {
		writeProblem(ctx, http.StatusNotFound, "not_found", "this server makes no file on demand", nil)
		return
	}
	img, _, err := s.products.Image(ctx, productID, imageID)
	if err != nil {
		if catalog.IsNotFound(err) {
			writeProblem(ctx, http.StatusNotFound, "not_found", "no such image", nil)
			return
		}
		writeError(ctx, err)
		return
	}
	h := &ctx.Response.Header
	if r.Format == "" {
		h.Set("Vary", "Accept")
		format, ok := negotiateFormat(string(ctx.Request.Header.Peek("Accept")), catalog.RenderFormats)
		if !ok {
			writeProblem(ctx, http.StatusNotAcceptable, "not_acceptable",
				"files are made on demand as avif, webp or jpeg; the Accept header refuses each of them", nil)
			return
		}
		r.Format = format
	}
	r, stored, err := img.RenderTarget(s.cfg.RenderWidths, r)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ct := mediaTypes[r.Format]
	h.Set("Content-Location", s.cfg.MediaURL+strings.TrimPrefix(stored, "products/"))
	if s.serveStored(ctx, stored, ct, cacheRendered) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	res, err := s.deps.Renders.Render(rctx, productID, imageID, r)
	if err != nil {
		if catalog.ErrorKind(err) == catalog.KindNotFound {
			h.Del("Content-Location")
		}
		writeError(ctx, err)
		return
	}
	if !s.serveStored(ctx, res.Key, ct, cacheRendered) {
		writeError(ctx, catalog.Unavailable("the file store", nil))
	}
}

package rest

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/transport/urlfetch"
)

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(openapiDoc)
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ok"}`)
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	results := map[string]string{}
	var failed []string
	for _, ch := range s.deps.Checks {
		if err := ch.Check(c); err != nil {
			results[ch.Name] = err.Error()
			failed = append(failed, ch.Name)
		} else {
			results[ch.Name] = "ok"
		}
	}
	if len(failed) > 0 {
		ctx.Response.Header.Set("Retry-After", "5")
		writeProblem(ctx, http.StatusServiceUnavailable, "not_ready", "not ready: "+strings.Join(failed, ", ")+" did not answer", nil)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"status": "ready", "checks": results})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

func writeProduct(ctx *fasthttp.RequestCtx, status int, etag string, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("ETag", etag)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(body)
}

func pathID(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// jsonBody returns the request body when it is a JSON document within limits.
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
	body := ctx.Request.Body()
	if len(body) > s.cfg.MaxJSONBytes {
		return nil, catalog.Errorf(catalog.KindTooLarge, "body_too_large", "the JSON body is %d bytes, over the limit of %d", len(body), s.cfg.MaxJSONBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, catalog.Errorf(catalog.KindInvalid, "malformed_json", "the body is empty; a JSON object is required")
	}
	return body, nil
}

func (s *Server) createProduct(ctx *fasthttp.RequestCtx) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	p, err := s.products.Create(c, body)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/products/"+p.ID)
	writeProduct(ctx, http.StatusCreated, p.ETag, p.Body)
}

func (s *Server) getProduct(ctx *fasthttp.RequestCtx) {
	// The hot path: no per-request context or timer; a cache miss is
	// bounded by the service's own timeout.
	p, err := s.products.Get(context.Background(), pathID(ctx, "id"))
	if err != nil {
		writeError(ctx, err)
		return
	}
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && noneMatchHits(string(inm), p.ETag) {
		ctx.Response.Header.Set("ETag", p.ETag)
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

func (s *Server) replaceProduct(ctx *fasthttp.RequestCtx) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	p, err := s.products.Replace(c, pathID(ctx, "id"), body, string(ctx.Request.Header.Peek("If-Match")))
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeProduct(ctx, http.StatusOK, p.ETag, p.Body)
}

func (s *Server) patchProduct(ctx *fasthttp.RequestCtx) {
	body, err := s.jsonBody(ctx, "application/merge-patch+json", "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	p, err := s.products.Patch(c, pathID(ctx, "id"), body, string(ctx.Request.Header.Peek("If-Match")))
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeProduct(ctx, http.StatusOK, p.ETag, p.Body)
}

func (s *Server) deleteProduct(ctx *fasthttp.RequestCtx) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	if err := s.products.Delete(c, pathID(ctx, "id"), string(ctx.Request.Header.Peek("If-Match"))); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

// listParams are the query parameters GET /products accepts.
var listParams = map[string]bool{"user_id": true, "min_price": true, "max_price": true, "q": true, "limit": true, "cursor": true}

func parseFilter(args *fasthttp.Args) (catalog.ProductFilter, error) {
	f := catalog.ProductFilter{Limit: 20}
	var errs []catalog.FieldError
	bad := func(field, format string, a ...any) {
		errs = append(errs, catalog.FieldError{Field: field, Detail: fmt.Sprintf(format, a...)})
	}
	seen := map[string]bool{}
	args.VisitAll(func(k, v []byte) {
		key, val := string(k), string(v)
		if !listParams[key] {
			bad(key, "unknown query parameter; accepted: user_id, min_price, max_price, q, limit, cursor")
			return
		}
		if seen[key] {
			bad(key, "given more than once")
			return
		}
		seen[key] = true
		switch key {
		case "user_id":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n <= 0 {
				bad(key, "must be a positive integer, got %q", val)
				return
			}
			f.UserID = n
		case "min_price", "max_price":
			p, err := catalog.ParsePrice(val)
			if err != nil {
				bad(key, "%v", err)
				return
			}
			if key == "min_price" {
				f.MinPrice = &p
			} else {
				f.MaxPrice = &p
			}
		case "q":
			if n := len([]rune(val)); n > catalog.MaxNameLength {
				bad(key, "must be at most %d characters, got %d", catalog.MaxNameLength, n)
				return
			}
			f.Query = strings.ToLower(strings.TrimSpace(val))
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 100 {
				bad(key, "must be an integer from 1 to 100, got %q", val)
				return
			}
			f.Limit = n
		case "cursor":
			if val == "" { // an empty cursor asks for the first page
				return
			}
			id, err := base64.RawURLEncoding.DecodeString(val)
			if err != nil || !catalog.ValidID(string(id)) {
				bad(key, "is not a cursor this server issued; use next_cursor from the previous page")
				return
			}
			f.After = string(id)
		}
	})
	if f.MinPrice != nil && f.MaxPrice != nil && *f.MinPrice > *f.MaxPrice {
		bad("min_price", "must not be greater than max_price")
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

func (s *Server) listProducts(ctx *fasthttp.RequestCtx) {
	f, err := parseFilter(ctx.QueryArgs())
	if err != nil {
		writeError(ctx, err)
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
		next = base64.RawURLEncoding.EncodeToString([]byte(items[limit-1].ID))
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
	r.AppendBodyString(`"` + next + `"}`) // base64url: nothing to escape
}

func (s *Server) getImage(ctx *fasthttp.RequestCtx) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	_, body, err := s.products.Image(c, pathID(ctx, "id"), pathID(ctx, "image_id"))
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// uploadImage accepts multipart/form-data with a "file" field, the image as
// the raw body, or JSON {"url": "…"} to import it. The format is decided by
// the bytes, never by the Content-Type or the file name. The same bytes
// uploaded again answer 200 with the image they made.
func (s *Server) uploadImage(ctx *fasthttp.RequestCtx) {
	productID := pathID(ctx, "id")
	if mt, _, _ := mime.ParseMediaType(string(ctx.Request.Header.ContentType())); mt == "application/json" {
		s.importImage(ctx, productID)
		return
	}
	data, err := s.uploadData(ctx)
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	img, body, existing, err := s.deps.Uploads.Upload(c, productID, data)
	if err != nil {
		writeError(ctx, err)
		return
	}
	status := http.StatusAccepted
	if existing {
		status = http.StatusOK
	}
	ctx.Response.Header.Set("Location", "/products/"+productID+"/images/"+img.ID)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

func (s *Server) importImage(ctx *fasthttp.RequestCtx, productID string) {
	body, err := s.jsonBody(ctx, "application/json")
	if err != nil {
		writeError(ctx, err)
		return
	}
	var req struct {
		URL string `json:"url"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(ctx, catalog.Errorf(catalog.KindInvalid, "malformed_json", "the body must be {\"url\": \"https://…\"}: %v", err))
		return
	}
	if err := urlfetch.CheckURL(req.URL); err != nil {
		writeError(ctx, &catalog.Error{Kind: catalog.KindInvalid, Code: "validation", Detail: "url " + err.Error(),
			Fields: []catalog.FieldError{{Field: "url", Detail: err.Error()}}})
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	img, out, err := s.deps.Uploads.Import(c, productID, req.URL)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/products/"+productID+"/images/"+img.ID)
	ctx.SetStatusCode(http.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

func (s *Server) reprocessImage(ctx *fasthttp.RequestCtx) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	productID, imageID := pathID(ctx, "id"), pathID(ctx, "image_id")
	body, err := s.deps.Reprocess.Reprocess(c, productID, imageID)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/products/"+productID+"/images/"+imageID)
	ctx.SetStatusCode(http.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// admin guards operator routes with the configured bearer token.
func (s *Server) admin(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if s.cfg.AdminToken == "" || s.deps.Admin == nil {
			writeProblem(ctx, http.StatusForbidden, "admin_disabled", "the admin API is disabled; set VITRINE_ADMIN_TOKEN to enable it", nil)
			return
		}
		got := ctx.Request.Header.Peek("Authorization")
		want := "Bearer " + s.cfg.AdminToken
		if subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="vitrine-admin"`)
			writeProblem(ctx, http.StatusUnauthorized, "unauthorized", "the admin API needs Authorization: Bearer <VITRINE_ADMIN_TOKEN>", nil)
			return
		}
		next(ctx)
	}
}

func (s *Server) listDeadLetters(ctx *fasthttp.RequestCtx) {
	limit := 100
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 1000 {
			writeError(ctx, catalog.Errorf(catalog.KindInvalid, "invalid_query", "limit must be an integer from 1 to 1000, got %q", v))
			return
		}
		limit = n
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	items, err := s.deps.Admin.ListDeadLetters(c, limit)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if items == nil {
		items = []catalog.DeadLetter{}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) replayDeadLetter(ctx *fasthttp.RequestCtx) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	job, err := s.deps.Admin.ReplayDeadLetter(c, pathID(ctx, "image_id"))
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/products/"+job.ProductID+"/images/"+job.ImageID)
	writeJSON(ctx, http.StatusAccepted, job)
}

func (s *Server) uploadData(ctx *fasthttp.RequestCtx) ([]byte, error) {
	ct := string(ctx.Request.Header.ContentType())
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return nil, catalog.Errorf(catalog.KindUnsupportedMedia, "unsupported_content_type",
			"send the image as multipart/form-data (field \"file\") or as the raw body with an image/* or application/octet-stream Content-Type; got %q", ct)
	}
	var data []byte
	switch {
	case mt == "multipart/form-data":
		form, err := ctx.MultipartForm()
		if err != nil {
			return nil, catalog.Errorf(catalog.KindInvalid, "malformed_multipart", "the multipart body could not be parsed: %v", err)
		}
		files := form.File["file"]
		if len(files) != 1 {
			return nil, catalog.Errorf(catalog.KindInvalid, "missing_file", "the multipart body must carry exactly one file in the field \"file\", got %d", len(files))
		}
		if files[0].Size > int64(s.cfg.MaxUploadBytes) {
			return nil, tooLarge(files[0].Size, s.cfg.MaxUploadBytes)
		}
		f, err := files[0].Open()
		if err != nil {
			return nil, fmt.Errorf("open uploaded part: %w", err)
		}
		defer f.Close()
		data, err = io.ReadAll(io.LimitReader(f, int64(s.cfg.MaxUploadBytes)+1))
		if err != nil {
			return nil, fmt.Errorf("read uploaded part: %w", err)
		}
	case strings.HasPrefix(mt, "image/") || mt == "application/octet-stream":
		data = ctx.Request.Body()
	default:
		return nil, catalog.Errorf(catalog.KindUnsupportedMedia, "unsupported_content_type",
			"send the image as multipart/form-data (field \"file\") or as the raw body with an image/* or application/octet-stream Content-Type; got %q", ct)
	}
	if len(data) > s.cfg.MaxUploadBytes {
		return nil, tooLarge(int64(len(data)), s.cfg.MaxUploadBytes)
	}
	return data, nil
}

func tooLarge(size int64, limit int) error {
	return catalog.Errorf(catalog.KindTooLarge, "file_too_large", "the file is %d bytes, over the limit of %d bytes", size, limit)
}

// media serves variant files with long-lived cache headers: a variant's
// URL names exactly one content.
func (s *Server) media(ctx *fasthttp.RequestCtx) {
	key := pathID(ctx, "key")
	ext := key[strings.LastIndexByte(key, '.')+1:]
	ct, ok := map[string]string{"webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg", "avif": "image/avif"}[ext]
	if !ok || !strings.HasPrefix(key, "products/") {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	path, err := s.deps.Files.Path(key)
	if err != nil {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	// Opened per request, not through a cache of open files, so a deleted
	// file is gone at once.
	f, err := os.Open(path)
	if err != nil {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	ctx.SetBodyStream(f, int(st.Size())) // fasthttp closes f
	ctx.Response.Header.Set("Content-Type", ct)
	ctx.Response.Header.Set("Cache-Control", "public, max-age=31536000, immutable")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
}

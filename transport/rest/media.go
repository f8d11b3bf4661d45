package rest

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// mediaTypes are the variant files served, by extension. Originals, which
// have none, are never served.
var mediaTypes = map[string]string{"webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg", "avif": "image/avif"}

// cacheForever is the Cache-Control of variants: a variant's URL names
// exactly one content.
const cacheForever = "public, max-age=31536000, immutable"

// BlobStreamer streams stored files from an object store.
type BlobStreamer interface {
	OpenBlob(ctx context.Context, key string, req catalog.BlobRequest) (*catalog.BlobStream, error)
}

// media serves variant files with long-lived cache headers: from the
// embedded file store, or streamed from the object store.
func (s *Server) media(ctx *fasthttp.RequestCtx, _ principal) {
	key := pathID(ctx, "key")
	if onDemandPath(key) {
		s.mediaOnDemand(ctx, key)
		return
	}
	if !strings.Contains(key[strings.LastIndexByte(key, '/')+1:], ".") {
		s.mediaNegotiated(ctx, key)
		return
	}
	ext := key[strings.LastIndexByte(key, '.')+1:]
	ct, ok := mediaTypes[ext]
	if !ok || !strings.HasPrefix(key, "products/") {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	if !s.serveStored(ctx, key, ct, cacheForever) {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
	}
}

// serveStored answers with the stored file of key, from the embedded file
// store or the object store, with cacheControl; it reports false, having
// written nothing, when there is no such file.
func (s *Server) serveStored(ctx *fasthttp.RequestCtx, key, ct, cacheControl string) bool {
	if s.deps.Files != nil {
		return s.mediaFile(ctx, key, ct, cacheControl)
	}
	return s.mediaObject(ctx, key, ct, cacheControl)
}

// mediaFile serves a file of the embedded file store with the HTTP
// semantics the object store's files get (mediaObject): ETag (the file's
// size and modification time: a variant's file is written once) and
// Last-Modified, If-None-Match and If-Modified-Since (304), a single byte
// range (206, or 416 outside the file; several ranges, or an If-Range that
// does not match, get the whole file, as RFC 9110 allows), HEAD.
func (s *Server) mediaFile(ctx *fasthttp.RequestCtx, key, ct, cacheControl string) bool {
	path, err := s.deps.Files.Path(key)
	if err != nil {
		return false
	}
	// Opened per request, not through a cache of open files, so a deleted
	// file is gone at once.
	f, err := os.Open(path) // #nosec G304 -- Files.Path (localfs) checked key with catalog.ValidBlobKey: a file inside the store's directory
	if err != nil {
		return false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		_ = f.Close() // read-only
		return false
	}
	size, modified := st.Size(), st.ModTime()
	etag := `"` + strconv.FormatInt(size, 16) + "-" + strconv.FormatInt(modified.UnixNano(), 16) + `"`
	h := &ctx.Response.Header
	h.Set("Cache-Control", cacheControl)
	setCacheTags(h, key)
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", etag)
	h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
	inm := string(ctx.Request.Header.Peek("If-None-Match"))
	if (inm != "" && etagMatches(inm, etag)) || (inm == "" && notModifiedSince(ctx, modified)) {
		_ = f.Close() // read-only
		ctx.SetStatusCode(http.StatusNotModified)
		return true
	}
	start, n := int64(0), size
	if r := string(ctx.Request.Header.Peek("Range")); r != "" && ifRangeHolds(ctx, etag, modified) {
		from, length, ok := byteRange(r, size)
		switch {
		case ok && length == 0: // outside the file
			_ = f.Close() // read-only
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			writeProblem(ctx, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable",
				"the range asked for lies outside the file of "+strconv.FormatInt(size, 10)+" bytes", nil)
			return true
		case ok:
			start, n = from, length
			ctx.SetStatusCode(http.StatusPartialContent)
			h.Set("Content-Range", "bytes "+strconv.FormatInt(from, 10)+"-"+strconv.FormatInt(from+length-1, 10)+"/"+strconv.FormatInt(size, 10))
		}
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	if start == 0 && n == size {
		ctx.SetBodyStream(f, int(size)) // fasthttp closes f
		return true
	}
	ctx.SetBodyStream(&sectionFile{Reader: io.NewSectionReader(f, start, n), f: f}, int(n)) // fasthttp closes it
	return true
}

// sectionFile is a range of a file, closing the file when fasthttp closes it.
type sectionFile struct {
	io.Reader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// etagMatches reports whether an If-None-Match list names etag (weakly, as
// RFC 9110 compares for If-None-Match), or is "*".
func etagMatches(list, etag string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
		if e == "*" || e == etag {
			return true
		}
	}
	return false
}

// ifRangeHolds reports whether a Range may be answered: no If-Range, or
// one naming the file's ETag (strongly) or its Last-Modified date.
func ifRangeHolds(ctx *fasthttp.RequestCtx, etag string, modified time.Time) bool {
	ir := strings.TrimSpace(string(ctx.Request.Header.Peek("If-Range")))
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) {
		return ir == etag
	}
	t, err := http.ParseTime(ir)
	return err == nil && t.Equal(modified.UTC().Truncate(time.Second))
}

// byteRange parses a Range header of one byte range against a file of
// size bytes: "a-b", "a-" or "-n". ok is false when it is not one such
// range (the whole file is the answer); length is 0 when it lies outside
// the file (416).
func byteRange(header string, size int64) (start, length int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(header), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true
		}
		n = min(n, size)
		return size - n, n, true
	}
	from, err := strconv.ParseInt(first, 10, 64)
	if err != nil || from < 0 {
		return 0, 0, false
	}
	to := size - 1
	if last != "" {
		if to, err = strconv.ParseInt(last, 10, 64); err != nil || to < from {
			return 0, 0, false
		}
		to = min(to, size-1)
	}
	if from >= size {
		return 0, 0, true
	}
	return from, to - from + 1, true
}

// mediaObject streams a variant from the object store, as a caching proxy
// in front of a private bucket: the object is read as the client reads
// it, never held whole; ranges and If-None-Match are answered by the
// store, If-Modified-Since here (at the second, as HTTP dates are). An
// If-Range makes the whole file the answer (allowed by RFC 9110), as the
// store cannot check it.
func (s *Server) mediaObject(ctx *fasthttp.RequestCtx, key, ct, cacheControl string) bool {
	req := catalog.BlobRequest{HeadOnly: ctx.IsHead(), IfNoneMatch: string(ctx.Request.Header.Peek("If-None-Match"))}
	if len(ctx.Request.Header.Peek("If-Range")) == 0 {
		req.Range = string(ctx.Request.Header.Peek("Range"))
	}
	// The body streams after this handler returns: its reads get a context
	// of their own, ended when fasthttp closes the body.
	bctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+s.cfg.RequestTimeout)
	st, err := s.deps.Blobs.OpenBlob(bctx, key, req)
	if err != nil {
		cancel()
		if catalog.IsNotFound(err) {
			return false
		}
		writeError(ctx, err)
		return true
	}
	h := &ctx.Response.Header
	if st.Unsatisfiable {
		cancel()
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(st.Total, 10))
		writeProblem(ctx, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable",
			"the range asked for lies outside the file of "+strconv.FormatInt(st.Total, 10)+" bytes", nil)
		return true
	}
	h.Set("Cache-Control", cacheControl)
	setCacheTags(h, key)
	h.Set("Accept-Ranges", "bytes")
	if st.ETag != "" {
		h.Set("ETag", st.ETag)
	}
	if !st.ModTime.IsZero() {
		h.Set("Last-Modified", st.ModTime.UTC().Format(http.TimeFormat))
	}
	if st.NotModified || (req.IfNoneMatch == "" && notModifiedSince(ctx, st.ModTime)) {
		if st.Body != nil {
			_ = st.Body.Close()
		}
		cancel()
		ctx.SetStatusCode(http.StatusNotModified)
		return true
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	if st.ContentRange != "" {
		ctx.SetStatusCode(http.StatusPartialContent)
		h.Set("Content-Range", st.ContentRange)
	}
	if st.Body == nil { // HEAD
		cancel()
		h.SetContentLength(int(st.Size))
		return true
	}
	ctx.SetBodyStream(&closeCancels{ReadCloser: st.Body, cancel: cancel}, int(st.Size)) // fasthttp closes it
	return true
}

// setCacheTags names the image and product a file of key
// (products/{id}/{image}/...) belongs to, for CDNs that purge by tag:
// Surrogate-Key (Fastly and others: space-separated) and Cache-Tag
// (Cloudflare, Akamai: comma-separated). A receiver of image.deleted
// purges image-{id}; of product.deleted, product-{id}.
func setCacheTags(h *fasthttp.ResponseHeader, key string) {
	parts := strings.SplitN(key, "/", 4)
	if len(parts) < 4 {
		return
	}
	product, image := "product-"+parts[1], "image-"+parts[2]
	h.Set("Surrogate-Key", image+" "+product)
	h.Set("Cache-Tag", image+","+product)
}

// notModifiedSince reports whether the request's If-Modified-Since (a valid
// date, not in the future) is at or after modified, to the second.
func notModifiedSince(ctx *fasthttp.RequestCtx, modified time.Time) bool {
	ims := ctx.Request.Header.Peek("If-Modified-Since")
	if len(ims) == 0 || modified.IsZero() {
		return false
	}
	since, err := http.ParseTime(string(ims))
	if err != nil || since.After(time.Now()) {
		return false
	}
	return !modified.Truncate(time.Second).After(since)
}

// closeCancels ends a streamed body's context when fasthttp closes it.
type closeCancels struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *closeCancels) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}

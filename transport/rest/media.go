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
	ext := key[strings.LastIndexByte(key, '.')+1:]
	ct, ok := mediaTypes[ext]
	if !ok || !strings.HasPrefix(key, "products/") {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	if s.deps.Files != nil {
		s.mediaFile(ctx, key, ct)
		return
	}
	s.mediaObject(ctx, key, ct)
}

// mediaFile serves a file of the embedded file store.
func (s *Server) mediaFile(ctx *fasthttp.RequestCtx, key, ct string) {
	path, err := s.deps.Files.Path(key)
	if err != nil {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	// Opened per request, not through a cache of open files, so a deleted
	// file is gone at once.
	f, err := os.Open(path) // #nosec G304 -- Files.Path (localfs) checked key with catalog.ValidBlobKey: a file inside the store's directory
	if err != nil {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		_ = f.Close() // read-only
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	ctx.SetBodyStream(f, int(st.Size())) // fasthttp closes f
	ctx.Response.Header.Set("Content-Type", ct)
	ctx.Response.Header.Set("Cache-Control", cacheForever)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
}

// mediaObject streams a variant from the object store, as a caching proxy
// in front of a private bucket: the object is read as the client reads
// it, never held whole; ranges and If-None-Match are answered by the
// store, If-Modified-Since here (at the second, as HTTP dates are). An
// If-Range makes the whole file the answer (allowed by RFC 9110), as the
// store cannot check it.
func (s *Server) mediaObject(ctx *fasthttp.RequestCtx, key, ct string) {
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
			writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
			return
		}
		writeError(ctx, err)
		return
	}
	h := &ctx.Response.Header
	if st.Unsatisfiable {
		cancel()
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(st.Total, 10))
		writeProblem(ctx, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable",
			"the range asked for lies outside the file of "+strconv.FormatInt(st.Total, 10)+" bytes", nil)
		return
	}
	h.Set("Cache-Control", cacheForever)
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
		return
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
		return
	}
	ctx.SetBodyStream(&closeCancels{ReadCloser: st.Body, cancel: cancel}, int(st.Size)) // fasthttp closes it
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

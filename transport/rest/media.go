package rest

import (
	"net/http"
	"os"
	"strings"

	"github.com/valyala/fasthttp"
)

// mediaTypes are the variant files served, by extension.
var mediaTypes = map[string]string{"webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg", "avif": "image/avif"}

// media serves variant files with long-lived cache headers: a variant's
// URL names exactly one content.
func (s *Server) media(ctx *fasthttp.RequestCtx, _ principal) {
	key := pathID(ctx, "key")
	ext := key[strings.LastIndexByte(key, '.')+1:]
	ct, ok := mediaTypes[ext]
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

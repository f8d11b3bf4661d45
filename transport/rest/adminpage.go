package rest

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The admin page: plain HTML, CSS and JavaScript modules, embedded in the
// binary (no CDN, no build step), served under /admin/. It calls the same
// API as everyone, with the API key the user signs in with.
//
//go:embed adminui
var adminFiles embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// loadAssets reads the embedded files once.
func loadAssets() map[string]asset {
	out := map[string]asset{}
	_ = fs.WalkDir(adminFiles, "adminui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := adminFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // the system's MIME table may lack these
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		out[strings.TrimPrefix(p, "adminui/")] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return out
}

// adminCSP is the page's Content Security Policy: its own scripts and
// styles only (no inline code), API calls to this origin, images from here
// and from where variants are served, and no framing.
func adminCSP(mediaOrigin string) string {
	img := "'self'"
	if mediaOrigin != "" {
		img += " " + mediaOrigin
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src " + img +
		"; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
}

// originOf is the scheme://host[:port] of a URL, or "" when it has none.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// securityHeaders are sent with every page and asset of the admin page.
func (s *Server) securityHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", s.adminCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// adminRedirect sends /admin to /admin/, where the page's relative links work.
func (s *Server) adminRedirect(ctx *fasthttp.RequestCtx, _ principal) {
	if err := onlyParams(ctx.QueryArgs()); err != nil {
		writeError(ctx, err)
		return
	}
	s.securityHeaders(ctx)
	ctx.Response.Header.Set("Location", "/admin/")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetStatusCode(http.StatusPermanentRedirect)
}

func (s *Server) adminIndex(ctx *fasthttp.RequestCtx, p principal) {
	s.serveAsset(ctx, "index.html")
}

func (s *Server) adminAsset(ctx *fasthttp.RequestCtx, _ principal) {
	s.serveAsset(ctx, "assets/"+pathID(ctx, "name"))
}

// serveAsset answers an embedded file, or 304 when the client has it.
func (s *Server) serveAsset(ctx *fasthttp.RequestCtx, name string) {
	if err := onlyParams(ctx.QueryArgs()); err != nil {
		writeError(ctx, err)
		return
	}
	a, ok := s.assets[name]
	if !ok {
		writeError(ctx, catalog.NotFound("the admin page has no file %q", name))
		return
	}
	s.securityHeaders(ctx)
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-cache") // revalidated: a new binary may bring new files
	h.Set("ETag", a.etag)
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, []byte(a.etag)) {
		ctx.SetStatusCode(http.StatusNotModified)
		return
	}
	ctx.SetContentType(a.contentType)
	ctx.SetBody(a.body)
}

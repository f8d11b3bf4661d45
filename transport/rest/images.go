package rest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"mime"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/transport/urlfetch"
)

func (s *Server) getImage(ctx *fasthttp.RequestCtx, _ principal) {
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
// uploaded again answer 200 with the image they made. With an
// Idempotency-Key, a retry of the same file replays the first answer.
func (s *Server) uploadImage(ctx *fasthttp.RequestCtx, who principal) {
	productID := pathID(ctx, "id")
	if mt, _, _ := mime.ParseMediaType(string(ctx.Request.Header.ContentType())); mt == "application/json" {
		s.importImage(ctx, who, productID)
		return
	}
	// An unknown product is refused before its body is read.
	if _, err := s.products.Get(traceCtx(ctx), productID); err != nil {
		writeError(ctx, err)
		return
	}
	up, err := s.readUpload(ctx)
	if err != nil {
		writeError(ctx, err)
		return
	}
	defer up.release()
	// The request means "this file": its framing (a multipart boundary)
	// is not part of it.
	fingerprint := func() []byte { sum := sha256.Sum256(up.data); return sum[:] }
	s.idempotent(ctx, who, fingerprint, func() {
		c, cancel := s.reqCtx(ctx)
		defer cancel()
		img, body, existing, err := s.deps.Uploads.Upload(c, productID, up.data, who.owner)
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
	})
}

func (s *Server) importImage(ctx *fasthttp.RequestCtx, who principal, productID string) {
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
	if dec.More() {
		writeError(ctx, catalog.Errorf(catalog.KindInvalid, "malformed_json", "the body holds more than one JSON value"))
		return
	}
	if err := urlfetch.CheckURL(req.URL); err != nil {
		writeError(ctx, &catalog.Error{Kind: catalog.KindInvalid, Code: "validation", Detail: "url " + err.Error(),
			Fields: []catalog.FieldError{{Field: "url", Detail: err.Error()}}})
		return
	}
	s.idempotent(ctx, who, func() []byte { return []byte(req.URL) }, func() {
		c, cancel := s.reqCtx(ctx)
		defer cancel()
		img, out, err := s.deps.Uploads.Import(c, productID, req.URL, who.owner)
		if err != nil {
			writeError(ctx, err)
			return
		}
		ctx.Response.Header.Set("Location", "/products/"+productID+"/images/"+img.ID)
		ctx.SetStatusCode(http.StatusAccepted)
		ctx.SetContentType("application/json")
		ctx.SetBody(out)
	})
}

func (s *Server) reprocessImage(ctx *fasthttp.RequestCtx, who principal) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	productID, imageID := pathID(ctx, "id"), pathID(ctx, "image_id")
	body, err := s.deps.Reprocess.Reprocess(c, productID, imageID, who.owner)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/products/"+productID+"/images/"+imageID)
	ctx.SetStatusCode(http.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

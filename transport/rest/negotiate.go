package rest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// preference is the order in which formats are served when the client
// accepts them equally: the smallest files first.
var preference = []string{"avif", "webp", "jpeg"}

// maxAcceptRanges bounds the media ranges of an Accept header read by
// negotiation; the rest are ignored (the header's size is bounded by the
// server's header limit, 431 past it).
const maxAcceptRanges = 64

// mediaNegotiated answers a variant's negotiated URL (its file keys
// without the extension, products/{id}/{image}/r{n}/{variant}) with the
// file of the best format the client accepts among the variant's ready
// files (see negotiateFormat), as the file's own URL answers it, plus
// Vary: Accept and Content-Location naming that file; while a format is
// pending, for a minute only (cacheWhilePending).
func (s *Server) mediaNegotiated(ctx *fasthttp.RequestCtx, stem string) {
	parts := strings.Split(stem, "/")
	if len(parts) != 5 || parts[0] != "products" || !strings.HasPrefix(parts[3], "r") {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	img, _, err := s.products.Image(ctx, parts[1], parts[2])
	if err != nil {
		if catalog.IsNotFound(err) {
			writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
			return
		}
		writeError(ctx, err)
		return
	}
	have := map[string]catalog.Variant{}
	var formats []string
	pending := false
	for _, v := range img.Variants {
		if catalog.VariantStem(img.ProductID, img.ID, img.RecipeVersion, v.Name, v.FocalPoint) != stem {
			continue
		}
		if !v.Ready() {
			pending = pending || v.Status == catalog.FilePending
			continue
		}
		have[v.Format] = v
		formats = append(formats, v.Format)
	}
	if len(formats) == 0 {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	h := &ctx.Response.Header
	h.Set("Vary", "Accept")
	format, ok := negotiateFormat(string(ctx.Request.Header.Peek("Accept")), formats)
	if !ok {
		slices.SortFunc(formats, func(a, b string) int { return rank(a) - rank(b) })
		writeProblem(ctx, http.StatusNotAcceptable, "not_acceptable",
			"this image is served as "+strings.Join(formats, ", ")+"; the Accept header refuses each of them", nil)
		return
	}
	h.Set("Content-Location", have[format].URL)
	key := stem + "." + format
	ct := mediaTypes[format]
	if !s.serveStored(ctx, key, ct, cacheForever) {
		writeProblem(ctx, http.StatusNotFound, "not_found", "no such file", nil)
		return
	}
	if pending && ctx.Response.StatusCode() < http.StatusBadRequest {
		// A better format may land soon: caches ask again after a minute
		// rather than keep this answer for a year.
		h.Set("Cache-Control", cacheWhilePending)
	}
}

// cacheWhilePending is the Cache-Control of a negotiated answer while one
// of the variant's formats is still being made.
const cacheWhilePending = "public, max-age=60"

// rank is a format's place in preference (unknown formats last).
func rank(format string) int {
	if i := slices.Index(preference, format); i >= 0 {
		return i
	}
	return len(preference)
}

// negotiateFormat picks which of the formats (file extensions: avif, webp,
// jpeg) to send a client whose Accept header is accept:
//   - the highest q among AVIF and WebP where the header names them
//     (image/avif, image/webp: wildcards do not promise them, as Safari
//     before 14 sends image/* and decodes no WebP) and JPEG where any
//     range matches it (image/jpeg, image/*, */*, the most specific one
//     giving its q); ties go to the smaller files: AVIF, WebP, JPEG;
//   - when none has a q above 0: JPEG, every browser's format, unless the
//     header refuses it (the most specific range matching it has q=0);
//     then a format a wildcard accepts; with no Accept header (or an empty
//     one), the first of the preference the variant has;
//   - else none: ok is false (406).
func negotiateFormat(accept string, formats []string) (format string, ok bool) {
	ranges := parseAccept(accept)
	best, bestQ := "", 0
	for _, f := range formats {
		q, _ := ranges.quality("image/"+f, f != "jpeg")
		if q > bestQ || (q == bestQ && q > 0 && rank(f) < rank(best)) {
			best, bestQ = f, q
		}
	}
	if best != "" {
		return best, true
	}
	if slices.Contains(formats, "jpeg") {
		if _, matched := ranges.quality("image/jpeg", false); !matched {
			return "jpeg", true
		}
	}
	for _, f := range preference {
		if !slices.Contains(formats, f) {
			continue
		}
		if q, _ := ranges.quality("image/"+f, false); q > 0 || len(ranges) == 0 {
			return f, true
		}
	}
	return "", false
}

// mediaRange is one entry of an Accept header; q in thousandths.
type mediaRange struct {
	typ, sub string
	q        int
}

type acceptRanges []mediaRange

// parseAccept reads an Accept header's media ranges (at most
// maxAcceptRanges); malformed entries are skipped.
func parseAccept(header string) acceptRanges {
	var out acceptRanges
	for entry := range strings.SplitSeq(header, ",") {
		if len(out) == maxAcceptRanges {
			break
		}
		params := strings.Split(entry, ";")
		typ, sub, found := strings.Cut(strings.ToLower(strings.TrimSpace(params[0])), "/")
		if !found || typ == "" || sub == "" || (typ == "*" && sub != "*") {
			continue
		}
		q, valid := 1000, true
		for _, p := range params[1:] {
			name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") {
				q, valid = parseQ(strings.TrimSpace(value))
			}
		}
		if valid {
			out = append(out, mediaRange{typ: typ, sub: sub, q: q})
		}
	}
	return out
}

// parseQ reads an RFC 9110 qvalue (0 to 1, at most three decimals) in
// thousandths.
func parseQ(v string) (int, bool) {
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return 0, false
	}
	return int(f*1000 + 0.5), true
}

// quality is the q the most specific range matching contentType gives it
// (type/sub over type/* over */*; equally specific ranges: the highest q).
// With exact, only a range naming contentType counts. matched is false
// when no range matches.
func (r acceptRanges) quality(contentType string, exact bool) (q int, matched bool) {
	typ, sub, _ := strings.Cut(contentType, "/")
	bestSpec := -1
	for _, m := range r {
		spec := -1
		switch {
		case m.typ == typ && m.sub == sub:
			spec = 2
		case exact:
		case m.typ == typ && m.sub == "*":
			spec = 1
		case m.typ == "*":
			spec = 0
		}
		if spec < 0 {
			continue
		}
		if spec > bestSpec || (spec == bestSpec && m.q > q) {
			bestSpec, q = spec, m.q
		}
	}
	return q, bestSpec >= 0
}

package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxAltLength bounds an image's alt text, in characters after trimming.
const MaxAltLength = 1000

// MaxImagesPerProduct bounds how many images one product may hold.
const MaxImagesPerProduct = 100

// A product's images are its gallery: ordered (Image.Position is the
// image's 0-based place, position 0 the primary image), each with an alt
// text. Gallery changes go through the product's grain like every write,
// and each bumps the product's version.

// ImagePatch is a validated merge patch of an image's gallery fields: nil
// fields are left as they are.
type ImagePatch struct {
	// Alt is the new alt text ("" clears it).
	Alt *string
	// Position is the image's new place in the gallery.
	Position *int
	// FocalPoint, when SetFocus, is the new focal point (nil clears it).
	FocalPoint *FocalPoint
	SetFocus   bool
}

// imagePatchFields lists the fields a client may patch, for error details.
const imagePatchFields = "alt, position, focal_point"

// imageReadOnlyFields are the image's server-set fields: accepted and
// ignored in a patch, so that a GET body can be edited and sent back, as
// for products.
var imageReadOnlyFields = map[string]bool{"id": true, "product_id": true, "status": true, "error": true,
	"original": true, "variants": true, "placeholder": true, "dominant_color": true, "animated": true,
	"recipe_version": true, "source_url": true, "created_at": true, "processed_at": true}

// ParseImagePatch decodes and validates an RFC 7396 merge patch of an
// image of a gallery of count images. Unknown fields are refused, set to
// null too, and every problem is reported.
func ParseImagePatch(data []byte, count int) (ImagePatch, error) {
	var patch ImagePatch
	doc, err := decodeObject(data)
	if err != nil {
		return patch, err
	}
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	for _, k := range sortedKeys(doc) {
		raw := doc[k]
		null := string(bytes.TrimSpace(raw)) == "null"
		switch {
		case k == "alt" && null:
			patch.Alt = new(string)
		case k == "alt":
			s, err := jsonString(raw)
			if err != nil {
				add(k, "must be a string or null, got %s", jsonType(raw))
				continue
			}
			alt, detail := validAlt(s)
			if detail != "" {
				add(k, "%s", detail)
				continue
			}
			patch.Alt = &alt
		case k == "focal_point" && null:
			patch.SetFocus = true
		case k == "focal_point":
			f, detail := parseFocalPoint(raw)
			if detail != "" {
				add(k, "%s", detail)
				continue
			}
			patch.FocalPoint, patch.SetFocus = f, true
		case k == "position":
			text, ok := integral(raw)
			if !ok {
				add(k, "must be an integer from 0 to %d, got %s", count-1, jsonType(raw))
				continue
			}
			n, ok := IntegralInt64(text)
			if !ok || n < 0 || n > MaxImagesPerProduct {
				add(k, "must be an integer from 0 to %d, got %s", count-1, text)
				continue
			}
			pos := int(n)
			patch.Position = &pos
		case imageReadOnlyFields[k]:
		default:
			add(k, "unknown field; accepted fields are %s", imagePatchFields)
		}
	}
	if len(errs) > 0 {
		return patch, Invalid(errs)
	}
	if patch.Position != nil && *patch.Position >= count {
		// Well-formed, but past the end: refused rather than clamped, so
		// that a client working from a stale gallery learns it.
		detail := fmt.Sprintf("must be from 0 to %d (the product has %d images), got %d", count-1, count, *patch.Position)
		return patch, &Error{Kind: KindUnprocessable, Code: "position_out_of_range", Detail: "position " + detail,
			Fields: []FieldError{{Field: "position", Detail: detail}}}
	}
	return patch, nil
}

// validAlt returns the alt text s as stored, or why it is refused.
func validAlt(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return "", "must be valid UTF-8"
	case n > MaxAltLength:
		return "", fmt.Sprintf("must be at most %d characters, got %d", MaxAltLength, n)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", "must not contain control characters (line breaks and tabs included)"
	}
	return s, ""
}

// ParseImageOrder decodes {"image_ids": [...]}, the whole order of a
// gallery, and checks it against the product's images: every one of them
// exactly once, no other.
func ParseImageOrder(data []byte, images []Image) ([]string, error) {
	ids, err := decodeImageOrder(data)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(images))
	for i := range images {
		known[images[i].ID] = true
	}
	return ids, checkOrder(ids, known, images)
}

// CheckImageOrder judges what of {"image_ids": [...]} needs no gallery to
// judge: its shape, ids that are no UUID, ids named twice. Refusing that
// early answers the same whatever the product's state (its ETag
// included).
func CheckImageOrder(data []byte) error {
	ids, err := decodeImageOrder(data)
	if err != nil {
		return err
	}
	uuids := make(map[string]bool, len(ids))
	for _, id := range ids {
		uuids[id] = ValidID(id)
	}
	return checkOrder(ids, uuids, nil)
}

// decodeImageOrder reads the ids of {"image_ids": [...]}.
func decodeImageOrder(data []byte) ([]string, error) {
	doc, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(doc) {
		if k != "image_ids" {
			return nil, &Error{Kind: KindInvalid, Code: "validation", Detail: k + " unknown field; the body is {\"image_ids\": [...]}",
				Fields: []FieldError{{Field: k, Detail: "unknown field; the body is {\"image_ids\": [...]}"}}}
		}
	}
	raw, ok := present(doc, "image_ids")
	var ids []string
	if !ok || json.Unmarshal(raw, &ids) != nil {
		return nil, &Error{Kind: KindInvalid, Code: "validation", Detail: "image_ids must be an array of the product's image ids",
			Fields: []FieldError{{Field: "image_ids", Detail: "must be an array of the product's image ids"}}}
	}
	return ids, nil
}

// checkOrder reports what keeps ids from being exactly the images, each
// once: ids not known, ids given twice, images missing.
func checkOrder(ids []string, known map[string]bool, images []Image) error {
	seen := make(map[string]bool, len(ids))
	var foreign, twice, missing []string
	for _, id := range ids {
		switch {
		case !known[id]:
			foreign = append(foreign, id)
		case seen[id]:
			twice = append(twice, id)
		}
		seen[id] = true
	}
	for i := range images {
		if !seen[images[i].ID] {
			missing = append(missing, images[i].ID)
		}
	}
	return orderError(missing, foreign, twice)
}

// orderError is the problem of an order that misses, adds or repeats ids;
// nil when it does none of these.
func orderError(missing, foreign, twice []string) error {
	var errs []FieldError
	if len(missing) > 0 {
		errs = append(errs, FieldError{Field: "image_ids", Detail: "misses images of the product: " + strings.Join(missing, ", ")})
	}
	if len(foreign) > 0 {
		errs = append(errs, FieldError{Field: "image_ids", Detail: "names ids that are no image of the product: " + quoteAll(foreign)})
	}
	if len(twice) > 0 {
		errs = append(errs, FieldError{Field: "image_ids", Detail: "names images more than once: " + quoteAll(twice)})
	}
	if len(errs) > 0 {
		return &Error{Kind: KindUnprocessable, Code: "invalid_order", Detail: summarize(errs), Fields: errs}
	}
	return nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 64 {
			s = s[:64] + "…"
		}
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// decodeObject decodes a body that must be one JSON object.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, malformed(err)
	}
	if dec.More() {
		return nil, Errorf(KindInvalid, "malformed_json", "the body holds more than one JSON value")
	}
	if doc == nil {
		return nil, Errorf(KindInvalid, "malformed_json", "the body must be a JSON object")
	}
	return doc, nil
}

func sortedKeys(doc map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Move returns images with the one at from moved to to, the others
// shifted, and every Position renumbered.
func Move(images []Image, from, to int) []Image {
	out := slices.Clone(images)
	img := out[from]
	out = slices.Delete(out, from, from+1)
	out = slices.Insert(out, to, img)
	Renumber(out)
	return out
}

// Renumber sets each image's Position to its index.
func Renumber(images []Image) {
	for i := range images {
		images[i].Position = i
	}
}

// PrimaryImage is the product's first image in gallery order that has
// variants to serve (ready, or being processed again with its previous
// variants still served); nil when none has.
func (p *Product) PrimaryImage() *Image {
	for i := range p.Images {
		if len(p.Images[i].Variants) > 0 {
			return &p.Images[i]
		}
	}
	return nil
}

// RetryableFailure reports whether processing an image that failed with
// code may succeed when tried again, when nothing more is known: a
// problem of the file is not, one of the service is. Fetch failures are
// judged by how the fetch failed (ImageError.Retryable).
func RetryableFailure(code string) bool {
	switch code {
	case FailStorageUnavailable, FailTimeout:
		return true
	}
	return false
}

// GalleryJSON is the gallery of images as stores write it in one
// statement: a JSON array of {"id", "position", "alt", "focal_x",
// "focal_y"}, position being each image's index (the focal coordinates
// null when the image has no focal point).
func GalleryJSON(images []Image) ([]byte, error) {
	type entry struct {
		ID       string   `json:"id"`
		Position int      `json:"position"`
		Alt      string   `json:"alt"`
		FocalX   *float64 `json:"focal_x"`
		FocalY   *float64 `json:"focal_y"`
	}
	rows := make([]entry, len(images))
	for i := range images {
		rows[i] = entry{ID: images[i].ID, Position: i, Alt: images[i].Alt}
		rows[i].FocalX, rows[i].FocalY = FocalColumns(images[i].FocalPoint)
	}
	return json.Marshal(rows)
}

// parseFocalPoint reads {"x": 0..1, "y": 0..1}, or says what is wrong.
func parseFocalPoint(raw json.RawMessage) (*FocalPoint, string) {
	const want = `must be {"x": 0..1, "y": 0..1} (fractions of the width and height from the top left) or null`
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil || doc == nil {
		return nil, want + ", got " + jsonType(raw)
	}
	var f FocalPoint
	for _, k := range sortedKeys(doc) {
		var v float64
		if jsonType(doc[k]) != "number" || json.Unmarshal(doc[k], &v) != nil {
			return nil, fmt.Sprintf("%s: %s must be a number from 0 to 1, got %s", want, k, jsonType(doc[k]))
		}
		if v < 0 || v > 1 || math.IsNaN(v) {
			return nil, fmt.Sprintf("%s: %s must be from 0 to 1, got %v", want, k, v)
		}
		switch k {
		case "x":
			f.X = v
		case "y":
			f.Y = v
		default:
			return nil, want + ": unknown field " + quoteAll([]string{k})
		}
	}
	if _, ok := doc["x"]; !ok {
		return nil, want + ": x is missing"
	}
	if _, ok := doc["y"]; !ok {
		return nil, want + ": y is missing"
	}
	return &f, ""
}

// FocalColumns is a focal point as stores keep it: two nullable columns.
func FocalColumns(f *FocalPoint) (x, y *float64) {
	if f == nil {
		return nil, nil
	}
	return &f.X, &f.Y
}

// FocalOf is the focal point of two nullable columns.
func FocalOf(x, y *float64) *FocalPoint {
	if x == nil || y == nil {
		return nil
	}
	return &FocalPoint{X: *x, Y: *y}
}

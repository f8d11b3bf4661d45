package catalog

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ImageStatus is where an image is in its processing.
type ImageStatus string

// The statuses of an image.
const (
	StatusPending    ImageStatus = "pending"
	StatusProcessing ImageStatus = "processing"
	StatusReady      ImageStatus = "ready"
	StatusFailed     ImageStatus = "failed"
)

// Failure codes of image processing, stable for clients.
const (
	FailUnsupportedFormat  = "unsupported_format"
	FailTooManyPixels      = "too_many_pixels"
	FailTooManyFrames      = "too_many_frames"
	FailCorruptImage       = "corrupt_image"
	FailFetch              = "fetch_failed"
	FailTimeout            = "timeout"
	FailStorageUnavailable = "storage_unavailable"
	FailInternal           = "internal"
)

// Image is an uploaded picture of a product and what was made of it.
type Image struct {
	ID        string `json:"id"`
	ProductID string `json:"product_id"`
	// Position is the image's 0-based place in its product's gallery;
	// position 0 is the primary image.
	Position int `json:"position"`
	// FocalPoint is where the image's subject is: cover crops are made
	// around it; nil: around what libvips' attention strategy finds.
	FocalPoint *FocalPoint `json:"focal_point"`
	// Alt is the image's alternative text ("" when none).
	Alt      string      `json:"alt"`
	Status   ImageStatus `json:"status"`
	Error    *ImageError `json:"error,omitempty"`
	Original Original    `json:"original"`
	Variants []Variant   `json:"variants"`
	// Render-ready data of a ready image: a blurhash placeholder and the
	// dominant colour (#rrggbb), so a client can paint before loading.
	Placeholder   string `json:"placeholder,omitempty"`
	DominantColor string `json:"dominant_color,omitempty"`
	Animated      bool   `json:"animated"`
	// RecipeVersion is the version of the recipe that made the variants.
	RecipeVersion int `json:"recipe_version,omitempty"`
	// SourceURL is where an imported image is fetched from.
	SourceURL   string     `json:"source_url,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ProcessedAt *time.Time `json:"processed_at"`
}

// MarshalJSON renders the image with variants always an array, and its
// renditions.
func (img Image) MarshalJSON() ([]byte, error) {
	type plain Image
	q := struct {
		plain
		Renditions []Rendition `json:"renditions"`
	}{plain(img), img.Renditions()}
	q.Variants = make([]Variant, len(img.Variants))
	for i, v := range img.Variants {
		if v.Status == "" {
			v.Status = FileReady
		}
		q.Variants[i] = v
	}
	return json.Marshal(q)
}

// Rendition is one variant of an image in all its formats: one entry of a
// srcset. URL is its negotiated URL (the variant's URLs without their
// extension), which /media answers in the best format the client accepts.
type Rendition struct {
	Name    string            `json:"name"`
	Width   int               `json:"width"`
	Height  int               `json:"height"`
	Fit     string            `json:"fit,omitempty"`
	URL     string            `json:"url"`
	Formats []RenditionFormat `json:"formats"`
}

// RenditionFormat is one file of a rendition, with its status (a
// Variant's): the negotiated URL serves only ready files.
type RenditionFormat struct {
	Format string `json:"format"`
	Status string `json:"status"`
	URL    string `json:"url"`
	Bytes  int64  `json:"bytes"`
}

// Renditions groups the image's variants by name, in the order of their
// first file; a variant file whose URL does not end in its format's
// extension (never made so) is left out. The result is never nil.
func (img *Image) Renditions() []Rendition {
	out := []Rendition{}
	at := map[string]int{}
	for _, v := range img.Variants {
		stem, ok := strings.CutSuffix(v.URL, "."+v.Format)
		if !ok {
			continue
		}
		i, seen := at[v.Name]
		if !seen {
			i = len(out)
			at[v.Name] = i
			out = append(out, Rendition{Name: v.Name, Width: v.Width, Height: v.Height, Fit: v.Fit, URL: stem})
		}
		status := v.Status
		if status == "" {
			status = FileReady
		}
		out[i].Formats = append(out[i].Formats, RenditionFormat{Format: v.Format, Status: status, URL: v.URL, Bytes: v.Bytes})
	}
	return out
}

// ImageError says why processing failed.
type ImageError struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
	// Retryable says whether processing it again may succeed: true for a
	// failure of the service (storage, a timeout, a fetch that met a
	// network error or a 5xx), false for one of the file (corrupt, an
	// unsupported format, over a limit), which reprocessing refuses.
	Retryable bool `json:"retryable"`
}

// Original describes the uploaded file.
type Original struct {
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Frames      int    `json:"frames"`
	SHA256      string `json:"sha256"`
}

// Variant is one encoded rendition of an image.
type Variant struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
	URL    string `json:"url"`
	// Fit is how the variant fills its box: "inside" (scaled to fit,
	// uncropped) or "cover" (cropped to the box's shape); "" for variants
	// made before it was recorded.
	Fit string `json:"fit,omitempty"`
	// FocalPoint is the point a cover variant was cropped around (nil:
	// libvips' attention strategy chose the crop).
	FocalPoint *FocalPoint `json:"focal_point,omitempty"`
	// Status is whether the file is there: FileReady (also "", as
	// recorded before formats had a status of their own), FilePending (a
	// slow format still being made after the image became ready: Bytes is
	// 0 and URL answers 404 until then) or FileFailed.
	Status string `json:"status,omitempty"`
}

// The statuses of a variant's file.
const (
	FileReady   = "ready"
	FilePending = "pending"
	FileFailed  = "failed"
)

// Ready reports whether the variant's file is there to serve.
func (v *Variant) Ready() bool { return v.Status == "" || v.Status == FileReady }

// PendingFiles reports whether some variant file of the image is still
// being made (a slow format of a ready image).
func (img *Image) PendingFiles() bool {
	for i := range img.Variants {
		if img.Variants[i].Status == FilePending {
			return true
		}
	}
	return false
}

// The fits of variants.
const (
	FitInside = "inside"
	FitCover  = "cover"
)

// FocalPoint is a point of an image as fractions of its displayed width
// and height, from its top left corner: {0.5, 0.5} is its centre.
type FocalPoint struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// SameFocus reports whether a and b are the same focus (both nil, or the
// same point to the precision of blob keys).
func SameFocus(a, b *FocalPoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return focusKey(a) == focusKey(b)
}

// focusKey is a focal point in a blob key: each coordinate in ten
// thousandths.
func focusKey(f *FocalPoint) string {
	return fmt.Sprintf("f%04d-%04d", int(math.Round(f.X*10000)), int(math.Round(f.Y*10000)))
}

// CropKey is the blob key of a cover variant cropped around focus (nil:
// the attention crop, whose key is VariantKey's): a new focal point writes
// beside the old crop, which keeps serving until the new one is recorded.
func CropKey(productID, imageID string, recipeVersion int, name, ext string, focus *FocalPoint) string {
	return VariantStem(productID, imageID, recipeVersion, name, focus) + "." + ext
}

// VariantStem is the blob key of a variant without its format's
// extension: the key of the variant's negotiated URL, which /media
// answers in the best format the client accepts.
func VariantStem(productID, imageID string, recipeVersion int, name string, focus *FocalPoint) string {
	if focus == nil {
		return VariantPrefix(productID, imageID, recipeVersion) + name
	}
	return VariantPrefix(productID, imageID, recipeVersion) + name + "-" + focusKey(focus)
}

// CropsStale reports whether the image's cover variants were cropped
// around another focus than its own: its crops must be made again. Images
// whose variants predate Fit count as stale when they have a focal point.
func (img *Image) CropsStale() bool {
	known := false
	for _, v := range img.Variants {
		if v.Fit == "" {
			continue
		}
		known = true
		if v.Fit == FitCover && !SameFocus(v.FocalPoint, img.FocalPoint) {
			return true
		}
	}
	return !known && img.FocalPoint != nil && len(img.Variants) > 0
}

// Job asks for one image to be processed.
type Job struct {
	ImageID   string `json:"image_id"`
	ProductID string `json:"product_id"`
	// TraceParent is the W3C traceparent of the request that queued the
	// job ("" when tracing is off): its processing continues that trace.
	TraceParent string `json:"traceparent,omitempty"`
}

// OriginalKey is the blob key of an image's original file. Keys are built
// from server-made ids only, never from user input.
func OriginalKey(productID, imageID string) string {
	return "products/" + productID + "/" + imageID + "/original"
}

// VariantKey is the blob key of one variant made by a recipe version;
// processing the same image twice with the same recipe writes the same
// keys, and a new recipe writes beside the old variants, which keep
// serving until the new ones are recorded.
func VariantKey(productID, imageID string, recipeVersion int, name, ext string) string {
	return VariantPrefix(productID, imageID, recipeVersion) + name + "." + ext
}

// VariantPrefix is the blob key prefix of the variants of one recipe version.
func VariantPrefix(productID, imageID string, recipeVersion int) string {
	return "products/" + productID + "/" + imageID + "/r" + strconv.Itoa(recipeVersion) + "/"
}

// ImagePrefix is the blob key prefix of everything an image owns.
func ImagePrefix(productID, imageID string) string {
	return "products/" + productID + "/" + imageID + "/"
}

// ProductPrefix is the blob key prefix of everything a product owns.
func ProductPrefix(productID string) string {
	return "products/" + productID + "/"
}

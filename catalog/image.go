package catalog

import (
	"encoding/json"
	"strconv"
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

// MarshalJSON renders the image with variants always an array.
func (img Image) MarshalJSON() ([]byte, error) {
	type plain Image
	q := plain(img)
	if q.Variants == nil {
		q.Variants = []Variant{}
	}
	return json.Marshal(q)
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

package catalog

import "time"

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
	ID          string      `json:"id"`
	ProductID   string      `json:"product_id"`
	Status      ImageStatus `json:"status"`
	Error       *ImageError `json:"error,omitempty"`
	Original    Original    `json:"original"`
	Variants    []Variant   `json:"variants"`
	CreatedAt   time.Time   `json:"created_at"`
	ProcessedAt *time.Time  `json:"processed_at"`
	// Attempts counts the processing runs started, before each starts.
	Attempts int `json:"-"`
}

// ImageError says why processing failed.
type ImageError struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Original describes the uploaded file.
type Original struct {
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Frames      int    `json:"frames"`
	SHA256      string `json:"sha256"`
	// Key is where the original is kept in the blob store.
	Key string `json:"-"`
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
}

// OriginalKey is the blob key of an image's original file. Keys are built
// from server-made ids only, never from user input.
func OriginalKey(productID, imageID string) string {
	return "products/" + productID + "/" + imageID + "/original"
}

// VariantKey is the blob key of one variant; processing the same image twice
// writes the same keys.
func VariantKey(productID, imageID, name, ext string) string {
	return "products/" + productID + "/" + imageID + "/" + name + "." + ext
}

// ProductPrefix is the blob key prefix of everything a product owns.
func ProductPrefix(productID string) string {
	return "products/" + productID + "/"
}

package media

import (
	"fmt"
	"math"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Fit says how a variant's box constrains the image.
type Fit string

// The fits; the empty Fit means FitInside.
const (
	// FitInside scales the image down, keeping its aspect ratio, until it
	// fits inside the box. Images already inside the box are not enlarged.
	FitInside Fit = "inside"
	// FitCover scales the image down until it covers the box, then crops
	// the overflow, keeping the region libvips' attention strategy finds
	// most interesting (edges, skin tones, saturated colours) rather than
	// the centre. The result has the box's aspect ratio. It is never
	// enlarged: an image that cannot cover the box yields the largest crop
	// of the box's shape it holds (a 300×100 image in a 200×200 box gives
	// 100×100).
	FitCover Fit = "cover"
)

// Encoding is one file a variant is written as.
type Encoding struct {
	// Format is FormatWebP (lossy, alpha kept), FormatJPEG (baseline,
	// alpha flattened onto white) or FormatAVIF (AV1 in HEIF, 8-bit 4:2:0,
	// alpha kept; 2-5 times as slow to encode as WebP).
	Format Format `json:"format"`
	// Quality is 1-100, the libvips Q of the format's saver. The scales
	// are not comparable across formats: AVIF at Q 55 makes files smaller
	// than WebP at Q 80 (about 65 % of the bytes on a 400 px photo, 55 %
	// at 1600 px).
	Quality int `json:"quality"`
}

// Variant is one rendition of an image: a box, a fit and the encodings to
// write.
type Variant struct {
	Name    string     `json:"name"` // used in blob keys: [a-z0-9_-], 1-32 bytes
	Width   int        `json:"width"`
	Height  int        `json:"height"`
	Fit     Fit        `json:"fit,omitempty"`
	Formats []Encoding `json:"formats"`
}

// Recipe is what processing makes of an image: plain data, so that it can
// come from configuration (see ParseRecipe).
type Recipe struct {
	// Version identifies what the recipe makes, 1 or more. Raise it
	// whenever a variant changes, so that renditions made by an older
	// recipe can be told apart and made again.
	Version  int       `json:"version"`
	Variants []Variant `json:"variants"`
}

// Bounds of a recipe.
const (
	// MaxVariantSide bounds a variant's box; WebP cannot encode more than
	// 16383 pixels a side.
	MaxVariantSide = 16383
	// MaxVariants bounds the variants of a recipe, and so the work one
	// image can cause.
	MaxVariants = 16
	// MaxRecipeBytes bounds a recipe file read by ParseRecipe.
	MaxRecipeBytes = 64 << 10
)

// DefaultRecipeVersion is the version of DefaultRecipe. Version 1 made
// thumb, medium and large, all fitted inside their boxes; version 2 added
// small and the cover crop of thumb, as WebP and JPEG.
const DefaultRecipeVersion = 3

// DefaultRecipe (version 3) makes thumb (200×200, cropped to cover the
// box), small (400×400), medium (800×800) and large (1600×1600), the last
// three fitted inside their boxes, none enlarged, each as WebP (quality
// 80), JPEG (quality 82) and AVIF (quality 55, about the bytes of WebP at
// 65 %): twelve files, the four AVIF ones made after the image is ready
// (see Variant.Deferred).
func DefaultRecipe() Recipe {
	encodings := func() []Encoding {
		return []Encoding{{Format: FormatWebP, Quality: 80}, {Format: FormatJPEG, Quality: 82}, {Format: FormatAVIF, Quality: 55}}
	}
	return Recipe{Version: DefaultRecipeVersion, Variants: []Variant{
		{Name: "thumb", Width: 200, Height: 200, Fit: FitCover, Formats: encodings()},
		{Name: "small", Width: 400, Height: 400, Fit: FitInside, Formats: encodings()},
		{Name: "medium", Width: 800, Height: 800, Fit: FitInside, Formats: encodings()},
		{Name: "large", Width: 1600, Height: 1600, Fit: FitInside, Formats: encodings()},
	}}
}

// Deferred reports whether encoding e of the variant is made after the
// image is ready: AVIF, 2-5 times as slow to encode as WebP, when the
// variant has another format to serve meanwhile (every browser decodes
// JPEG; the fallback formats are the others).
func (v Variant) Deferred(e Encoding) bool {
	if e.Format != FormatAVIF {
		return false
	}
	for _, o := range v.Formats {
		if o.Format != FormatAVIF {
			return true
		}
	}
	return false
}

// Outputs is the number of files the recipe makes.
func (r Recipe) Outputs() int {
	n := 0
	for _, v := range r.Variants {
		n += len(v.Formats)
	}
	return n
}

// writable reports whether processing can encode format f.
func writable(f Format) bool {
	return f == FormatWebP || f == FormatJPEG || f == FormatAVIF
}

func invalidRecipe(format string, args ...any) error {
	return catalog.Errorf(catalog.KindInvalid, "invalid_recipe", format, args...)
}

// Validate reports the first thing wrong with the recipe, as an error of
// kind KindInvalid and code "invalid_recipe".
func (r Recipe) Validate() error {
	invalid := invalidRecipe
	if r.Version < 1 {
		return invalid("recipe version %d must be 1 or more", r.Version)
	}
	if len(r.Variants) == 0 {
		return invalid("a recipe needs at least one variant")
	}
	if len(r.Variants) > MaxVariants {
		return invalid("a recipe has at most %d variants, not %d", MaxVariants, len(r.Variants))
	}
	names := map[string]bool{}
	for i, v := range r.Variants {
		if !validVariantName(v.Name) {
			return invalid("variant %d: name %q must be 1-32 bytes of a-z, 0-9, _ and -", i, v.Name)
		}
		if names[v.Name] {
			return invalid("variant %q appears twice", v.Name)
		}
		names[v.Name] = true
		if v.Width < 1 || v.Height < 1 || v.Width > MaxVariantSide || v.Height > MaxVariantSide {
			return invalid("variant %q: box %dx%d must be 1-%d pixels a side", v.Name, v.Width, v.Height, MaxVariantSide)
		}
		switch v.Fit {
		case FitInside, FitCover, "":
		default:
			return invalid("variant %q: unknown fit %q; use %q or %q", v.Name, v.Fit, FitInside, FitCover)
		}
		if len(v.Formats) == 0 {
			return invalid("variant %q has no formats", v.Name)
		}
		seen := map[Format]bool{}
		for _, e := range v.Formats {
			if !writable(e.Format) {
				return invalid("variant %q: format %s cannot be written; use webp, jpeg or avif", v.Name, e.Format)
			}
			if seen[e.Format] {
				return invalid("variant %q: format %s appears twice", v.Name, e.Format)
			}
			seen[e.Format] = true
			if e.Quality < 1 || e.Quality > 100 {
				return invalid("variant %q: %s quality %d must be 1-100", v.Name, e.Format, e.Quality)
			}
		}
	}
	return nil
}

func validVariantName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Output is one encoded file made by processing.
type Output struct {
	Name        string // the variant's name
	Fit         Fit    // the variant's: FitInside or FitCover
	Format      Format
	ContentType string
	Width       int
	Height      int
	Data        []byte
	// Took is how long saving this output took (its encoding).
	Took time.Duration
}

// Header is what an image file declares about itself, read without decoding
// its pixels.
type Header struct {
	Format Format
	// Width and Height are those of one frame as stored, before EXIF
	// orientation is applied. For HEIF they are the displayed size: the
	// decoder applies the container's rotation and mirroring itself.
	Width, Height int
	// Frames counts the frames of an animation or the pages of a
	// multi-page file; 1 for a still image.
	Frames int
	// Orientation is the EXIF orientation, 1-8; 1 when absent or invalid.
	Orientation int
	HasAlpha    bool
}

// DisplaySize is the size of one frame once its orientation is applied:
// orientations 5-8 swap width and height.
func (h Header) DisplaySize() (width, height int) {
	if h.Orientation >= 5 && h.Orientation <= 8 {
		return h.Height, h.Width
	}
	return h.Width, h.Height
}

// Limits bound what an image may ask of the decoder; they are checked
// against the header, before any pixel is decoded.
type Limits struct {
	// MaxPixels bounds width × height summed over all frames.
	MaxPixels int64
	// MaxFrames bounds the number of frames or pages.
	MaxFrames int
}

// The default limits.
const (
	DefaultMaxPixels = 50_000_000
	DefaultMaxFrames = 1000
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxPixels: DefaultMaxPixels, MaxFrames: DefaultMaxFrames}
}

// WithDefaults returns l with each zero (or negative) field replaced by its
// default.
func (l Limits) WithDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxFrames <= 0 {
		l.MaxFrames = DefaultMaxFrames
	}
	return l
}

// Check refuses a header over the limits with an error of kind
// KindUnprocessableImage and code catalog.FailTooManyFrames or
// catalog.FailTooManyPixels whose detail states the limit and the image's
// figure. Zero fields of l mean the defaults.
func (l Limits) Check(h Header) error {
	l = l.WithDefaults()
	if h.Frames > l.MaxFrames {
		return catalog.Errorf(catalog.KindUnprocessableImage, catalog.FailTooManyFrames,
			"the image has %d frames; the limit is %d", h.Frames, l.MaxFrames)
	}
	frames := uint64(max(h.Frames, 1))
	perFrame := uint64(max(h.Width, 0)) * uint64(max(h.Height, 0))
	total := uint64(math.MaxUint64)
	if perFrame <= math.MaxUint64/frames {
		total = perFrame * frames
	}
	if total > uint64(l.MaxPixels) { // #nosec G115 -- WithDefaults made l.MaxPixels > 0
		in := ""
		if frames > 1 {
			in = fmt.Sprintf(" in each of %d frames", frames)
		}
		return catalog.Errorf(catalog.KindUnprocessableImage, catalog.FailTooManyPixels,
			"the image has %dx%d pixels%s, %d in all; the limit is %d", h.Width, h.Height, in, total, l.MaxPixels)
	}
	return nil
}

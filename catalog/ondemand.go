package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Widths is the ladder of widths made on demand: every Step pixels from
// Step to Max. A requested width snaps up to the ladder, so that however
// many distinct widths clients ask for, an image has at most Max/Step
// widths made of it (per aspect ratio and format).
type Widths struct {
	Step int
	Max  int
}

// DefaultWidths is the ladder by default: 16 to 2,048 px every 16 px, 128
// widths.
var DefaultWidths = Widths{Step: 16, Max: 2048}

// MaxAspectTerm bounds each term of an on-demand aspect ratio (ar4x3):
// at most 32 × 32 ratios, each made at most once per width and format.
const MaxAspectTerm = 32

// Render is one file made on demand from an image's original: a width
// of the ladder, an optional aspect ratio (a cover crop around the image's
// focal point, the attention crop without one), a format.
type Render struct {
	Width int `json:"width"`
	// AspectX and AspectY are the crop's aspect ratio in lowest terms
	// (0 and 0: no crop, the image's own ratio).
	AspectX int    `json:"aspect_x,omitempty"`
	AspectY int    `json:"aspect_y,omitempty"`
	Format  string `json:"format"` // webp, jpeg or avif
}

// RenderFormats are the formats made on demand, in the order negotiation
// prefers them when the client accepts them equally.
var RenderFormats = []string{"avif", "webp", "jpeg"}

// Cropped reports whether the render is a cover crop.
func (r Render) Cropped() bool { return r.AspectX > 0 }

// Snap fits a requested width to the ladder: up to the next rung, then
// down to the largest the image allows (its own width; with a crop, the
// widest box of the ratio it covers), so nothing is ever enlarged.
// Errors are KindInvalid when the width is outside 1..Max.
func (w Widths) Snap(width, imageWidth, imageHeight, ax, ay int) (int, error) {
	if width < 1 || width > w.Max {
		return 0, Errorf(KindInvalid, "invalid_width", "the width must be 1 to %d pixels, not %d", w.Max, width)
	}
	snapped := (width + w.Step - 1) / w.Step * w.Step
	snapped = min(snapped, w.Max)
	limit := imageWidth
	if ax > 0 && ay > 0 && imageHeight*ax/ay < limit {
		limit = imageHeight * ax / ay // the height limits the crop
	}
	return max(1, min(snapped, limit)), nil
}

// Reduce puts an aspect ratio in lowest terms, checking its terms are 1 to
// MaxAspectTerm: KindInvalid otherwise.
func Reduce(x, y int) (int, int, error) {
	if x < 1 || y < 1 || x > MaxAspectTerm || y > MaxAspectTerm {
		return 0, 0, Errorf(KindInvalid, "invalid_aspect_ratio",
			"an aspect ratio's terms must be 1 to %d (ar1x1, ar4x3, ar16x9), not %dx%d", MaxAspectTerm, x, y)
	}
	a, b := x, y
	for b != 0 {
		a, b = b, a%b
	}
	return x / a, y / a, nil
}

// Height is the render's height for an image of that size: the crop's,
// or the image's scaled to the width (at least 1 px).
func (r Render) Height(imageWidth, imageHeight int) int {
	if r.Cropped() {
		return max(1, (r.Width*r.AspectY+r.AspectX/2)/r.AspectX)
	}
	return max(1, (r.Width*imageHeight+imageWidth/2)/imageWidth)
}

// RenderKey is the blob key of a render of an image: beside the variants
// of its recipe version (so that a new recipe, which removes the old
// version's files, removes the renders too), named by width, ratio and,
// for crops around a focal point, that point (a new focal point makes new
// crops).
func RenderKey(productID, imageID string, recipeVersion int, r Render, focus *FocalPoint) string {
	name := "w" + strconv.Itoa(r.Width)
	if r.Cropped() {
		name = fmt.Sprintf("ar%dx%d-%s", r.AspectX, r.AspectY, name)
		if focus != nil {
			name += "-" + focusKey(focus)
		}
	}
	return VariantPrefix(productID, imageID, recipeVersion) + "od/" + name + "." + r.Format
}

// RenderResult answers a render request: where the file is stored.
type RenderResult struct {
	Key string `json:"key"`
}

// RenderTarget is render r of the image as it is made: its ratio in lowest
// terms, its width on the ladder w and within the image (Widths.Snap), and
// its blob key. Errors: KindInvalid for a width, ratio or format out of
// bounds; KindNotFound while the image is not ready (pending or
// processing for the first time, or failed).
func (img *Image) RenderTarget(w Widths, r Render) (Render, string, error) {
	if !slices.Contains(RenderFormats, r.Format) {
		return r, "", Errorf(KindInvalid, "invalid_format", "files are made on demand as avif, webp or jpeg, not %q", r.Format)
	}
	if r.AspectX != 0 || r.AspectY != 0 {
		x, y, err := Reduce(r.AspectX, r.AspectY)
		if err != nil {
			return r, "", err
		}
		r.AspectX, r.AspectY = x, y
	}
	// An image being processed again keeps its variants until the new
	// ones are recorded, and so its renders: they go with the old
	// variants if the recipe version changes.
	again := (img.Status == StatusPending || img.Status == StatusProcessing) && img.RecipeVersion > 0 && len(img.Variants) > 0
	if (img.Status != StatusReady && !again) || img.Original.Width < 1 || img.Original.Height < 1 {
		return r, "", Errorf(KindNotFound, "image_not_ready", "image %s is %s: files are made on demand of ready images only", img.ID, img.Status)
	}
	width, err := w.Snap(r.Width, img.Original.Width, img.Original.Height, r.AspectX, r.AspectY)
	if err != nil {
		return r, "", err
	}
	r.Width = width
	var focus *FocalPoint
	if r.Cropped() {
		focus = img.FocalPoint
	}
	return r, RenderKey(img.ProductID, img.ID, img.RecipeVersion, r, focus), nil
}

// RenderCropPrefix is the blob key prefix of an image's on-demand crops
// made under a recipe version.
func RenderCropPrefix(productID, imageID string, recipeVersion int) string {
	return VariantPrefix(productID, imageID, recipeVersion) + "od/ar"
}

// StaleRenderCrop reports whether key, an on-demand crop's (under
// RenderCropPrefix), was cropped around another focus than focus: its URL
// now names another file, and it can go.
func StaleRenderCrop(key string, focus *FocalPoint) bool {
	name := key[strings.LastIndexByte(key, '/')+1:]
	stem, _, _ := strings.Cut(name, ".")
	if focus == nil {
		return strings.Contains(stem, "-f")
	}
	return !strings.HasSuffix(stem, "-"+focusKey(focus))
}

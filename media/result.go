package media

import "github.com/vitrine-dev/vitrine/catalog"

// Result is what processing makes of one image: its encoded outputs and
// what a page needs to lay the image out and show something before the
// outputs load. Everything but Outputs describes the image, not one output.
type Result struct {
	// Outputs are the recipe's files, in recipe order, each variant's
	// encodings in order.
	Outputs []Output
	// Width and Height are the source's displayed size: one frame, with
	// its orientation applied.
	Width, Height int
	// Placeholder is a BlurHash (https://blurha.sh) of the image: 4×3
	// components for a landscape or square image, 3×4 for a portrait
	// one, 28 characters. See PlaceholderOf.
	Placeholder string
	// DominantColor is the image's mean colour as "#rrggbb". See
	// PlaceholderOf.
	DominantColor string
	// Animated is set for a GIF or WebP animation of two or more frames;
	// only its first frame is rendered.
	Animated bool
	// Frames counts the source's frames (animations) or pages
	// (multi-page TIFF); 1 for a still image.
	Frames int
}

// PlaceholderSide is the least longest side of the rendition PlaceholderOf
// is given (of an image at least that large): from PlaceholderSide to
// twice that, blocks of pixels averaged.
const PlaceholderSide = 32

// PlaceholderOf computes Result.Placeholder and Result.DominantColor from
// a small rendition of the image (PlaceholderSide to twice that many
// pixels on its longest side, upright, 8-bit sRGB, alpha flattened onto
// white as in JPEG outputs), given as rows of packed RGB bytes.
//
// The dominant colour is the mean of the rendition's pixels taken in
// linear light, then encoded as sRGB: the colour the image averages to
// when seen from afar, and the same colour as the BlurHash's DC
// component. (Averaging sRGB values instead would darken it.)
func PlaceholderOf(rgb []byte, width, height int) (placeholder, dominant string, err error) {
	xc, yc := 4, 3
	if height > width {
		xc, yc = 3, 4
	}
	placeholder, err = BlurHash(rgb, width, height, xc, yc)
	if err != nil {
		return "", "", err
	}
	return placeholder, MeanColor(rgb, width, height), nil
}

// Options change what processing makes of an image.
type Options struct {
	// Focus, when set, is where cover variants are cropped around, instead
	// of where libvips' attention strategy finds the interest.
	Focus *catalog.FocalPoint
	// CoverOnly makes only the cover variants: their crops are made again
	// while the others stand.
	CoverOnly bool
	// Early, when set, is called once every variant's other formats are
	// made, before its deferred ones (Variant.Deferred: AVIF) are encoded,
	// with a Result of those outputs only (and the placeholder and
	// colour); an error from it ends processing with that error. The
	// final Result then holds every output. Without Early, each variant's
	// formats are made one after the other, deferred or not.
	Early func(Result) error
	// NoPlaceholder skips the placeholder and dominant colour (a render
	// made on demand needs neither).
	NoPlaceholder bool
}

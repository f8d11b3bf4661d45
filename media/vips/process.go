package vips

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
)

// strictness is the libvips fail_on level of decoding: truncated or broken
// JPEG, PNG, GIF, … fail instead of being filled with grey. "truncated" and
// "error" are not enough: a JPEG whose scan data is corrupt (libjpeg's
// "Corrupt JPEG data: premature end of data segment") only warns. The price
// is that files with merely cosmetic damage that libjpeg warns about, such
// as extraneous bytes before a marker, are refused too.
const strictness = failOnWarning

// Process makes the recipe's variants of an image file: ProcessImage
// without the data about the image.
func (rt *Runtime) Process(ctx context.Context, data []byte, recipe media.Recipe) ([]media.Output, error) {
	res, err := rt.ProcessImage(ctx, data, recipe)
	if err != nil {
		return nil, err
	}
	return res.Outputs, nil
}

// ProcessImage makes the recipe's variants of an image file and describes
// the image for rendering (see media.Result).
//
// The file is sniffed, its header checked against the Runtime's limits,
// then the largest variant is decoded from the buffer with shrink-on-load
// (JPEG and WebP decode at reduced size), auto-oriented by EXIF,
// converted to 8-bit sRGB through its embedded ICC profile (CMYK without
// one through libvips' built-in profile), and rendered to memory once; each
// smaller variant is shrunk from the previous in-memory result rather than
// decoded again. Variants fitted inside their box are such results; a
// cover variant is cut from the current result, by libvips' thumbnail
// with crop=attention, and not used further. Animations yield their first
// frame. Before every save all metadata is removed from the image itself
// (EXIF, XMP, IPTC, ICC, orientation, comments, …). Alpha is kept in WebP
// and AVIF and flattened onto white for JPEG. No variant is larger than the
// oriented source. The placeholder and dominant colour are computed last,
// from a 32-63 px box-filtered rendition of the smallest uncropped result.
//
// Outputs come in recipe order, each variant's encodings in order. ctx is
// checked between steps, and ending it kills a decode in progress.
//
// Errors: those of Probe; corrupt_image (a *catalog.Error) when the decoder
// fails; ctx's cause, wrapped, when ctx ends; others wrapped.
func (rt *Runtime) ProcessImage(ctx context.Context, data []byte, recipe media.Recipe) (media.Result, error) {
	return rt.ProcessImageWith(ctx, data, recipe, media.Options{})
}

// ProcessImageWith is ProcessImage with options: cover variants cropped
// around a focal point (opts.Focus) rather than by attention, and only
// they made (opts.CoverOnly: the placeholder and colour are then those of
// the decode, not of the smallest uncropped variant).
func (rt *Runtime) ProcessImageWith(ctx context.Context, data []byte, recipe media.Recipe, opts media.Options) (media.Result, error) {
	leave, err := rt.enter()
	if err != nil {
		return media.Result{}, err
	}
	defer leave()
	if err := recipe.Validate(); err != nil {
		return media.Result{}, fmt.Errorf("vips: process: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return media.Result{}, fmt.Errorf("vips: process: %w", context.Cause(ctx))
	}
	f, err := media.Sniff(data)
	if err != nil {
		return media.Result{}, err
	}
	b := newBlob(data)
	defer b.close()
	h, err := readHeader(b, f)
	if err != nil {
		return media.Result{}, err
	}
	if err := rt.limits.Check(h); err != nil {
		return media.Result{}, err
	}

	// Largest scale first: it is decoded from the buffer, and each other
	// variant is made from the current uncropped result, which is at least
	// as large, so that shrinking it gives what shrinking the source would.
	var order []int
	for i, v := range recipe.Variants {
		if !opts.CoverOnly || v.Fit == media.FitCover {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(variantScale(h, recipe.Variants[b]), variantScale(h, recipe.Variants[a]))
	})
	if len(order) == 0 { // CoverOnly, and the recipe crops nothing
		w, ht := h.DisplaySize()
		return media.Result{Width: w, Height: ht, Frames: h.Frames}, nil
	}
	byVariant := make([][]media.Output, len(recipe.Variants))
	// With opts.Early, each variant's metadata-free image is kept for
	// its deferred formats, encoded after Early.
	deferred := make([]*vimage, len(recipe.Variants))
	defer func() {
		for _, d := range deferred {
			d.close()
		}
	}()
	var base *vimage // the current uncropped result
	defer func() { base.close() }()
	for k, i := range order {
		v := recipe.Variants[i]
		if err := ctx.Err(); err != nil {
			return media.Result{}, fmt.Errorf("vips: process: before variant %q: %w", v.Name, context.Cause(ctx))
		}
		var next *vimage
		switch {
		case k == 0:
			w, ht := decodeBox(h, v)
			// One output: nothing is made from the decode after it, so
			// the decoder may shrink as far as the box (see loadShrink).
			next, err = decode(ctx, b, h, w, ht, len(order) == 1)
		case v.Fit != media.FitCover:
			next, err = shrink(ctx, base, v.Width, v.Height, false)
		}
		if err != nil {
			return media.Result{}, err
		}
		if next != nil {
			base.close()
			base = next
		}
		img := base
		if v.Fit == media.FitCover {
			w, ht := coverSize(h, v)
			if opts.Focus != nil {
				img, err = cropAround(ctx, base, w, ht, opts.Focus)
			} else {
				img, err = shrink(ctx, base, w, ht, true)
			}
			if err != nil {
				return media.Result{}, err
			}
		}
		byVariant[i], deferred[i], err = encode(ctx, img, v, opts.Early != nil)
		if img != base {
			img.close()
		}
		if err != nil {
			return media.Result{}, err
		}
	}
	res := media.Result{Outputs: make([]media.Output, 0, recipe.Outputs()), Frames: h.Frames}
	for _, o := range byVariant {
		res.Outputs = append(res.Outputs, o...)
	}
	res.Width, res.Height = h.DisplaySize()
	res.Animated = h.Frames > 1 && (f == media.FormatGIF || f == media.FormatWebP)
	if err := ctx.Err(); err != nil {
		return media.Result{}, fmt.Errorf("vips: process: before the placeholder: %w", context.Cause(ctx))
	}
	if !opts.NoPlaceholder {
		if res.Placeholder, res.DominantColor, err = placeholder(base); err != nil {
			return media.Result{}, fmt.Errorf("vips: process: placeholder: %w", err)
		}
	}
	if opts.Early == nil {
		return res, nil
	}
	if err := opts.Early(res); err != nil {
		return media.Result{}, err
	}
	base.close() // only the kept images are needed now
	for i, bare := range deferred {
		if bare == nil {
			continue
		}
		v := recipe.Variants[i]
		for _, e := range v.Formats {
			if !v.Deferred(e) {
				continue
			}
			o, err := encodeFormat(ctx, bare, v, e)
			if err != nil {
				return media.Result{}, err
			}
			byVariant[i] = append(byVariant[i], o)
		}
		bare.close()
		// Each variant's encodings in the recipe's order.
		slices.SortStableFunc(byVariant[i], func(a, b media.Output) int {
			return formatIndex(v, a.Format) - formatIndex(v, b.Format)
		})
	}
	res.Outputs = res.Outputs[:0:0]
	for _, o := range byVariant {
		res.Outputs = append(res.Outputs, o...)
	}
	return res, nil
}

// formatIndex is the place of format f among the variant's encodings.
func formatIndex(v media.Variant, f media.Format) int {
	return slices.IndexFunc(v.Formats, func(e media.Encoding) bool { return e.Format == f })
}

// placeholder computes the BlurHash and mean colour of img, an upright
// 8-bit sRGB image, from a rendition PlaceholderSide to twice that many
// pixels on its longest side, flattened onto white. The rendition averages
// blocks of pixels (a box filter): a BlurHash is a handful of averages
// anyway, and resampling an 800 px image down to 32 px with thumbnail's
// Lanczos kernel cost 5-10 % of making an 800 px WebP.
func placeholder(img *vimage) (hash, color string, err error) {
	small, err := boxShrink(img, max(1, max(img.width(), img.height())/media.PlaceholderSide))
	if err != nil {
		return "", "", err
	}
	defer small.close()
	flat := small
	if small.hasAlpha() {
		if flat, err = flattenWhite(small); err != nil {
			return "", "", err
		}
		defer flat.close()
	}
	u8, err := castUchar(flat)
	if err != nil {
		return "", "", err
	}
	defer u8.close()
	if u8.bands() != 3 {
		return "", "", fmt.Errorf("the rendition has %d bands, not 3", u8.bands())
	}
	pix, err := pixels(u8)
	if err != nil {
		return "", "", err
	}
	return media.PlaceholderOf(pix, u8.width(), u8.height())
}

// decode opens the first frame of b inside width×height, upright, in 8-bit
// sRGB, and renders it to memory: the one decode of the file.
func decode(ctx context.Context, b *blob, h media.Header, width, height int, single bool) (*vimage, error) {
	f := h.Format
	var jpegShrink int
	var webpScale float64
	switch s := loadShrink(h, width, height, single); f {
	case media.FormatJPEG:
		jpegShrink = s
	case media.FormatWebP:
		webpScale = 1 / float64(s)
	}
	src, err := load(b, loaderFor(f), strictness, jpegShrink, webpScale)
	if err != nil {
		return nil, corruptError(f, "cannot be opened", err)
	}
	defer src.close()
	thumb, err := thumbnailImage(src, width, height, true, false)
	if err != nil {
		return nil, corruptError(f, "cannot be resized", err)
	}
	defer thumb.close()
	rgb, err := toSRGB8(thumb)
	if err != nil {
		return nil, corruptError(f, "has a colour space that cannot be converted to sRGB", err)
	}
	defer rgb.close()
	mem, err := render(ctx, rgb)
	switch {
	case errors.Is(err, errKilled):
		return nil, fmt.Errorf("vips: process: decode: %w", err)
	case err != nil:
		return nil, corruptError(f, "cannot be decoded", err)
	}
	return mem, nil
}

// variantScale is the scale of the source, with header h, that variant v
// needs: fitted inside the box, or covering it, never enlarged.
func variantScale(h media.Header, v media.Variant) float64 {
	dw, dh := h.DisplaySize()
	sw, sh := float64(v.Width)/float64(dw), float64(v.Height)/float64(dh)
	if v.Fit == media.FitCover {
		return min(1, max(sw, sh))
	}
	return min(1, sw, sh)
}

// coverSize is the size of cover variant v of an image with header h: its
// box, or the largest rectangle of the box's shape inside the source if
// the source cannot cover the box.
func coverSize(h media.Header, v media.Variant) (width, height int) {
	dw, dh := h.DisplaySize()
	f := min(1, float64(dw)/float64(v.Width), float64(dh)/float64(v.Height))
	return max(1, int(math.Round(float64(v.Width)*f))), max(1, int(math.Round(float64(v.Height)*f)))
}

// decodeBox is the box the source is decoded to, fitted inside, for its
// first variant v: v's box, or for a cover variant the whole source at the
// scale v needs, from which v is then cropped.
func decodeBox(h media.Header, v media.Variant) (width, height int) {
	if v.Fit != media.FitCover {
		return v.Width, v.Height
	}
	dw, dh := h.DisplaySize()
	s := variantScale(h, v)
	return max(1, int(math.Ceil(float64(dw)*s))), max(1, int(math.Ceil(float64(dh)*s)))
}

// loadShrink is the shrink-on-load factor (1, 2, 4 or 8) for fitting an
// image inside width×height. Like libvips' thumbnail, it leaves at least a
// factor of two to the final resize, whose filter is better than the
// decoder's scaled IDCT, as the smaller variants of a recipe are made from
// the decode in turn. For a single output (single), it shrinks as far as
// the box, as imgproxy decodes: a 4080×3072 JPEG made 800 px wide differs
// from a Lanczos 3 resize of its full decode by 0.64 levels on average
// decoded at 1/4, 0.50 at 1/2, and the 1/4 decode saves about a sixth of
// the CPU (bench/README.md, "Where the CPU goes"). In a recipe's chain the
// difference grows with each variant made from the last (the attention
// crops of thumbnails move by a few pixels), so recipes keep libvips' rule.
func loadShrink(h media.Header, width, height int, single bool) int {
	dw, dh := h.DisplaySize()
	factor := max(float64(dw)/float64(width), float64(dh)/float64(height))
	if single {
		factor *= 2
	}
	switch {
	case factor >= 16:
		return 8
	case factor >= 8:
		return 4
	case factor >= 4:
		return 2
	}
	return 1
}

// shrink renders in shrunk to fit inside width×height, or with crop to
// cover it and cropped, never enlarged.
func shrink(ctx context.Context, in *vimage, width, height int, crop bool) (*vimage, error) {
	t, err := thumbnailImage(in, width, height, false, crop)
	if err != nil {
		return nil, fmt.Errorf("vips: process: shrink to %dx%d: %w", width, height, err)
	}
	defer t.close()
	mem, err := render(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("vips: process: shrink to %dx%d: %w", width, height, err)
	}
	return mem, nil
}

// cropAround renders the cover crop width×height of in (which covers it)
// made around focus: the largest region of the box's shape that in holds,
// centred on the focal point as nearly as the image's edges allow, scaled
// to the box.
func cropAround(ctx context.Context, in *vimage, width, height int, focus *catalog.FocalPoint) (*vimage, error) {
	iw, ih := in.width(), in.height()
	rw, rh := iw, ih
	if iw*height > ih*width { // wider than the box: the full height
		rw = min(iw, max(1, int(math.Round(float64(ih)*float64(width)/float64(height)))))
	} else {
		rh = min(ih, max(1, int(math.Round(float64(iw)*float64(height)/float64(width)))))
	}
	left := min(max(0, int(math.Round(focus.X*float64(iw)-float64(rw)/2))), iw-rw)
	top := min(max(0, int(math.Round(focus.Y*float64(ih)-float64(rh)/2))), ih-rh)
	t, err := focusCrop(in, left, top, rw, rh, width, height)
	if err != nil {
		return nil, fmt.Errorf("vips: process: crop %dx%d around %v: %w", width, height, *focus, err)
	}
	defer t.close()
	mem, err := render(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("vips: process: crop %dx%d around %v: %w", width, height, *focus, err)
	}
	return mem, nil
}

// encode writes img in each of the variant's formats, without metadata.
//
// With early, the variant's deferred formats (Variant.Deferred) are left
// out and the metadata-free image is returned for them (nil when it has
// none); the caller encodes them with encodeFormat and closes it.
func encode(ctx context.Context, img *vimage, v media.Variant, early bool) (_ []media.Output, kept *vimage, _ error) {
	bare, err := strip(img)
	if err != nil {
		return nil, nil, fmt.Errorf("vips: process: strip metadata: %w", err)
	}
	defer func() {
		if kept != bare {
			bare.close()
		}
	}()
	outs := make([]media.Output, 0, len(v.Formats))
	for _, e := range v.Formats {
		if early && v.Deferred(e) {
			kept = bare
			continue
		}
		o, err := encodeFormat(ctx, bare, v, e)
		if err != nil {
			kept = nil
			return nil, nil, err
		}
		outs = append(outs, o)
	}
	return outs, kept, nil
}

// encodeFormat saves a metadata-free image of variant v in encoding e.
func encodeFormat(ctx context.Context, bare *vimage, v media.Variant, e media.Encoding) (media.Output, error) {
	if err := ctx.Err(); err != nil {
		return media.Output{}, fmt.Errorf("vips: process: before %s %s: %w", v.Name, e.Format, context.Cause(ctx))
	}
	start := time.Now()
	data, w, h, err := encodeOne(bare, e)
	if err != nil {
		return media.Output{}, fmt.Errorf("vips: process: encode %s as %s: %w", v.Name, e.Format, err)
	}
	return media.Output{
		Name: v.Name, Format: e.Format, ContentType: e.Format.ContentType(), Fit: cmp.Or(v.Fit, media.FitInside),
		Width: w, Height: h, Data: data, Took: time.Since(start),
	}, nil
}

// encodeOne saves a metadata-free image in one encoding.
func encodeOne(bare *vimage, e media.Encoding) (data []byte, width, height int, err error) {
	switch e.Format {
	case media.FormatWebP:
		if data, err = saveWebP(bare, e.Quality); err != nil {
			return nil, 0, 0, err
		}
		// The image carries no metadata, but this libvips writes a fresh
		// EXIF chunk anyway; see media.StripWebPMetadata.
		if data, err = media.StripWebPMetadata(data); err != nil {
			return nil, 0, 0, err
		}
		return data, bare.width(), bare.height(), nil
	case media.FormatAVIF:
		data, err = saveAVIF(bare, e.Quality)
		return data, bare.width(), bare.height(), err
	case media.FormatJPEG:
		in := bare
		if bare.hasAlpha() {
			flat, err := flattenWhite(bare)
			if err != nil {
				return nil, 0, 0, fmt.Errorf("flatten alpha: %w", err)
			}
			defer flat.close()
			in = flat
		}
		data, err = saveJPEG(in, e.Quality)
		return data, in.width(), in.height(), err
	}
	return nil, 0, 0, catalog.Errorf(catalog.KindInternal, catalog.FailInternal, "cannot encode %s", e.Format)
}

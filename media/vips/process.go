package vips

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

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

// Process makes the recipe's variants of an image file.
//
// The file is sniffed, its header checked against the Runtime's limits,
// then the largest variant is decoded from the buffer with shrink-on-load
// (JPEG and WebP decode at reduced size), auto-oriented by EXIF,
// converted to 8-bit sRGB through its embedded ICC profile (CMYK without
// one through libvips' built-in profile), and rendered to memory once; each
// smaller variant is shrunk from the previous in-memory result rather than
// decoded again. Animations yield their first frame. Before every save all
// metadata is removed from the image itself (EXIF, XMP, IPTC, ICC,
// orientation, comments, …). Alpha is kept in WebP and flattened onto white
// for JPEG. No variant is larger than the oriented source.
//
// Outputs come in recipe order, each variant's encodings in order. ctx is
// checked between steps, and ending it kills a decode in progress.
//
// Errors: those of Probe; corrupt_image (a *catalog.Error) when the decoder
// fails; ctx's cause, wrapped, when ctx ends; others wrapped.
func (rt *Runtime) Process(ctx context.Context, data []byte, recipe media.Recipe) ([]media.Output, error) {
	leave, err := rt.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	if err := recipe.Validate(); err != nil {
		return nil, fmt.Errorf("vips: process: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vips: process: %w", context.Cause(ctx))
	}
	f, err := media.Sniff(data)
	if err != nil {
		return nil, err
	}
	b := newBlob(data)
	defer b.close()
	h, err := readHeader(b, f)
	if err != nil {
		return nil, err
	}
	if err := rt.limits.Check(h); err != nil {
		return nil, err
	}

	// Largest result first: it is decoded from the buffer, and each other
	// variant is shrunk from the previous result, which is at least as
	// large, so that shrinking it gives what shrinking the source would.
	order := make([]int, len(recipe.Variants))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(fitScale(h, recipe.Variants[b]), fitScale(h, recipe.Variants[a]))
	})
	byVariant := make([][]media.Output, len(recipe.Variants))
	var prev *vimage
	defer func() { prev.close() }()
	for k, i := range order {
		v := recipe.Variants[i]
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("vips: process: before variant %q: %w", v.Name, context.Cause(ctx))
		}
		var img *vimage
		if k == 0 {
			img, err = decode(ctx, b, h, v.Width, v.Height)
		} else {
			img, err = shrink(ctx, prev, v.Width, v.Height)
		}
		if err != nil {
			return nil, err
		}
		prev.close()
		prev = img
		if byVariant[i], err = encode(ctx, img, v); err != nil {
			return nil, err
		}
	}
	outs := make([]media.Output, 0, recipe.Outputs())
	for _, o := range byVariant {
		outs = append(outs, o...)
	}
	return outs, nil
}

// decode opens the first frame of b inside width×height, upright, in 8-bit
// sRGB, and renders it to memory: the one decode of the file.
func decode(ctx context.Context, b *blob, h media.Header, width, height int) (*vimage, error) {
	f := h.Format
	var jpegShrink int
	var webpScale float64
	switch s := loadShrink(h, width, height); f {
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
	thumb, err := thumbnailImage(src, width, height, true)
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

// fitScale is the scale of an image with header h in variant v: fitted
// inside the box, never enlarged.
func fitScale(h media.Header, v media.Variant) float64 {
	dw, dh := h.DisplaySize()
	return min(1, float64(v.Width)/float64(dw), float64(v.Height)/float64(dh))
}

// loadShrink is the shrink-on-load factor (1, 2, 4 or 8) for fitting an
// image inside width×height. Like libvips' thumbnail, it leaves at least a
// factor of two to the final resize, whose filter is better than the
// decoder's block shrink.
func loadShrink(h media.Header, width, height int) int {
	dw, dh := h.DisplaySize()
	factor := max(float64(dw)/float64(width), float64(dh)/float64(height))
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

// shrink renders in shrunk to fit inside width×height, never enlarged.
func shrink(ctx context.Context, in *vimage, width, height int) (*vimage, error) {
	t, err := thumbnailImage(in, width, height, false)
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

// encode writes img in each of the variant's formats, without metadata.
func encode(ctx context.Context, img *vimage, v media.Variant) ([]media.Output, error) {
	bare, err := strip(img)
	if err != nil {
		return nil, fmt.Errorf("vips: process: strip metadata: %w", err)
	}
	defer bare.close()
	outs := make([]media.Output, 0, len(v.Formats))
	for _, e := range v.Formats {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("vips: process: before %s %s: %w", v.Name, e.Format, context.Cause(ctx))
		}
		data, w, h, err := encodeOne(bare, e)
		if err != nil {
			return nil, fmt.Errorf("vips: process: encode %s as %s: %w", v.Name, e.Format, err)
		}
		outs = append(outs, media.Output{
			Name: v.Name, Format: e.Format, ContentType: e.Format.ContentType(),
			Width: w, Height: h, Data: data,
		})
	}
	return outs, nil
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

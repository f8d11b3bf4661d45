package vips

import (
	"errors"
	"fmt"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
)

// loaderFor names the libvips buffer loader of an accepted format.
func loaderFor(f media.Format) string {
	switch f {
	case media.FormatJPEG:
		return "jpegload_buffer"
	case media.FormatPNG:
		return "pngload_buffer"
	case media.FormatWebP:
		return "webpload_buffer"
	case media.FormatGIF:
		return "gifload_buffer"
	case media.FormatTIFF:
		return "tiffload_buffer"
	case media.FormatHEIC, media.FormatAVIF, media.FormatHEIF:
		// Called directly, not chosen by libvips' own sniffing, which
		// looks at the major brand only and would miss files that
		// media.Sniff accepts by a compatible brand.
		return "heifload_buffer"
	}
	return "" // no such operation: libvips refuses
}

// Probe reads what an image file declares about itself without decoding
// its pixels: media.Sniff first, then the header through the libvips loader
// of the sniffed format, then lim (zero fields: defaults).
//
// Errors are *catalog.Error: from Sniff (unsupported_format,
// corrupt_image), corrupt_image if the loader refuses the header or finds
// zero dimensions, too_many_frames or too_many_pixels if over lim. With a
// limit error the header is returned too.
func (rt *Runtime) Probe(data []byte, lim media.Limits) (media.Header, error) {
	leave, err := rt.enter()
	if err != nil {
		return media.Header{}, err
	}
	defer leave()
	f, err := media.Sniff(data)
	if err != nil {
		return media.Header{Format: f}, err
	}
	b := newBlob(data)
	defer b.close()
	h, err := readHeader(b, f)
	if err != nil {
		return h, err
	}
	return h, lim.Check(h)
}

// readHeader loads the header of b, whose format was sniffed as f.
func readHeader(b *blob, f media.Format) (media.Header, error) {
	h := media.Header{Format: f}
	im, err := load(b, loaderFor(f), failOnNone, 0, 0)
	if err != nil {
		return h, corruptError(f, "has an unreadable header", err)
	}
	defer im.close()
	h.Width, h.Height = im.width(), im.height()
	h.Frames = max(im.pages(), 1)
	h.Orientation = im.orientation()
	if h.Orientation < 1 || h.Orientation > 8 {
		h.Orientation = 1
	}
	h.HasAlpha = im.hasAlpha()
	if h.Width <= 0 || h.Height <= 0 {
		return h, catalog.Errorf(catalog.KindUnprocessableImage, catalog.FailCorruptImage,
			"the %s file declares %dx%d pixels", f, h.Width, h.Height)
	}
	return h, nil
}

// corruptError reports that the decoder refused a file of format f.
func corruptError(f media.Format, what string, err error) error {
	detail := fmt.Sprintf("the %s file %s", f, what)
	var ve *vipsError
	if errors.As(err, &ve) {
		detail += " (" + ve.summary() + ")"
	}
	return &catalog.Error{Kind: catalog.KindUnprocessableImage, Code: catalog.FailCorruptImage, Detail: detail, Err: err}
}

package vips

// #include "capi.h"
import "C"

import (
	"cmp"
	"fmt"
	"slices"
	"unsafe"

	"github.com/vitrine-dev/vitrine/media"
)

// Floor makes a recipe's outputs with the least libvips work, as a plain
// libvips image server would: thumbnail_buffer (libvips' shrink-on-load,
// auto-rotation, lenient decoding) to the largest variant, then each
// smaller variant thumbnailed from the previous in-memory result, a cover
// variant cropped by attention, each encoding saved with the same saver
// and quality as ProcessImage. With one output, the thumbnail streams
// straight into the saver.
//
// It skips what ProcessImage adds for safety and rendering (sniffing, the
// header probe and limits, strict decoding, ICC conversion of the result,
// metadata removal beyond the savers' strip, the placeholder), so it is the
// floor the bench compares vitrine with, never a way to process uploads.
func (rt *Runtime) Floor(data []byte, recipe media.Recipe) ([]media.Output, error) {
	leave, err := rt.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	if len(data) == 0 {
		return nil, fmt.Errorf("vips: floor: empty input")
	}
	if err := recipe.Validate(); err != nil {
		return nil, fmt.Errorf("vips: floor: %w", err)
	}
	b := newBlob(data)
	defer b.close()
	// Largest box first, as ProcessImage does (by area: the floor has no
	// header to compute scales from).
	order := make([]int, len(recipe.Variants))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		va, vb := recipe.Variants[a], recipe.Variants[b]
		return cmp.Compare(vb.Width*vb.Height, va.Width*va.Height)
	})
	single := recipe.Outputs() == 1
	byVariant := make([][]media.Output, len(recipe.Variants))
	var base *vimage
	defer func() { base.close() }()
	for _, i := range order {
		v := recipe.Variants[i]
		cover := v.Fit == media.FitCover
		var img *vimage
		if base == nil { // the first variant, or every variant before was a cover
			var out *C.VipsImage
			if err := call(func() C.int {
				return C.vt_floor_thumbnail(b.p, cint(v.Width), cint(v.Height), cbool(cover), &out)
			}); err != nil {
				return nil, fmt.Errorf("vips: floor: thumbnail: %w", err)
			}
			img = &vimage{out}
		} else if img, err = thumbnailImage(base, v.Width, v.Height, false, cover); err != nil {
			return nil, fmt.Errorf("vips: floor: thumbnail: %w", err)
		}
		if !single {
			mem, err := copyMemory(img)
			img.close()
			if err != nil {
				return nil, fmt.Errorf("vips: floor: render: %w", err)
			}
			img = mem
		}
		for _, e := range v.Formats {
			data, err := floorSave(img, e)
			if err != nil {
				img.close()
				return nil, fmt.Errorf("vips: floor: save %s as %s: %w", v.Name, e.Format, err)
			}
			byVariant[i] = append(byVariant[i], media.Output{Name: v.Name, Format: e.Format, ContentType: e.Format.ContentType(),
				Width: img.width(), Height: img.height(), Data: data})
		}
		if cover {
			img.close()
		} else {
			base.close()
			base = img
		}
	}
	outs := make([]media.Output, 0, recipe.Outputs())
	for _, o := range byVariant {
		outs = append(outs, o...)
	}
	return outs, nil
}

func floorSave(img *vimage, e media.Encoding) ([]byte, error) {
	switch e.Format {
	case media.FormatWebP:
		return saveWebP(img, e.Quality)
	case media.FormatJPEG:
		return saveJPEG(img, e.Quality)
	case media.FormatAVIF:
		return saveAVIF(img, e.Quality)
	}
	return nil, fmt.Errorf("cannot encode %s", e.Format)
}

// copyMemory renders in into memory.
func copyMemory(in *vimage) (*vimage, error) {
	var p *C.VipsImage
	if err := call(func() C.int { return C.vt_copy_memory(in.p, &p) }); err != nil {
		return nil, err
	}
	return &vimage{p}, nil
}

// ResizeJPEG scales an image file by factor (Lanczos 3) and encodes it as
// a baseline JPEG at quality, without metadata: the bench makes its large
// test photo from a corpus photo with it.
func (rt *Runtime) ResizeJPEG(data []byte, factor float64, quality int) ([]byte, error) {
	leave, err := rt.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	if len(data) == 0 || !(factor > 0) {
		return nil, fmt.Errorf("vips: resize: empty input or factor %v", factor)
	}
	b := newBlob(data)
	defer b.close()
	return save(func(buf *unsafe.Pointer, n *C.size_t) C.int {
		return C.vt_resize_jpeg(b.p, C.double(factor), cint(quality), buf, n)
	})
}

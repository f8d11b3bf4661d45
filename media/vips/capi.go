package vips

// This file and capi.c are the project's only cgo: the libvips calls govips
// v2.16 does not offer. govips cannot pass fail_on to thumbnail_buffer (its
// "fail" loader option is overridden by thumbnail's own fail_on), has no
// copy-to-memory, no loader blocking, sniffs HEIF by major brand only, and
// converts BMP to PNG in Go behind the caller's back; its images cannot be
// handed to our own C code either. So images are handled here, and govips
// only starts, configures and stops libvips and routes its log.

// #cgo pkg-config: vips
// #include "capi.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// vimage owns one reference to a libvips image.
type vimage struct{ p *C.VipsImage }

// close drops the reference; it may be called more than once.
func (im *vimage) close() {
	if im != nil && im.p != nil {
		C.vt_unref(im.p)
		im.p = nil
	}
}

func (im *vimage) width() int       { return int(C.vt_width(im.p)) }
func (im *vimage) height() int      { return int(C.vt_height(im.p)) }
func (im *vimage) bands() int       { return int(C.vt_bands(im.p)) }
func (im *vimage) pages() int       { return int(C.vt_n_pages(im.p)) }
func (im *vimage) orientation() int { return int(C.vt_orientation(im.p)) }
func (im *vimage) hasAlpha() bool   { return C.vt_has_alpha(im.p) != 0 }

// fields lists the names of the image's header fields, structural ones
// (width, bands, …) included.
func (im *vimage) fields() []string {
	p := C.vt_fields(im.p)
	defer C.g_strfreev(p)
	var out []string
	for _, s := range unsafe.Slice(p, 1<<20) {
		if s == nil {
			break
		}
		out = append(out, C.GoString(s))
	}
	return out
}

// blob owns a libvips blob over an input file's bytes. The bytes are not
// copied: they are pinned (runtime.Pinner) until libvips drops its last
// reference to the blob, however long a lazy image keeps it, so that C may
// hold the pointer (see the cgo rules on pinned memory). The caller must
// not change the bytes while a blob over them is open.
type blob struct{ p *C.VipsBlob }

// pins holds the pinners of the bytes that open blobs wrap, by address: the
// same bytes may be wrapped by several blobs at once. Like libvips' own
// state, it is process-global.
var pins = struct {
	sync.Mutex
	by map[uintptr][]*runtime.Pinner
}{by: map[uintptr][]*runtime.Pinner{}}

// newBlob wraps data, which must not be empty, in a libvips blob.
func newBlob(data []byte) *blob {
	p := &runtime.Pinner{}
	p.Pin(&data[0])
	addr := uintptr(unsafe.Pointer(&data[0]))
	pins.Lock()
	pins.by[addr] = append(pins.by[addr], p)
	pins.Unlock()
	return &blob{C.vt_blob_wrap(unsafe.Pointer(&data[0]), C.size_t(len(data)))}
}

// vtBlobFreed is called by libvips, on whichever thread drops a wrapped
// blob's last reference: the bytes at data are no longer used.
//
//export vtBlobFreed
func vtBlobFreed(data unsafe.Pointer) {
	addr := uintptr(data)
	pins.Lock()
	ps := pins.by[addr]
	var p *runtime.Pinner
	if n := len(ps); n > 0 {
		p = ps[n-1]
		if n == 1 {
			delete(pins.by, addr)
		} else {
			pins.by[addr] = ps[:n-1]
		}
	}
	pins.Unlock()
	if p != nil {
		p.Unpin()
	}
}

// pinnedBlobs counts the byte slices wrapped by live blobs (for tests).
func pinnedBlobs() int {
	pins.Lock()
	defer pins.Unlock()
	n := 0
	for _, ps := range pins.by {
		n += len(ps)
	}
	return n
}

func (b *blob) close() {
	if b != nil && b.p != nil {
		C.vt_blob_unref(b.p)
		b.p = nil
	}
}

// vipsError is a message from libvips' error buffer.
type vipsError struct {
	lines []string // distinct lines, in order
	more  bool     // lines were left out
}

func (e *vipsError) Error() string {
	s := "libvips: " + strings.Join(e.lines, "; ")
	if e.more {
		s += "; …"
	}
	return s
}

// summary is the first and last lines of the message, for humans: libtiff
// and libpng tend to put the cause first, libvips' loader its verdict last.
func (e *vipsError) summary() string {
	s := e.lines[0]
	if len(e.lines) > 1 {
		s += " … " + e.lines[len(e.lines)-1]
	}
	return shorten(s, 300)
}

// maxErrorLines bounds kept libvips messages: libtiff can log thousands of
// lines about a hostile file.
const maxErrorLines = 20

// lastError takes libvips' error buffer, without repeated lines.
func lastError() *vipsError {
	s := C.vt_error()
	defer C.g_free(C.gpointer(s))
	e := &vipsError{}
	for line := range strings.Lines(C.GoString(s)) {
		line = shorten(strings.TrimSpace(line), 300)
		switch {
		case line == "" || slices.Contains(e.lines, line):
		case len(e.lines) == maxErrorLines:
			e.more = true
		default:
			e.lines = append(e.lines, line)
		}
	}
	if len(e.lines) == 0 {
		e.lines = []string{"failed without a message"}
	}
	return e
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// call runs op, which returns 0 on success, and turns failure into the
// libvips error.
//
// libvips' error buffer is process-wide and some operations leave messages
// in it even when they succeed, so it is cleared first; under concurrency
// a message may still reach the wrong job, or be lost (the failure is then
// reported without a message).
func call(op func() C.int) error {
	C.vips_error_clear()
	if op() != 0 {
		return lastError()
	}
	return nil
}

// cstr converts s to a C string the caller frees with freeCString.
func cstr(s string) *C.char { return C.CString(s) }

func freeCString(s *C.char) { C.free(unsafe.Pointer(s)) }

// blockLoaders applies the loader policy; see vt_block_loaders.
func blockLoaders() error {
	if err := call(func() C.int { return C.vt_block_loaders() }); err != nil {
		return fmt.Errorf("block untrusted loaders: %w", err)
	}
	return nil
}

// isBlocked reports whether the operation with the given nickname is
// blocked; an unknown operation counts as blocked.
func isBlocked(nickname string) bool {
	c := cstr(nickname)
	defer freeCString(c)
	return C.vt_is_blocked(c) != 0
}

// failOn is how strict decoding is: the libvips fail_on level.
type failOn C.VipsFailOn

const (
	failOnNone    failOn = C.VIPS_FAIL_ON_NONE    // lenient: headers
	failOnWarning failOn = C.VIPS_FAIL_ON_WARNING // strict: any decoder warning fails
)

// load opens the first page of the blob with the named buffer loader,
// reading the header only; pixels are decoded, at the given strictness,
// when first asked for. jpegShrink > 1 and 0 < webpScale < 1 shrink on load.
func load(b *blob, loader string, strict failOn, jpegShrink int, webpScale float64) (*vimage, error) {
	c := cstr(loader)
	defer freeCString(c)
	var out *C.VipsImage
	err := call(func() C.int {
		return C.vt_load(b.p, c, C.VipsFailOn(strict), cint(jpegShrink), C.double(webpScale), &out)
	})
	if err != nil {
		return nil, err
	}
	return &vimage{out}, nil
}

// thumbnailImage shrinks in to fit inside width×height, never enlarging;
// with crop, to cover the box, cropping the overflow with libvips'
// attention strategy. With rotate, it first turns in upright by its EXIF
// orientation.
func thumbnailImage(in *vimage, width, height int, rotate, crop bool) (*vimage, error) {
	var out *C.VipsImage
	err := call(func() C.int {
		return C.vt_thumbnail_image(in.p, cint(width), cint(height), cbool(rotate), cbool(crop), &out)
	})
	if err != nil {
		return nil, err
	}
	return &vimage{out}, nil
}

// focusCrop cuts a width×height region out of in at left, top and scales
// it to exactly outWidth×outHeight.
func focusCrop(in *vimage, left, top, width, height, outWidth, outHeight int) (*vimage, error) {
	var out *C.VipsImage
	err := call(func() C.int {
		return C.vt_focus_crop(in.p, cint(left), cint(top), cint(width), cint(height), cint(outWidth), cint(outHeight), &out)
	})
	if err != nil {
		return nil, err
	}
	return &vimage{out}, nil
}

// boxShrink averages blocks of factor×factor pixels of in, or of fewer
// along a side shorter than factor.
func boxShrink(in *vimage, factor int) (*vimage, error) {
	h, v := max(1, min(factor, in.width())), max(1, min(factor, in.height()))
	var out *C.VipsImage
	if err := call(func() C.int { return C.vt_box_shrink(in.p, cint(h), cint(v), &out) }); err != nil {
		return nil, err
	}
	return &vimage{out}, nil
}

// errKilled reports an evaluation stopped because its context ended.
var errKilled = errors.New("evaluation killed")

// render computes in into memory, decoding its source once. If ctx ends
// first, the evaluation is killed and ctx's cause returned.
func render(ctx context.Context, in *vimage) (*vimage, error) {
	mem := &vimage{C.vt_new_memory()}
	C.vips_error_clear()
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		C.vt_kill(mem.p)
		close(killed)
	})
	rc := C.vt_write(in.p, mem.p)
	if !stop() {
		<-killed
		mem.close()
		if rc != 0 {
			_ = lastError() // the kill message: read to clear libvips's error buffer
		}
		return nil, fmt.Errorf("%w: %w", errKilled, context.Cause(ctx))
	}
	if rc != 0 {
		err := lastError()
		mem.close()
		return nil, err
	}
	return mem, nil
}

// toSRGB8 converts in to 8-bit sRGB through its ICC profile, if usable.
func toSRGB8(in *vimage) (*vimage, error) {
	var p *C.VipsImage
	if err := call(func() C.int { return C.vt_to_srgb8(in.p, &p) }); err != nil {
		return nil, err
	}
	return &vimage{p}, nil
}

// flattenWhite composites in over white, dropping its alpha.
func flattenWhite(in *vimage) (*vimage, error) {
	var p *C.VipsImage
	if err := call(func() C.int { return C.vt_flatten_white(in.p, &p) }); err != nil {
		return nil, err
	}
	return &vimage{p}, nil
}

// castUchar casts in to 8 bits a band.
func castUchar(in *vimage) (*vimage, error) {
	var p *C.VipsImage
	if err := call(func() C.int { return C.vt_cast_uchar(in.p, &p) }); err != nil {
		return nil, err
	}
	return &vimage{p}, nil
}

// pixels computes in, which must be 8-bit, and returns its pixels as
// packed bytes, band after band in each pixel, row after row.
func pixels(in *vimage) ([]byte, error) {
	var n C.size_t
	C.vips_error_clear()
	p := C.vt_pixels(in.p, &n)
	if p == nil {
		return nil, lastError()
	}
	defer C.g_free(C.gpointer(p))
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%d bytes of pixels: over the 2 GiB one copy takes", n)
	}
	size := C.int(n)
	return C.GoBytes(p, size), nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cint converts v to a C int, saturating: out of range, libvips refuses
// the value rather than getting a wrapped one. Callers pass boxes (at most
// media.MaxVariantSide), sides of libvips images (C ints), qualities
// (1-100) and shrink factors, all far inside.
func cint(v int) C.int {
	switch {
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < math.MinInt32:
		return math.MinInt32
	}
	return C.int(v)
}

// strip returns a copy of in without any metadata.
func strip(in *vimage) (*vimage, error) {
	var p *C.VipsImage
	if err := call(func() C.int { return C.vt_strip(in.p, &p) }); err != nil {
		return nil, err
	}
	return &vimage{p}, nil
}

// saveJPEG encodes baseline, Huffman-optimised, stripped JPEG.
func saveJPEG(in *vimage, quality int) ([]byte, error) {
	return save(func(buf *unsafe.Pointer, n *C.size_t) C.int {
		return C.vt_save_jpeg(in.p, cint(quality), buf, n)
	})
}

// saveWebP encodes lossy WebP, alpha kept.
func saveWebP(in *vimage, quality int) ([]byte, error) {
	return save(func(buf *unsafe.Pointer, n *C.size_t) C.int {
		return C.vt_save_webp(in.p, cint(quality), buf, n)
	})
}

// avifEffort is the libvips HEIF saver's CPU effort for AVIF, 0-9 (libaom
// speed 9 − effort). The saver's default, 4, took 4-6 times as long as 2
// (BenchmarkEncodeCost: 107 ms against 19 ms at 400 px, 846 ms against
// 155-237 ms at 1600 px) for files 3-7 % smaller.
const avifEffort = 2

// saveAVIF encodes lossy 8-bit AVIF, alpha kept, at avifEffort.
func saveAVIF(in *vimage, quality int) ([]byte, error) {
	return saveAVIFEffort(in, quality, avifEffort)
}

// saveAVIFEffort is saveAVIF at another effort (benchmarks compare them).
func saveAVIFEffort(in *vimage, quality, effort int) ([]byte, error) {
	return save(func(buf *unsafe.Pointer, n *C.size_t) C.int {
		return C.vt_save_avif(in.p, cint(quality), cint(effort), buf, n)
	})
}

func save(op func(*unsafe.Pointer, *C.size_t) C.int) ([]byte, error) {
	var buf unsafe.Pointer
	var n C.size_t
	C.vips_error_clear()
	if op(&buf, &n) != 0 {
		return nil, lastError()
	}
	defer C.g_free(C.gpointer(buf))
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("an encoding of %d bytes: over the 2 GiB one copy takes", n)
	}
	size := C.int(n)
	return C.GoBytes(buf, size), nil
}

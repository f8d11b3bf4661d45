package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"unicode/utf8"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Sniff identifies the real format of an image file from its magic bytes,
// whatever its name or declared content type, and runs cheap structural
// checks that refuse files a decoder would mishandle.
//
// A file that is none of the accepted formats (JPEG, PNG, WebP, GIF, TIFF,
// HEIC/AVIF/HEIF) yields a *catalog.Error of kind KindUnsupportedMedia and
// code catalog.FailUnsupportedFormat whose detail says what the file looks
// like (SVG, HTML, PDF, text, …). A file of an accepted format whose
// structure is broken yields the format together with a *catalog.Error of
// kind KindUnprocessableImage and code catalog.FailCorruptImage.
//
// The checks read headers and chunk tables only; for PNG they walk every
// chunk and verify the CRCs of the critical ones, which is linear in the
// size of the file but far cheaper than decoding it.
func Sniff(data []byte) (Format, error) {
	f, err := Identify(data)
	if err != nil {
		return f, err
	}
	switch f {
	case FormatJPEG:
		err = checkJPEG(data)
	case FormatPNG:
		err = checkPNG(data)
	case FormatGIF:
		err = checkGIF(data)
	case FormatWebP:
		err = checkWebP(data)
	case FormatTIFF:
		err = checkTIFF(data)
	default: // the HEIF family
		err = checkISOBMFF(data)
	}
	if err != nil {
		return f, err
	}
	return f, nil
}

// Identify names the format of a file from its first bytes only (a few
// hundred are plenty), without the structural checks of Sniff, so that an
// upload that is no image at all is refused before its body is read. Its
// error is Sniff's for an unknown format.
func Identify(head []byte) (Format, error) {
	f := identify(head)
	if f == FormatUnknown {
		return FormatUnknown, catalog.Errorf(catalog.KindUnsupportedMedia, catalog.FailUnsupportedFormat,
			"not an accepted image format (JPEG, PNG, WebP, GIF, HEIC, AVIF, TIFF): %s", describe(head))
	}
	return f, nil
}

// corrupt builds the error for a file of format f whose structure is broken.
func corrupt(f Format, format string, args ...any) *catalog.Error {
	e := catalog.Errorf(catalog.KindUnprocessableImage, catalog.FailCorruptImage, format, args...)
	e.Detail = "broken " + f.Name() + " file: " + e.Detail
	return e
}

// Magic numbers.
const (
	pngSignature = "\x89PNG\r\n\x1a\n"
	jpegMagic    = "\xff\xd8\xff"
)

// heifBrand returns the member of the HEIF family an ISO-BMFF brand
// indicates, or FormatUnknown if the brand is not a HEIF one.
func heifBrand(brand string) Format {
	switch brand {
	case "avif", "avis":
		return FormatAVIF
	case "heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs":
		return FormatHEIC
	case "mif1", "msf1":
		return FormatHEIF
	}
	return FormatUnknown
}

// identify returns the format named by data's magic bytes, or FormatUnknown.
func identify(data []byte) Format {
	switch {
	case bytes.HasPrefix(data, []byte(jpegMagic)):
		return FormatJPEG
	case bytes.HasPrefix(data, []byte(pngSignature)):
		return FormatPNG
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return FormatGIF
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return FormatWebP
	case tiffByteOrder(data) != nil:
		return FormatTIFF
	}
	return heifFormat(data)
}

// tiffByteOrder returns the byte order of a TIFF or BigTIFF header, or nil.
func tiffByteOrder(data []byte) binary.ByteOrder {
	if len(data) < 4 {
		return nil
	}
	switch string(data[:4]) {
	case "II*\x00", "II+\x00":
		return binary.LittleEndian
	case "MM\x00*", "MM\x00+":
		return binary.BigEndian
	}
	return nil
}

// ftypBrands returns the major and compatible brands of a leading ISO-BMFF
// ftyp box, reading no further than the box or the data ends; ok is false
// when data does not start with an ftyp box.
func ftypBrands(data []byte) (brands []string, ok bool) {
	if len(data) < 12 || string(data[4:8]) != "ftyp" {
		return nil, false
	}
	end := len(data)
	if size := binary.BigEndian.Uint32(data); size >= 16 && uint64(size) < uint64(end) {
		end = int(size)
	}
	brands = append(brands, string(data[8:12])) // major brand
	for i := 16; i+4 <= end; i += 4 {           // skip minor_version at 12
		brands = append(brands, string(data[i:i+4]))
	}
	return brands, true
}

// heifFormat returns the HEIF family member indicated by data's ftyp brands:
// AVIF if any brand is an AV1 one, else HEIC if any is an HEVC one, else
// HEIF if it is only mif1/msf1, else FormatUnknown.
func heifFormat(data []byte) Format {
	brands, ok := ftypBrands(data)
	if !ok {
		return FormatUnknown
	}
	best := FormatUnknown
	for _, b := range brands {
		switch f := heifBrand(b); {
		case f == FormatAVIF:
			return FormatAVIF
		case f == FormatHEIC:
			best = FormatHEIC
		case f == FormatHEIF && best == FormatUnknown:
			best = FormatHEIF
		}
	}
	return best
}

// describe says, cheaply, what an unaccepted file looks like.
func describe(data []byte) string {
	if len(data) == 0 {
		return "the file is empty"
	}
	head := data[:min(len(data), 1024)]
	lower := bytes.ToLower(head)
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(lower, []byte("\xef\xbb\xbf")), " \t\r\n\f")
	hasAny := func(b []byte, subs ...string) bool {
		for _, s := range subs {
			if bytes.Contains(b, []byte(s)) {
				return true
			}
		}
		return false
	}
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")) || bytes.Contains(head, []byte("%PDF-")):
		return "it looks like a PDF document"
	case bytes.HasPrefix(data, []byte("%!")), bytes.HasPrefix(data, []byte("\xc5\xd0\xd3\xc6")):
		return "it looks like PostScript"
	case bytes.HasPrefix(data, []byte("BM")) && len(data) >= 26 && binary.LittleEndian.Uint32(data[6:]) == 0:
		return "it looks like a BMP image, which is not accepted"
	case bytes.HasPrefix(trimmed, []byte("<")) && hasAny(trimmed, "<svg"):
		return "it looks like an SVG image, which is not accepted"
	case bytes.HasPrefix(trimmed, []byte("<?xml")):
		return "it looks like XML"
	case bytes.HasPrefix(trimmed, []byte("<")) && hasAny(trimmed, "<!doctype html", "<html", "<head", "<body", "<script", "<iframe", "<img", "<div", "<a "):
		return "it looks like HTML"
	case bytes.HasPrefix(trimmed, []byte("<?php")):
		return "it looks like PHP source"
	case len(data) >= 12 && string(data[1:4]) == "PNG" && string(data[12:16]) == "IHDR":
		return "it looks like a PNG whose signature is damaged"
	case len(data) >= 4 && bytes.EqualFold(data[1:4], []byte("PNG")):
		return "it looks like a PNG whose signature is damaged"
	case bytes.HasPrefix(data, []byte("\x00\x00\x00\x0cjP  \r\n\x87\n")), bytes.HasPrefix(data, []byte("\xff\x4f\xff\x51")):
		return "it looks like a JPEG 2000 image, which is not accepted"
	case bytes.HasPrefix(data, []byte("\xff\x0a")), bytes.HasPrefix(data, []byte("\x00\x00\x00\x0cJXL \r\n\x87\n")):
		return "it looks like a JPEG XL image, which is not accepted"
	case bytes.HasPrefix(data, []byte("DDS ")):
		return "it looks like a DDS texture, which is not accepted"
	case bytes.HasPrefix(data, []byte("8BPS")):
		return "it looks like a Photoshop document, which is not accepted"
	case bytes.HasPrefix(data, []byte("\x00\x00\x01\x00")):
		return "it looks like an ICO icon, which is not accepted"
	case bytes.HasPrefix(data, []byte("RIFF")):
		return "it looks like a RIFF file (e.g. AVI or WAV) that is not WebP"
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		return "it looks like a ZIP archive"
	case bytes.HasPrefix(data, []byte("\x1f\x8b")):
		return "it looks like gzip-compressed data"
	}
	if brands, ok := ftypBrands(data); ok {
		return "it looks like an ISO base media file (MP4/QuickTime family) with brand " + quoteBrand(brands[0])
	}
	if looksLikeText(head) {
		return "it looks like text"
	}
	return "unrecognised binary data"
}

// quoteBrand quotes a four-character brand, escaping non-printable bytes.
func quoteBrand(b string) string {
	out := []byte{'"'}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			out = append(out, c)
		} else {
			out = append(out, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		}
	}
	return string(append(out, '"'))
}

// looksLikeText reports whether b is UTF-8 without control characters other
// than white space (a cut multi-byte sequence at the end is allowed).
func looksLikeText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) < utf8.UTFMax && !utf8.FullRune(b)
		}
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\f' || r == 0x7f {
			return false
		}
		b = b[n:]
	}
	return true
}

// checkJPEG walks the marker segments up to the first frame header (SOF) and
// refuses segments that run past the end, a scan or end of image before any
// frame header, and a frame of zero width, height or components. It stops,
// accepting, at bytes it does not understand: libjpeg resynchronises on
// those with a warning, and strict decoding judges them.
func checkJPEG(data []byte) error {
	pos := 2 // after SOI
	for {
		if pos >= len(data) {
			return corrupt(FormatJPEG, "the file ends at byte %d, before any frame header (truncated)", len(data))
		}
		if data[pos] != 0xFF {
			return nil
		}
		for pos < len(data) && data[pos] == 0xFF { // fill bytes
			pos++
		}
		if pos >= len(data) {
			return corrupt(FormatJPEG, "the file ends at byte %d, before any frame header (truncated)", len(data))
		}
		m := data[pos]
		pos++
		switch {
		case m == 0x01 || m >= 0xD0 && m <= 0xD7: // TEM, RSTn: no length
			continue
		case m == 0xD8:
			return nil
		case m == 0xD9:
			return corrupt(FormatJPEG, "end of image at byte %d before any frame header", pos-2)
		case m == 0xDA:
			return corrupt(FormatJPEG, "scan at byte %d before any frame header", pos-2)
		}
		if pos+2 > len(data) {
			return corrupt(FormatJPEG, "marker 0x%02X at byte %d has no length (truncated)", m, pos-2)
		}
		n := int(binary.BigEndian.Uint16(data[pos:]))
		if n < 2 {
			return corrupt(FormatJPEG, "marker 0x%02X at byte %d has length %d", m, pos-2, n)
		}
		if pos+n > len(data) {
			return corrupt(FormatJPEG, "segment 0x%02X at byte %d declares %d bytes but only %d remain (truncated)", m, pos-2, n, len(data)-pos)
		}
		if isSOF(m) {
			if n < 8 {
				return corrupt(FormatJPEG, "frame header of %d bytes is too short", n)
			}
			h, w, nc := binary.BigEndian.Uint16(data[pos+3:]), binary.BigEndian.Uint16(data[pos+5:]), int(data[pos+7])
			if w == 0 || h == 0 || nc == 0 {
				return corrupt(FormatJPEG, "frame header declares %dx%d pixels and %d components", w, h, nc)
			}
			if n < 8+3*nc {
				return corrupt(FormatJPEG, "frame header of %d bytes is too short for %d components", n, nc)
			}
			return nil
		}
		pos += n
	}
}

// isSOF reports whether marker m starts a frame (SOF0-SOF15 less DHT, JPG,
// DAC).
func isSOF(m byte) bool {
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC
}

// pngMaxLength is the largest chunk length the PNG specification allows.
const pngMaxLength = 1<<31 - 1

// checkPNG walks every chunk: IHDR must come first with length 13, non-zero
// dimensions and a valid depth/colour combination; every chunk's length must
// fit the remaining bytes (this refuses the crafted chunk lengths that make
// libpng allocate about a gigabyte); chunk types must be letters; the CRCs of
// critical chunks must match; an unknown critical chunk, a palette image
// without PLTE before its data, a missing IDAT or a missing IEND refuse the
// file.
func checkPNG(data []byte) error {
	pos := len(pngSignature)
	first := true
	colourType := byte(0)
	sawPLTE, sawIDAT := false, false
	for {
		if pos == len(data) {
			return corrupt(FormatPNG, "no IEND chunk: the file ends at byte %d (truncated)", pos)
		}
		if len(data)-pos < 12 {
			return corrupt(FormatPNG, "chunk at byte %d is cut short: %d bytes remain (truncated)", pos, len(data)-pos)
		}
		n := binary.BigEndian.Uint32(data[pos:])
		typ := data[pos+4 : pos+8]
		if !isPNGChunkType(typ) {
			return corrupt(FormatPNG, "chunk at byte %d has invalid type %s", pos, quoteBrand(string(typ)))
		}
		if n > pngMaxLength {
			return corrupt(FormatPNG, "chunk %s at byte %d declares %d bytes, over the PNG maximum of %d", typ, pos, n, pngMaxLength)
		}
		if uint64(n)+12 > uint64(len(data)-pos) { // #nosec G115 -- len(data)-pos ≥ 12, checked above
			return corrupt(FormatPNG, "chunk %s at byte %d declares %d bytes but only %d remain", typ, pos, n, len(data)-pos-12)
		}
		body := data[pos+8 : pos+8+int(n)]
		name := string(typ)
		if first {
			if name != "IHDR" {
				return corrupt(FormatPNG, "the first chunk is %s, not IHDR", typ)
			}
			if err := checkIHDR(body); err != nil {
				return err
			}
			colourType = body[9]
			first = false
		} else if name == "IHDR" {
			return corrupt(FormatPNG, "second IHDR chunk at byte %d", pos)
		}
		if critical := typ[0]&0x20 == 0; critical {
			want := binary.BigEndian.Uint32(data[pos+8+int(n):])
			if got := crc32.ChecksumIEEE(data[pos+4 : pos+8+int(n)]); got != want {
				return corrupt(FormatPNG, "CRC mismatch in critical chunk %s at byte %d", typ, pos)
			}
		}
		switch name {
		case "IHDR":
		case "PLTE":
			sawPLTE = true
		case "IDAT":
			if colourType == 3 && !sawPLTE {
				return corrupt(FormatPNG, "palette image without a PLTE chunk before its data")
			}
			sawIDAT = true
		case "IEND":
			if !sawIDAT {
				return corrupt(FormatPNG, "no IDAT chunk: the file has no image data")
			}
			return nil
		default:
			if typ[0]&0x20 == 0 {
				return corrupt(FormatPNG, "unknown critical chunk %s at byte %d", typ, pos)
			}
		}
		pos += 12 + int(n)
	}
}

// isPNGChunkType reports whether t is four ASCII letters.
func isPNGChunkType(t []byte) bool {
	for _, c := range t {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// checkIHDR checks the image header: its length, non-zero dimensions within
// the PNG maximum, and a valid combination of bit depth and colour type.
func checkIHDR(b []byte) error {
	if len(b) != 13 {
		return corrupt(FormatPNG, "IHDR has length %d, not 13", len(b))
	}
	w, h := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if w == 0 || h == 0 || w > pngMaxLength || h > pngMaxLength {
		return corrupt(FormatPNG, "IHDR declares %dx%d pixels", w, h)
	}
	depth, colour := b[8], b[9]
	var depths string
	switch colour {
	case 0: // grey
		depths = "\x01\x02\x04\x08\x10"
	case 3: // palette
		depths = "\x01\x02\x04\x08"
	case 2, 4, 6: // RGB, grey and alpha, RGBA
		depths = "\x08\x10"
	default:
		return corrupt(FormatPNG, "IHDR declares invalid colour type %d", colour)
	}
	if strings.IndexByte(depths, depth) < 0 {
		return corrupt(FormatPNG, "IHDR declares bit depth %d, invalid for colour type %d", depth, colour)
	}
	if b[10] != 0 || b[11] != 0 || b[12] > 1 {
		return corrupt(FormatPNG, "IHDR declares unknown compression %d, filter %d or interlace %d method", b[10], b[11], b[12])
	}
	return nil
}

// checkGIF checks the logical screen descriptor: present, non-zero, with
// any global colour table inside the file.
func checkGIF(data []byte) error {
	if len(data) < 13 {
		return corrupt(FormatGIF, "the file ends at byte %d, inside the header (truncated)", len(data))
	}
	w, h := binary.LittleEndian.Uint16(data[6:]), binary.LittleEndian.Uint16(data[8:])
	if w == 0 || h == 0 {
		return corrupt(FormatGIF, "the logical screen is %dx%d pixels", w, h)
	}
	if packed := data[10]; packed&0x80 != 0 {
		if size := 3 << (packed&7 + 1); 13+size >= len(data) {
			return corrupt(FormatGIF, "the global colour table of %d bytes runs past the end (truncated)", size)
		}
	}
	return nil
}

// checkWebP checks the RIFF header: the declared size must fit the file and
// the first chunk must be VP8, VP8L or VP8X.
func checkWebP(data []byte) error {
	if len(data) < 20 {
		return corrupt(FormatWebP, "the file ends at byte %d, inside the header (truncated)", len(data))
	}
	size := binary.LittleEndian.Uint32(data[4:])
	if size < 12 || size%2 != 0 {
		return corrupt(FormatWebP, "the RIFF header declares an invalid size of %d bytes", size)
	}
	if uint64(size)+8 > uint64(len(data)) {
		return corrupt(FormatWebP, "the RIFF header declares %d bytes but the file has %d (truncated)", uint64(size)+8, len(data))
	}
	switch string(data[12:16]) {
	case "VP8 ", "VP8L", "VP8X":
		return nil
	}
	return corrupt(FormatWebP, "the first chunk is %s, not VP8, VP8L or VP8X", quoteBrand(string(data[12:16])))
}

// checkTIFF checks that the first image file directory lies inside the file
// and has at least one entry.
func checkTIFF(data []byte) error {
	bo := tiffByteOrder(data)
	if data[2] == '+' || data[3] == '+' { // BigTIFF
		if len(data) < 16 {
			return corrupt(FormatTIFF, "the file ends at byte %d, inside the BigTIFF header (truncated)", len(data))
		}
		if bo.Uint16(data[4:]) != 8 || bo.Uint16(data[6:]) != 0 {
			return corrupt(FormatTIFF, "the BigTIFF header declares unsupported offset size %d", bo.Uint16(data[4:]))
		}
		off := bo.Uint64(data[8:])
		if off < 16 || off > uint64(len(data)) || uint64(len(data))-off < 16 {
			return corrupt(FormatTIFF, "the first directory offset %d lies outside the file of %d bytes", off, len(data))
		}
		n := bo.Uint64(data[off:]) // entries of 20 bytes follow, then an 8-byte next offset
		if n == 0 || n > (uint64(len(data))-off-16)/20 {
			return corrupt(FormatTIFF, "the first directory declares %d entries, which do not fit in the file", n)
		}
		return nil
	}
	if len(data) < 8 {
		return corrupt(FormatTIFF, "the file ends at byte %d, inside the header (truncated)", len(data))
	}
	off := uint64(bo.Uint32(data[4:]))
	if off < 8 || off > uint64(len(data)) || uint64(len(data))-off < 2 {
		return corrupt(FormatTIFF, "the first directory offset %d lies outside the file of %d bytes", off, len(data))
	}
	n := uint64(bo.Uint16(data[off:]))
	if n == 0 || off+2+12*n+4 > uint64(len(data)) {
		return corrupt(FormatTIFF, "the first directory declares %d entries, which do not fit in the file", n)
	}
	return nil
}

// checkISOBMFF walks the top-level boxes of a HEIF file: the ftyp box must
// be well formed, every box must fit in the file (a box of size 0 extends to
// the end), and a meta box, which holds the image items, must be present.
func checkISOBMFF(data []byte) error {
	f := heifFormat(data)
	ftypSize := binary.BigEndian.Uint32(data)
	if ftypSize < 16 || ftypSize%4 != 0 || uint64(ftypSize) > uint64(len(data)) {
		return corrupt(f, "the ftyp box declares an invalid size of %d bytes", ftypSize)
	}
	sawMeta := false
	for pos := uint64(0); pos < uint64(len(data)); {
		rest := uint64(len(data)) - pos
		if rest < 8 {
			return corrupt(f, "box at byte %d is cut short (truncated)", pos)
		}
		size := uint64(binary.BigEndian.Uint32(data[pos:]))
		typ := data[pos+4 : pos+8]
		header := uint64(8)
		switch size {
		case 0:
			size = rest
		case 1:
			if rest < 16 {
				return corrupt(f, "box %s at byte %d is cut short (truncated)", quoteBrand(string(typ)), pos)
			}
			size, header = binary.BigEndian.Uint64(data[pos+8:]), 16
		}
		if size < header || size > rest {
			return corrupt(f, "box %s at byte %d declares %d bytes but %d remain", quoteBrand(string(typ)), pos, size, rest)
		}
		if string(typ) == "meta" {
			sawMeta = true
		}
		pos += size
	}
	if !sawMeta {
		return corrupt(f, "no meta box: the file holds no image items")
	}
	return nil
}

package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// wantErr checks that err is a *catalog.Error of the given kind and code
// whose detail contains detail, or that err is nil if code is empty.
func wantErr(t *testing.T, err error, kind catalog.Kind, code, detail string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	var ce *catalog.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *catalog.Error with code %s", err, err, code)
	}
	if ce.Kind != kind || ce.Code != code {
		t.Fatalf("err = %v, want kind %s code %s", err, kind, code)
	}
	if !strings.Contains(ce.Detail, detail) {
		t.Fatalf("detail %q does not contain %q", ce.Detail, detail)
	}
}

func TestSniffCorpusFiles(t *testing.T) {
	unsupported, corrupt := catalog.KindUnsupportedMedia, catalog.KindUnprocessableImage
	tests := []struct {
		file   string
		want   media.Format
		kind   catalog.Kind
		code   string
		detail string
	}{
		{"photo_mate_wood.jpg", media.FormatJPEG, "", "", ""},
		{"jpeg_arithmetic_coding.jpg", media.FormatJPEG, "", "", ""},
		{"cmyk_adobe_app14.jpg", media.FormatJPEG, "", "", ""},
		{"png_rgba_basn6a08.png", media.FormatPNG, "", "", ""},
		{"png_ztxt_decompression_dos.png", media.FormatPNG, "", "", ""},
		{"webp_lossy_rose.webp", media.FormatWebP, "", "", ""},
		{"webp_lossless_rose.webp", media.FormatWebP, "", "", ""},
		{"webp_animated_42f.webp", media.FormatWebP, "", "", ""},
		{"gif_animated_42f.gif", media.FormatGIF, "", "", ""},
		{"heic_iphone11_p3_irot_gps.heic", media.FormatHEIC, "", "", ""},
		{"avif_alpha.avif", media.FormatAVIF, "", "", ""},
		{"tiff_rgb.tiff", media.FormatTIFF, "", "", ""},
		{"tiff_multipage_3.tiff", media.FormatTIFF, "", "", ""},

		{"svg_benign_logo.svg", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "SVG"},
		{"svg_script_xss.svg", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "SVG"},
		{"html_xss.html", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "HTML"},
		{"text_readme_named.jpg", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "text"},
		{"imagetragick_mvg_named.png", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "text"},
		{"ghostscript_ps_named.jpg", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "PostScript"},
		{"unsupported_bmp_8bpp.bmp", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "BMP"},
		{"unsupported_dds_timeout.dds", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "DDS"},
		{"zero_byte.jpg", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "empty"},
		{"pngsuite_xs4n0g01.png", media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "signature is damaged"},

		{"libpng_huge_iTXt_chunk.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "declares 1073741823 bytes"},
		{"libpng_huge_IDAT.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "IDAT"},
		{"broken_png_80b.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "invalid type"},
		{"libpng_badcrc.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "CRC mismatch in critical chunk IDAT"},
		{"pngsuite_xhdn0g08.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "CRC mismatch in critical chunk IHDR"},
		{"pngsuite_xc1n0g08.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "colour type 1"},
		{"pngsuite_xd0n2c08.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "bit depth 0"},
		{"pngsuite_xdtn0g01.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "no IDAT"},
		{"truncated_640x480.png", media.FormatPNG, corrupt, catalog.FailCorruptImage, "only 81875 remain"},
		{"fuzz_gif_zero_width.gif", media.FormatGIF, corrupt, catalog.FailCorruptImage, "0x32"},
		{"fuzz_bigtiff_seek_too_large.tif", media.FormatTIFF, corrupt, catalog.FailCorruptImage, "outside the file"},
		{"fuzz_tiff_oom_2258.tif", media.FormatTIFF, corrupt, catalog.FailCorruptImage, "do not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := media.Sniff(corpustest.Read(t, tt.file))
			wantErr(t, err, tt.kind, tt.code, tt.detail)
			if got != tt.want {
				t.Errorf("format = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestSniffManifest sniffs every corpus file: accepted files must pass with
// the manifest's format; rejected ones may be refused here or later.
func TestSniffManifest(t *testing.T) {
	for _, e := range corpustest.Manifest(t) {
		f, err := media.Sniff(corpustest.Read(t, e.File))
		if !e.Accept {
			if err != nil {
				t.Logf("reject %-40s refused at sniff: %v", e.File, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("accept %s: %v", e.File, err)
			continue
		}
		if f.Name() != e.Format {
			t.Errorf("accept %s: format %s, manifest says %s", e.File, f, e.Format)
		}
	}
}

func TestSniffSynthetic(t *testing.T) {
	unsupported, corrupt := catalog.KindUnsupportedMedia, catalog.KindUnprocessableImage
	jpegHeader := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	sof := func(w, h uint16) []byte {
		b := append([]byte{}, jpegHeader...)
		b = append(b, 0xFF, 0xC0, 0, 11, 8)
		b = binary.BigEndian.AppendUint16(b, h)
		b = binary.BigEndian.AppendUint16(b, w)
		return append(b, 1, 1, 0x11, 0)
	}
	tests := []struct {
		name   string
		data   []byte
		want   media.Format
		kind   catalog.Kind
		code   string
		detail string
	}{
		{"empty", nil, media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "empty"},
		{"pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "PDF"},
		{"xml", []byte("<?xml version=\"1.0\"?><root/>"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "XML"},
		{"svg with BOM", []byte("\xef\xbb\xbf  <svg xmlns=\"http://www.w3.org/2000/svg\"/>"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "SVG"},
		{"html", []byte("<!DOCTYPE html><html><body>hi</body></html>"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "HTML"},
		{"text named jpg", []byte("just some words\n"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "text"},
		{"binary", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8}, media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "unrecognised"},
		{"mp4", []byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, `brand "isom"`},
		{"riff avi", []byte("RIFF\x10\x00\x00\x00AVI LIST"), media.FormatUnknown, unsupported, catalog.FailUnsupportedFormat, "RIFF"},

		{"jpeg", sof(640, 480), media.FormatJPEG, "", "", ""},
		{"jpeg zero width", sof(0, 480), media.FormatJPEG, corrupt, catalog.FailCorruptImage, "0x480"},
		{"jpeg header only", jpegHeader, media.FormatJPEG, corrupt, catalog.FailCorruptImage, "before any frame header"},
		{"jpeg cut segment", sof(640, 480)[:len(jpegHeader)+6], media.FormatJPEG, corrupt, catalog.FailCorruptImage, "remain"},
		{"jpeg scan first", append(append([]byte{}, jpegHeader...), 0xFF, 0xDA, 0, 2), media.FormatJPEG, corrupt, catalog.FailCorruptImage, "scan"},
		{"jpeg garbage after SOI is left to libjpeg", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 'x', 'y'}, media.FormatJPEG, "", "", ""},
		{"gif", []byte("GIF89a\x10\x00\x10\x00\x00\x00\x00;"), media.FormatGIF, "", "", ""},
		{"gif zero height", []byte("GIF87a\x10\x00\x00\x00\x00\x00\x00;"), media.FormatGIF, corrupt, catalog.FailCorruptImage, "16x0"},
		{"gif cut header", []byte("GIF89a\x10\x00"), media.FormatGIF, corrupt, catalog.FailCorruptImage, "truncated"},
		{"gif colour table past end", []byte("GIF89a\x10\x00\x10\x00\x87\x00\x00abc"), media.FormatGIF, corrupt, catalog.FailCorruptImage, "colour table"},
		{"webp bad first chunk", []byte("RIFF\x0c\x00\x00\x00WEBPJUNK\x00\x00\x00\x00"), media.FormatWebP, corrupt, catalog.FailCorruptImage, "first chunk"},
		{"webp riff too big", []byte("RIFF\xfe\x00\x00\x00WEBPVP8 \x00\x00\x00\x00"), media.FormatWebP, corrupt, catalog.FailCorruptImage, "truncated"},
		{"tiff MM", []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x00\x00\x03\x00\x00\x00\x01\x00\x10\x00\x00\x00\x00\x00\x00"), media.FormatTIFF, "", "", ""},
		{"tiff no entries", []byte("II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"), media.FormatTIFF, corrupt, catalog.FailCorruptImage, "0 entries"},
		{"bigtiff", append([]byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"), make([]byte, 28)...), media.FormatTIFF, "", "", ""},
		{"heif without meta", []byte("\x00\x00\x00\x14ftypheic\x00\x00\x00\x00mif1\x00\x00\x00\x08free"), media.FormatHEIC, corrupt, catalog.FailCorruptImage, "no meta box"},
		{"heif box past end", []byte("\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1\x00\x00\x01\x00meta"), media.FormatHEIF, corrupt, catalog.FailCorruptImage, "declares 256 bytes"},
		{"avif by compatible brand", []byte("\x00\x00\x00\x18ftypisom\x00\x00\x00\x00mif1avif\x00\x00\x00\x08meta"), media.FormatAVIF, "", "", ""},
		{"heic by compatible brand", []byte("\x00\x00\x00\x18ftypmp41\x00\x00\x00\x00heixmp41\x00\x00\x00\x08meta"), media.FormatHEIC, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := media.Sniff(tt.data)
			wantErr(t, err, tt.kind, tt.code, tt.detail)
			if got != tt.want {
				t.Errorf("format = %s, want %s", got, tt.want)
			}
		})
	}
}

// pngChunk encodes one PNG chunk with a correct CRC.
func pngChunk(typ string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = append(b, typ...)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// pngChunks splits a valid PNG into its chunks.
func pngChunks(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var chunks [][]byte
	for pos := 8; pos < len(data); {
		n := int(binary.BigEndian.Uint32(data[pos:]))
		chunks = append(chunks, data[pos:pos+12+n])
		pos += 12 + n
	}
	return chunks
}

func TestSniffPNGChunks(t *testing.T) {
	var buf bytes.Buffer
	img := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	sig := buf.Bytes()[:8]
	c := pngChunks(t, buf.Bytes())
	ihdr, plte, idat, iend := c[0], c[1], c[2], c[len(c)-1]
	if string(ihdr[4:8]) != "IHDR" || string(plte[4:8]) != "PLTE" || string(idat[4:8]) != "IDAT" {
		t.Fatalf("unexpected chunk layout from image/png")
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{sig}, parts...), nil) }
	badCRC := func(ch []byte) []byte {
		b := bytes.Clone(ch)
		b[len(b)-1] ^= 0xFF
		return b
	}
	ihdrBody := func(edit func([]byte)) []byte {
		b := bytes.Clone(ihdr[8:21])
		edit(b)
		return pngChunk("IHDR", b)
	}
	tests := []struct {
		name   string
		data   []byte
		detail string // "" if the file is fine
	}{
		{"valid", join(ihdr, plte, idat, iend), ""},
		{"ancillary chunk with bad CRC is left to libpng", join(ihdr, badCRC(pngChunk("tEXt", []byte("a\x00b"))), plte, idat, iend), ""},
		{"data after IEND is ignored", append(join(ihdr, plte, idat, iend), "trailing"...), ""},
		{"first chunk not IHDR", join(plte, ihdr, idat, iend), "not IHDR"},
		{"IHDR length 12", join(pngChunk("IHDR", ihdr[8:20]), plte, idat, iend), "length 12"},
		{"zero width", join(ihdrBody(func(b []byte) { binary.BigEndian.PutUint32(b, 0) }), plte, idat, iend), "0x4"},
		{"zero height", join(ihdrBody(func(b []byte) { binary.BigEndian.PutUint32(b[4:], 0) }), plte, idat, iend), "4x0"},
		{"width over 2^31-1", join(ihdrBody(func(b []byte) { binary.BigEndian.PutUint32(b, 1<<31) }), plte, idat, iend), "2147483648x4"},
		{"interlace 2", join(ihdrBody(func(b []byte) { b[12] = 2 }), plte, idat, iend), "interlace"},
		{"IHDR bad CRC", join(badCRC(ihdr), plte, idat, iend), "CRC mismatch in critical chunk IHDR"},
		{"IDAT bad CRC", join(ihdr, plte, badCRC(idat), iend), "CRC mismatch in critical chunk IDAT"},
		{"palette without PLTE", join(ihdr, idat, iend), "without a PLTE"},
		{"unknown critical chunk", join(ihdr, pngChunk("ABCD", nil), plte, idat, iend), "unknown critical chunk ABCD"},
		{"invalid chunk type", join(ihdr, pngChunk("ab1d", nil), plte, idat, iend), "invalid type"},
		{"second IHDR", join(ihdr, plte, ihdr, idat, iend), "second IHDR"},
		{"no IEND", join(ihdr, plte, idat), "no IEND"},
		{"cut inside a chunk", join(ihdr, plte, idat, iend)[:50], "remain"},
		{"cut inside a chunk header", join(ihdr, plte[:6]), "cut short"},
		{"length over 2^31-1", join(ihdr, []byte("\x80\x00\x00\x00tEXt\x00\x00\x00\x00")), "PNG maximum"},
		{"length past the end", join(ihdr, []byte("\x3f\xff\xff\xfftEXt\x00\x00\x00\x00")), "declares 1073741823 bytes but only 0 remain"},
		{"no IDAT", join(ihdr, plte, iend), "no IDAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := media.Sniff(tt.data)
			if f != media.FormatPNG {
				t.Errorf("format = %s, want png", f)
			}
			if tt.detail == "" {
				wantErr(t, err, "", "", "")
				return
			}
			wantErr(t, err, catalog.KindUnprocessableImage, catalog.FailCorruptImage, tt.detail)
		})
	}
}

func TestSniffTruncatedFiles(t *testing.T) {
	tests := []struct {
		file string
		cut  int // bytes kept
		want media.Format
	}{
		{"webp_lossy_rose.webp", 1000, media.FormatWebP},
		{"png_rgba_basn6a08.png", 100, media.FormatPNG},
		{"photo_mate_wood.jpg", 100, media.FormatJPEG},
		{"heic_hopper.heic", 100, media.FormatHEIC},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := corpustest.Read(t, tt.file)
			f, err := media.Sniff(data[:tt.cut])
			if f != tt.want {
				t.Errorf("format = %s, want %s", f, tt.want)
			}
			wantErr(t, err, catalog.KindUnprocessableImage, catalog.FailCorruptImage, "")
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		f           media.Format
		name, ctype string
	}{
		{media.FormatJPEG, "jpeg", "image/jpeg"},
		{media.FormatPNG, "png", "image/png"},
		{media.FormatWebP, "webp", "image/webp"},
		{media.FormatGIF, "gif", "image/gif"},
		{media.FormatTIFF, "tiff", "image/tiff"},
		{media.FormatHEIC, "heic", "image/heic"},
		{media.FormatAVIF, "avif", "image/avif"},
		{media.FormatHEIF, "heif", "image/heif"},
		{media.FormatUnknown, "unknown", "application/octet-stream"},
		{media.Format(200), "unknown", "application/octet-stream"},
	}
	for _, tt := range tests {
		if tt.f.Name() != tt.name || tt.f.String() != tt.name || tt.f.ContentType() != tt.ctype {
			t.Errorf("%d: got %s %s, want %s %s", tt.f, tt.f.Name(), tt.f.ContentType(), tt.name, tt.ctype)
		}
		if tt.f == media.FormatUnknown || tt.name == "unknown" {
			if _, err := tt.f.MarshalText(); err == nil {
				t.Errorf("%d: MarshalText succeeded", tt.f)
			}
			continue
		}
		text, err := tt.f.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back media.Format
		if err := back.UnmarshalText(text); err != nil || back != tt.f {
			t.Errorf("round trip of %s: %s, %v", tt.f, back, err)
		}
	}
	if f, err := media.ParseFormat("jpg"); err != nil || f != media.FormatJPEG {
		t.Errorf(`ParseFormat("jpg") = %s, %v`, f, err)
	}
	if _, err := media.ParseFormat("bmp"); err == nil {
		t.Errorf(`ParseFormat("bmp") succeeded`)
	}
}

package media_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// FuzzSniff checks that Sniff never panics and that its results are
// consistent. Its seed corpus in testdata/fuzz/FuzzSniff holds the first
// bytes of varied corpus files; regenerate it with
//
//	go test ./media -run TestWriteFuzzSeeds -update-fuzz-seeds
func FuzzSniff(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("%PDF-1.4\n"))
	f.Add([]byte("MM\x00*\x00\x00\x00\x08\x00\x01"))
	f.Add([]byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x00\x00mif1avif\x00\x00\x00\x08meta"))
	f.Fuzz(func(t *testing.T, data []byte) {
		format, err := media.Sniff(data)
		if err == nil {
			if format == media.FormatUnknown {
				t.Fatal("no error and no format")
			}
			return
		}
		var ce *catalog.Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *catalog.Error", err)
		}
		switch {
		case format == media.FormatUnknown && ce.Code == catalog.FailUnsupportedFormat:
		case format != media.FormatUnknown && ce.Code == catalog.FailCorruptImage:
		default:
			t.Fatalf("format %s with error %v", format, err)
		}
	})
}

// FuzzStripWebPMetadata checks that stripping never panics and yields a
// well-formed RIFF file.
func FuzzStripWebPMetadata(f *testing.F) {
	f.Add(riff("VP8X", "\x08\x00\x00\x00\x01\x00\x00\x01\x00\x00", "VP8 ", "abcd", "EXIF", "e"))
	f.Add([]byte("RIFF\x10\x00\x00\x00WEBPVP8 \xff\x00\x00\x00abcd"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := media.StripWebPMetadata(data)
		if err != nil {
			return
		}
		if len(out) < 12 || string(out[:4]) != "RIFF" || string(out[8:12]) != "WEBP" {
			t.Fatalf("output %q is not RIFF WEBP", out)
		}
		if n := int(out[4]) | int(out[5])<<8 | int(out[6])<<16 | int(out[7])<<24; n+8 > len(out) {
			t.Fatalf("RIFF size %d past %d bytes", n, len(out))
		}
	})
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzSniff from the image corpus")

// fuzzSeedFiles are the corpus files whose first bytes seed FuzzSniff: every
// accepted format and each kind of hostile or broken input.
var fuzzSeedFiles = []string{
	"photo_mate_wood.jpg", "jpeg_arithmetic_coding.jpg", "cmyk_adobe_app14.jpg", "truncated_progressive.jpg",
	"png_rgba_basn6a08.png", "png16_rgb_basn2c16.png", "png_palette_trns_tbbn3p08.png", "orient_png_exif_6.png",
	"libpng_huge_iTXt_chunk.png", "libpng_huge_IDAT.png", "broken_png_80b.png", "pngsuite_xs4n0g01.png", "pngsuite_xcrn0g04.png",
	"gif_animated_42f.gif", "fuzz_gif_zero_width.gif", "bomb_gif_frame_65535x1321.gif",
	"webp_lossy_rose.webp", "webp_lossless_rose.webp", "webp_animated_42f.webp", "orient_webp_exif_6.webp",
	"heic_hopper.heic", "heic_iphone11_p3_irot_gps.heic", "avif_alpha.avif",
	"tiff_rgb.tiff", "fuzz_bigtiff_seek_too_large.tif", "fuzz_tiff_oom_2258.tif", "fuzz_tiff_0x0.tiff",
	"svg_script_xss.svg", "html_xss.html", "text_readme_named.jpg", "unsupported_bmp_8bpp.bmp", "unsupported_dds_timeout.dds",
	"zero_byte.jpg",
}

// fuzzSeedBytes is how much of each file a seed keeps.
const fuzzSeedBytes = 64

// TestWriteFuzzSeeds writes the FuzzSniff seed corpus when run with
// -update-fuzz-seeds, and otherwise checks that it is present.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzSniff")
	if !*updateFuzzSeeds {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) < len(fuzzSeedFiles) {
			t.Fatalf("seed corpus %s has %d files (%v); regenerate it with -update-fuzz-seeds", dir, len(entries), err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range fuzzSeedFiles {
		data := corpustest.Read(t, name)
		data = data[:min(len(data), fuzzSeedBytes)]
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		file := "corpus-" + strings.ReplaceAll(name, ".", "-")
		if err := os.WriteFile(filepath.Join(dir, file), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

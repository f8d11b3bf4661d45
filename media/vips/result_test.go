package vips

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

func TestProcessImageResult(t *testing.T) {
	tests := []struct {
		file          string
		width, height int
		animated      bool
		frames        int
		blurhashSize  byte // first character: 'L' for 4×3, 'T' for 3×4
	}{
		{"photo_mate_wood.jpg", 2560, 1920, false, 1, 'L'},
		{"orient_landscape_6.jpg", 1800, 1200, false, 1, 'L'}, // stored 1200×1800
		{"orient_portrait_0_invalid.jpg", 1200, 1800, false, 1, 'T'},
		{"photo_iphonex_p3_orient6_gps.jpg", 3024, 4032, false, 1, 'T'},
		{"gif_animated_42f.gif", 245, 245, true, 42, 'L'},
		{"webp_animated_42f.webp", 245, 245, true, 42, 'L'},
		{"gif_static_hopper.gif", 128, 128, false, 1, 'L'},
		{"png_rgba_2048x1536.png", 2048, 1536, false, 1, 'L'},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := testRuntime.ProcessImage(context.Background(), corpustest.Read(t, tt.file), media.DefaultRecipe())
			if err != nil {
				t.Fatal(err)
			}
			if res.Width != tt.width || res.Height != tt.height || res.Animated != tt.animated || res.Frames != tt.frames {
				t.Errorf("%dx%d animated %v frames %d; want %dx%d %v %d", res.Width, res.Height, res.Animated, res.Frames, tt.width, tt.height, tt.animated, tt.frames)
			}
			if len(res.Placeholder) != 28 || res.Placeholder[0] != tt.blurhashSize {
				t.Errorf("placeholder %q", res.Placeholder)
			}
			if !validHexColor(res.DominantColor) {
				t.Fatalf("dominant colour %q", res.DominantColor)
			}
			// The BlurHash's DC term is the dominant colour.
			if dc := "#" + hex6(decode83(res.Placeholder[2:6])); dc != res.DominantColor {
				t.Errorf("placeholder DC %s, dominant colour %s", dc, res.DominantColor)
			}
			// The dominant colour is the linear-light mean of the image:
			// compare with the mean of the small JPEG, computed in Go.
			// (The 32 px rendition is resampled in sRGB space, as all
			// outputs are, which darkens fine contrasty detail a little:
			// 4 levels on the GIF.)
			small := decodePixels(t, outputOf(t, res.Outputs, "small", media.FormatJPEG).Data, 0)
			want := media.MeanColor(small.pix, small.w, small.h)
			if d := hexDistance(res.DominantColor, want); d > 6 {
				t.Errorf("dominant colour %s, mean of the small output %s", res.DominantColor, want)
			}
			t.Logf("%s %s", res.Placeholder, res.DominantColor)
		})
	}
}

// TestPlaceholderFlattensAlpha: a transparent image shows white, as in its
// JPEG outputs.
func TestPlaceholderFlattensAlpha(t *testing.T) {
	// Transparent but for a red square a sixteenth of the area: in linear
	// light, red 1, green and blue 15/16, i.e. sRGB 255, 248, 248.
	res, err := testRuntime.ProcessImage(context.Background(), transparentPNG(t, 400, 400), media.DefaultRecipe())
	if err != nil {
		t.Fatal(err)
	}
	if d := hexDistance(res.DominantColor, "#fff8f8"); d > 2 {
		t.Errorf("dominant colour %s, want about #fff8f8", res.DominantColor)
	}
}

func hexDistance(a, b string) int {
	d := 0
	for i := 1; i < 7; i += 2 {
		x, _ := strconv.ParseUint(a[i:i+2], 16, 8)
		y, _ := strconv.ParseUint(b[i:i+2], 16, 8)
		d = max(d, abs(int(x)-int(y)))
	}
	return d
}

func decode83(s string) int {
	const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
	n := 0
	for _, c := range s {
		n = n*83 + strings.IndexRune(chars, c)
	}
	return n
}

func hex6(n int) string { return fmt.Sprintf("%06x", n) }

func TestProcessCover(t *testing.T) {
	webp := []media.Encoding{{Format: media.FormatWebP, Quality: 80}}
	tests := []struct {
		file     string
		variants []media.Variant
		want     []string
	}{
		// 2560×1600: covering, then cropped to the box.
		{"photo_mate_twowings.jpg", []media.Variant{
			{Name: "square", Width: 200, Height: 200, Fit: media.FitCover, Formats: webp},
			{Name: "strip", Width: 300, Height: 50, Fit: media.FitCover, Formats: webp},
			{Name: "tall", Width: 100, Height: 400, Fit: media.FitCover, Formats: webp},
			{Name: "inside", Width: 400, Height: 400, Formats: webp},
		}, []string{"square 200x200", "strip 300x50", "tall 100x400", "inside 400x250"}},
		// A cover variant decoded first, with an inside one made after it
		// from the uncropped image, not from the crop.
		{"photo_mate_wood.jpg", []media.Variant{
			{Name: "banner", Width: 1000, Height: 300, Fit: media.FitCover, Formats: webp},
			{Name: "inside", Width: 500, Height: 500, Formats: webp},
		}, []string{"banner 1000x300", "inside 500x375"}},
		// 32×32: never enlarged; the box's shape, as large as it fits.
		{"png_rgba_basn6a08.png", []media.Variant{
			{Name: "wide", Width: 64, Height: 32, Fit: media.FitCover, Formats: webp},
			{Name: "big", Width: 100, Height: 100, Fit: media.FitCover, Formats: webp},
			{Name: "small", Width: 16, Height: 8, Fit: media.FitCover, Formats: webp},
		}, []string{"wide 32x16", "big 32x32", "small 16x8"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			outs, err := testRuntime.Process(context.Background(), corpustest.Read(t, tt.file), media.Recipe{Version: 1, Variants: tt.variants})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range outs {
				d := inspect(t, o.Data)
				if d.width != o.Width || d.height != o.Height {
					t.Errorf("%s decodes as %dx%d, says %dx%d", o.Name, d.width, d.height, o.Width, o.Height)
				}
				got = append(got, fmt.Sprintf("%s %dx%d", o.Name, o.Width, o.Height))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestProcessCoverAttention: the crop keeps the interesting part of the
// picture, not its centre.
func TestProcessCoverAttention(t *testing.T) {
	// 1200×400 flat grey with a busy red and yellow pattern near the right
	// edge: a centre crop would be flat grey.
	img := image.NewNRGBA(image.Rect(0, 0, 1200, 400))
	for y := range 400 {
		for x := range 1200 {
			c := color.NRGBA{128, 128, 128, 255}
			if x >= 950 && x < 1150 && y >= 100 && y < 300 {
				c = color.NRGBA{255, 0, 0, 255}
				if (x/10+y/10)%2 == 0 {
					c = color.NRGBA{255, 230, 0, 255}
				}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	recipe := media.Recipe{Version: 1, Variants: []media.Variant{{Name: "t", Width: 200, Height: 200, Fit: media.FitCover,
		Formats: []media.Encoding{{Format: media.FormatJPEG, Quality: 90}}}}}
	outs, err := testRuntime.Process(context.Background(), buf.Bytes(), recipe)
	if err != nil {
		t.Fatal(err)
	}
	r := decodePixels(t, outs[0].Data, 0)
	m := r.mean(patch{"all", 0, 0, 1, 1})
	if r.w != 200 || r.h != 200 || m[0]-m[2] < 60 {
		t.Errorf("%v with mean colour %.0f: the crop missed the pattern", r, m)
	}
}

// TestProcessCoverFocus: with a focal point, the crop is the region of
// the box's shape centred on it (as near as the edges allow), not the one
// attention picks; CoverOnly makes the cover variants alone.
func TestProcessCoverFocus(t *testing.T) {
	// 1200×400: the busy pattern of TestProcessCoverAttention on the right,
	// a flat blue band on the left.
	img := image.NewNRGBA(image.Rect(0, 0, 1200, 400))
	for y := range 400 {
		for x := range 1200 {
			c := color.NRGBA{128, 128, 128, 255}
			switch {
			case x < 400:
				c = color.NRGBA{0, 0, 255, 255}
			case x >= 950 && x < 1150 && y >= 100 && y < 300:
				c = color.NRGBA{255, 0, 0, 255}
				if (x/10+y/10)%2 == 0 {
					c = color.NRGBA{255, 230, 0, 255}
				}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	recipe := media.Recipe{Version: 1, Variants: []media.Variant{
		{Name: "t", Width: 200, Height: 200, Fit: media.FitCover, Formats: []media.Encoding{{Format: media.FormatJPEG, Quality: 90}}},
		{Name: "m", Width: 600, Height: 600, Formats: []media.Encoding{{Format: media.FormatJPEG, Quality: 90}}},
	}}
	for _, tt := range []struct {
		name  string
		focus catalog.FocalPoint
		blue  bool // the crop is the blue band
	}{
		{"left edge", catalog.FocalPoint{X: 0, Y: 0.5}, true},
		{"inside the band", catalog.FocalPoint{X: 1.0 / 6, Y: 0}, true},
		{"centre", catalog.FocalPoint{X: 0.5, Y: 0.5}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, coverOnly := range []bool{false, true} {
				res, err := testRuntime.ProcessImageWith(context.Background(), buf.Bytes(), recipe, media.Options{Focus: &tt.focus, CoverOnly: coverOnly})
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int{false: 2, true: 1}[coverOnly]; len(res.Outputs) != want {
					t.Fatalf("CoverOnly %v: %d outputs, want %d", coverOnly, len(res.Outputs), want)
				}
				if res.Outputs[0].Fit != media.FitCover || (!coverOnly && res.Outputs[1].Fit != media.FitInside) {
					t.Errorf("fits %v", res.Outputs)
				}
				r := decodePixels(t, res.Outputs[0].Data, 0)
				m := r.mean(patch{"all", 0, 0, 1, 1})
				if r.w != 200 || r.h != 200 {
					t.Fatalf("crop %dx%d, want 200x200", r.w, r.h)
				}
				if isBlue := m[2]-m[0] > 150; isBlue != tt.blue {
					t.Errorf("CoverOnly %v: the crop around %v has mean colour %.0f; want blue %v", coverOnly, tt.focus, m, tt.blue)
				}
			}
		})
	}
}

// TestProcessAVIF checks AVIF outputs: AV1 in HEIF, 8-bit, decodable,
// alpha kept, no metadata, and the same colours as the vips command's.
func TestProcessAVIF(t *testing.T) {
	recipe := media.Recipe{Version: 1, Variants: []media.Variant{
		{Name: "thumb", Width: 200, Height: 200, Fit: media.FitCover, Formats: []media.Encoding{{Format: media.FormatAVIF, Quality: 50}}},
		{Name: "medium", Width: 800, Height: 800, Formats: []media.Encoding{{Format: media.FormatAVIF, Quality: 55}, {Format: media.FormatWebP, Quality: 80}}},
	}}
	dir := t.TempDir()
	for _, file := range []string{"photo_iphonex_p3_orient6_gps.jpg", "png_rgba_2048x1536.png", "cmyk_adobe_app14.jpg"} {
		t.Run(file, func(t *testing.T) {
			res, err := testRuntime.ProcessImage(context.Background(), corpustest.Read(t, file), recipe)
			if err != nil {
				t.Fatal(err)
			}
			cli := cliRecipe(t, file, recipe)
			alpha := strings.HasPrefix(file, "png_rgba")
			for _, o := range res.Outputs {
				if o.Format != media.FormatAVIF {
					continue
				}
				label := o.Name + ".avif"
				if o.ContentType != "image/avif" {
					t.Errorf("%s content type %s", label, o.ContentType)
				}
				d := inspect(t, o.Data) // sniffed and decoded strictly
				if d.format != media.FormatAVIF || d.width != o.Width || d.height != o.Height {
					t.Errorf("%s decodes as %s %dx%d, says %dx%d", label, d.format, d.width, d.height, o.Width, o.Height)
				}
				if wantBands := map[bool]int{false: 3, true: 4}[alpha]; d.bands != wantBands {
					t.Errorf("%s has %d bands, want %d", label, d.bands, wantBands)
				}
				if depth, err := av1BitDepth(o.Data); err != nil || depth != 8 {
					t.Errorf("%s: bit depth %d (%v), want 8", label, depth, err)
				}
				for _, field := range d.fields {
					if isMetadataField(field) {
						t.Errorf("%s carries metadata field %s", label, field)
					}
				}
				enc := media.Encoding{Format: media.FormatAVIF, Quality: qualityOf(t, variantOf(t, recipe, o.Name), media.FormatAVIF)}
				got, want := decodePixels(t, o.Data, 0), decodePixels(t, cliEncode(t, cli[o.Name], enc), 0)
				if diff, where := maxMeanDiff(got, want); got.w != want.w || got.h != want.h || diff > colourTolerance {
					t.Errorf("%s %v: %.1f levels from the CLI's %v (%s)", label, got, diff, want, where)
				}
				name := strings.ReplaceAll(file, ".", "_") + "--" + label
				if err := os.WriteFile(filepath.Join(dir, name), o.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	checkAVIFExiftool(t, dir)
}

// av1BitDepth reads the bit depth from the AV1 codec configuration box
// (av1C) of an AVIF file: 8, 10 or 12.
func av1BitDepth(data []byte) (int, error) {
	i := bytes.Index(data, []byte("av1C"))
	if i < 0 || i+7 > len(data) {
		return 0, fmt.Errorf("no av1C box")
	}
	flags := data[i+4+2] // after marker/version and profile/level
	switch {
	case flags&0x40 == 0: // high_bitdepth
		return 8, nil
	case flags&0x20 == 0: // twelve_bit
		return 10, nil
	}
	return 12, nil
}

// checkAVIFExiftool runs exiftool over the AVIF outputs: the HEIF
// container's structure only; no EXIF, XMP, ICC or GPS.
func checkAVIFExiftool(t *testing.T, dir string) {
	path, err := exec.LookPath("exiftool")
	if err != nil {
		t.Fatalf("exiftool is required (apt install libimage-exiftool-perl): %v", err)
	}
	out, err := exec.Command(path, "-j", "-G", "-a", "-u", "-q", dir).Output()
	if err != nil {
		t.Fatalf("exiftool: %v", err)
	}
	var files []map[string]any
	if err := json.Unmarshal(out, &files); err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("exiftool read no AVIF outputs")
	}
	for _, f := range files {
		name := filepath.Base(f["SourceFile"].(string))
		for key, value := range f {
			group, tag, _ := strings.Cut(key, ":")
			bad := !slices.Contains([]string{"SourceFile", "ExifTool", "File", "QuickTime", "Composite"}, group) ||
				tag == "Warning" || strings.Contains(tag, "GPS") || strings.Contains(tag, "ICC")
			if bad {
				t.Errorf("%s: exiftool sees %s = %v", name, key, value)
			}
		}
		if depth := f["QuickTime:ImagePixelDepth"]; depth != "8 8 8" {
			t.Errorf("%s: pixel depth %v, want 8 8 8", name, depth)
		}
	}
	t.Logf("exiftool checked %d AVIF outputs", len(files))
}

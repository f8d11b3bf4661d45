package vips

import (
	"context"
	"fmt"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// colourTolerance is how far, in levels of 255, the mean of a patch of a
// vitrine output may be from the same patch of the vips command's result,
// per band: it absorbs JPEG and WebP coding error and resampling
// differences, not a colour conversion (see TestColourAgainstCLI).
const colourTolerance = 3.0

// TestColourAgainstCLI checks colour handling against the vips command:
// for each variant of the default recipe and each encoding, the mean
// colour of each patch of vitrine's output (the central quarter, two
// corners and the cells of a 4×4 grid) must be within colourTolerance of
// that of the same output made by the vips command (cliRecipe: `vips
// thumbnail … --export-profile srgb`, `vips colourspace srgb`, the smaller
// variants shrunk from the larger as vitrine does, flattened onto white for
// JPEG, saved with the same saver options). The inputs
// cover CMYK, ICC profiles (Adobe RGB, Display P3, a large embedded RGB
// profile), 16-bit PNG (RGB, grey, RGBA) and alpha (compared premultiplied,
// as seen over black; WebP must keep it).
//
// For the ICC-tagged files, the test also shows it can fail: the raw
// values (what a decoder that ignores the profile gives, `vips thumbnail`
// without an export profile) are more than 1.5 times the tolerance from
// the converted output in some patch. (Measured: every output equals the
// CLI's on every patch, difference 0.0; the raw values miss by 9.8 levels
// for Adobe RGB, 8.8 and 5.9 for the two Display P3 photos.)
func TestColourAgainstCLI(t *testing.T) {
	tests := []struct {
		file string
		// icc: the file has an ICC profile whose conversion to sRGB moves
		// a patch mean by more than the tolerance.
		icc bool
		// alpha: the output keeps an alpha channel in WebP.
		alpha bool
	}{
		{"cmyk_adobe_app14.jpg", false, false},
		{"photo_adobergb_2000x1072.jpg", true, false},
		{"photo_iphonex_p3_orient6_gps.jpg", true, false},
		{"photo_pixel6pro_ultrahdr_p3.jpg", true, false},
		// A large profile close to sRGB: converting moves colours by
		// less than a level, so the test could not tell.
		{"progressive_icc_tiffrgb.jpg", false, false},
		{"png16_rgb_basn2c16.png", false, false},
		{"png16_gray_basn0g16.png", false, false},
		{"png_interlaced_basi6a16.png", false, true},
		{"png_rgba_basn6a08.png", false, true},
		{"png_rgba_2048x1536.png", false, true},
		{"webp_lossy_alpha_rose.webp", false, true},
	}
	recipe := media.DefaultRecipe()
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := testRuntime.ProcessImage(context.Background(), corpustest.Read(t, tt.file), recipe)
			if err != nil {
				t.Fatal(err)
			}
			cli := cliRecipe(t, tt.file, recipe)
			for _, o := range res.Outputs {
				v := variantOf(t, recipe, o.Name)
				enc := media.Encoding{Format: o.Format, Quality: qualityOf(t, v, o.Format)}
				label := fmt.Sprintf("%s.%s", o.Name, o.Format)
				got := decodePixels(t, o.Data, 0)
				want := decodePixels(t, cliEncode(t, cli[o.Name], enc), 0)
				switch {
				case o.Format == media.FormatJPEG && got.bands != 3:
					t.Errorf("%s has %d bands, want 3 (sRGB, no alpha)", label, got.bands)
					continue
				case o.Format == media.FormatWebP && tt.alpha && got.bands != 4:
					t.Errorf("%s has %d bands: alpha lost", label, got.bands)
					continue
				case abs(got.w-want.w) > 1 || abs(got.h-want.h) > 1 || got.bands != want.bands:
					t.Errorf("%s is %v, the CLI's %v", label, got, want)
					continue
				}
				d, where := maxMeanDiff(got, want)
				if d > colourTolerance {
					t.Errorf("%s: patch means differ from the CLI's by %.1f levels (%s); tolerance %.0f", label, d, where, colourTolerance)
				}
				t.Logf("%-12s %v: within %.1f of the CLI (worst: %s)", label, got, d, where)
			}
			if !tt.icc {
				return
			}
			// Without the conversion, the test would fail.
			v := recipe.Variants[2] // medium
			raw := decodePixels(t, cliRawReference(t, tt.file, v), 0)
			out := decodePixels(t, outputOf(t, res.Outputs, v.Name, media.FormatJPEG).Data, 0)
			d, where := maxMeanDiff(raw, out)
			if d <= 1.5*colourTolerance {
				t.Errorf("the unconverted values differ from the output by only %.1f levels (%s): the test cannot see the ICC conversion", d, where)
			}
			t.Logf("unconverted values differ from the output by up to %.1f levels (%s)", d, where)
		})
	}
}

// variantOf returns the recipe's variant with the given name.
func variantOf(t testing.TB, r media.Recipe, name string) media.Variant {
	t.Helper()
	for _, v := range r.Variants {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no variant %q", name)
	return media.Variant{}
}

// qualityOf returns the quality of format f in variant v.
func qualityOf(t testing.TB, v media.Variant, f media.Format) int {
	t.Helper()
	for _, e := range v.Formats {
		if e.Format == f {
			return e.Quality
		}
	}
	t.Fatalf("variant %s has no %s", v.Name, f)
	return 0
}

// cliRawReference is `vips thumbnail` without an export profile, which
// keeps the embedded profile and the raw values of an RGB file.
func cliRawReference(t testing.TB, file string, v media.Variant) []byte {
	t.Helper()
	dir := t.TempDir()
	out := dir + "/raw.png"
	runVips(t, "thumbnail", corpustest.Dir(t)+"/"+file, out, fmt.Sprint(v.Width), "--height", fmt.Sprint(v.Height), "--size", "down")
	return readFile(t, out)
}

// orientationTolerance is the mean absolute difference, in levels of 255
// per sample, allowed between an output of a rotated or mirrored file and
// the vips command's rendering of the upright file, both shrunk to 32
// pixels; a mirrored or wrongly rotated picture differs by far more.
const orientationTolerance = 4.0

// TestOrientationAgainstCLI checks the EXIF orientation examples, which
// store one picture transformed for each orientation: every output of the
// default recipe, WebP and JPEG, of every orientation must match `vips
// thumbnail` of the orientation-1 file, with the same box and crop.
func TestOrientationAgainstCLI(t *testing.T) {
	groups := []struct {
		upright string
		files   []string
	}{
		{"orient_landscape_1.jpg", []string{"orient_landscape_1.jpg", "orient_landscape_2.jpg", "orient_landscape_3.jpg", "orient_landscape_4.jpg",
			"orient_landscape_5.jpg", "orient_landscape_6.jpg", "orient_landscape_7.jpg", "orient_landscape_8.jpg"}},
		{"orient_portrait_0_invalid.jpg", []string{"orient_portrait_0_invalid.jpg", "orient_portrait_2.jpg", "orient_portrait_4.jpg", "orient_portrait_7.jpg"}},
	}
	const side = 32
	recipe := media.DefaultRecipe()
	for _, g := range groups {
		refs := map[string]raster{}
		for _, v := range recipe.Variants {
			ref := decodePixels(t, cliReference(t, g.upright, v), side)
			// The measure tells a mirrored picture from the right one.
			if d := pixelDiff(ref, ref.mirrored()); d < 5*orientationTolerance {
				t.Fatalf("%s %s differs from its mirror image by only %.1f: the test cannot see orientation", g.upright, v.Name, d)
			}
			refs[v.Name] = ref
		}
		for _, file := range g.files {
			t.Run(file, func(t *testing.T) {
				res, err := testRuntime.ProcessImage(context.Background(), corpustest.Read(t, file), recipe)
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for _, o := range res.Outputs {
					got := decodePixels(t, o.Data, side)
					ref := refs[o.Name]
					d := pixelDiff(got, ref)
					if got.w != ref.w || got.h != ref.h || d > orientationTolerance {
						t.Errorf("%s.%s: %v differs from the upright CLI thumbnail %v by %.1f levels (mirrored: %.1f)",
							o.Name, o.Format, got, ref, d, pixelDiff(got.mirrored(), ref))
					}
					worst = max(worst, d)
				}
				t.Logf("%d outputs within %.1f levels of the upright CLI thumbnails", len(res.Outputs), worst)
			})
		}
	}
}

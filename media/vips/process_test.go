package vips

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"sync"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// outputOf returns the output with the given variant name and format.
func outputOf(t *testing.T, outs []media.Output, name string, f media.Format) media.Output {
	t.Helper()
	for _, o := range outs {
		if o.Name == name && o.Format == f {
			return o
		}
	}
	t.Fatalf("no %s %s output", name, f)
	return media.Output{}
}

// transparentPNG is a w×h PNG, transparent but for an opaque red square.
func transparentPNG(t *testing.T, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := h / 4; y < h/2; y++ {
		for x := w / 4; x < w/2; x++ {
			img.SetNRGBA(x, y, color.NRGBA{R: 255, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestProcessAlpha(t *testing.T) {
	outs, err := testRuntime.Process(context.Background(), transparentPNG(t, 400, 400), media.DefaultRecipe())
	if err != nil {
		t.Fatal(err)
	}
	if d := inspect(t, outputOf(t, outs, "medium", media.FormatWebP).Data); !d.hasAlpha || d.bands != 4 {
		t.Errorf("webp: %d bands, alpha %v; want alpha kept", d.bands, d.hasAlpha)
	}
	j := outputOf(t, outs, "medium", media.FormatJPEG)
	if d := inspect(t, j.Data); d.hasAlpha || d.bands != 3 {
		t.Errorf("jpeg: %d bands, alpha %v", d.bands, d.hasAlpha)
	}
	img, err := jpeg.Decode(bytes.NewReader(j.Data))
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b, _ := img.At(5, 5).RGBA(); r>>8 < 250 || g>>8 < 250 || b>>8 < 250 {
		t.Errorf("transparent corner is %d,%d,%d in JPEG, want white", r>>8, g>>8, b>>8)
	}
	if r, g, b, _ := img.At(150, 150).RGBA(); r>>8 < 200 || g>>8 > 60 || b>>8 > 60 {
		t.Errorf("opaque square is %d,%d,%d in JPEG, want red", r>>8, g>>8, b>>8)
	}
}

// decodeJPEG decodes a JPEG with the standard library.
func decodeJPEG(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// mirror flips an image left to right.
func mirror(img image.Image) image.Image {
	r := img.Bounds()
	out := image.NewRGBA(r)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			out.Set(r.Max.X-1-(x-r.Min.X), y, img.At(x, y))
		}
	}
	return out
}

// meanDiff is the mean absolute difference of two images' grey levels,
// 0-255; 255 if their sizes differ.
func meanDiff(a, b image.Image) float64 {
	if a.Bounds() != b.Bounds() {
		return 255
	}
	var sum float64
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ga := color.GrayModel.Convert(a.At(x, y)).(color.Gray).Y
			gb := color.GrayModel.Convert(b.At(x, y)).(color.Gray).Y
			sum += float64(max(ga, gb) - min(ga, gb))
		}
	}
	return sum / float64(r.Dx()*r.Dy())
}

// TestProcessOrientation relies on the EXIF orientation examples: each
// file stores the same picture transformed for its orientation, so once
// oriented, all render alike. Mirrored or wrongly rotated ones do not.
func TestProcessOrientation(t *testing.T) {
	groups := map[string][]string{
		"orient_landscape_1.jpg":        {"orient_landscape_2.jpg", "orient_landscape_3.jpg", "orient_landscape_4.jpg", "orient_landscape_5.jpg", "orient_landscape_6.jpg", "orient_landscape_7.jpg", "orient_landscape_8.jpg"},
		"orient_portrait_0_invalid.jpg": {"orient_portrait_2.jpg", "orient_portrait_4.jpg", "orient_portrait_7.jpg"},
	}
	recipe := media.Recipe{Version: 1, Variants: []media.Variant{{Name: "t", Width: 120, Height: 120, Formats: []media.Encoding{{Format: media.FormatJPEG, Quality: 90}}}}}
	thumb := func(file string) []byte {
		outs, err := testRuntime.Process(context.Background(), corpustest.Read(t, file), recipe)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return outs[0].Data
	}
	for ref, files := range groups {
		want := decodeJPEG(t, thumb(ref))
		// The measure tells a mirrored picture from the right one.
		if d := meanDiff(want, mirror(want)); d < 20 {
			t.Fatalf("%s differs from its mirror image by only %.1f: the test cannot see orientation", ref, d)
		}
		for _, f := range files {
			if d := meanDiff(want, decodeJPEG(t, thumb(f))); d > 8 {
				t.Errorf("%s differs from %s by %.1f grey levels on average: wrong orientation", f, ref, d)
			}
		}
	}
}

func TestProcessRecipeOrder(t *testing.T) {
	enc := []media.Encoding{{Format: media.FormatJPEG, Quality: 80}, {Format: media.FormatWebP, Quality: 70}}
	// "wide" has a larger box than "mid" but makes a smaller image of this
	// 2560×1600 photo: it must not be the source of "mid".
	recipe := media.Recipe{Version: 1, Variants: []media.Variant{
		{Name: "small", Width: 100, Height: 100, Formats: enc},
		{Name: "big", Width: 1000, Height: 500, Fit: media.FitInside, Formats: enc[1:]},
		{Name: "wide", Width: 1000, Height: 100, Formats: enc[:1]},
		{Name: "mid", Width: 300, Height: 300, Formats: enc[:1]},
	}}
	outs, err := testRuntime.Process(context.Background(), corpustest.Read(t, "photo_mate_twowings.jpg"), recipe)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%s.%s %dx%d", o.Name, o.Format, o.Width, o.Height))
		if o.ContentType != o.Format.ContentType() {
			t.Errorf("%s content type %s", o.Name, o.ContentType)
		}
		if d := inspect(t, o.Data); d.format != o.Format || d.width != o.Width || d.height != o.Height {
			t.Errorf("%s.%s decodes as %s %dx%d", o.Name, o.Format, d.format, d.width, d.height)
		}
	}
	want := []string{"small.jpeg 100x63", "small.webp 100x63", "big.webp 800x500", "wide.jpeg 160x100", "mid.jpeg 300x188"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outputs %v, want %v", got, want)
	}
}

func TestProcessRefuses(t *testing.T) {
	good := corpustest.Read(t, "gif_static_hopper.gif")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		data   []byte
		recipe media.Recipe
		check  func(error) bool
	}{
		{"invalid recipe", context.Background(), good, media.Recipe{}, func(err error) bool { return catalog.ErrorKind(err) == catalog.KindInvalid }},
		{"cancelled", cancelled, good, media.DefaultRecipe(), func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"bomb", context.Background(), corpustest.Read(t, "bomb_png_65536x65536.png"), media.DefaultRecipe(), func(err error) bool {
			var ce *catalog.Error
			return errors.As(err, &ce) && ce.Code == catalog.FailTooManyPixels
		}},
		{"truncated jpeg", context.Background(), corpustest.Read(t, "truncated_10000b.jpg"), media.DefaultRecipe(), func(err error) bool {
			var ce *catalog.Error
			return errors.As(err, &ce) && ce.Code == catalog.FailCorruptImage && ce.Kind == catalog.KindUnprocessableImage
		}},
		{"html", context.Background(), corpustest.Read(t, "html_xss.html"), media.DefaultRecipe(), func(err error) bool {
			return catalog.ErrorKind(err) == catalog.KindUnsupportedMedia
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, err := testRuntime.Process(tt.ctx, tt.data, tt.recipe)
			if !tt.check(err) || outs != nil {
				t.Errorf("got %d outputs, err %v", len(outs), err)
			}
		})
	}
}

// TestProcessDeadlineKillsDecode ends the context during the decode of a
// large PNG, which libvips decodes strip by strip: the decode is killed
// instead of running to the end.
func TestProcessDeadlineKillsDecode(t *testing.T) {
	data := corpustest.Read(t, "png_rgba_2048x1536.png")
	start := time.Now()
	if _, err := testRuntime.Process(context.Background(), data, media.DefaultRecipe()); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := testRuntime.Process(ctx, data, media.DefaultRecipe())
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	t.Logf("full run %v; with a 10ms deadline: %v after %v", full, err, took)
	if took > full/2 {
		t.Errorf("with a 10ms deadline Process took %v of a full %v", took, full)
	}
}

// TestProcessConcurrent runs jobs side by side, as the service does.
func TestProcessConcurrent(t *testing.T) {
	files := []string{"webp_lossy_alpha_rose.webp", "gif_animated_42f.gif", "progressive_icc_tiffrgb.jpg", "orient_png_exif_6.png", "avif_hopper.avif", "tiff_rgb.tiff"}
	var wg sync.WaitGroup
	errs := make(chan error, len(files)*2)
	for range 2 {
		for _, f := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs, err := testRuntime.Process(context.Background(), corpustest.Read(t, f), media.DefaultRecipe())
				if err == nil && len(outs) != media.DefaultRecipe().Outputs() {
					err = fmt.Errorf("%d outputs", len(outs))
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", f, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestProcessEarly: with Early, every variant's fallback formats come
// first (AVIF left out), then the AVIF files, and the final outputs are
// those of processing without Early, in the recipe's order; an error of
// Early ends processing with it.
func TestProcessEarly(t *testing.T) {
	data := corpustest.Read(t, "photo_mate_twowings.jpg")
	recipe := media.DefaultRecipe()
	plain, err := testRuntime.ProcessImage(context.Background(), data, recipe)
	if err != nil {
		t.Fatal(err)
	}
	var early []string
	res, err := testRuntime.ProcessImageWith(context.Background(), data, recipe, media.Options{Early: func(r media.Result) error {
		for _, o := range r.Outputs {
			early = append(early, o.Name+"."+o.Format.Name())
		}
		if r.Placeholder != plain.Placeholder || r.DominantColor != plain.DominantColor {
			t.Errorf("early placeholder %q %q, want %q %q", r.Placeholder, r.DominantColor, plain.Placeholder, plain.DominantColor)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := "[thumb.webp thumb.jpeg small.webp small.jpeg medium.webp medium.jpeg large.webp large.jpeg]"
	if fmt.Sprint(early) != want {
		t.Errorf("early outputs %v, want %s", early, want)
	}
	if len(res.Outputs) != len(plain.Outputs) {
		t.Fatalf("%d outputs, want %d", len(res.Outputs), len(plain.Outputs))
	}
	for i, o := range res.Outputs {
		p := plain.Outputs[i]
		if o.Name != p.Name || o.Format != p.Format || o.Width != p.Width || o.Height != p.Height {
			t.Errorf("output %d: %s.%s %dx%d, want %s.%s %dx%d", i, o.Name, o.Format, o.Width, o.Height, p.Name, p.Format, p.Width, p.Height)
		}
		if d := inspect(t, o.Data); d.format != o.Format || d.width != o.Width || d.height != o.Height {
			t.Errorf("%s.%s decodes as %s %dx%d", o.Name, o.Format, d.format, d.width, d.height)
		}
	}
	stop := errors.New("stop")
	if _, err := testRuntime.ProcessImageWith(context.Background(), data, recipe, media.Options{Early: func(media.Result) error { return stop }}); !errors.Is(err, stop) {
		t.Errorf("an error of Early: %v, want it returned", err)
	}
}

// TestLoadShrink: a recipe's decode leaves the resampler at least 2× (as
// libvips' thumbnail does: the chain of smaller variants is made from it);
// a single output shrinks on load as far as the box (as imgproxy does).
func TestLoadShrink(t *testing.T) {
	h := media.Header{Format: media.FormatJPEG, Width: 5100, Height: 3840}
	for _, c := range []struct {
		box    int
		single bool
		want   int
	}{
		{800, false, 2}, {800, true, 4}, // 6.4×
		{300, false, 8}, {300, true, 8}, // 17×
		{1600, false, 1}, {1600, true, 2}, // 3.2×
		{4000, false, 1}, {4000, true, 1},
	} {
		if got := loadShrink(h, c.box, c.box, c.single); got != c.want {
			t.Errorf("loadShrink(5100x3840 into %d, single %v) = %d, want %d", c.box, c.single, got, c.want)
		}
	}
}

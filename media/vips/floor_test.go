package vips

import (
	"testing"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// The floor makes the recipe's outputs, in recipe order, at the sizes
// ProcessImage makes them.
func TestFloor(t *testing.T) {
	data := corpustest.Read(t, "photo_mate_wood.jpg") // 2560×1920
	outs, err := testRuntime.Floor(data, media.DefaultRecipe())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name   string
		format media.Format
		w, h   int
	}{
		{"thumb", media.FormatWebP, 200, 200}, {"thumb", media.FormatJPEG, 200, 200}, {"thumb", media.FormatAVIF, 200, 200},
		{"small", media.FormatWebP, 400, 300}, {"small", media.FormatJPEG, 400, 300}, {"small", media.FormatAVIF, 400, 300},
		{"medium", media.FormatWebP, 800, 600}, {"medium", media.FormatJPEG, 800, 600}, {"medium", media.FormatAVIF, 800, 600},
		{"large", media.FormatWebP, 1600, 1200}, {"large", media.FormatJPEG, 1600, 1200}, {"large", media.FormatAVIF, 1600, 1200},
	}
	if len(outs) != len(want) {
		t.Fatalf("%d outputs, want %d", len(outs), len(want))
	}
	for i, w := range want {
		o := outs[i]
		got := inspect(t, o.Data)
		if o.Name != w.name || o.Format != w.format || got.format != w.format || got.width != w.w || got.height != w.h || o.Width != w.w || o.Height != w.h {
			t.Errorf("output %d: %s %s %dx%d (decoded %s %dx%d), want %s %s %dx%d", i, o.Name, o.Format, o.Width, o.Height,
				got.format, got.width, got.height, w.name, w.format, w.w, w.h)
		}
	}
	one := media.Recipe{Version: 1, Variants: []media.Variant{{Name: "medium", Width: 800, Height: 800,
		Formats: []media.Encoding{{Format: media.FormatWebP, Quality: 80}}}}}
	outs, err = testRuntime.Floor(data, one)
	if err != nil || len(outs) != 1 {
		t.Fatalf("single output: %d, %v", len(outs), err)
	}
	if got := inspect(t, outs[0].Data); got.format != media.FormatWebP || got.width != 800 || got.height != 600 {
		t.Errorf("single output decodes as %+v", got)
	}
}

func TestResizeJPEG(t *testing.T) {
	out, err := testRuntime.ResizeJPEG(corpustest.Read(t, "photo_mate_wood.jpg"), 0.25, 92)
	if err != nil {
		t.Fatal(err)
	}
	if got := inspect(t, out); got.format != media.FormatJPEG || got.width != 640 || got.height != 480 {
		t.Errorf("decodes as %+v", got)
	}
}

// Input bytes are wrapped, not copied, and pinned only while libvips holds
// them: once calls return, nothing is left pinned.
func TestBlobsReleased(t *testing.T) {
	data := corpustest.Read(t, "photo_mate_wood.jpg")
	if _, err := testRuntime.ProcessImage(t.Context(), data, media.DefaultRecipe()); err != nil {
		t.Fatal(err)
	}
	if _, err := testRuntime.Probe(data, media.Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := testRuntime.ProcessImage(t.Context(), data[:len(data)/2], media.DefaultRecipe()); err == nil {
		t.Fatal("a truncated JPEG was processed")
	}
	if _, err := testRuntime.Floor(data, media.DefaultRecipe()); err != nil {
		t.Fatal(err)
	}
	if n := pinnedBlobs(); n != 0 {
		t.Errorf("%d inputs still pinned after the calls returned", n)
	}
}

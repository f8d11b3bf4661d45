package media_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
)

func TestDefaultRecipe(t *testing.T) {
	r := media.DefaultRecipe()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Outputs() != 6 {
		t.Errorf("outputs = %d, want 6", r.Outputs())
	}
	boxes := map[string]int{"thumb": 200, "medium": 800, "large": 1600}
	for _, v := range r.Variants {
		if boxes[v.Name] != v.Width || v.Width != v.Height || v.Fit != media.FitInside {
			t.Errorf("variant %+v", v)
		}
		if len(v.Formats) != 2 || v.Formats[0] != (media.Encoding{Format: media.FormatWebP, Quality: 80}) ||
			v.Formats[1] != (media.Encoding{Format: media.FormatJPEG, Quality: 82}) {
			t.Errorf("variant %s formats %+v", v.Name, v.Formats)
		}
	}
	// The recipe is data: it survives JSON.
	text, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back media.Recipe
	if err := json.Unmarshal(text, &back); err != nil {
		t.Fatal(err)
	}
	if back.Variants[2].Formats[1].Format != media.FormatJPEG {
		t.Errorf("JSON round trip: %s", text)
	}
}

func TestRecipeValidate(t *testing.T) {
	ok := func() media.Variant {
		return media.Variant{Name: "v", Width: 10, Height: 10, Formats: []media.Encoding{{Format: media.FormatWebP, Quality: 80}}}
	}
	tests := []struct {
		name   string
		edit   func(*media.Recipe)
		detail string // "" if valid
	}{
		{"valid, empty fit means inside", func(r *media.Recipe) {}, ""},
		{"no variants", func(r *media.Recipe) { r.Variants = nil }, "at least one variant"},
		{"empty name", func(r *media.Recipe) { r.Variants[0].Name = "" }, "name"},
		{"name with slash", func(r *media.Recipe) { r.Variants[0].Name = "../x" }, "name"},
		{"duplicate name", func(r *media.Recipe) { r.Variants = append(r.Variants, ok()) }, "twice"},
		{"zero width", func(r *media.Recipe) { r.Variants[0].Width = 0 }, "box"},
		{"huge height", func(r *media.Recipe) { r.Variants[0].Height = 20000 }, "box"},
		{"cover not yet", func(r *media.Recipe) { r.Variants[0].Fit = media.FitCover }, "not implemented"},
		{"unknown fit", func(r *media.Recipe) { r.Variants[0].Fit = "stretch" }, "unknown fit"},
		{"no formats", func(r *media.Recipe) { r.Variants[0].Formats = nil }, "no formats"},
		{"png output", func(r *media.Recipe) { r.Variants[0].Formats[0].Format = media.FormatPNG }, "cannot be written"},
		{"quality 0", func(r *media.Recipe) { r.Variants[0].Formats[0].Quality = 0 }, "quality"},
		{"quality 101", func(r *media.Recipe) { r.Variants[0].Formats[0].Quality = 101 }, "quality"},
		{"format twice", func(r *media.Recipe) {
			r.Variants[0].Formats = append(r.Variants[0].Formats, r.Variants[0].Formats[0])
		}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := media.Recipe{Variants: []media.Variant{ok()}}
			tt.edit(&r)
			err := r.Validate()
			if tt.detail == "" {
				wantErr(t, err, "", "", "")
				return
			}
			wantErr(t, err, catalog.KindInvalid, "invalid_recipe", tt.detail)
		})
	}
}

func TestLimitsCheck(t *testing.T) {
	tests := []struct {
		name   string
		lim    media.Limits
		h      media.Header
		code   string
		detail string
	}{
		{"defaults, 50 MP exactly", media.Limits{}, media.Header{Width: 10000, Height: 5000, Frames: 1}, "", ""},
		{"defaults, one pixel over", media.Limits{}, media.Header{Width: 10001, Height: 5000, Frames: 1}, catalog.FailTooManyPixels, "10001x5000 pixels, 50005000 in all; the limit is 50000000"},
		{"summed over frames", media.Limits{MaxPixels: 1000}, media.Header{Width: 10, Height: 10, Frames: 11}, catalog.FailTooManyPixels, "in each of 11 frames, 1100 in all; the limit is 1000"},
		{"frames first", media.Limits{}, media.Header{Width: 1, Height: 1, Frames: 4097}, catalog.FailTooManyFrames, "4097 frames; the limit is 1000"},
		{"custom frames", media.Limits{MaxFrames: 3}, media.Header{Width: 1, Height: 1, Frames: 4}, catalog.FailTooManyFrames, "the limit is 3"},
		{"zero frames count as one", media.Limits{}, media.Header{Width: 100, Height: 100}, "", ""},
		{"no overflow", media.Limits{MaxFrames: math.MaxInt}, media.Header{Width: math.MaxInt32, Height: math.MaxInt32, Frames: math.MaxInt32}, catalog.FailTooManyPixels, "the limit is 50000000"},
		{"lottapixel", media.Limits{}, media.Header{Width: 64250, Height: 64250, Frames: 1}, catalog.FailTooManyPixels, "64250x64250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.lim.Check(tt.h), catalog.KindUnprocessableImage, tt.code, tt.detail)
		})
	}
	if d := media.DefaultLimits(); d.MaxPixels != 50_000_000 || d.MaxFrames != 1000 {
		t.Errorf("DefaultLimits() = %+v", d)
	}
}

func TestHeaderDisplaySize(t *testing.T) {
	for o := 0; o <= 9; o++ {
		w, h := media.Header{Width: 30, Height: 20, Orientation: o}.DisplaySize()
		swapped := o >= 5 && o <= 8
		if swapped != (w == 20 && h == 30) || !swapped != (w == 30 && h == 20) {
			t.Errorf("orientation %d: %dx%d", o, w, h)
		}
	}
}

package media_test

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
)

func TestDefaultRecipe(t *testing.T) {
	r := media.DefaultRecipe()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Version != 3 || media.DefaultRecipeVersion != 3 {
		t.Errorf("version = %d, want 3", r.Version)
	}
	if r.Outputs() != 12 {
		t.Errorf("outputs = %d, want 12", r.Outputs())
	}
	boxes := map[string]int{"thumb": 200, "small": 400, "medium": 800, "large": 1600}
	for i, v := range r.Variants {
		fit := media.FitInside
		if v.Name == "thumb" {
			fit = media.FitCover
		}
		if boxes[v.Name] != v.Width || v.Width != v.Height || v.Fit != fit {
			t.Errorf("variant %d %+v", i, v)
		}
		if len(v.Formats) != 3 || v.Formats[0] != (media.Encoding{Format: media.FormatWebP, Quality: 80}) ||
			v.Formats[1] != (media.Encoding{Format: media.FormatJPEG, Quality: 82}) ||
			v.Formats[2] != (media.Encoding{Format: media.FormatAVIF, Quality: 55}) {
			t.Errorf("variant %s formats %+v", v.Name, v.Formats)
		}
		for _, e := range v.Formats {
			if v.Deferred(e) != (e.Format == media.FormatAVIF) {
				t.Errorf("variant %s: %s deferred %v", v.Name, e.Format, v.Deferred(e))
			}
		}
	}
	// The recipe is data: it survives JSON, through ParseRecipe too.
	text, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := media.ParseRecipe(text)
	if err != nil {
		t.Fatalf("ParseRecipe(%s): %v", text, err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("JSON round trip: %s gives %+v", text, back)
	}
}

func TestParseRecipe(t *testing.T) {
	const good = `{
  "version": 3,
  "variants": [
    {"name": "thumb", "width": 200, "height": 150, "fit": "cover",
     "formats": [{"format": "avif", "quality": 55}, {"format": "jpg", "quality": 82}]},
    {"name": "big", "width": 1600, "height": 1600,
     "formats": [{"format": "webp", "quality": 80}]}
  ]
}
`
	r, err := media.ParseRecipe([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := media.Recipe{Version: 3, Variants: []media.Variant{
		{Name: "thumb", Width: 200, Height: 150, Fit: media.FitCover, Formats: []media.Encoding{{Format: media.FormatAVIF, Quality: 55}, {Format: media.FormatJPEG, Quality: 82}}},
		{Name: "big", Width: 1600, Height: 1600, Formats: []media.Encoding{{Format: media.FormatWebP, Quality: 80}}},
	}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}

	v := func(extra string) string {
		return `{"version": 1, "variants": [{"name": "a", "width": 10, "height": 10, "formats": [{"format": "webp", "quality": 80}]` + extra + `}]}`
	}
	tests := []struct {
		name, text, detail string
	}{
		{"empty", ``, "ends before"},
		{"not an object", `[1]`, "must be a media.Recipe"},
		{"null", `null`, "version 0"},
		{"no version", `{"variants": []}`, "version 0"},
		{"version zero", `{"version": 0, "variants": []}`, "version 0"},
		{"unknown top field", `{"version": 1, "variant": []}`, `line 1, column 16 (byte 15): unknown field "variant"`},
		{"unknown nested field", v(`, "crop": "smart"`), `unknown field "crop"`},
		{"unknown encoding field", strings.Replace(v(""), `"quality": 80`, `"quality": 80, "effort": 4`, 1), `unknown field "effort"`},
		{"misplaced known field", `{"version": 1, "quality": 80, "variants": []}`, `unknown field "quality"`},
		{"wrong case", strings.Replace(v(""), `"width"`, `"Width"`, 1), `lower case: "width"`},
		{"duplicate field", strings.Replace(v(""), `"width": 10`, `"width": 10, "width": 20`, 1), `"width" appears twice`},
		{"fractional width", strings.Replace(v(""), `"width": 10`, `"width": 10.5`, 1), "must be a int"},
		{"string width", strings.Replace(v(""), `"width": 10`, `"width": "10"`, 1), "must be a int"},
		{"unknown format", strings.Replace(v(""), `"webp"`, `"bmp"`, 1), `unknown image format "bmp"`},
		{"unwritable format", strings.Replace(v(""), `"webp"`, `"gif"`, 1), "cannot be written"},
		{"unknown fit", v(`, "fit": "fill"`), `unknown fit "fill"`},
		{"trailing data", v("") + ` {}`, "after the recipe"},
		{"syntax error on line 2", "{\n  \"version\": 1,,\n}", "line 2, column 16 (byte 17): invalid character ','"},
		{"invalid variant", strings.Replace(v(""), `"quality": 80`, `"quality": 0`, 1), "quality 0 must be 1-100"},
		{"too large", `{"version": 1, "variants": [` + strings.Repeat(" ", media.MaxRecipeBytes) + `]}`, "the limit is 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := media.ParseRecipe([]byte(tt.text))
			wantErr(t, err, catalog.KindInvalid, "invalid_recipe", tt.detail)
			if !reflect.DeepEqual(r, media.Recipe{}) {
				t.Errorf("recipe %+v returned with the error", r)
			}
		})
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
		{"cover", func(r *media.Recipe) { r.Variants[0].Fit = media.FitCover }, ""},
		{"avif", func(r *media.Recipe) { r.Variants[0].Formats[0].Format = media.FormatAVIF }, ""},
		{"no version", func(r *media.Recipe) { r.Version = 0 }, "version 0 must be 1 or more"},
		{"negative version", func(r *media.Recipe) { r.Version = -1 }, "version -1"},
		{"no variants", func(r *media.Recipe) { r.Variants = nil }, "at least one variant"},
		{"too many variants", func(r *media.Recipe) {
			for i := range media.MaxVariants {
				v := ok()
				v.Name = fmt.Sprint("v", i)
				r.Variants = append(r.Variants, v)
			}
		}, "at most 16 variants, not 17"},
		{"empty name", func(r *media.Recipe) { r.Variants[0].Name = "" }, "name"},
		{"name with slash", func(r *media.Recipe) { r.Variants[0].Name = "../x" }, "name"},
		{"duplicate name", func(r *media.Recipe) { r.Variants = append(r.Variants, ok()) }, "twice"},
		{"zero width", func(r *media.Recipe) { r.Variants[0].Width = 0 }, "box"},
		{"huge height", func(r *media.Recipe) { r.Variants[0].Height = 20000 }, "box"},
		{"unknown fit", func(r *media.Recipe) { r.Variants[0].Fit = "stretch" }, "unknown fit"},
		{"no formats", func(r *media.Recipe) { r.Variants[0].Formats = nil }, "no formats"},
		{"png output", func(r *media.Recipe) { r.Variants[0].Formats[0].Format = media.FormatPNG }, "cannot be written"},
		{"heic output", func(r *media.Recipe) { r.Variants[0].Formats[0].Format = media.FormatHEIC }, "cannot be written"},
		{"quality 0", func(r *media.Recipe) { r.Variants[0].Formats[0].Quality = 0 }, "quality"},
		{"quality 101", func(r *media.Recipe) { r.Variants[0].Formats[0].Quality = 101 }, "quality"},
		{"format twice", func(r *media.Recipe) {
			r.Variants[0].Formats = append(r.Variants[0].Formats, r.Variants[0].Formats[0])
		}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := media.Recipe{Version: 1, Variants: []media.Variant{ok()}}
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

// TestDeferred: AVIF waits for the image to be ready only when the variant
// has another format to serve meanwhile.
func TestDeferred(t *testing.T) {
	avif, webp := media.Encoding{Format: media.FormatAVIF, Quality: 50}, media.Encoding{Format: media.FormatWebP, Quality: 80}
	if v := (media.Variant{Formats: []media.Encoding{avif}}); v.Deferred(avif) {
		t.Error("an AVIF-only variant defers its only format")
	}
	if v := (media.Variant{Formats: []media.Encoding{avif, webp}}); !v.Deferred(avif) || v.Deferred(webp) {
		t.Error("AVIF beside WebP: AVIF deferred, WebP not")
	}
}

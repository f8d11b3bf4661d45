package catalog

import (
	"errors"
	"testing"
)

// codeOf is the Code of err's *Error ("" when none).
func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestWidthsSnap(t *testing.T) {
	w := DefaultWidths
	for _, c := range []struct {
		width, imgW, imgH, ax, ay, want int
	}{
		{1, 4000, 3000, 0, 0, 16},
		{16, 4000, 3000, 0, 0, 16},
		{17, 4000, 3000, 0, 0, 32},
		{300, 4000, 3000, 0, 0, 304},
		{2048, 4000, 3000, 0, 0, 2048},
		{2000, 1200, 900, 0, 0, 1200},  // never larger than the image
		{2000, 1200, 900, 1, 1, 900},   // the widest square it holds
		{2000, 1200, 900, 16, 9, 1200}, // 1200x675
		{500, 1200, 900, 1, 2, 450},    // 450x900
		{10, 8, 8, 0, 0, 8},
	} {
		got, err := w.Snap(c.width, c.imgW, c.imgH, c.ax, c.ay)
		if err != nil || got != c.want {
			t.Errorf("Snap(%d) of %dx%d ar%dx%d = %d, %v; want %d", c.width, c.imgW, c.imgH, c.ax, c.ay, got, err, c.want)
		}
	}
	for _, bad := range []int{0, -1, 2049, 1_000_000_000} {
		if _, err := w.Snap(bad, 4000, 3000, 0, 0); codeOf(err) != "invalid_width" {
			t.Errorf("Snap(%d): %v; want invalid_width", bad, err)
		}
	}
}

func TestReduceAndKey(t *testing.T) {
	for _, c := range []struct{ x, y, wx, wy int }{{2, 2, 1, 1}, {16, 9, 16, 9}, {32, 24, 4, 3}, {1, 32, 1, 32}} {
		if x, y, err := Reduce(c.x, c.y); err != nil || x != c.wx || y != c.wy {
			t.Errorf("Reduce(%d, %d) = %d, %d, %v", c.x, c.y, x, y, err)
		}
	}
	for _, c := range [][2]int{{0, 1}, {1, 0}, {33, 1}, {100000, 1}, {-1, 1}} {
		if _, _, err := Reduce(c[0], c[1]); codeOf(err) != "invalid_aspect_ratio" {
			t.Errorf("Reduce(%d, %d): %v; want invalid_aspect_ratio", c[0], c[1], err)
		}
	}
	img := &Image{ID: "i", ProductID: "p", Status: StatusReady, RecipeVersion: 3, Original: Original{Width: 1200, Height: 900},
		FocalPoint: &FocalPoint{X: 0.25, Y: 0.5}}
	for _, c := range []struct {
		r    Render
		want string
	}{
		{Render{Width: 300, Format: "webp"}, "products/p/i/r3/od/w304.webp"},
		{Render{Width: 300, AspectX: 2, AspectY: 2, Format: "jpeg"}, "products/p/i/r3/od/ar1x1-w304-f2500-5000.jpeg"},
	} {
		if _, key, err := img.RenderTarget(DefaultWidths, c.r); err != nil || key != c.want {
			t.Errorf("RenderTarget(%+v) = %q, %v; want %q", c.r, key, err, c.want)
		}
	}
	if _, _, err := img.RenderTarget(DefaultWidths, Render{Width: 300, Format: "png"}); codeOf(err) != "invalid_format" {
		t.Errorf("png: %v", err)
	}
	img.Status = StatusPending
	if _, _, err := img.RenderTarget(DefaultWidths, Render{Width: 300, Format: "webp"}); ErrorKind(err) != KindNotFound {
		t.Errorf("a pending image: %v; want not found", err)
	}
}

func TestStaleRenderCrop(t *testing.T) {
	f := &FocalPoint{X: 0.25, Y: 0.5}
	for _, c := range []struct {
		key   string
		focus *FocalPoint
		stale bool
	}{
		{"products/p/i/r3/od/ar1x1-w304.webp", nil, false},
		{"products/p/i/r3/od/ar1x1-w304.webp", f, true},
		{"products/p/i/r3/od/ar1x1-w304-f2500-5000.webp", f, false},
		{"products/p/i/r3/od/ar1x1-w304-f2500-5000.webp", nil, true},
		{"products/p/i/r3/od/ar1x1-w304-f1000-5000.webp", f, true},
	} {
		if got := StaleRenderCrop(c.key, c.focus); got != c.stale {
			t.Errorf("StaleRenderCrop(%s, %v) = %v", c.key, c.focus, got)
		}
	}
}

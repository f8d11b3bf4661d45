package vips

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

func TestProbe(t *testing.T) {
	tests := []struct {
		file string
		want media.Header
	}{
		{"photo_mate_wood.jpg", media.Header{Format: media.FormatJPEG, Width: 2560, Height: 1920, Frames: 1, Orientation: 1}},
		{"photo_iphonex_p3_orient6_gps.jpg", media.Header{Format: media.FormatJPEG, Width: 4032, Height: 3024, Frames: 1, Orientation: 6}},
		{"orient_portrait_0_invalid.jpg", media.Header{Format: media.FormatJPEG, Width: 1200, Height: 1800, Frames: 1, Orientation: 1}},
		{"orient_png_exif_6.png", media.Header{Format: media.FormatPNG, Width: 200, Height: 100, Frames: 1, Orientation: 6, HasAlpha: true}},
		{"png16_rgb_basn2c16.png", media.Header{Format: media.FormatPNG, Width: 32, Height: 32, Frames: 1, Orientation: 1}},
		{"gif_animated_42f.gif", media.Header{Format: media.FormatGIF, Width: 245, Height: 245, Frames: 42, Orientation: 1, HasAlpha: true}},
		{"webp_animated_42f.webp", media.Header{Format: media.FormatWebP, Width: 245, Height: 245, Frames: 42, Orientation: 1, HasAlpha: true}},
		{"webp_lossy_rose.webp", media.Header{Format: media.FormatWebP, Width: 400, Height: 301, Frames: 1, Orientation: 1}},
		{"tiff_multipage_3.tiff", media.Header{Format: media.FormatTIFF, Width: 10, Height: 10, Frames: 3, Orientation: 1}},
		// libheif applies the container rotation; the EXIF orientation 6
		// this file also carries is dropped so it is not applied twice.
		{"heic_iphone11_p3_irot_gps.heic", media.Header{Format: media.FormatHEIC, Width: 3024, Height: 4032, Frames: 1, Orientation: 1}},
		{"avif_alpha.avif", media.Header{Format: media.FormatAVIF, Width: 64, Height: 64, Frames: 1, Orientation: 1, HasAlpha: true}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := testRuntime.Probe(corpustest.Read(t, tt.file), media.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestProbeRefuses(t *testing.T) {
	tests := []struct {
		file   string
		lim    media.Limits
		code   string
		detail string
	}{
		{"bomb_lottapixel_64250x64250.jpg", media.Limits{}, catalog.FailTooManyPixels, "64250x64250 pixels, 4128062500 in all; the limit is 50000000"},
		{"bomb_png_65536x65536.png", media.Limits{}, catalog.FailTooManyPixels, "65536x65536"},
		{"bomb_gif_frame_flood_1x1.gif", media.Limits{}, catalog.FailTooManyFrames, "4097 frames; the limit is 1000"},
		{"gif_animated_42f.gif", media.Limits{MaxFrames: 10}, catalog.FailTooManyFrames, "42 frames; the limit is 10"},
		{"gif_animated_42f.gif", media.Limits{MaxPixels: 1_000_000}, catalog.FailTooManyPixels, "245x245 pixels in each of 42 frames, 2521050 in all"},
		{"photo_mate_wood.jpg", media.Limits{MaxPixels: 4_000_000}, catalog.FailTooManyPixels, "2560x1920"},
		{"bomb_gif_frame_65535x1321.gif", media.Limits{}, catalog.FailCorruptImage, "gif file has an unreadable header"},
		{"fuzz_tiff_0x0.tiff", media.Limits{}, catalog.FailCorruptImage, "tiff file has an unreadable header"},
		{"svg_benign_logo.svg", media.Limits{}, catalog.FailUnsupportedFormat, "SVG"},
		{"libpng_huge_zTXt_chunk.png", media.Limits{}, catalog.FailCorruptImage, "zTXt"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			start := time.Now()
			h, err := testRuntime.Probe(corpustest.Read(t, tt.file), tt.lim)
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v: refusals must come from the header", d)
			}
			var ce *catalog.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Detail, tt.detail) {
				t.Fatalf("err = %v, want %s containing %q", err, tt.code, tt.detail)
			}
			if tt.code == catalog.FailTooManyPixels && h.Width == 0 {
				t.Errorf("no header returned with a limit error: %+v", h)
			}
		})
	}
}

func TestProbeAfterShutdownRefused(t *testing.T) {
	rt := &Runtime{closed: true}
	if _, err := rt.Probe([]byte("GIF89a"), media.Limits{}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Probe after Shutdown: %v", err)
	}
}

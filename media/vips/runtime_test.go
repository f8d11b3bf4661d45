package vips

import (
	"errors"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

func TestStartOnce(t *testing.T) {
	if _, err := Start(Config{}); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
}

func TestLoaderPolicy(t *testing.T) {
	tests := []struct {
		nickname string
		blocked  bool
	}{
		{"jpegload_buffer", false},
		{"pngload_buffer", false},
		{"webpload_buffer", false},
		{"gifload_buffer", false},
		{"heifload_buffer", false},
		{"tiffload_buffer", false},
		// File and source variants of allowed formats: never used, blocked.
		{"jpegload", true},
		{"jpegload_source", true},
		{"pngload", true},
		{"tiffload", true},
		{"heifload", true},
		// Everything else.
		{"svgload_buffer", true},
		{"svgload", true},
		{"pdfload_buffer", true},
		{"magickload_buffer", true},
		{"magickload", true},
		{"jp2kload_buffer", true},
		{"jxlload_buffer", true},
		{"radload_buffer", true},
		{"matrixload", true},
		{"csvload", true},
		{"vipsload", true},
		{"rawload", true},
		{"ppmload", true},
		{"openslideload", true},
		{"no_such_operation", true},
	}
	for _, tt := range tests {
		if got := isBlocked(tt.nickname); got != tt.blocked {
			t.Errorf("%s blocked = %v, want %v", tt.nickname, got, tt.blocked)
		}
	}
}

// TestHostileLoadersRefuse feeds hostile files straight to the loaders they
// target, bypassing media.Sniff: libvips itself must refuse to run them.
func TestHostileLoadersRefuse(t *testing.T) {
	tests := []struct{ file, loader string }{
		{"svg_local_file_ref.svg", "svgload_buffer"},
		{"svg_script_xss.svg", "svgload_buffer"},
		{"imagetragick_mvg_named.png", "magickload_buffer"},
		{"ghostscript_ps_named.jpg", "magickload_buffer"},
		{"unsupported_bmp_8bpp.bmp", "magickload_buffer"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := newBlob(corpustest.Read(t, tt.file))
			defer b.close()
			im, err := load(b, tt.loader, failOnWarning, 0, 0)
			if err == nil {
				im.close()
				t.Fatalf("%s loaded %s", tt.loader, tt.file)
			}
			if !strings.Contains(err.Error(), "operation is blocked") {
				t.Errorf("error %v, want operation is blocked", err)
			}
		})
	}
}

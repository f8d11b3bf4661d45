// Package vipscli is the vips command line that makes a recipe's outputs:
// the reference that vitrine's image processing is measured against, by the
// bench's vips-cli baseline (bench/internal/baseline) and by
// BenchmarkRecipeVsCLI (media/vips). Both take their commands from here, so
// that "the vips CLI" means one thing wherever a ratio to it is reported.
package vipscli

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vitrine-dev/vitrine/media"
)

// AVIFEffort is the AVIF saver's CPU effort the commands ask for: vitrine's
// own (media/vips has a test that they agree).
const AVIFEffort = 2

// SaveOptions are the vips saver options that save enc as vitrine does:
// metadata stripped, at enc's quality; JPEG with optimised Huffman tables,
// AVIF as 8-bit AV1 at AVIFEffort. Other formats get the saver's defaults.
func SaveOptions(enc media.Encoding) string {
	switch enc.Format {
	case media.FormatJPEG:
		return fmt.Sprintf("[Q=%d,strip,optimize_coding]", enc.Quality)
	case media.FormatAVIF:
		return fmt.Sprintf("[Q=%d,strip,compression=av1,bitdepth=8,effort=%d]", enc.Quality, AVIFEffort)
	case media.FormatWebP:
		return fmt.Sprintf("[Q=%d,strip]", enc.Quality)
	}
	return ""
}

// Commands are the vips argument lists that make recipe's outputs of the
// image file in, one process per output as a shell script would:
//
//	vips thumbnail in dir/in-thumb.webp[Q=80,strip] 200 --height 200 --size down --fail-on warning --crop attention --export-profile srgb
//
// That is shrink-on-load and auto-rotation (thumbnail's own), never
// enlarging, decoding strictly (--fail-on warning, as vitrine does), the
// attention crop for cover variants, and, when icc says that in carries an
// ICC profile (HasICC), conversion to sRGB through it (--export-profile
// srgb: vitrine converts such files; without it the CLI would keep the
// profile and skip the work). Files without a profile get no profile
// options: this libvips would transform untagged RGBA as if it were CMYK.
// Outputs are named <base of in>-<variant>.<format> in dir.
func Commands(in string, icc bool, dir string, recipe media.Recipe) [][]string {
	var cmds [][]string
	for _, v := range recipe.Variants {
		for _, e := range v.Formats {
			out := filepath.Join(dir, fmt.Sprintf("%s-%s.%s", filepath.Base(in), v.Name, e.Format.Name())) + SaveOptions(e)
			args := []string{"thumbnail", in, out, strconv.Itoa(v.Width), "--height", strconv.Itoa(v.Height), "--size", "down", "--fail-on", "warning"}
			if v.Fit == media.FitCover {
				args = append(args, "--crop", "attention")
			}
			if icc {
				args = append(args, "--export-profile", "srgb")
			}
			cmds = append(cmds, args)
		}
	}
	return cmds
}

// HasICC reports whether the image file carries an ICC profile, as
// vipsheader (installed beside the vips command at path vips) reads it.
func HasICC(vips, file string) (bool, error) {
	out, err := exec.Command(filepath.Join(filepath.Dir(vips), "vipsheader"), "-a", file).Output() // #nosec G204 -- vipsheader beside the vips executable the caller found, on a file it names; no shell
	if err != nil {
		return false, fmt.Errorf("vipsheader -a %s: %w", file, err)
	}
	return strings.Contains(string(out), "\nicc-profile-data:"), nil
}

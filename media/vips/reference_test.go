package vips

// Helpers for the tests that check vitrine's outputs against the vips
// command-line tool: running it, and reading pixels back.

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
	"github.com/vitrine-dev/vitrine/media/vipscli"
)

// vipsCLI returns the path of the vips command, failing the test without
// it: it is the reference the outputs are checked against.
func vipsCLI(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("vips")
	if err != nil {
		t.Fatalf("the vips command is required as a reference (apt install libvips-tools): %v", err)
	}
	return path
}

// runVips runs the vips command with args.
func runVips(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(vipsCLI(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vips %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// header returns a header field of an image file, with vipsheader.
func header(t testing.TB, file, field string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(filepath.Dir(vipsCLI(t)), "vipsheader"), "-f", field, file).Output()
	if err != nil {
		t.Fatalf("vipsheader -f %s %s: %v", field, file, err)
	}
	return strings.TrimSpace(string(out))
}

// hasICC reports whether an image file has an ICC profile.
func hasICC(t testing.TB, file string) bool {
	t.Helper()
	icc, err := vipscli.HasICC(vipsCLI(t), file)
	if err != nil {
		t.Fatal(err)
	}
	return icc
}

// The reference command line saves AVIF at vitrine's effort.
func TestCLIAVIFEffortIsVitrines(t *testing.T) {
	if avifEffort != vipscli.AVIFEffort {
		t.Errorf("vitrine saves AVIF at effort %d, the vips CLI reference at %d (vipscli.AVIFEffort)", avifEffort, vipscli.AVIFEffort)
	}
}

// cliThumbnail runs `vips thumbnail in out width --height height --size
// down`, with --crop attention if crop. If convert, it auto-rotates, and files
// with an ICC profile, and CMYK, are converted through ICC to sRGB
// (--export-profile srgb; CMYK without a profile with libvips' CMYK
// profile); other files are given no profiles: this libvips would
// transform untagged RGBA as if it were CMYK, and refuses a grey image an
// sRGB fallback.
func cliThumbnail(t testing.TB, in, out string, width, height int, crop, convert bool) {
	t.Helper()
	args := []string{"thumbnail", in, out, strconv.Itoa(width), "--height", strconv.Itoa(height), "--size", "down"}
	switch {
	case !convert:
		args = append(args, "--no-rotate") // an intermediate, already upright
	case header(t, in, "interpretation") == "cmyk":
		args = append(args, "--import-profile", "cmyk", "--export-profile", "srgb")
	case hasICC(t, in):
		args = append(args, "--export-profile", "srgb")
	}
	if crop {
		args = append(args, "--crop", "attention")
	}
	runVips(t, args...)
}

// cliReference makes variant v of a corpus file with the vips command,
// straight from the file: cliThumbnail, then `vips colourspace srgb` (16-bit
// and grey to 8-bit sRGB), then `vips flatten` onto white if it has alpha,
// as for JPEG. It returns a PNG.
func cliReference(t testing.TB, file string, v media.Variant) []byte {
	t.Helper()
	dir := t.TempDir()
	thumb := filepath.Join(dir, "thumb.v")
	cliThumbnail(t, filepath.Join(corpustest.Dir(t), file), thumb, v.Width, v.Height, v.Fit == media.FitCover, true)
	srgb := filepath.Join(dir, "srgb.v")
	runVips(t, "colourspace", thumb, srgb, "srgb")
	return cliEncode(t, srgb, media.Encoding{Format: media.FormatPNG})
}

// cliRecipe makes the recipe's variants of a corpus file with the vips
// command, along vitrine's path, and returns the .v file of each variant,
// 8-bit sRGB, unencoded. As in ProcessImage, the variant of largest scale
// is made from the file (cliThumbnail, then `vips colourspace srgb`), and
// each other from the last uncropped one (`vips thumbnail prev.v …`, with
// --crop attention for cover), so that comparisons see colour handling
// rather than different resampling paths.
func cliRecipe(t testing.TB, file string, recipe media.Recipe) map[string]string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(corpustest.Dir(t), file)
	h, err := testRuntime.Probe(corpustest.Read(t, file), media.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	order := slices.Clone(recipe.Variants)
	slices.SortStableFunc(order, func(a, b media.Variant) int { return cmp.Compare(variantScale(h, b), variantScale(h, a)) })
	out := map[string]string{}
	base := ""
	for k, v := range order {
		path := filepath.Join(dir, v.Name+".v")
		switch {
		case k == 0:
			w, ht := decodeBox(h, v)
			thumb := filepath.Join(dir, "decoded.v")
			cliThumbnail(t, in, thumb, w, ht, false, true)
			base = filepath.Join(dir, "base0.v")
			runVips(t, "colourspace", thumb, base, "srgb")
		case v.Fit != media.FitCover:
			next := filepath.Join(dir, fmt.Sprintf("base%d.v", k))
			cliThumbnail(t, base, next, v.Width, v.Height, false, false)
			base = next
		}
		if v.Fit == media.FitCover {
			w, ht := coverSize(h, v)
			cliThumbnail(t, base, path, w, ht, true, false)
		} else {
			runVips(t, "copy", base, path)
		}
		out[v.Name] = path
	}
	return out
}

// cliEncode saves an 8-bit sRGB image file in enc as the vips command
// would (`out.webp[Q=80,strip]`, `out.jpg[Q=82,strip,optimize_coding]`,
// flattened onto white first if it has alpha; or a PNG, also flattened),
// and returns the file.
func cliEncode(t testing.TB, in string, enc media.Encoding) []byte {
	t.Helper()
	dir := t.TempDir()
	if bands := header(t, in, "bands"); enc.Format != media.FormatWebP && enc.Format != media.FormatAVIF && (bands == "4" || bands == "2") {
		flat := filepath.Join(dir, "flat.v")
		runVips(t, "flatten", in, flat, "--background", "255 255 255")
		in = flat
	}
	out := filepath.Join(dir, "out."+enc.Format.Name())
	runVips(t, "cast", in, out+vipscli.SaveOptions(enc), "uchar")
	return readFile(t, out)
}

// raster is decoded 8-bit pixels.
type raster struct {
	w, h, bands int
	pix         []byte
}

func (r raster) String() string { return fmt.Sprintf("%dx%d×%d", r.w, r.h, r.bands) }

// decodePixels decodes an encoded image strictly with vitrine's loaders,
// shrunk to fit inside side×side if side > 0 (never rotated or colour
// converted: the outputs carry no orientation and are sRGB), as 8-bit.
func decodePixels(t testing.TB, data []byte, side int) raster {
	t.Helper()
	f, err := media.Sniff(data)
	if err != nil {
		t.Fatalf("sniff: %v", err)
	}
	b := newBlob(data)
	defer b.close()
	im, err := load(b, loaderFor(f), failOnWarning, 0, 0)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer im.close()
	if side > 0 {
		small, err := thumbnailImage(im, side, side, false, false)
		if err != nil {
			t.Fatal(err)
		}
		defer small.close()
		im = small
	}
	mem, err := render(context.Background(), im)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	defer mem.close()
	u8, err := castUchar(mem)
	if err != nil {
		t.Fatal(err)
	}
	defer u8.close()
	pix, err := pixels(u8)
	if err != nil {
		t.Fatal(err)
	}
	return raster{w: u8.width(), h: u8.height(), bands: u8.bands(), pix: pix}
}

// patch is a rectangle of an image, in fractions of its size.
type patch struct {
	name           string
	x0, y0, x1, y1 float64
}

// The patches compared: the central quarter of the area, two corners, and
// the cells of a gridCells×gridCells grid.
var patches = func() []patch {
	ps := []patch{
		{"centre", 0.25, 0.25, 0.75, 0.75},
		{"top-left", 0, 0, 0.2, 0.2},
		{"bottom-right", 0.8, 0.8, 1, 1},
	}
	const n = gridCells
	for y := range n {
		for x := range n {
			ps = append(ps, patch{fmt.Sprintf("cell %d,%d", x, y), float64(x) / n, float64(y) / n, float64(x+1) / n, float64(y+1) / n})
		}
	}
	return ps
}()

// gridCells is the number of rows and columns of the grid of patches.
const gridCells = 32

// mean returns the mean of each band over the patch. With alpha (4 bands,
// or 2), colours are premultiplied by alpha, as seen over black, so that
// the colour of invisible pixels, which encoders may change, does not
// count.
func (r raster) mean(p patch) []float64 {
	x0, x1 := int(p.x0*float64(r.w)), max(int(p.x0*float64(r.w))+1, int(math.Ceil(p.x1*float64(r.w))))
	y0, y1 := int(p.y0*float64(r.h)), max(int(p.y0*float64(r.h))+1, int(math.Ceil(p.y1*float64(r.h))))
	x1, y1 = min(x1, r.w), min(y1, r.h)
	alpha := r.bands == 4 || r.bands == 2
	colours := r.bands
	if alpha {
		colours--
	}
	sums := make([]float64, r.bands)
	var n float64
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			px := r.pix[(y*r.w+x)*r.bands:]
			a := 1.0
			if alpha {
				a = float64(px[colours]) / 255
				sums[colours] += float64(px[colours])
			}
			for c := range colours {
				sums[c] += a * float64(px[c])
			}
			n++
		}
	}
	for c := range sums {
		sums[c] /= n
	}
	return sums
}

// maxMeanDiff is the largest difference between the patch means of two
// images with the same bands, over all patches and bands, and where.
func maxMeanDiff(a, b raster) (float64, string) {
	worst, where := 0.0, ""
	for _, p := range patches {
		ma, mb := a.mean(p), b.mean(p)
		for c := range ma {
			if d := math.Abs(ma[c] - mb[c]); d > worst {
				worst, where = d, fmt.Sprintf("%s band %d: %.1f vs %.1f", p.name, c, ma[c], mb[c])
			}
		}
	}
	return worst, where
}

// pixelDiff is the mean absolute difference of two same-sized images'
// samples, 0-255.
func pixelDiff(a, b raster) float64 {
	if a.w != b.w || a.h != b.h || a.bands != b.bands {
		return 255
	}
	var sum float64
	for i := range a.pix {
		sum += math.Abs(float64(a.pix[i]) - float64(b.pix[i]))
	}
	return sum / float64(len(a.pix))
}

// mirrored flips a raster left to right.
func (r raster) mirrored() raster {
	out := raster{w: r.w, h: r.h, bands: r.bands, pix: make([]byte, len(r.pix))}
	for y := range r.h {
		for x := range r.w {
			copy(out.pix[(y*r.w+r.w-1-x)*r.bands:][:r.bands], r.pix[(y*r.w+x)*r.bands:][:r.bands])
		}
	}
	return out
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

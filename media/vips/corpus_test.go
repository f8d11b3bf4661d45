package vips

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// TestCorpus runs every file of the shared corpus through Probe and
// Process. Accepted files must yield every output of the default recipe,
// correctly sized, oriented and free of metadata; rejected files must be
// refused with a *catalog.Error, bombs from their header.
func TestCorpus(t *testing.T) {
	outDir := t.TempDir() // outputs, for one exiftool run at the end
	type timing struct {
		file, result string
		took         time.Duration
	}
	var timings []timing
	for _, e := range corpustest.Manifest(t) {
		data := corpustest.Read(t, e.File)
		if e.Accept {
			t.Run("accept/"+e.File, func(t *testing.T) {
				start := time.Now()
				checkAccepted(t, e, data, outDir)
				timings = append(timings, timing{e.File, "processed", time.Since(start)})
			})
			continue
		}
		t.Run("reject/"+e.File, func(t *testing.T) {
			start := time.Now()
			result := checkRejected(t, e, data)
			timings = append(timings, timing{e.File, result, time.Since(start)})
		})
	}
	checkNoMetadataExiftool(t, outDir)

	slices.SortFunc(timings, func(a, b timing) int { return int(b.took - a.took) })
	var total time.Duration
	for _, tm := range timings {
		total += tm.took
		t.Logf("%10.1fms  %-42s %s", float64(tm.took.Microseconds())/1000, tm.file, tm.result)
	}
	t.Logf("%d files in %v", len(timings), total)
}

// checkAccepted probes and processes an accepted file.
func checkAccepted(t *testing.T, e corpustest.Entry, data []byte, outDir string) {
	h, err := testRuntime.Probe(data, media.Limits{})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if h.Format.Name() != e.Format || h.Width != e.Width || h.Height != e.Height {
		t.Errorf("probe: %s %dx%d, manifest says %s %dx%d", h.Format, h.Width, h.Height, e.Format, e.Width, e.Height)
	}
	if e.OrientationFix == "yes" && !h.Format.IsHEIF() && h.Orientation == 1 {
		t.Errorf("probe: orientation 1, manifest says it needs fixing")
	}
	res, err := testRuntime.ProcessImage(context.Background(), data, media.DefaultRecipe())
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	outs := res.Outputs
	recipe := media.DefaultRecipe()
	if len(outs) != recipe.Outputs() {
		t.Fatalf("process: %d outputs, want %d", len(outs), recipe.Outputs())
	}
	// The displayed size: EXIF orientations 5-8 swap width and height;
	// HEIF headers are already displayed sizes.
	dw, dh := h.DisplaySize()
	if res.Width != dw || res.Height != dh || res.Frames != h.Frames || res.Animated != (h.Frames > 1 && strings.Contains(e.Category, "animated")) {
		t.Errorf("result %dx%d, %d frames, animated %v; header %dx%d, %d frames, category %s", res.Width, res.Height, res.Frames, res.Animated, dw, dh, h.Frames, e.Category)
	}
	if len(res.Placeholder) != 28 || !validHexColor(res.DominantColor) {
		t.Errorf("placeholder %q, dominant colour %q", res.Placeholder, res.DominantColor)
	}
	i := 0
	for _, v := range recipe.Variants {
		var ew, eh int
		if v.Fit == media.FitCover {
			// The box, or its shape cut as large as the source allows.
			f := math.Min(1, math.Min(float64(dw)/float64(v.Width), float64(dh)/float64(v.Height)))
			ew, eh = max(1, int(math.Round(float64(v.Width)*f))), max(1, int(math.Round(float64(v.Height)*f)))
		} else {
			scale := math.Min(1, math.Min(float64(v.Width)/float64(dw), float64(v.Height)/float64(dh)))
			ew, eh = max(1, int(math.Round(float64(dw)*scale))), max(1, int(math.Round(float64(dh)*scale)))
		}
		for _, enc := range v.Formats {
			o := outs[i]
			i++
			if o.Name != v.Name || o.Format != enc.Format || o.ContentType != enc.Format.ContentType() {
				t.Errorf("output %d is %s %s %s, want %s %s", i, o.Name, o.Format, o.ContentType, v.Name, enc.Format)
				continue
			}
			d := inspect(t, o.Data)
			label := o.Name + "." + o.Format.Name()
			if d.format != o.Format || d.width != o.Width || d.height != o.Height {
				t.Errorf("%s decodes as %s %dx%d, output says %dx%d", label, d.format, d.width, d.height, o.Width, o.Height)
			}
			if d.width > v.Width || d.height > v.Height || d.width > dw || d.height > dh {
				t.Errorf("%s is %dx%d: outside its %dx%d box or larger than the %dx%d source", label, d.width, d.height, v.Width, v.Height, dw, dh)
			}
			if abs(d.width-ew) > 1 || abs(d.height-eh) > 1 {
				t.Errorf("%s is %dx%d, want %dx%d (source displayed as %dx%d)", label, d.width, d.height, ew, eh, dw, dh)
			}
			// JPEG never has alpha. WebP and AVIF keep it, but libwebp
			// leaves out an alpha channel that is opaque throughout
			// (first frames of some GIFs, orient_png_exif_6.png).
			if d.bands != 3 && !((o.Format == media.FormatWebP || o.Format == media.FormatAVIF) && h.HasAlpha && d.bands == 4) {
				t.Errorf("%s has %d bands (source alpha: %v)", label, d.bands, h.HasAlpha)
			}
			for _, field := range d.fields {
				if isMetadataField(field) {
					t.Errorf("%s carries metadata field %s", label, field)
				}
			}
			name := strings.ReplaceAll(e.File, ".", "_") + "--" + label
			if err := os.WriteFile(filepath.Join(outDir, name), o.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// isMetadataField reports whether a libvips header field of a decoded
// output is metadata rather than structure.
func isMetadataField(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"exif", "xmp", "iptc", "icc", "orientation", "comment", "gps", "photoshop", "xml", "text", "delay", "loop", "gif-palette"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

func abs(n int) int { return max(n, -n) }

// validHexColor reports whether s is "#rrggbb" in lower case.
func validHexColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for _, c := range s[1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// unsupportedManifestFormats are manifest formats Sniff must refuse as
// unsupported.
var unsupportedManifestFormats = []string{"svg", "html", "text", "mvg-text", "postscript-text", "bmp", "dds(fuzzed)", "empty"}

// checkRejected checks that a rejected file is refused and says where:
// "sniff", "probe" or "process", with the error code.
func checkRejected(t *testing.T, e corpustest.Entry, data []byte) string {
	start := time.Now()
	stage := "probe"
	if _, err := media.Sniff(data); err != nil {
		stage = "sniff"
	}
	_, err := testRuntime.Probe(data, media.Limits{})
	if err == nil {
		stage = "process"
		var outs []media.Output
		outs, err = testRuntime.Process(context.Background(), data, media.DefaultRecipe())
		if err == nil {
			t.Fatalf("accepted: %d outputs", len(outs))
		}
	}
	took := time.Since(start)
	var ce *catalog.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v is not a *catalog.Error", stage, err)
	}
	var want []string
	switch {
	case strings.HasPrefix(e.File, "bomb_gif_frame_flood"):
		want = []string{catalog.FailTooManyFrames}
	case strings.HasPrefix(e.File, "bomb_lottapixel"), strings.HasPrefix(e.File, "bomb_png"):
		want = []string{catalog.FailTooManyPixels}
	case slices.Contains(unsupportedManifestFormats, e.Format):
		want = []string{catalog.FailUnsupportedFormat}
	case e.Format == "unrecognized-data": // a damaged signature, or a broken file
		want = []string{catalog.FailUnsupportedFormat, catalog.FailCorruptImage}
	default:
		want = []string{catalog.FailCorruptImage}
	}
	if !slices.Contains(want, ce.Code) {
		t.Errorf("%s: code %s (%v), want one of %v", stage, ce.Code, err, want)
	}
	wantKind := catalog.KindUnprocessableImage
	if ce.Code == catalog.FailUnsupportedFormat {
		wantKind = catalog.KindUnsupportedMedia
	}
	if ce.Kind != wantKind {
		t.Errorf("%s: kind %s, want %s", stage, ce.Kind, wantKind)
	}
	if strings.Contains(e.Category, "bomb") && (stage == "process" || took > time.Second) {
		t.Errorf("bomb refused at %s after %v; it must be refused from its header", stage, took)
	}
	if strings.HasPrefix(e.File, "libpng_huge_") && stage != "sniff" {
		t.Errorf("refused at %s; absurd chunk lengths must be refused before libpng sees them", stage)
	}
	return stage + ": " + ce.Code
}

// exiftoolGroups are the exiftool tag groups an output may show: the file
// system, the container structure (QuickTime: AVIF's HEIF boxes), and
// values computed from them.
var exiftoolGroups = []string{"SourceFile", "ExifTool", "File", "JFIF", "RIFF", "Composite", "QuickTime"}

// quickTimeMetadata are HEIF box tags that would carry a picture's own
// metadata rather than its structure.
var quickTimeMetadata = []string{"Make", "Model", "Software", "Artist", "Author", "Copyright", "Title", "Description",
	"CreateDate", "ModifyDate", "ContentCreateDate", "Keywords", "UserComment"}

// checkNoMetadataExiftool runs exiftool once over every output and fails
// on any tag outside the structural groups: EXIF, GPS, XMP, IPTC, ICC
// (in AVIF, a colour profile other than nclx's code points), comments,
// maker notes, Photoshop or Adobe blocks.
func checkNoMetadataExiftool(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no outputs to check with exiftool (%v)", err)
	}
	path, err := exec.LookPath("exiftool")
	if err != nil {
		t.Fatalf("exiftool is required to check outputs for metadata (apt install libimage-exiftool-perl): %v", err)
	}
	start := time.Now()
	out, err := exec.Command(path, "-j", "-G", "-a", "-u", "-q", dir).Output()
	if err != nil {
		t.Fatalf("exiftool: %v", err)
	}
	var files []map[string]any
	if err := json.Unmarshal(out, &files); err != nil {
		t.Fatalf("exiftool output: %v", err)
	}
	if len(files) != len(entries) {
		t.Errorf("exiftool read %d files of %d", len(files), len(entries))
	}
	for _, f := range files {
		for key, value := range f {
			group, tag, _ := strings.Cut(key, ":")
			bad := !slices.Contains(exiftoolGroups, group) ||
				tag == "Warning" || tag == "Comment" || tag == "ExifByteOrder" || strings.Contains(tag, "GPS") ||
				(group == "QuickTime" && (slices.Contains(quickTimeMetadata, tag) || (tag == "ColorProfiles" && value != "nclx")))
			if bad {
				t.Errorf("%s: exiftool sees %s = %v", filepath.Base(f["SourceFile"].(string)), key, value)
			}
		}
	}
	t.Logf("exiftool checked %d outputs in %v", len(files), time.Since(start))
}

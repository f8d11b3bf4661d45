package vipscli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// vips returns the path of the vips command (make test installs it with
// scripts/install-deps --test), failing without it.
func vips(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("vips")
	if err != nil {
		t.Fatalf("the vips command is the reference (scripts/install-deps --test installs libvips-tools): %v", err)
	}
	return path
}

// The commands mirror the recipe: one output per variant and format, at its
// quality and stripped, cover variants cropped by attention, none enlarged,
// decoded strictly, and converted to sRGB only from an embedded profile.
func TestCommandsMirrorTheRecipe(t *testing.T) {
	recipe := media.DefaultRecipe()
	for _, icc := range []bool{false, true} {
		cmds := Commands("/in/a.jpg", icc, "/out", recipe)
		if len(cmds) != recipe.Outputs() {
			t.Fatalf("%d commands for %d outputs", len(cmds), recipe.Outputs())
		}
		i := 0
		for _, v := range recipe.Variants {
			for _, e := range v.Formats {
				c := strings.Join(cmds[i], " ")
				i++
				for _, want := range []string{"thumbnail /in/a.jpg /out/a.jpg-" + v.Name + "." + e.Format.Name() + SaveOptions(e) + " ",
					"strip", "--size down", "--height", "--fail-on warning"} {
					if !strings.Contains(c, want) {
						t.Errorf("%s %s: %q lacks %q", v.Name, e.Format.Name(), c, want)
					}
				}
				if (v.Fit == media.FitCover) != strings.Contains(c, "--crop attention") {
					t.Errorf("%s: fit %q but %q", v.Name, v.Fit, c)
				}
				if icc != strings.Contains(c, "--export-profile srgb") {
					t.Errorf("%s: icc %v but %q", v.Name, icc, c)
				}
			}
		}
	}
	for format, want := range map[media.Format]string{
		media.FormatJPEG: "[Q=82,strip,optimize_coding]",
		media.FormatWebP: "[Q=82,strip]",
		media.FormatAVIF: "[Q=82,strip,compression=av1,bitdepth=8,effort=2]",
	} {
		if got := SaveOptions(media.Encoding{Format: format, Quality: 82}); got != want {
			t.Errorf("%s: save options %q, want %q", format, got, want)
		}
	}
}

func TestHasICC(t *testing.T) {
	vips := vips(t)
	for file, want := range map[string]bool{"photo_adobergb_2000x1072.jpg": true, "progressive_mate_freshflower.jpg": false} {
		got, err := HasICC(vips, filepath.Join(corpustest.Dir(t), file))
		if err != nil || got != want {
			t.Errorf("HasICC(%s) = %v, %v; want %v", file, got, err, want)
		}
	}
	if _, err := HasICC(vips, filepath.Join(t.TempDir(), "missing.jpg")); err == nil {
		t.Error("HasICC of a missing file: no error")
	}
}

// The command lines run: this vips accepts every option, and each writes
// its output (here an Adobe RGB photo, so the profile options are used too).
func TestCommandsRun(t *testing.T) {
	vips := vips(t)
	in := filepath.Join(corpustest.Dir(t), "photo_adobergb_2000x1072.jpg")
	icc, err := HasICC(vips, in)
	if err != nil || !icc {
		t.Fatalf("HasICC = %v, %v; the test wants a file with a profile", icc, err)
	}
	dir := t.TempDir()
	recipe := media.DefaultRecipe()
	for _, args := range Commands(in, icc, dir, recipe) {
		if out, err := exec.Command(vips, args...).CombinedOutput(); err != nil {
			t.Fatalf("vips %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != recipe.Outputs() {
		t.Fatalf("%d outputs (%v), want %d", len(entries), err, recipe.Outputs())
	}
	for _, e := range entries {
		if info, err := e.Info(); err != nil || info.Size() == 0 {
			t.Errorf("%s: empty output (%v)", e.Name(), err)
		}
	}
}

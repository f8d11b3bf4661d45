package baseline

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
)

// The vips commands mirror the recipe: one output per variant and format,
// cover variants cropped by attention, none enlarged, metadata stripped.
func TestVipsCommandsMirrorTheRecipe(t *testing.T) {
	recipe := media.DefaultRecipe()
	cmds := VipsCommands("in.jpg", "/out", recipe)
	if len(cmds) != recipe.Outputs() {
		t.Fatalf("%d commands for %d outputs", len(cmds), recipe.Outputs())
	}
	i := 0
	for _, v := range recipe.Variants {
		for _, e := range v.Formats {
			c := strings.Join(cmds[i], " ")
			i++
			ext := map[media.Format]string{media.FormatJPEG: ".jpg", media.FormatWebP: ".webp", media.FormatAVIF: ".avif"}[e.Format]
			for _, want := range []string{"thumbnail in.jpg " + filepath.Join("/out", v.Name+ext) + "[Q=", "strip", "--size down", "--height"} {
				if !strings.Contains(c, want) {
					t.Errorf("%s %s: %q lacks %q", v.Name, e.Format.Name(), c, want)
				}
			}
			if (v.Fit == media.FitCover) != strings.Contains(c, "--crop attention") {
				t.Errorf("%s: fit %q but %q", v.Name, v.Fit, c)
			}
		}
	}
}

// Without pgbench on the PATH, Pgbench says what to install (the bench then
// skips its baseline with that note). The PATH is emptied, so this runs
// whether or not the machine has pgbench (scripts/services installs it).
func TestPgbenchNeedsItsTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Pgbench(t.Context(), "postgres://x@127.0.0.1:1/x", 1, 1); err == nil || !strings.Contains(err.Error(), "pgbench is not installed") {
		t.Errorf("without pgbench: %v", err)
	}
}

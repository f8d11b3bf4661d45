package baseline

import (
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
)

// Without pgbench on the PATH, Pgbench says what to install (the bench then
// skips its baseline with that note). The PATH is emptied, so this runs
// whether or not the machine has pgbench (scripts/services installs it).
func TestPgbenchNeedsItsTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Pgbench(t.Context(), "postgres://x@127.0.0.1:1/x", 1, 1); err == nil || !strings.Contains(err.Error(), "pgbench is not installed") {
		t.Errorf("without pgbench: %v", err)
	}
}

func TestVipsNeedsItsTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Vips(t.Context(), []string{"a.jpg"}, 1, 1, media.DefaultRecipe(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "vips command is not installed") {
		t.Errorf("without vips: %v", err)
	}
}

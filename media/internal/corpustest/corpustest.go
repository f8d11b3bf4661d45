// Package corpustest locates the shared image corpus and reads its
// manifest, for the tests of media and media/vips.
//
// The corpus lives beside the repository, in <repo root>/../shared/corpus
// (CI clones the repository next to shared/), or wherever the environment
// variable VITRINE_CORPUS points. A missing corpus fails the test: it is
// never skipped silently. Corpus files are read in place, never copied into
// the repository.
package corpustest

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// EnvVar overrides the corpus location; it names the directory holding
// public/MANIFEST.tsv (or public/ itself).
const EnvVar = "VITRINE_CORPUS"

// Entry is one row of MANIFEST.tsv.
type Entry struct {
	File     string
	Category string
	Accept   bool // expected "accept"; false for "reject"
	// OrientationFix is the expected_orientation_fix column: "yes", "no"
	// or "n/a".
	OrientationFix string
	// Width and Height are as stored (HEIC/AVIF: as displayed); 0 when the
	// manifest says "-".
	Width, Height int
	Format        string
	Source        string
	License       string
}

// Dir returns the directory holding the corpus files and MANIFEST.tsv.
func Dir(t testing.TB) string {
	t.Helper()
	var candidates []string
	if env := os.Getenv(EnvVar); env != "" {
		candidates = append(candidates, filepath.Join(env, "public"), env)
	} else {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("corpus: %v", err)
		}
		candidates = append(candidates, filepath.Join(root, "..", "shared", "corpus", "public"))
	}
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err == nil { // #nosec G703 -- the test corpus: $VITRINE_CORPUS or beside the repository
			return dir
		}
	}
	t.Fatalf("corpus: no MANIFEST.tsv in %s; put the shared corpus beside the repository or set %s", strings.Join(candidates, " or "), EnvVar)
	return ""
}

// repoRoot walks up from the working directory to the directory with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// Manifest reads MANIFEST.tsv.
func Manifest(t testing.TB) []Entry {
	t.Helper()
	dir := Dir(t)
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv")) // #nosec G304 -- the test corpus directory Dir found
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	defer f.Close() //nolint:errcheck // opened read-only: closing it loses nothing
	var entries []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 0; sc.Scan(); line++ {
		if line == 0 || strings.TrimSpace(sc.Text()) == "" {
			continue // header
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 9 {
			t.Fatalf("corpus: MANIFEST.tsv line %d has %d columns, want 9", line+1, len(c))
		}
		if c[2] != "accept" && c[2] != "reject" {
			t.Fatalf("corpus: MANIFEST.tsv line %d: expected %q", line+1, c[2])
		}
		atoi := func(s string) int {
			n, err := strconv.Atoi(s)
			if err != nil && s != "-" {
				t.Fatalf("corpus: MANIFEST.tsv line %d: size %q", line+1, s)
			}
			return n
		}
		entries = append(entries, Entry{
			File: c[0], Category: c[1], Accept: c[2] == "accept", OrientationFix: c[3],
			Width: atoi(c[4]), Height: atoi(c[5]), Format: c[6], Source: c[7], License: c[8],
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("corpus: %v", err)
	}
	if len(entries) == 0 {
		t.Fatalf("corpus: MANIFEST.tsv lists no files")
	}
	return entries
}

// Read returns the content of a corpus file.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name)) // #nosec G304 -- a corpus file a test names, in the directory Dir found
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	return b
}

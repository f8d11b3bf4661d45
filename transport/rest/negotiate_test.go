package rest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

func TestNegotiateFormat(t *testing.T) {
	all := []string{"jpeg", "webp", "avif"}
	chrome := "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
	safari13 := "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
	for _, c := range []struct {
		name, accept string
		formats      []string
		want         string // "" for 406
	}{
		{"chrome", chrome, all, "avif"},
		{"chrome, no avif yet", chrome, []string{"jpeg", "webp"}, "webp"},
		{"firefox", "image/avif,image/webp,*/*", all, "avif"},
		{"safari 13: wildcards promise no webp", safari13, all, "jpeg"},
		{"no header", "", all, "jpeg"},
		{"blank header", "  ", all, "jpeg"},
		{"curl", "*/*", all, "jpeg"},
		{"q-values honoured", "image/avif;q=0.5,image/webp;q=0.9,image/jpeg;q=0.1", all, "webp"},
		{"jpeg preferred by q", "image/webp;q=0.5,*/*;q=0.8", all, "jpeg"},
		{"avif refused", "image/avif;q=0,image/webp", all, "webp"},
		{"ties go to smaller files", "image/webp,image/avif", all, "avif"},
		{"case and spaces", " Image/WEBP ; Q=1 , text/html", all, "webp"},
		{"only formats vitrine cannot make: the jpeg fallback", "image/png,image/gif", all, "jpeg"},
		{"unrelated type: the jpeg fallback", "text/html", all, "jpeg"},
		{"jpeg refused, webp named", "image/jpeg;q=0,image/webp", all, "webp"},
		{"everything refused", "image/jpeg;q=0,image/webp;q=0,image/avif;q=0", all, ""},
		{"wildcard refused", "image/*;q=0", all, ""},
		{"*/* refused", "*/*;q=0", all, ""},
		{"specific beats wildcard", "image/*;q=0,image/jpeg", all, "jpeg"},
		{"webp-only recipe, curl", "*/*", []string{"webp"}, "webp"},
		{"webp-only recipe, no header", "", []string{"webp"}, "webp"},
		{"webp-only recipe, only png accepted", "image/png", []string{"webp"}, ""},
		{"malformed q skipped", "image/avif;q=2,image/webp;q=abc,image/jpeg;q=0.5", all, "jpeg"},
		{"malformed ranges skipped", "avif, /webp, image/, */webp, ,,;q=1", all, "jpeg"},
		{"q with 3 decimals", "image/webp;q=0.001,image/jpeg;q=0", all, "webp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := negotiateFormat(c.accept, c.formats)
			if c.want == "" {
				if ok {
					t.Fatalf("negotiateFormat(%q, %v) = %q; want none (406)", c.accept, c.formats, got)
				}
				return
			}
			if !ok || got != c.want {
				t.Fatalf("negotiateFormat(%q, %v) = %q, %v; want %q", c.accept, c.formats, got, ok, c.want)
			}
		})
	}
}

// A huge header reads at most maxAcceptRanges ranges: the 65th, the only
// one naming webp, is not seen.
func TestNegotiateBoundsRanges(t *testing.T) {
	accept := strings.Repeat("text/plain;q=0.5,", maxAcceptRanges) + "image/webp"
	if got, _ := negotiateFormat(accept, []string{"jpeg", "webp"}); got != "jpeg" {
		t.Fatalf("got %q; want jpeg (ranges past the %dth ignored)", got, maxAcceptRanges)
	}
	if n := len(parseAccept(strings.Repeat("a/b,", 10000))); n != maxAcceptRanges {
		t.Fatalf("parseAccept kept %d ranges; want %d", n, maxAcceptRanges)
	}
}

// dirFiles is a Files over a directory.
type dirFiles string

func (d dirFiles) Path(key string) (string, error) { return filepath.Join(string(d), key), nil }

// TestNegotiatedWhilePending: a pending format is never served, and the
// answer is cached for a minute only while a format is pending.
func TestNegotiatedWhilePending(t *testing.T) {
	dir := t.TempDir()
	img := &catalog.Image{ID: "i1", ProductID: "p1", RecipeVersion: 3}
	for _, f := range []string{"webp", "jpeg", "avif"} {
		key := catalog.VariantKey("p1", "i1", 3, "thumb", f)
		img.Variants = append(img.Variants, catalog.Variant{Name: "thumb", Format: f, Width: 2, Height: 2, Bytes: 4, URL: "/media/" + key})
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, key)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, key), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img.Variants[2].Status, img.Variants[2].Bytes = catalog.FilePending, 0
	products := &stubProducts{image: img}
	c := serve(t, New(Config{}, Deps{Products: products, Files: dirFiles(dir)}, zap.NewNop()))
	get := func() (string, http.Header) {
		req, _ := http.NewRequest("GET", "http://vitrine/media/products/p1/i1/r3/thumb", http.NoBody)
		req.Header.Set("Accept", "image/avif,image/webp,*/*")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		return string(body), res.Header
	}
	if body, h := get(); body != "webp" || h.Get("Cache-Control") != cacheWhilePending || h.Get("Vary") != "Accept" {
		t.Errorf("AVIF pending: %q, Cache-Control %q; want the webp file for %s", body, h.Get("Cache-Control"), cacheWhilePending)
	}
	img.Variants[2].Status = catalog.FileReady
	if body, h := get(); body != "avif" || h.Get("Cache-Control") != cacheForever {
		t.Errorf("AVIF ready: %q, Cache-Control %q; want the avif file for %s", body, h.Get("Cache-Control"), cacheForever)
	}
	img.Variants[2].Status = catalog.FileFailed
	if body, h := get(); body != "webp" || h.Get("Cache-Control") != cacheForever {
		t.Errorf("AVIF failed: %q, Cache-Control %q; want the webp file for good", body, h.Get("Cache-Control"))
	}
}

package rest

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// answer is what the tests read of a response whose body was read whole
// and closed.
type answer struct {
	StatusCode int
	Header     http.Header
}

// get sends GET path with the header's name-value pairs and returns the
// answer and its body; redirects are answers.
func get(t *testing.T, c *http.Client, path string, header ...string) (answer, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://x"+path, http.NoBody)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return answer{StatusCode: res.StatusCode, Header: res.Header}, string(body)
}

// TestAdminPageHeaders: the page and its files carry a CSP without inline
// code or framing, and the other security headers; files revalidate with
// their ETag.
func TestAdminPageHeaders(t *testing.T) {
	c := serve(t, New(Config{MediaURL: "https://cdn.example/media/products/"}, Deps{Products: &stubProducts{}}, zap.NewNop()))
	for _, path := range []string{"/admin/", "/admin/assets/app.js", "/admin/assets/style.css"} {
		res, body := get(t, c, path)
		if res.StatusCode != http.StatusOK || body == "" {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
			"img-src 'self' https://cdn.example", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP allows unsafe code: %q", path, csp)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin"} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, h, got, want)
			}
		}
		res, _ = get(t, c, path, "If-None-Match", res.Header.Get("ETag"))
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, res.StatusCode)
		}
	}
	if res, _ := get(t, c, "/admin/assets/app.js"); !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js Content-Type %q", res.Header.Get("Content-Type"))
	}
	if res, _ := get(t, c, "/admin/assets/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown file: %d", res.StatusCode)
	}
	if res, _ := get(t, c, "/admin"); res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "/admin/" {
		t.Errorf("GET /admin: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestAdminPageHasNoInlineCode: the CSP forbids inline scripts, styles and
// handlers, so the page must have none; and every file it names exists.
func TestAdminPageHasNoInlineCode(t *testing.T) {
	assets := loadAssets()
	html := string(assets["index.html"].body)
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(tag, `src="assets/`) {
			t.Errorf("index.html has an inline script: %s", tag)
		}
	}
	for _, re := range []string{`\sstyle=`, `\son[a-z]+=`, `<style`, `javascript:`} {
		if m := regexp.MustCompile(`(?i)`+re).FindAllString(html, -1); len(m) > 0 {
			t.Errorf("index.html has inline code: %q", m)
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="(assets/[^"]+)"`).FindAllStringSubmatch(html, -1) {
		if _, ok := assets[m[1]]; !ok {
			t.Errorf("index.html names %s, which is not embedded", m[1])
		}
	}
	for name, a := range assets {
		if strings.HasSuffix(name, ".js") {
			for _, bad := range []string{"eval(", "new Function", "innerHTML", "setAttribute(\"style\"", "document.write"} {
				if strings.Contains(string(a.body), bad) {
					t.Errorf("%s uses %s", name, bad)
				}
			}
		}
	}
}

// TestAdminAssetsDocumented: the API document lists exactly the embedded
// files.
func TestAdminAssetsDocumented(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				Schema struct {
					Enum []string `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, p := range doc.Paths["/admin/assets/{name}"]["get"].Parameters {
		if p.Name == "name" {
			documented = p.Schema.Enum
		}
	}
	var embedded []string
	for name := range loadAssets() {
		if rest, ok := strings.CutPrefix(name, "assets/"); ok {
			embedded = append(embedded, rest)
		}
	}
	sort.Strings(embedded)
	sort.Strings(documented)
	if !slices.Equal(embedded, documented) {
		t.Errorf("embedded files %v, documented %v", embedded, documented)
	}
}

// TestIndex: GET / sends browsers to the admin page and gives other
// clients a JSON index.
func TestIndex(t *testing.T) {
	c := serve(t, New(Config{}, Deps{Products: &stubProducts{}}, zap.NewNop()))
	for _, accept := range []string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/xhtml+xml"} {
		res, _ := get(t, c, "/", "Accept", accept)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/" {
			t.Errorf("GET / as a browser (%s): %d, Location %q", accept, res.StatusCode, res.Header.Get("Location"))
		}
	}
	for _, accept := range []string{"", "application/json", "*/*", "text/html;q=0"} {
		res, body := get(t, c, "/", "Accept", accept)
		var doc struct {
			Links map[string]string `json:"links"`
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil ||
			doc.Links["openapi"] != "/openapi.json" || doc.Links["admin"] != "/admin/" || doc.Links["products"] != "/products" {
			t.Errorf("GET / with Accept %q: %d %s", accept, res.StatusCode, body)
		}
	}
}

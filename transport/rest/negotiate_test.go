package rest

import (
	"strings"
	"testing"
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

package rest

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

func TestParseOnDemand(t *testing.T) {
	for _, c := range []struct {
		key  string
		want catalog.Render
	}{
		{"products/p/i/w320.webp", catalog.Render{Width: 320, Format: "webp"}},
		{"products/p/i/w320.jpg", catalog.Render{Width: 320, Format: "jpeg"}},
		{"products/p/i/w320.jpeg", catalog.Render{Width: 320, Format: "jpeg"}},
		{"products/p/i/w320", catalog.Render{Width: 320}},
		{"products/p/i/ar16x9/w99999.avif", catalog.Render{Width: 99999, AspectX: 16, AspectY: 9, Format: "avif"}},
		{"products/p/i/ar4x4/w1", catalog.Render{Width: 1, AspectX: 1, AspectY: 1}},
	} {
		if !onDemandPath(c.key) {
			t.Errorf("%s: not an on-demand path", c.key)
			continue
		}
		p, i, r, err := parseOnDemand(c.key)
		if err != nil || p != "p" || i != "i" || r != c.want {
			t.Errorf("%s: %s %s %+v %v; want %+v", c.key, p, i, r, err, c.want)
		}
	}
	for _, key := range []string{"products/p/i/original", "products/p/i/r3/thumb.webp", "products/p/i/r3/od/w320.webp", "other/p/i/w320", "products/p/w320"} {
		if onDemandPath(key) {
			t.Errorf("%s: taken for an on-demand path", key)
		}
	}
	for key, code := range map[string]string{
		"products/p/i/w0x.webp": "invalid_width", "products/p/i/w.webp": "invalid_width", "products/p/i/w123456": "invalid_width",
		"products/p/i/w+1": "invalid_width", "products/p/i/w-1": "invalid_width", "products/p/i/w 1": "invalid_width",
		"products/p/i/w1.png": "invalid_format", "products/p/i/w1.webp.webp": "invalid_format",
		"products/p/i/ar/w1": "invalid_aspect_ratio", "products/p/i/ar0x1/w1": "invalid_aspect_ratio",
		"products/p/i/ar1x100000/w1": "invalid_aspect_ratio", "products/p/i/arAxB/w1": "invalid_aspect_ratio",
	} {
		_, _, _, err := parseOnDemand(key)
		var e *catalog.Error
		if !asError(err, &e) || e.Code != code || e.Kind != catalog.KindInvalid {
			t.Errorf("%s: %v; want %s", key, err, code)
		}
	}
}

func asError(err error, e **catalog.Error) bool {
	ce, ok := err.(*catalog.Error) //nolint:errorlint // parseOnDemand returns them unwrapped
	*e = ce
	return ok
}

func TestVerifySignature(t *testing.T) {
	keys := [][]byte{[]byte("0123456789abcdef"), []byte("fedcba9876543210")}
	now := time.Unix(1_800_000_000, 0)
	path := "/media/products/p/i/w320.webp"
	check := func(query string) string {
		args := fasthttp.AcquireArgs()
		defer fasthttp.ReleaseArgs(args)
		args.Parse(query)
		err := verifySignature(keys, path, args, now)
		if err == nil {
			return ""
		}
		var e *catalog.Error
		if !asError(err, &e) || e.Kind != catalog.KindForbidden {
			t.Fatalf("%s: %v is not a forbidden error", query, err)
		}
		return e.Code
	}
	for query, want := range map[string]string{
		SignMedia(keys[0], path, time.Time{}):                    "",
		SignMedia(keys[1], path, now.Add(time.Second)):           "",
		SignMedia(keys[1], path, now):                            "signature_expired",
		SignMedia([]byte("another key, 16+"), path, time.Time{}): "invalid_signature",
		SignMedia(keys[0], path+"x", time.Time{}):                "invalid_signature",
		"":                            "signature_required",
		"sig=":                        "signature_required",
		"sig=%%%":                     "invalid_signature",
		"exp=99999999999999&sig=AAAA": "invalid_signature",
		"exp=1&" + SignMedia(keys[0], path, time.Time{}): "signature_expired",
	} {
		if got := check(query); got != want {
			t.Errorf("%q: %q, want %q", query, got, want)
		}
	}
}

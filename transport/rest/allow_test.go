package rest

import (
	"slices"
	"testing"
)

func TestAllow(t *testing.T) {
	var ps patterns
	for _, r := range [][2]string{{"GET", "/products/{id}"}, {"PUT", "/products/{id}"}, {"GET", "/products/export"},
		{"GET", "/products/{id}/images/{image_id}"}, {"DELETE", "/products/{id}/images/{image_id}"},
		{"PUT", "/products/{id}/images/order"}, {"GET", "/media/{key:*}"}, {"GET", "/"}} {
		ps.add(r[0], r[1])
	}
	for path, want := range map[string]string{
		"/products/abc":               "GET, OPTIONS, PUT",
		"/products/export":            "GET, OPTIONS",
		"/products/abc/images/order":  "OPTIONS, PUT",
		"/products/abc/images/xyz":    "DELETE, GET, OPTIONS",
		"/media/products/a/b/r2/t.jp": "GET, OPTIONS",
		"/":                           "GET, OPTIONS",
		"/nothing/here":               "OPTIONS",
	} {
		if got := ps.allow(path); got != want {
			t.Errorf("allow(%s) = %q, want %q", path, got, want)
		}
	}
}

func TestShadowed(t *testing.T) {
	var ps patterns
	for _, r := range [][2]string{{"GET", "/products/{id}"}, {"PUT", "/products/{id}"}, {"GET", "/products/export"},
		{"GET", "/products/{id}/images/{image_id}"}, {"DELETE", "/products/{id}/images/{image_id}"},
		{"PUT", "/products/{id}/images/order"}, {"GET", "/products"}} {
		ps.add(r[0], r[1])
	}
	got := ps.shadowed()
	slices.Sort(got["/products/{id}/images/order"])
	if len(got) != 2 || !slices.Equal(got["/products/export"], []string{"PUT"}) ||
		!slices.Equal(got["/products/{id}/images/order"], []string{"DELETE", "GET"}) {
		t.Errorf("shadowed = %v", got)
	}
}

package scenario

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestNextCursor(t *testing.T) {
	for page, want := range map[string]string{
		`{"items":[],"next_cursor":null}`:                                   "",
		`{"items":[{"name":"next_cursor"}],"next_cursor":"abc=="}`:          "abc==",
		"{\"items\":[],\n  \"next_cursor\": \"x\\u002fy\"\n}":               "x/y",
		`{"items":[{"description":"\"next_cursor\":1"}],"next_cursor":"z"}`: "z",
	} {
		got, ok := NextCursor([]byte(page))
		if !ok || got != want {
			t.Errorf("NextCursor(%s) = %q, %v; want %q", page, got, ok, want)
		}
	}
	if _, ok := NextCursor([]byte(`{"items":[]}`)); ok {
		t.Errorf("a page without next_cursor was accepted")
	}
}

func TestProductDoc(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 50 {
		var p map[string]any
		if err := json.Unmarshal(ProductDoc(i, r), &p); err != nil {
			t.Fatal(err)
		}
		name, _ := p["name"].(string) // absent reads as nil, never as ""
		if p["user_id"].(float64) < 1 || p["user_id"].(float64) > Users || !strings.Contains(p["price"].(string), ".") || name == "" {
			t.Errorf("product %d: %v", i, p)
		}
	}
	for range 100 {
		if label, q := newQuery(r); label == "" || !strings.HasPrefix(q, "limit=") {
			t.Errorf("query %q %q", label, q)
		}
	}
}

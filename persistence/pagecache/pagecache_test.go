package pagecache

import (
	"slices"
	"testing"
)

func TestCache(t *testing.T) {
	var c Cache
	if _, ok := c.Get("a"); ok {
		t.Fatal("an empty cache has a page")
	}
	g := c.Generation()
	c.Put("a", g, []string{"1", "2"})
	got, ok := c.Get("a")
	if !ok || !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("Get = %v, %v", got, ok)
	}
	got[0] = "changed"
	if again, _ := c.Get("a"); again[0] != "1" {
		t.Errorf("Get returned the kept slice itself")
	}

	// A write during a query: its page is not kept.
	g = c.Generation()
	c.Invalidate()
	c.Put("b", g, []string{"stale"})
	if _, ok := c.Get("b"); ok {
		t.Errorf("a page read before a write was kept")
	}
	if _, ok := c.Get("a"); ok {
		t.Errorf("a page survived a write")
	}

	// Not live: nothing is kept, and going live again starts afresh.
	c.SetLive(false)
	g = c.Generation()
	c.Put("c", g, []string{"1"})
	if _, ok := c.Get("c"); ok {
		t.Errorf("a dead cache kept a page")
	}
	c.SetLive(true)
	if _, ok := c.Get("c"); ok {
		t.Errorf("a page kept while dead")
	}
	g = c.Generation()
	c.Put("c", g, []string{"1"})
	if _, ok := c.Get("c"); !ok {
		t.Errorf("a live cache kept nothing")
	}

	// Bounded.
	for i := range MaxPages + 10 {
		c.Put(string(rune(i)), g, nil)
	}
	if n := len(c.pages); n > MaxPages {
		t.Errorf("%d pages kept", n)
	}
}

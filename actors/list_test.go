package actors

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// listReader is a store of a few products for List.
type listReader struct {
	ids      []string
	products map[string]*catalog.Product
	asked    []string // the ids GetProducts was asked for
}

func (r *listReader) ListProductIDs(context.Context, catalog.ProductFilter) ([]string, error) {
	return r.ids, nil
}

func (r *listReader) GetProduct(_ context.Context, id string) (*catalog.Product, error) {
	if p, ok := r.products[id]; ok {
		return p, nil
	}
	return nil, catalog.NotFound("product %s", id)
}

func (r *listReader) GetProducts(_ context.Context, ids []string) ([]*catalog.Product, error) {
	r.asked = append(r.asked, ids...)
	var out []*catalog.Product
	for _, id := range ids {
		if p := r.products[id]; p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// List takes bodies from the cache, renders the others from one store
// read without caching them, and leaves out products deleted meanwhile.
func TestListFromCacheAndStore(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	product := func(id, name string) *catalog.Product {
		return &catalog.Product{ID: id, UserID: 1, Name: name, Price: 100, Currency: "EUR", CreatedAt: now, UpdatedAt: now, Version: 3, Images: []catalog.Image{}}
	}
	const a, b, c, d = "01937a4e-7b8c-7def-8a12-00000000000a", "01937a4e-7b8c-7def-8a12-00000000000b",
		"01937a4e-7b8c-7def-8a12-00000000000c", "01937a4e-7b8c-7def-8a12-00000000000d"
	cache := memory.New(10)
	cache.Set(t.Context(), a, 1, encodeCached(`"a.1"`, []byte(`{"cached":"a"}`)))
	cache.Set(t.Context(), c, 1, encodeCached(`"c.1"`, []byte(`{"cached":"c"}`)))
	reader := &listReader{ids: []string{d, c, b, a}, products: map[string]*catalog.Product{b: product(b, "Stool")}}
	s := NewService(nil, cache, reader, nil, time.Second, nil)
	page, err := s.List(t.Context(), catalog.ProductFilter{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(product(b, "Stool"))
	var ids []string
	for _, p := range page {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []string{c, b, a}) {
		t.Fatalf("page %v, want c, b, a (d was deleted)", ids)
	}
	if string(page[0].Body) != `{"cached":"c"}` || page[0].ETag != `"c.1"` || string(page[2].Body) != `{"cached":"a"}` {
		t.Errorf("cached bodies: %+v", page)
	}
	if string(page[1].Body) != string(want) || page[1].ETag != product(b, "Stool").ETag() {
		t.Errorf("rendered body %s %s, want %s", page[1].Body, page[1].ETag, want)
	}
	if !slices.Equal(reader.asked, []string{d, b}) {
		t.Errorf("the store was asked for %v, want the two the cache lacks", reader.asked)
	}
	if _, ok := cache.Get(t.Context(), b); ok {
		t.Errorf("a product read by a list was cached: only its grain writes the cache")
	}
}

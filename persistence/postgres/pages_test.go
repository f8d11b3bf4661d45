//go:build integration

package postgres

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/pagecache"
)

// TestListPagesHearOtherWriters: a process keeps list pages only while it
// hears of the other processes' product writes, and drops them when it
// does.
func TestListPagesHearOtherWriters(t *testing.T) {
	url, _ := FreshSchema(t)
	reader, err := Open(t.Context(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	writer, err := Open(t.Context(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	product := func(name string, price catalog.Price) *catalog.Product {
		p := &catalog.Product{ID: uuid.Must(uuid.NewV7()).String(), UserID: 1, Name: name, Price: price, Currency: "EUR",
			CreatedAt: now, UpdatedAt: now, Version: 1}
		if err := writer.CreateProduct(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := catalog.ProductFilter{Limit: 10}
	// until lists all with the reader until they are want, for at most 10 s.
	until := func(f catalog.ProductFilter, want ...string) {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got, err = reader.ListProductIDs(t.Context(), f); err != nil {
				t.Fatal(err)
			}
			if slices.Equal(got, want) {
				return
			}
		}
		t.Fatalf("ListProductIDs(%+v) = %v, want %v", f, got, want)
	}
	cached := func(f catalog.ProductFilter) bool {
		_, ok := reader.pages.Get(pagecache.Key(f))
		return ok
	}
	a := product("Oak chair", 100)
	until(all, a.ID)
	for deadline := time.Now().Add(10 * time.Second); !cached(all); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the reader keeps no page: its listener never heard")
		}
		if _, err := reader.ListProductIDs(t.Context(), all); err != nil {
			t.Fatal(err)
		}
	}
	b := product("Brass lamp", 200)
	until(all, b.ID, a.ID)

	cheap := catalog.ProductFilter{MaxPrice: ptr(catalog.Price(150)), Limit: 10}
	until(cheap, a.ID)
	n := *a
	n.Price, n.Version, n.UpdatedAt = 300, 2, now.Add(time.Second)
	if err := writer.UpdateProduct(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	until(cheap)

	if err := writer.DeleteProduct(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	until(all, b.ID)
}

func ptr[T any](v T) *T { return &v }

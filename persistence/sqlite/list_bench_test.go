package sqlite

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
)

// BenchmarkListProductIDs runs the query of each shape of the bench's list
// scenario (bench/internal/scenario) over 10,000 products named as the
// bench names them, and a page kept from before ("cached"):
// go test ./persistence/sqlite -run '^$' -bench ListProductIDs.
func BenchmarkListProductIDs(b *testing.B) {
	db, err := Open(b.Context(), filepath.Join(b.TempDir(), "vitrine.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	adjectives := []string{"oak", "brass", "linen", "walnut", "ceramic", "wool", "steel", "glass", "cotton", "copper", "marble", "bamboo"}
	nouns := []string{"lamp", "chair", "table", "vase", "rug", "mirror", "shelf", "clock", "bowl", "stool", "desk", "bench"}
	r := rand.New(rand.NewPCG(1, 2))
	tx, err := db.sql.BeginTx(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		name := fmt.Sprintf("%s %s %d", adjectives[r.IntN(12)], nouns[r.IntN(12)], i)
		if _, err := tx.ExecContext(b.Context(), `INSERT INTO products (id, user_id, name, name_fold, price, currency, created_at, updated_at, version)
			VALUES (?, ?, ?, ?, ?, 'EUR', 0, 0, 1)`, uuid.Must(uuid.NewV7()).String(), 1+i%100, name, strings.ToLower(name), 100+r.IntN(99900)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	price := func(p catalog.Price) *catalog.Price { return &p }
	for _, tt := range []struct {
		name string
		f    catalog.ProductFilter
	}{
		{"all", catalog.ProductFilter{Limit: 21}},
		{"user", catalog.ProductFilter{UserID: 42, Limit: 21}},
		{"price", catalog.ProductFilter{MinPrice: price(40000), MaxPrice: price(45099), Limit: 21}},
		{"q", catalog.ProductFilter{Query: "chair", Limit: 21}},
		{"user+q", catalog.ProductFilter{UserID: 42, Query: "oak", Limit: 21}},
		{"q rare", catalog.ProductFilter{Query: "chair 77", Limit: 21}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.listIDs(b.Context(), tt.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cached", func(b *testing.B) {
		f := catalog.ProductFilter{Query: "chair", Limit: 21}
		for b.Loop() {
			if _, err := db.ListProductIDs(b.Context(), f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

//go:build integration

package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
)

// TestListUsesIndexes plans every shape of product filter over 5,000
// products and checks that none reads the whole table: each is served by
// an index (see the migration). With -v it logs every plan; that of
// q=stool 42, for instance, is
//
//	Limit  (cost=56.03..56.03 rows=1 width=71)
//	  ->  Sort  (cost=56.03..56.03 rows=1 width=71)
//	        Sort Key: id DESC
//	        ->  Bitmap Heap Scan on products  (cost=52.00..56.02 rows=1 width=71)
//	              Recheck Cond: (name_fold ~~ '%stool 42%'::text)
//	              ->  Bitmap Index Scan on products_name_trgm  (cost=0.00..52.00 rows=1 width=0)
//	                    Index Cond: (name_fold ~~ '%stool 42%'::text)
//
// and that of user_id=42, the owner's page read in order from its index:
//
//	Limit  (cost=0.28..63.00 rows=20 width=71)
//	  ->  Index Scan using products_user_id on products  (cost=0.28..157.09 rows=50 width=71)
//	        Index Cond: (user_id = '42'::bigint)
func TestListUsesIndexes(t *testing.T) {
	url, _ := FreshSchema(t)
	db, err := Open(t.Context(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	// 100 owners, prices spread over 0.00-999.99, five kinds of name.
	_, err = db.pool.Exec(ctx, `
		INSERT INTO products (id, user_id, name, name_fold, price, currency, created_at, updated_at, version)
		SELECT gen_random_uuid(), 1 + i % 100, name, lower(name), (i * 7919) % 100000, 'EUR', now(), now(), 1
		FROM generate_series(1, 5000) AS i,
		     LATERAL (SELECT (ARRAY['Chair', 'Table', 'Lamp', 'Sofa', 'Stool'])[1 + i % 5] || ' ' || i AS name) AS n`)
	if err != nil {
		t.Fatal(err)
	}
	// VACUUM as autovacuum would: rows inserted after the trigram index was
	// made wait in its pending list, which the planner rightly finds costly
	// to read until VACUUM merges it.
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE products`); err != nil {
		t.Fatal(err)
	}
	var middle string
	if err := db.pool.QueryRow(ctx, `SELECT id::text FROM products ORDER BY id OFFSET 2500 LIMIT 1`).Scan(&middle); err != nil {
		t.Fatal(err)
	}
	price := func(p catalog.Price) *catalog.Price { return &p }
	tests := []struct {
		name   string
		filter catalog.ProductFilter
	}{
		{"none", catalog.ProductFilter{}},
		{"after", catalog.ProductFilter{After: middle}},
		{"user", catalog.ProductFilter{UserID: 42}},
		{"user after", catalog.ProductFilter{UserID: 42, After: middle}},
		{"min price", catalog.ProductFilter{MinPrice: price(99000)}},
		{"max price", catalog.ProductFilter{MaxPrice: price(1000)}},
		{"wide price range", catalog.ProductFilter{MinPrice: price(100), MaxPrice: price(90000)}},
		{"narrow price range", catalog.ProductFilter{MinPrice: price(5000), MaxPrice: price(5500)}},
		{"q", catalog.ProductFilter{Query: "stool 42"}},
		{"q common", catalog.ProductFilter{Query: "chair"}},
		{"q after", catalog.ProductFilter{Query: "lamp", After: middle}},
		{"user q", catalog.ProductFilter{UserID: 7, Query: "sofa"}},
		{"user price", catalog.ProductFilter{UserID: 7, MinPrice: price(1000), MaxPrice: price(50000)}},
		{"price q", catalog.ProductFilter{MinPrice: price(5000), MaxPrice: price(9000), Query: "table"}},
		{"all", catalog.ProductFilter{UserID: 7, MinPrice: price(1000), MaxPrice: price(90000), Query: "a", After: middle}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.filter
			f.Limit = 20
			plan := explain(t, db, f)
			if strings.Contains(plan, "Seq Scan on products") || !strings.Contains(plan, "Index") {
				t.Errorf("ListProductIDs(%+v) does not use an index:\n%s", tt.filter, plan)
			}
			t.Logf("%+v:\n%s", tt.filter, plan)
		})
	}
	t.Run("trigram index exists", func(t *testing.T) {
		var n int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'products_name_trgm' AND schemaname = current_schema()`).Scan(&n); err != nil || n != 1 {
			t.Errorf("products_name_trgm: %d (%v)", n, err)
		}
	})
}

func explain(t *testing.T, db *DB, f catalog.ProductFilter) string {
	t.Helper()
	query, args := listQuery(f)
	rows, err := db.pool.Query(context.Background(), `EXPLAIN `+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	return strings.Join(lines, "\n")
}

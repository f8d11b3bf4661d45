package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/catalog"
)

// TestListUsesIndexes plans every shape of list over 5,000 products and
// checks that none reads the products table: the ids come from a covering
// index, and q goes through the trigram index or the walk of the newest
// rows in products_id_name. With
// -v it logs every plan; that of q=stool 42 through the trigram index is
//
//	SEARCH products USING INTEGER PRIMARY KEY (rowid=?)
//	LIST SUBQUERY 1
//	SCAN products_fts VIRTUAL TABLE INDEX 0:M1
//	USE TEMP B-TREE FOR ORDER BY
//
// and that of the walk for a common word
//
//	CO-ROUTINE (subquery-1)
//	SCAN products USING COVERING INDEX products_id_name
//	SCAN (subquery-1)
func TestListUsesIndexes(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "vitrine.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	// 100 owners, prices spread over 0.00-999.99, five kinds of name.
	for i := 1; i <= 5000; i++ {
		kind := []string{"Chair", "Table", "Lamp", "Sofa", "Stool"}[i%5]
		name := fmt.Sprintf("%s %d", kind, i)
		if _, err := db.sql.ExecContext(ctx, `INSERT INTO products (id, user_id, name, name_fold, price, currency, created_at, updated_at, version)
			VALUES (?, ?, ?, ?, ?, 'EUR', 0, 0, 1)`, fmt.Sprintf("0190%04x-0000-7000-8000-%012x", i, i), 1+i%100, name, strings.ToLower(name), (i*7919)%100000); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.sql.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	middle := fmt.Sprintf("0190%04x-0000-7000-8000-%012x", 2500, 2500)
	price := func(p catalog.Price) *catalog.Price { return &p }
	tests := []struct {
		name   string
		filter catalog.ProductFilter
		walk   bool // planned as the walk of the newest rows
		fts    bool // the trigram index
	}{
		{"none", catalog.ProductFilter{}, false, false},
		{"after", catalog.ProductFilter{After: middle}, false, false},
		{"user", catalog.ProductFilter{UserID: 42}, false, false},
		{"user after", catalog.ProductFilter{UserID: 42, After: middle}, false, false},
		{"min price", catalog.ProductFilter{MinPrice: price(99000)}, false, false},
		{"max price", catalog.ProductFilter{MaxPrice: price(1000)}, false, false},
		{"narrow price range", catalog.ProductFilter{MinPrice: price(5000), MaxPrice: price(5500)}, false, false},
		{"q walk", catalog.ProductFilter{Query: "chair"}, true, false},
		{"q walk after", catalog.ProductFilter{Query: "lamp", After: middle}, true, false},
		{"q walk price", catalog.ProductFilter{Query: "table", MinPrice: price(5000), MaxPrice: price(9000)}, true, false},
		{"q", catalog.ProductFilter{Query: "stool 42"}, false, true},
		{"q after", catalog.ProductFilter{Query: "lamp", After: middle}, false, true},
		{"price q", catalog.ProductFilter{MinPrice: price(5000), MaxPrice: price(9000), Query: "table"}, false, true},
		{"user q", catalog.ProductFilter{UserID: 7, Query: "sofa"}, false, false},
		{"user price", catalog.ProductFilter{UserID: 7, MinPrice: price(1000), MaxPrice: price(50000)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.filter
			f.Limit = 20
			q := fold(f.Query)
			query, args := listQuery(f, q, tt.fts)
			if tt.walk {
				query, args = walkQuery(f, q)
			}
			plan := explain(t, db, query, args)
			for _, line := range strings.Split(plan, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "SCAN products") && !strings.Contains(line, "INDEX") {
					t.Errorf("ListProductIDs(%+v) reads the products table:\n%s", tt.filter, plan)
				}
			}
			switch {
			case tt.fts && !strings.Contains(plan, "products_fts VIRTUAL TABLE INDEX 0:M"):
				t.Errorf("q=%s does not use the trigram index:\n%s", f.Query, plan)
			case tt.walk && !strings.Contains(plan, "COVERING INDEX products_id_name"):
				t.Errorf("q=%s does not walk products_id_name:\n%s", f.Query, plan)
			case !tt.fts && !tt.walk && !strings.Contains(plan, "COVERING INDEX"):
				t.Errorf("%+v is not read from a covering index:\n%s", tt.filter, plan)
			}
			t.Logf("%+v:\n%s", tt.filter, plan)
		})
	}
}

func explain(t *testing.T, db *DB, query string, args []any) string {
	t.Helper()
	rows, err := db.sql.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

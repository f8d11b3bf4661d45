package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/pagecache"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// ListProductIDs returns the ids of a page of products, newest first. Each
// filter has an index that serves it (see the migrations), and only ids are
// read, so most pages are index-only scans. pgx prepares the statement of
// each query shape once per connection. A Limit of 0 or less means no
// limit.
func (db *DB) ListProductIDs(ctx context.Context, f catalog.ProductFilter) ([]string, error) {
	if f.After != "" && !catalog.ValidID(f.After) {
		return nil, fmt.Errorf("list products: %w", catalog.Errorf(catalog.KindInvalid, "invalid_cursor", "cursor %q is not a product id", f.After))
	}
	if f.MatchesNothing() {
		return nil, nil
	}
	// Pages are kept until a product write is known (see pagecache): this
	// process's at once, the others' through the listener, without which
	// nothing is kept.
	db.startListener()
	key := pagecache.Key(f)
	if ids, ok := db.pages.Get(key); ok {
		return ids, nil
	}
	gen := db.pages.Generation()
	query, args := listQuery(f)
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", db.translate(ctx, err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list products: %w", db.translate(ctx, err))
	}
	if ids == nil {
		ids = []string{}
	}
	db.pages.Put(key, gen, ids)
	return ids, nil
}

// listQuery is the SELECT of the ids of one page of f, each filter a
// condition that an index serves.
func listQuery(f catalog.ProductFilter) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.UserID != 0 {
		where = append(where, "user_id = "+arg(f.UserID))
	}
	if f.MinPrice != nil {
		where = append(where, "price >= "+arg(int64(*f.MinPrice)))
	}
	if f.MaxPrice != nil {
		where = append(where, "price <= "+arg(int64(*f.MaxPrice)))
	}
	if f.Query != "" {
		where = append(where, "name_fold LIKE "+arg(likeContains(fold(f.Query))))
	}
	if f.After != "" {
		where = append(where, "id < "+arg(f.After))
	}
	query := `SELECT id::text FROM products`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	var limit *int64 // NULL: LIMIT ALL
	if f.Limit > 0 {
		n := int64(f.Limit)
		limit = &n
	}
	query += ` ORDER BY products.id DESC LIMIT ` + arg(limit) // the column, not the text of the select list
	return query, args
}

// GetProducts returns the products of ids with their images, in no
// particular order; ids of no product (or not ids at all) are left out.
func (db *DB) GetProducts(ctx context.Context, ids []string) ([]*catalog.Product, error) {
	valid := uuids(ids)
	if len(valid) == 0 {
		return []*catalog.Product{}, nil
	}
	var products []*catalog.Product
	err := pgx.BeginTxFunc(ctx, db.pool, readOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+sqlrows.ProductColumns+` FROM products WHERE id = ANY ($1::uuid[])`, valid)
		if err != nil {
			return err
		}
		products, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*catalog.Product, error) { return scanProduct(row) })
		if err != nil {
			return err
		}
		return sqlrows.AttachImages(ctx, statements{tx}, products)
	})
	if err != nil {
		return nil, fmt.Errorf("get products: %w", db.translate(ctx, err))
	}
	if products == nil {
		products = []*catalog.Product{}
	}
	return products, nil
}

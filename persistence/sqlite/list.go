package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/pagecache"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// walkRows bounds the walk of the newest rows that looks for a common word
// of q before the trigram index is asked (see migration 0006).
const walkRows = 1000

// ListProductIDs returns the ids of a page of products, newest first,
// reading indexes only (see migration 0006). A Limit of 0 or less means no
// limit.
//
// Pages are kept (see pagecache) until the next write of a product: the
// embedded database belongs to one process, which sees every write.
func (db *DB) ListProductIDs(ctx context.Context, f catalog.ProductFilter) ([]string, error) {
	if f.MatchesNothing() {
		return nil, nil
	}
	key := pagecache.Key(f)
	if ids, ok := db.pages.Get(key); ok {
		return ids, nil
	}
	gen := db.pages.Generation()
	ids, err := db.listIDs(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	db.pages.Put(key, gen, ids)
	return ids, nil
}

func (db *DB) listIDs(ctx context.Context, f catalog.ProductFilter) ([]string, error) {
	q := fold(f.Query)
	if f.UserID == 0 && f.Limit > 0 && (q != "" || f.MinPrice != nil || f.MaxPrice != nil) {
		// A common word or a wide price range fills the page from the
		// newest rows.
		query, args := walkQuery(f, q)
		ids, err := db.ids(ctx, query, args...)
		if err != nil || len(ids) == f.Limit {
			return ids, err
		}
	}
	query, args := listQuery(f, q, q != "" && f.UserID == 0 && utf8.RuneCountInString(q) >= 3)
	return db.ids(ctx, query, args...)
}

// listQuery selects the ids of f's page; with fts, q goes through the
// trigram index (q must then hold three characters or more).
func listQuery(f catalog.ProductFilter, q string, fts bool) (string, []any) {
	var where []string
	var args []any
	if f.UserID != 0 {
		where, args = append(where, "user_id = ?"), append(args, f.UserID)
	}
	if f.MinPrice != nil {
		where, args = append(where, "price >= ?"), append(args, int64(*f.MinPrice))
	}
	if f.MaxPrice != nil {
		where, args = append(where, "price <= ?"), append(args, int64(*f.MaxPrice))
	}
	if fts {
		where, args = append(where, "rowid IN (SELECT rowid FROM products_fts WHERE products_fts MATCH ?)"), append(args, ftsPhrase(q))
	}
	if q != "" {
		// instr, not LIKE: '%' and '_' in the query are plain characters.
		// With the trigram index too: it is exact.
		where, args = append(where, "instr(name_fold, ?) > 0"), append(args, q)
	}
	if f.After != "" {
		where, args = append(where, "id < ?"), append(args, f.After)
	}
	query := `SELECT id FROM products`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	return query + ` ORDER BY id DESC LIMIT ?`, append(args, limitOf(f))
}

// walkQuery selects the ids of f's page among the walkRows newest rows
// (after f.After), from the covering index products_id_name, for a q or a
// price range (f has one).
func walkQuery(f catalog.ProductFilter, q string) (string, []any) {
	inner := `SELECT id, name_fold, price FROM products INDEXED BY products_id_name`
	var args []any
	if f.After != "" {
		inner, args = inner+` WHERE id < ?`, append(args, f.After)
	}
	inner += ` ORDER BY id DESC LIMIT ?`
	args = append(args, walkRows)
	var where []string
	var whereArgs []any
	if q != "" {
		where, whereArgs = append(where, "instr(name_fold, ?) > 0"), append(whereArgs, q)
	}
	if f.MinPrice != nil {
		where, whereArgs = append(where, "price >= ?"), append(whereArgs, int64(*f.MinPrice))
	}
	if f.MaxPrice != nil {
		where, whereArgs = append(where, "price <= ?"), append(whereArgs, int64(*f.MaxPrice))
	}
	query := `SELECT id FROM (` + inner + `) WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT ?`
	return query, append(append(args, whereArgs...), limitOf(f))
}

func limitOf(f catalog.ProductFilter) int {
	if f.Limit > 0 {
		return f.Limit
	}
	return -1
}

// ftsPhrase quotes q as an FTS5 phrase: with the trigram tokenizer, the
// rows whose name holds q.
func ftsPhrase(q string) string {
	return `"` + strings.ReplaceAll(q, `"`, `""`) + `"`
}

// ids runs a query of ids through a statement prepared once per query text.
//
// The query is not interrupted if ctx ends while it runs: list queries
// read indexes and stop at their limit (or after walkRows entries), and
// take milliseconds, while an interruptible query costs the driver a
// watching goroutine each time. A ctx already ended stops it from starting.
func (db *DB) ids(ctx context.Context, query string, args ...any) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	stmt, err := db.prepared(ctx, query) //nolint:sqlclosecheck // cached for the DB's life, closed by Close
	if err != nil {
		return nil, err
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, db.translate(err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, db.translate(err)
		}
		ids = append(ids, id)
	}
	return ids, db.translate(rows.Err())
}

// prepared returns the statement of query, preparing it on first use. The
// list queries have a few dozen shapes, so the map stays small.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, db.translate(err)
	}
	if prev, loaded := db.stmts.LoadOrStore(query, s); loaded {
		_ = s.Close() //nolint:sqlclosecheck // a duplicate of prev, dropped at once (the cached ones are closed by Close)
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// GetProducts returns the products of ids with their images, in no
// particular order; ids of no product are left out.
func (db *DB) GetProducts(ctx context.Context, ids []string) ([]*catalog.Product, error) {
	if len(ids) == 0 {
		return []*catalog.Product{}, nil
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("get products: %w", db.translate(err))
	}
	defer tx.Rollback()
	// The ids travel as one JSON array, whatever their number.
	products, err := queryProducts(ctx, tx, `SELECT `+sqlrows.ProductColumns+` FROM products WHERE id IN (SELECT value FROM json_each(?))`, string(idsJSON))
	if err != nil {
		return nil, fmt.Errorf("get products: %w", db.translate(err))
	}
	if err := sqlrows.AttachImages(ctx, statements{tx}, products); err != nil {
		return nil, fmt.Errorf("get products: images: %w", db.translate(err))
	}
	return products, nil
}

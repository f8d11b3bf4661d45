package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
	sqlite3 "modernc.org/sqlite/lib"
)

// fold is the form of a name that searches compare: its Unicode lower case.
func fold(s string) string { return strings.ToLower(s) }

// statements runs the statements of the shared reads and writes of
// products and images (sqlrows) in a transaction.
type statements struct{ tx *sql.Tx }

// CreateProduct stores a new product as given (its Images are ignored). An
// id already taken is a conflict.
func (db *DB) CreateProduct(ctx context.Context, p *catalog.Product) error {
	defer db.pages.Invalidate() // after the commit: kept pages may miss this write
	_, err := db.sql.ExecContext(ctx, `
		INSERT INTO products (id, user_id, name, name_fold, description, price, currency, created_at, updated_at, version, sku)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.UserID, p.Name, fold(p.Name), p.Description, int64(p.Price), p.Currency,
		micros(p.CreatedAt), micros(p.UpdatedAt), p.Version, nullSKU(p.SKU))
	if err != nil {
		if err := skuTaken(err, p); err != nil {
			return fmt.Errorf("create product %s: %w", p.ID, err)
		}
		if code := sqliteCode(err); code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || code == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			return fmt.Errorf("create product %s: %w", p.ID, sqlrows.AlreadyExists("product", p.ID, err))
		}
		return fmt.Errorf("create product %s: %w", p.ID, db.translate(err))
	}
	return nil
}

// GetProduct returns the product with its images, oldest image first.
func (db *DB) GetProduct(ctx context.Context, id string) (*catalog.Product, error) {
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("get product %s: %w", id, db.translate(err))
	}
	defer tx.Rollback()
	p, err := scanProduct(tx.QueryRowContext(ctx, `SELECT `+sqlrows.ProductColumns+` FROM products WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get product %s: %w", id, catalog.NotFound("product %s", id))
	}
	if err != nil {
		return nil, fmt.Errorf("get product %s: %w", id, db.translate(err))
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+sqlrows.ImageColumns+` FROM images WHERE product_id = ? ORDER BY position, created_at, id`, id)
	if err != nil {
		return nil, fmt.Errorf("get product %s: images: %w", id, db.translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("get product %s: images: %w", id, db.translate(err))
		}
		p.Images = append(p.Images, img)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get product %s: images: %w", id, db.translate(err))
	}
	return p, nil
}

// UpdateProduct stores p's fields, whose Version must be the stored one
// plus one. Images are not touched.
func (db *DB) UpdateProduct(ctx context.Context, p *catalog.Product) error {
	defer db.pages.Invalidate() // after the commit: kept pages may miss this write
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return sqlrows.Bump(ctx, statements{tx}, p) }); err != nil {
		return fmt.Errorf("update product %s: %w", p.ID, err)
	}
	return nil
}

// UpdateProduct writes p over the stored product whose version is
// p.Version-1 (sqlrows.Bump).
func (s statements) UpdateProduct(ctx context.Context, p *catalog.Product) (bool, error) {
	res, err := s.tx.ExecContext(ctx, `
		UPDATE products
		SET user_id = ?, name = ?, name_fold = ?, description = ?, price = ?, currency = ?,
		    updated_at = ?, version = ?, sku = ?
		WHERE id = ? AND version = ?`,
		p.UserID, p.Name, fold(p.Name), p.Description, int64(p.Price), p.Currency,
		micros(p.UpdatedAt), p.Version, nullSKU(p.SKU), p.ID, p.Version-1)
	if err := skuTaken(err, p); err != nil {
		return false, err
	}
	return affected(res, err)
}

// ProductExists reports whether the product is stored.
func (s statements) ProductExists(ctx context.Context, id string) (bool, error) {
	var n int
	err := s.tx.QueryRowContext(ctx, `SELECT count(*) FROM products WHERE id = ?`, id).Scan(&n)
	return n > 0, err
}

// DeleteProduct deletes the product, its images and their pending jobs.
func (db *DB) DeleteProduct(ctx context.Context, id string) error {
	defer db.pages.Invalidate()                                                  // after the commit: kept pages may miss this write
	res, err := db.sql.ExecContext(ctx, `DELETE FROM products WHERE id = ?`, id) // cascades to images, then jobs
	if err != nil {
		return fmt.Errorf("delete product %s: %w", id, db.translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete product %s: %w", id, db.translate(err))
	}
	if n == 0 {
		return fmt.Errorf("delete product %s: %w", id, catalog.NotFound("product %s", id))
	}
	return nil
}

func queryProducts(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]*catalog.Product, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	products := []*catalog.Product{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, err
		}
		products = append(products, p)
	}
	return products, rows.Err()
}

// ImagesOf returns the images of the products, by product, each one's in
// gallery order (sqlrows.AttachImages).
func (s statements) ImagesOf(ctx context.Context, productIDs []string) ([]catalog.Image, error) {
	ids, err := json.Marshal(productIDs)
	if err != nil {
		return nil, err
	}
	// The ids travel as one JSON array, whatever the page size.
	rows, err := s.tx.QueryContext(ctx, `
		SELECT `+sqlrows.ImageColumns+` FROM images
		WHERE product_id IN (SELECT value FROM json_each(?))
		ORDER BY product_id, position, created_at, id`, string(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var images []catalog.Image
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		images = append(images, img)
	}
	return images, rows.Err()
}

// AddImage stores a new image of p and its pending job, and bumps p, in one
// transaction. Waiting receivers are woken. img.ProductID must be p.ID or
// empty.
func (db *DB) AddImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if err := sqlrows.CheckImageOf(p, img); err != nil {
		return err
	}
	variants, err := sqlrows.MarshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("add image %s: %w", img.ID, err)
	}
	now := db.now()
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return sqlrows.AddImage(ctx, statements{tx}, p, img, variants, now) }); err != nil {
		return fmt.Errorf("add image %s to product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// InsertImage stores img, a new image of the product, last in its gallery
// (sqlrows.AddImage).
func (s statements) InsertImage(ctx context.Context, productID string, img *catalog.Image, variants []byte) (int, error) {
	var position int
	err := s.tx.QueryRowContext(ctx, `
		INSERT INTO images (`+sqlrows.ImageColumns+`)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
		        (SELECT coalesce(max(position) + 1, 0) FROM images WHERE product_id = ?2), ?20, ?21, ?22, ?23)
		RETURNING position`,
		sqlrows.ImageValues(productID, img, string(variants), micros(img.CreatedAt), processedAt(img))...).Scan(&position)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return 0, sqlrows.AlreadyExists("image", img.ID, err)
	}
	return position, err
}

// InsertJob stores the pending job of a new image (sqlrows.AddImage).
func (s statements) InsertJob(ctx context.Context, job catalog.Job, now time.Time) error {
	_, err := s.tx.ExecContext(ctx, `
		INSERT INTO jobs (image_id, product_id, attempts, available_at, lease_until, created_at, traceparent)
		VALUES (?1, ?2, 0, ?3, NULL, ?3, ?4)`, job.ImageID, job.ProductID, micros(now), traceparent.Of(ctx))
	return err
}

// SaveImage stores the changed image of p and bumps p in one transaction.
func (db *DB) SaveImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	variants, err := sqlrows.MarshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("save image %s: %w", img.ID, err)
	}
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return sqlrows.SaveImage(ctx, statements{tx}, p, img, variants) }); err != nil {
		return fmt.Errorf("save image %s of product %s: %w", img.ID, p.ID, err)
	}
	return nil
}

// RequeueImage stores the changed image of p, bumps p and queues the
// image's job again, in one transaction: the job is due now, unpublished,
// its attempts reset and its dead letter dropped, as with Enqueue. It is
// how an image is processed anew. Waiting receivers are woken.
func (db *DB) RequeueImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	variants, err := sqlrows.MarshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("requeue image %s: %w", img.ID, err)
	}
	now := db.now()
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return sqlrows.RequeueImage(ctx, statements{tx}, p, img, variants, now) }); err != nil {
		return fmt.Errorf("requeue image %s of product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// UpdateImage writes img's state over the image of the product
// (sqlrows.SaveImage).
func (s statements) UpdateImage(ctx context.Context, productID string, img *catalog.Image, variants []byte) (bool, error) {
	res, err := s.tx.ExecContext(ctx, `
		UPDATE images SET (`+sqlrows.ImageStateColumns+`) =
		    (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		WHERE id = ? AND product_id = ?`,
		append(sqlrows.ImageStateValues(img, string(variants), processedAt(img)), img.ID, productID)...)
	return affected(res, err)
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanProduct(r rowScanner) (*catalog.Product, error) {
	var row sqlrows.ProductRow
	var created, updated int64
	if err := r.Scan(row.Dest(&created, &updated)...); err != nil {
		return nil, err
	}
	return row.Product(fromMicros(created), fromMicros(updated)), nil
}

func scanImage(r rowScanner) (catalog.Image, error) {
	var row sqlrows.ImageRow
	var created int64
	var processed sql.NullInt64
	if err := r.Scan(row.Dest(&created, &processed)...); err != nil {
		return catalog.Image{}, err
	}
	var processedAt *time.Time
	if processed.Valid {
		t := fromMicros(processed.Int64)
		processedAt = &t
	}
	return row.Image(fromMicros(created), processedAt)
}

func processedAt(img *catalog.Image) sql.NullInt64 {
	if img.ProcessedAt == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(*img.ProcessedAt), Valid: true}
}

// DeleteImage removes an image of p (its job and dead letter with it) and
// bumps p in one transaction; the images after it move up one place.
// NotFound when p has no such image.
func (db *DB) DeleteImage(ctx context.Context, p *catalog.Product, imageID string) error {
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return sqlrows.DeleteImage(ctx, statements{tx}, p, imageID) }); err != nil {
		return fmt.Errorf("delete image %s of product %s: %w", imageID, p.ID, err)
	}
	return nil
}

// DeleteImage deletes the image of the product and returns its position
// (sqlrows.DeleteImage).
func (s statements) DeleteImage(ctx context.Context, productID, imageID string) (position int, found bool, err error) {
	err = s.tx.QueryRowContext(ctx, `DELETE FROM images WHERE id = ? AND product_id = ? RETURNING position`, imageID, productID).Scan(&position)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return position, true, nil
}

// CloseGap moves the images of the product after position up one place
// (sqlrows.DeleteImage).
func (s statements) CloseGap(ctx context.Context, productID string, position int) error {
	_, err := s.tx.ExecContext(ctx, `UPDATE images SET position = position - 1 WHERE product_id = ? AND position > ?`, productID, position)
	return err
}

// SaveGallery stores the gallery of p, the order of p.Images and each
// one's alt text and focal point, bumps p and queues the jobs of the
// images of requeue (as Enqueue does), in one transaction. p.Images must
// be the product's images, each once; NotFound when one is not.
func (db *DB) SaveGallery(ctx context.Context, p *catalog.Product, requeue []string) error {
	doc, err := catalog.GalleryJSON(p.Images)
	if err != nil {
		return fmt.Errorf("save gallery of product %s: %w", p.ID, err)
	}
	now := db.now()
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return sqlrows.SaveGallery(ctx, statements{tx}, p, doc, requeue, now) }); err != nil {
		return fmt.Errorf("save gallery of product %s: %w", p.ID, err)
	}
	if len(requeue) > 0 {
		db.wake.Broadcast()
	}
	return nil
}

// UpdateGallery writes the entries of doc over the images of the product
// (sqlrows.SaveGallery).
func (s statements) UpdateGallery(ctx context.Context, productID string, doc []byte) (int64, error) {
	res, err := s.tx.ExecContext(ctx, `
		UPDATE images SET position = g.value ->> 'position', alt = g.value ->> 'alt',
		    focal_x = g.value ->> 'focal_x', focal_y = g.value ->> 'focal_y'
		FROM json_each(?2) AS g
		WHERE images.id = g.value ->> 'id' AND images.product_id = ?1`, productID, string(doc))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// CountImages counts the images of the product (sqlrows.SaveGallery).
func (s statements) CountImages(ctx context.Context, productID string) (int64, error) {
	var n int64
	err := s.tx.QueryRowContext(ctx, `SELECT count(*) FROM images WHERE product_id = ?`, productID).Scan(&n)
	return n, err
}

// nullSKU is a SKU as stored: NULL for none, so that the owner's unique
// index leaves products without one alone.
func nullSKU(sku string) sql.NullString {
	return sql.NullString{String: sku, Valid: sku != ""}
}

// skuTaken is the conflict of a write that gave p a SKU another product of
// its owner has; nil for any other outcome.
func skuTaken(err error, p *catalog.Product) error {
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE && strings.Contains(err.Error(), "products.sku") {
		return catalog.SKUTaken(p.UserID, p.SKU, err)
	}
	return nil
}

// ProductIDBySKU returns the id of the owner's product with that SKU;
// NotFound when there is none.
func (db *DB) ProductIDBySKU(ctx context.Context, owner int64, sku string) (string, error) {
	var id string
	err := db.sql.QueryRowContext(ctx, `SELECT id FROM products WHERE user_id = ? AND sku = ?`, owner, sku).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", catalog.NotFound("no product of user_id %d has SKU %q", owner, sku)
	}
	if err != nil {
		return "", fmt.Errorf("product of SKU %q: %w", sku, db.translate(err))
	}
	return id, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// fold is the form of a name that searches compare: its Unicode lower case,
// made here rather than by the server's lower(), whose result depends on
// the database's locale (the C locale folds ASCII only).
func fold(s string) string { return strings.ToLower(s) }

// likeContains is the LIKE pattern matching s anywhere, with LIKE's own
// characters in s escaped ('\' is LIKE's default escape).
func likeContains(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// Ids are uuid columns: a string that is not a canonical UUID cannot name a
// row, and is refused before it reaches the server.

func invalidID(what, id string) error {
	return catalog.Errorf(catalog.KindInvalid, "invalid_id", "%s id %q is not a UUID", what, id)
}

// querier is a transaction or the pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// statements runs the statements of the shared reads and writes of
// products and images (sqlrows) on a transaction or the pool.
type statements struct{ q querier }

// readOnly is the transaction of reads that see a product and its images
// as of one instant.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// CreateProduct stores a new product as given (its Images are ignored). An
// id already taken is a conflict.
func (db *DB) CreateProduct(ctx context.Context, p *catalog.Product) error {
	defer db.pages.Invalidate() // after the commit: kept pages may miss this write
	if !catalog.ValidID(p.ID) {
		return fmt.Errorf("create product: %w", invalidID("product", p.ID))
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO products (id, user_id, name, name_fold, description, price, currency, created_at, updated_at, version, sku)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		p.ID, p.UserID, p.Name, fold(p.Name), p.Description, int64(p.Price), p.Currency,
		utc(p.CreatedAt), utc(p.UpdatedAt), p.Version, nullSKU(p.SKU))
	if err := skuTaken(err, p); err != nil {
		return fmt.Errorf("create product %s: %w", p.ID, err)
	}
	if pgCode(err) == codeUniqueViolation {
		return fmt.Errorf("create product %s: %w", p.ID, sqlrows.AlreadyExists("product", p.ID, err))
	}
	if err != nil {
		return fmt.Errorf("create product %s: %w", p.ID, db.translate(ctx, err))
	}
	return nil
}

// GetProduct returns the product with its images, oldest image first.
func (db *DB) GetProduct(ctx context.Context, id string) (*catalog.Product, error) {
	if !catalog.ValidID(id) {
		return nil, fmt.Errorf("get product %q: %w", id, catalog.NotFound("product %s", id))
	}
	var p *catalog.Product
	err := pgx.BeginTxFunc(ctx, db.pool, readOnly, func(tx pgx.Tx) error {
		var err error
		p, err = scanProduct(tx.QueryRow(ctx, `SELECT `+sqlrows.ProductColumns+` FROM products WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return catalog.NotFound("product %s", id)
		}
		if err != nil {
			return err
		}
		return sqlrows.AttachImages(ctx, statements{tx}, []*catalog.Product{p})
	})
	if err != nil {
		return nil, fmt.Errorf("get product %s: %w", id, db.translate(ctx, err))
	}
	return p, nil
}

// UpdateProduct stores p's fields, whose Version must be the stored one
// plus one. Images are not touched.
func (db *DB) UpdateProduct(ctx context.Context, p *catalog.Product) error {
	defer db.pages.Invalidate() // after the commit: kept pages may miss this write
	if !catalog.ValidID(p.ID) {
		return fmt.Errorf("update product %q: %w", p.ID, catalog.NotFound("product %s", p.ID))
	}
	if err := sqlrows.Bump(ctx, statements{db.pool}, p); err != nil {
		return fmt.Errorf("update product %s: %w", p.ID, db.translate(ctx, err))
	}
	return nil
}

// UpdateProduct writes p over the stored product whose version is
// p.Version-1 (sqlrows.Bump). Concurrent bumps of one product queue on its
// row lock, and all but the first then find the version changed.
func (s statements) UpdateProduct(ctx context.Context, p *catalog.Product) (bool, error) {
	tag, err := s.q.Exec(ctx, `
		UPDATE products
		SET user_id = $1, name = $2, name_fold = $3, description = $4, price = $5, currency = $6,
		    updated_at = $7, version = $8, sku = $11
		WHERE id = $9 AND version = $10`,
		p.UserID, p.Name, fold(p.Name), p.Description, int64(p.Price), p.Currency,
		utc(p.UpdatedAt), p.Version, p.ID, p.Version-1, nullSKU(p.SKU))
	if err := skuTaken(err, p); err != nil {
		return false, err
	}
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// ProductExists reports whether the product is stored.
func (s statements) ProductExists(ctx context.Context, id string) (bool, error) {
	var exists bool
	err := s.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)`, id).Scan(&exists)
	return exists, err
}

// DeleteProduct deletes the product, its images, their jobs and dead letters.
func (db *DB) DeleteProduct(ctx context.Context, id string) error {
	defer db.pages.Invalidate() // after the commit: kept pages may miss this write
	if !catalog.ValidID(id) {
		return fmt.Errorf("delete product %q: %w", id, catalog.NotFound("product %s", id))
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM products WHERE id = $1`, id) // cascades to images, then jobs and dead letters
	if err != nil {
		return fmt.Errorf("delete product %s: %w", id, db.translate(ctx, err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete product %s: %w", id, catalog.NotFound("product %s", id))
	}
	return nil
}

// ImagesOf returns the images of the products, by product, each one's in
// gallery order (sqlrows.AttachImages).
func (s statements) ImagesOf(ctx context.Context, productIDs []string) ([]catalog.Image, error) {
	rows, err := s.q.Query(ctx, `
		SELECT `+sqlrows.ImageColumns+` FROM images
		WHERE product_id = ANY ($1::uuid[])
		ORDER BY product_id, position, created_at, id`, productIDs)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.Image, error) { return scanImage(row) })
}

// AddImage stores a new image of p and its pending job, and bumps p, in one
// transaction: the job row is the outbox entry of the image. Receivers of
// every process are woken at commit. img.ProductID must be p.ID or empty.
func (db *DB) AddImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if err := sqlrows.CheckImageOf(p, img); err != nil {
		return err
	}
	if !catalog.ValidID(p.ID) {
		return fmt.Errorf("add image %s: %w", img.ID, catalog.NotFound("product %s", p.ID))
	}
	if !catalog.ValidID(img.ID) {
		return fmt.Errorf("add image to product %s: %w", p.ID, invalidID("image", img.ID))
	}
	variants, err := sqlrows.MarshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("add image %s: %w", img.ID, err)
	}
	now := db.now()
	err = db.inTx(ctx, func(tx pgx.Tx) error { return sqlrows.AddImage(ctx, statements{tx}, p, img, variants, now) })
	if err != nil {
		return fmt.Errorf("add image %s to product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// InsertImage stores img, a new image of the product, last in its gallery
// (sqlrows.AddImage).
func (s statements) InsertImage(ctx context.Context, productID string, img *catalog.Image, variants []byte) (int, error) {
	var position int
	err := s.q.QueryRow(ctx, `
		INSERT INTO images (`+sqlrows.ImageColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
		        (SELECT coalesce(max(position) + 1, 0) FROM images WHERE product_id = $2), $20, $21, $22, $23)
		RETURNING position`,
		sqlrows.ImageValues(productID, img, variants, utc(img.CreatedAt), processedAt(img))...).Scan(&position)
	if pgCode(err) == codeUniqueViolation {
		return 0, sqlrows.AlreadyExists("image", img.ID, err)
	}
	return position, err
}

// InsertJob stores the pending job of a new image (sqlrows.AddImage).
func (s statements) InsertJob(ctx context.Context, job catalog.Job, now time.Time) error {
	_, err := s.q.Exec(ctx, `
		INSERT INTO jobs (image_id, product_id, attempts, available_at, created_at, traceparent)
		VALUES ($1, $2, 0, $3, $3, $4)`, job.ImageID, job.ProductID, utc(now), traceparent.Of(ctx))
	return err
}

// SaveImage stores the changed image of p and bumps p in one transaction.
func (db *DB) SaveImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if !catalog.ValidID(p.ID) || !catalog.ValidID(img.ID) {
		return fmt.Errorf("save image %q: %w", img.ID, catalog.NotFound("image %s of product %s", img.ID, p.ID))
	}
	variants, err := sqlrows.MarshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("save image %s: %w", img.ID, err)
	}
	if err := db.inTx(ctx, func(tx pgx.Tx) error { return sqlrows.SaveImage(ctx, statements{tx}, p, img, variants) }); err != nil {
		return fmt.Errorf("save image %s of product %s: %w", img.ID, p.ID, err)
	}
	return nil
}

// RequeueImage stores the changed image of p, bumps p and queues the
// image's job again, in one transaction: the job is due now, unpublished,
// its attempts reset and its dead letter dropped, as with Enqueue. It is
// how an image is processed anew. Receivers of every process are woken.
func (db *DB) RequeueImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if !catalog.ValidID(p.ID) || !catalog.ValidID(img.ID) {
		return fmt.Errorf("requeue image %q: %w", img.ID, catalog.NotFound("image %s of product %s", img.ID, p.ID))
	}
	variants, err := sqlrows.MarshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("requeue image %s: %w", img.ID, err)
	}
	now := db.now()
	err = db.inTx(ctx, func(tx pgx.Tx) error { return sqlrows.RequeueImage(ctx, statements{tx}, p, img, variants, now) })
	if err != nil {
		return fmt.Errorf("requeue image %s of product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// UpdateImage writes img's state over the image of the product
// (sqlrows.SaveImage).
func (s statements) UpdateImage(ctx context.Context, productID string, img *catalog.Image, variants []byte) (bool, error) {
	tag, err := s.q.Exec(ctx, `
		UPDATE images SET (`+sqlrows.ImageStateColumns+`) =
		    ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		WHERE id = $18 AND product_id = $19`,
		append(sqlrows.ImageStateValues(img, variants, processedAt(img)), img.ID, productID)...)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}

// Enqueue writes the job row of job, due at now, within ctx's trace
// (sqlrows.RequeueImage, sqlrows.SaveGallery).
func (s statements) Enqueue(ctx context.Context, job catalog.Job, now time.Time) error {
	_, err := s.q.Exec(ctx, enqueueJob, job.ImageID, job.ProductID, utc(now), traceparent.Of(ctx))
	return err
}

func scanProduct(row pgx.Row) (*catalog.Product, error) {
	var r sqlrows.ProductRow
	var created, updated time.Time
	if err := row.Scan(r.Dest(&created, &updated)...); err != nil {
		return nil, err
	}
	return r.Product(created.UTC(), updated.UTC()), nil
}

func scanImage(row pgx.Row) (catalog.Image, error) {
	var r sqlrows.ImageRow
	var created time.Time
	var processed *time.Time
	if err := row.Scan(r.Dest(&created, &processed)...); err != nil {
		return catalog.Image{}, err
	}
	if processed != nil {
		t := processed.UTC()
		processed = &t
	}
	return r.Image(created.UTC(), processed)
}

func processedAt(img *catalog.Image) *time.Time {
	if img.ProcessedAt == nil {
		return nil
	}
	t := utc(*img.ProcessedAt)
	return &t
}

// DeleteImage removes an image of p (its job and dead letter with it) and
// bumps p in one transaction; the images after it move up one place.
// NotFound when p has no such image.
func (db *DB) DeleteImage(ctx context.Context, p *catalog.Product, imageID string) error {
	if !catalog.ValidID(p.ID) || !catalog.ValidID(imageID) {
		return fmt.Errorf("delete image %q: %w", imageID, catalog.NotFound("image %s of product %s", imageID, p.ID))
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error { return sqlrows.DeleteImage(ctx, statements{tx}, p, imageID) })
	if err != nil {
		return fmt.Errorf("delete image %s of product %s: %w", imageID, p.ID, err)
	}
	return nil
}

// DeleteImage deletes the image of the product and returns its position
// (sqlrows.DeleteImage).
func (s statements) DeleteImage(ctx context.Context, productID, imageID string) (position int, found bool, err error) {
	err = s.q.QueryRow(ctx, `DELETE FROM images WHERE id = $1 AND product_id = $2 RETURNING position`, imageID, productID).Scan(&position)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return position, true, nil
}

// CloseGap moves the images of the product after position up one place
// (sqlrows.DeleteImage).
func (s statements) CloseGap(ctx context.Context, productID string, position int) error {
	_, err := s.q.Exec(ctx, `UPDATE images SET position = position - 1 WHERE product_id = $1 AND position > $2`, productID, position)
	return err
}

// SaveGallery stores the gallery of p, the order of p.Images and each
// one's alt text and focal point, bumps p and queues the jobs of the
// images of requeue (as Enqueue does), in one transaction. p.Images must
// be the product's images, each once; NotFound when one is not.
func (db *DB) SaveGallery(ctx context.Context, p *catalog.Product, requeue []string) error {
	if !catalog.ValidID(p.ID) {
		return fmt.Errorf("save gallery: %w", catalog.NotFound("product %s", p.ID))
	}
	doc, err := catalog.GalleryJSON(p.Images)
	if err != nil {
		return fmt.Errorf("save gallery of product %s: %w", p.ID, err)
	}
	now := db.now()
	err = db.inTx(ctx, func(tx pgx.Tx) error { return sqlrows.SaveGallery(ctx, statements{tx}, p, doc, requeue, now) })
	if err != nil {
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
	tag, err := s.q.Exec(ctx, `
		UPDATE images SET position = g.position, alt = g.alt, focal_x = g.focal_x, focal_y = g.focal_y
		FROM jsonb_to_recordset($2::jsonb) AS g (id uuid, position integer, alt text, focal_x double precision, focal_y double precision)
		WHERE images.id = g.id AND images.product_id = $1`, productID, doc)
	return tag.RowsAffected(), err
}

// CountImages counts the images of the product (sqlrows.SaveGallery).
func (s statements) CountImages(ctx context.Context, productID string) (int64, error) {
	var n int64
	err := s.q.QueryRow(ctx, `SELECT count(*) FROM images WHERE product_id = $1`, productID).Scan(&n)
	return n, err
}

// nullSKU is a SKU as stored: NULL for none, so that the owner's unique
// index leaves products without one alone.
func nullSKU(sku string) *string {
	if sku == "" {
		return nil
	}
	return &sku
}

// skuTaken is the conflict of a write that gave p a SKU another product of
// its owner has; nil for any other outcome.
func skuTaken(err error, p *catalog.Product) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation && pgErr.ConstraintName == "products_owner_sku" {
		return catalog.SKUTaken(p.UserID, p.SKU, err)
	}
	return nil
}

// ProductIDBySKU returns the id of the owner's product with that SKU;
// NotFound when there is none.
func (db *DB) ProductIDBySKU(ctx context.Context, owner int64, sku string) (string, error) {
	var id string
	err := db.pool.QueryRow(ctx, `SELECT id FROM products WHERE user_id = $1 AND sku = $2`, owner, sku).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", catalog.NotFound("no product of user_id %d has SKU %q", owner, sku)
	}
	if err != nil {
		return "", fmt.Errorf("product of SKU %q: %w", sku, db.translate(ctx, err))
	}
	return id, nil
}

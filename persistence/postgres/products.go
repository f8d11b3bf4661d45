package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/transport/tracecontext"
)

const productColumns = `id, user_id, name, description, price, currency, created_at, updated_at, version, sku`

const imageColumns = `id, product_id, status, error_code, error_detail, content_type, bytes, width, height,
	frames, sha256, variants, placeholder, dominant_color, animated, recipe_version, source_url,
	created_at, processed_at, position, alt, error_retryable, focal_x, focal_y`

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
		return fmt.Errorf("create product %s: %w", p.ID, &catalog.Error{
			Kind: catalog.KindConflict, Code: "already_exists", Detail: "product " + p.ID + " already exists", Err: err})
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
		p, err = scanProduct(tx.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return catalog.NotFound("product %s", id)
		}
		if err != nil {
			return err
		}
		return attachImages(ctx, tx, []*catalog.Product{p})
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
	if err := bump(ctx, db.pool, p); err != nil {
		return fmt.Errorf("update product %s: %w", p.ID, db.translate(ctx, err))
	}
	return nil
}

// bump writes p over the stored product if the stored version is
// p.Version-1: NotFound if there is no such product, a VersionConflict if
// another write got there first. Concurrent bumps of one product queue on
// its row lock, and all but the first then find the version changed.
func bump(ctx context.Context, q querier, p *catalog.Product) error {
	tag, err := q.Exec(ctx, `
		UPDATE products
		SET user_id = $1, name = $2, name_fold = $3, description = $4, price = $5, currency = $6,
		    updated_at = $7, version = $8, sku = $11
		WHERE id = $9 AND version = $10`,
		p.UserID, p.Name, fold(p.Name), p.Description, int64(p.Price), p.Currency,
		utc(p.UpdatedAt), p.Version, p.ID, p.Version-1, nullSKU(p.SKU))
	if err := skuTaken(err, p); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)`, p.ID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return catalog.NotFound("product %s", p.ID)
	}
	return catalog.VersionConflict()
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

// attachImages loads the images of all products in one query.
func attachImages(ctx context.Context, q querier, products []*catalog.Product) error {
	if len(products) == 0 {
		return nil
	}
	byID := make(map[string]*catalog.Product, len(products))
	ids := make([]string, len(products))
	for i, p := range products {
		byID[p.ID], ids[i] = p, p.ID
	}
	rows, err := q.Query(ctx, `
		SELECT `+imageColumns+` FROM images
		WHERE product_id = ANY ($1::uuid[])
		ORDER BY product_id, position, created_at, id`, ids)
	if err != nil {
		return err
	}
	images, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.Image, error) { return scanImage(row) })
	if err != nil {
		return err
	}
	for _, img := range images {
		if p := byID[img.ProductID]; p != nil {
			p.Images = append(p.Images, img)
		}
	}
	return nil
}

// AddImage stores a new image of p and its pending job, and bumps p, in one
// transaction: the job row is the outbox entry of the image. Receivers of
// every process are woken at commit. img.ProductID must be p.ID or empty.
func (db *DB) AddImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if img.ProductID != "" && img.ProductID != p.ID {
		return fmt.Errorf("add image %s: belongs to product %q, not %s", img.ID, img.ProductID, p.ID)
	}
	if !catalog.ValidID(p.ID) {
		return fmt.Errorf("add image %s: %w", img.ID, catalog.NotFound("product %s", p.ID))
	}
	if !catalog.ValidID(img.ID) {
		return fmt.Errorf("add image to product %s: %w", p.ID, invalidID("image", img.ID))
	}
	variants, err := marshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("add image %s: %w", img.ID, err)
	}
	now := utc(db.now())
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := bump(ctx, tx, p); err != nil {
			return err
		}
		errCode, errDetail, retryable := imageError(img.Error)
		focalX, focalY := catalog.FocalColumns(img.FocalPoint)
		// The new image goes last in the gallery.
		err := tx.QueryRow(ctx, `
			INSERT INTO images (`+imageColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
			        (SELECT coalesce(max(position) + 1, 0) FROM images WHERE product_id = $2), $20, $21, $22, $23)
			RETURNING position`,
			img.ID, p.ID, string(img.Status), errCode, errDetail,
			img.Original.ContentType, img.Original.Bytes, img.Original.Width, img.Original.Height,
			img.Original.Frames, img.Original.SHA256, variants,
			img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion, img.SourceURL,
			utc(img.CreatedAt), processedAt(img), img.Alt, retryable, focalX, focalY).Scan(&img.Position)
		if pgCode(err) == codeUniqueViolation {
			return &catalog.Error{Kind: catalog.KindConflict, Code: "already_exists", Detail: "image " + img.ID + " already exists", Err: err}
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO jobs (image_id, product_id, attempts, available_at, created_at, traceparent)
			VALUES ($1, $2, 0, $3, $3, $4)`, img.ID, p.ID, now, tracecontext.Of(ctx))
		return err
	})
	if err != nil {
		return fmt.Errorf("add image %s to product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// SaveImage stores the changed image of p and bumps p in one transaction.
func (db *DB) SaveImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if !catalog.ValidID(p.ID) || !catalog.ValidID(img.ID) {
		return fmt.Errorf("save image %q: %w", img.ID, catalog.NotFound("image %s of product %s", img.ID, p.ID))
	}
	variants, err := marshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("save image %s: %w", img.ID, err)
	}
	if err := db.inTx(ctx, func(tx pgx.Tx) error { return saveImage(ctx, tx, p, img, variants) }); err != nil {
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
	variants, err := marshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("requeue image %s: %w", img.ID, err)
	}
	now := utc(db.now())
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := saveImage(ctx, tx, p, img, variants); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, enqueueJob, img.ID, p.ID, now, tracecontext.Of(ctx))
		return err
	})
	if err != nil {
		return fmt.Errorf("requeue image %s of product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// saveImage bumps p and writes img over its stored row.
func saveImage(ctx context.Context, tx pgx.Tx, p *catalog.Product, img *catalog.Image, variants []byte) error {
	if err := bump(ctx, tx, p); err != nil {
		return err
	}
	errCode, errDetail, retryable := imageError(img.Error)
	tag, err := tx.Exec(ctx, `
		UPDATE images
		SET status = $1, error_code = $2, error_detail = $3, content_type = $4, bytes = $5, width = $6,
		    height = $7, frames = $8, sha256 = $9, variants = $10, placeholder = $11,
		    dominant_color = $12, animated = $13, recipe_version = $14, source_url = $15,
		    processed_at = $16, error_retryable = $17
		WHERE id = $18 AND product_id = $19`,
		string(img.Status), errCode, errDetail, img.Original.ContentType, img.Original.Bytes,
		img.Original.Width, img.Original.Height, img.Original.Frames, img.Original.SHA256,
		variants, img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion,
		img.SourceURL, processedAt(img), retryable, img.ID, p.ID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return catalog.NotFound("image %s of product %s", img.ID, p.ID)
	}
	return nil
}

func scanProduct(row pgx.Row) (*catalog.Product, error) {
	var p catalog.Product
	var price int64
	var sku *string
	if err := row.Scan(&p.ID, &p.UserID, &p.Name, &p.Description, &price, &p.Currency,
		&p.CreatedAt, &p.UpdatedAt, &p.Version, &sku); err != nil {
		return nil, err
	}
	if sku != nil {
		p.SKU = *sku
	}
	p.Price = catalog.Price(price)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	p.Images = []catalog.Image{}
	return &p, nil
}

func scanImage(row pgx.Row) (catalog.Image, error) {
	var img catalog.Image
	var status string
	var errCode, errDetail *string
	var variants []byte
	var processed *time.Time
	var retryable bool
	var focalX, focalY *float64
	o := &img.Original
	if err := row.Scan(&img.ID, &img.ProductID, &status, &errCode, &errDetail, &o.ContentType, &o.Bytes,
		&o.Width, &o.Height, &o.Frames, &o.SHA256, &variants, &img.Placeholder, &img.DominantColor,
		&img.Animated, &img.RecipeVersion, &img.SourceURL, &img.CreatedAt, &processed,
		&img.Position, &img.Alt, &retryable, &focalX, &focalY); err != nil {
		return img, err
	}
	img.FocalPoint = catalog.FocalOf(focalX, focalY)
	img.Status = catalog.ImageStatus(status)
	if errCode != nil {
		img.Error = &catalog.ImageError{Code: *errCode, Retryable: retryable}
		if errDetail != nil {
			img.Error.Detail = *errDetail
		}
	}
	if err := json.Unmarshal(variants, &img.Variants); err != nil {
		return img, fmt.Errorf("image %s: variants: %w", img.ID, err)
	}
	if img.Variants == nil {
		img.Variants = []catalog.Variant{}
	}
	img.CreatedAt = img.CreatedAt.UTC()
	if processed != nil {
		t := processed.UTC()
		img.ProcessedAt = &t
	}
	return img, nil
}

func marshalVariants(vs []catalog.Variant) ([]byte, error) {
	if vs == nil {
		vs = []catalog.Variant{}
	}
	b, err := json.Marshal(vs)
	if err != nil {
		return nil, fmt.Errorf("encode variants: %w", err)
	}
	return b, nil
}

func imageError(e *catalog.ImageError) (code, detail *string, retryable bool) {
	if e == nil {
		return nil, nil, false
	}
	return &e.Code, &e.Detail, e.Retryable
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
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := bump(ctx, tx, p); err != nil {
			return err
		}
		var position int
		err := tx.QueryRow(ctx, `DELETE FROM images WHERE id = $1 AND product_id = $2 RETURNING position`, imageID, p.ID).Scan(&position)
		if errors.Is(err, pgx.ErrNoRows) {
			return catalog.NotFound("image %s of product %s", imageID, p.ID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE images SET position = position - 1 WHERE product_id = $1 AND position > $2`, p.ID, position)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete image %s of product %s: %w", imageID, p.ID, err)
	}
	return nil
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
	now := utc(db.now())
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := bump(ctx, tx, p); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE images SET position = g.position, alt = g.alt, focal_x = g.focal_x, focal_y = g.focal_y
			FROM jsonb_to_recordset($2::jsonb) AS g (id uuid, position integer, alt text, focal_x double precision, focal_y double precision)
			WHERE images.id = g.id AND images.product_id = $1`, p.ID, doc)
		if err != nil {
			return err
		}
		var stored int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM images WHERE product_id = $1`, p.ID).Scan(&stored); err != nil {
			return err
		}
		if tag.RowsAffected() != int64(len(p.Images)) || stored != int64(len(p.Images)) {
			return catalog.NotFound("an image of product %s", p.ID)
		}
		for _, id := range requeue {
			if _, err := tx.Exec(ctx, enqueueJob, id, p.ID, now, tracecontext.Of(ctx)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save gallery of product %s: %w", p.ID, err)
	}
	if len(requeue) > 0 {
		db.wake.Broadcast()
	}
	return nil
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

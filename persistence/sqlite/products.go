package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/transport/tracecontext"
	sqlite3 "modernc.org/sqlite/lib"
)

const productColumns = `id, user_id, name, description, price, currency, created_at, updated_at, version, sku`

const imageColumns = `id, product_id, status, error_code, error_detail, content_type, bytes, width, height,
	frames, sha256, variants, placeholder, dominant_color, animated, recipe_version, source_url,
	created_at, processed_at, position, alt, error_retryable, focal_x, focal_y`

// fold is the form of a name that searches compare: its Unicode lower case.
func fold(s string) string { return strings.ToLower(s) }

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
			return fmt.Errorf("create product %s: %w", p.ID, &catalog.Error{
				Kind: catalog.KindConflict, Code: "already_exists", Detail: "product " + p.ID + " already exists", Err: err})
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
	p, err := scanProduct(tx.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get product %s: %w", id, catalog.NotFound("product %s", id))
	}
	if err != nil {
		return nil, fmt.Errorf("get product %s: %w", id, db.translate(err))
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+imageColumns+` FROM images WHERE product_id = ? ORDER BY position, created_at, id`, id)
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
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return bump(ctx, tx, p) }); err != nil {
		return fmt.Errorf("update product %s: %w", p.ID, err)
	}
	return nil
}

// bump writes p over the stored product if the stored version is
// p.Version-1: NotFound if there is no such product, a VersionConflict if
// another write got there first.
func bump(ctx context.Context, tx *sql.Tx, p *catalog.Product) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE products
		SET user_id = ?, name = ?, name_fold = ?, description = ?, price = ?, currency = ?,
		    updated_at = ?, version = ?, sku = ?
		WHERE id = ? AND version = ?`,
		p.UserID, p.Name, fold(p.Name), p.Description, int64(p.Price), p.Currency,
		micros(p.UpdatedAt), p.Version, nullSKU(p.SKU), p.ID, p.Version-1)
	if err := skuTaken(err, p); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var exists int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM products WHERE id = ?`, p.ID).Scan(&exists)
	switch {
	case err != nil:
		return err
	case exists == 0:
		return catalog.NotFound("product %s", p.ID)
	default:
		return catalog.VersionConflict()
	}
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

// attachImages loads the images of all products in one query.
func attachImages(ctx context.Context, tx *sql.Tx, products []*catalog.Product) error {
	if len(products) == 0 {
		return nil
	}
	byID := make(map[string]*catalog.Product, len(products))
	ids := make([]string, len(products))
	for i, p := range products {
		byID[p.ID], ids[i] = p, p.ID
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	// The ids travel as one JSON array, whatever the page size.
	rows, err := tx.QueryContext(ctx, `
		SELECT `+imageColumns+` FROM images
		WHERE product_id IN (SELECT value FROM json_each(?))
		ORDER BY product_id, position, created_at, id`, string(idsJSON))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return err
		}
		if p := byID[img.ProductID]; p != nil {
			p.Images = append(p.Images, img)
		}
	}
	return rows.Err()
}

// AddImage stores a new image of p and its pending job, and bumps p, in one
// transaction. Waiting receivers are woken. img.ProductID must be p.ID or
// empty.
func (db *DB) AddImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	if img.ProductID != "" && img.ProductID != p.ID {
		return fmt.Errorf("add image %s: belongs to product %q, not %s", img.ID, img.ProductID, p.ID)
	}
	variants, err := marshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("add image %s: %w", img.ID, err)
	}
	now := micros(db.now())
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := bump(ctx, tx, p); err != nil {
			return err
		}
		errCode, errDetail, retryable := imageError(img.Error)
		focalX, focalY := catalog.FocalColumns(img.FocalPoint)
		// The new image goes last in the gallery.
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO images (`+imageColumns+`)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
			        (SELECT coalesce(max(position) + 1, 0) FROM images WHERE product_id = ?2), ?20, ?21, ?22, ?23)
			RETURNING position`,
			img.ID, p.ID, string(img.Status), errCode, errDetail,
			img.Original.ContentType, img.Original.Bytes, img.Original.Width, img.Original.Height,
			img.Original.Frames, img.Original.SHA256, variants,
			img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion, img.SourceURL,
			micros(img.CreatedAt), processedAt(img), img.Alt, retryable, focalX, focalY).Scan(&img.Position); err != nil {
			if code := sqliteCode(err); code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
				return &catalog.Error{Kind: catalog.KindConflict, Code: "already_exists", Detail: "image " + img.ID + " already exists", Err: err}
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `
			INSERT INTO jobs (image_id, product_id, attempts, available_at, lease_until, created_at, traceparent)
			VALUES (?, ?, 0, ?, NULL, ?, ?)`, img.ID, p.ID, now, now, tracecontext.Of(ctx))
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
	variants, err := marshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("save image %s: %w", img.ID, err)
	}
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return saveImage(ctx, tx, p, img, variants) }); err != nil {
		return fmt.Errorf("save image %s of product %s: %w", img.ID, p.ID, err)
	}
	return nil
}

// RequeueImage stores the changed image of p, bumps p and queues the
// image's job again, in one transaction: the job is due now, unpublished,
// its attempts reset and its dead letter dropped, as with Enqueue. It is
// how an image is processed anew. Waiting receivers are woken.
func (db *DB) RequeueImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error {
	variants, err := marshalVariants(img.Variants)
	if err != nil {
		return fmt.Errorf("requeue image %s: %w", img.ID, err)
	}
	now := micros(db.now())
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := saveImage(ctx, tx, p, img, variants); err != nil {
			return err
		}
		return enqueue(ctx, tx, catalog.Job{ImageID: img.ID, ProductID: p.ID}, now)
	})
	if err != nil {
		return fmt.Errorf("requeue image %s of product %s: %w", img.ID, p.ID, err)
	}
	db.wake.Broadcast()
	return nil
}

// saveImage bumps p and writes img over its stored row.
func saveImage(ctx context.Context, tx *sql.Tx, p *catalog.Product, img *catalog.Image, variants string) error {
	if err := bump(ctx, tx, p); err != nil {
		return err
	}
	errCode, errDetail, retryable := imageError(img.Error)
	res, err := tx.ExecContext(ctx, `
		UPDATE images
		SET status = ?, error_code = ?, error_detail = ?, content_type = ?, bytes = ?, width = ?,
		    height = ?, frames = ?, sha256 = ?, variants = ?, placeholder = ?,
		    dominant_color = ?, animated = ?, recipe_version = ?, source_url = ?,
		    processed_at = ?, error_retryable = ?
		WHERE id = ? AND product_id = ?`,
		string(img.Status), errCode, errDetail, img.Original.ContentType, img.Original.Bytes,
		img.Original.Width, img.Original.Height, img.Original.Frames, img.Original.SHA256,
		variants, img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion,
		img.SourceURL, processedAt(img), retryable, img.ID, p.ID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return catalog.NotFound("image %s of product %s", img.ID, p.ID)
	}
	return nil
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanProduct(r rowScanner) (*catalog.Product, error) {
	var p catalog.Product
	var price, created, updated int64
	var sku sql.NullString
	if err := r.Scan(&p.ID, &p.UserID, &p.Name, &p.Description, &price, &p.Currency, &created, &updated, &p.Version, &sku); err != nil {
		return nil, err
	}
	p.SKU = sku.String
	p.Price = catalog.Price(price)
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	p.Images = []catalog.Image{}
	return &p, nil
}

func scanImage(r rowScanner) (catalog.Image, error) {
	var img catalog.Image
	var status, variants string
	var errCode, errDetail sql.NullString
	var created int64
	var processed sql.NullInt64
	var retryable bool
	var focalX, focalY *float64
	o := &img.Original
	if err := r.Scan(&img.ID, &img.ProductID, &status, &errCode, &errDetail, &o.ContentType, &o.Bytes,
		&o.Width, &o.Height, &o.Frames, &o.SHA256, &variants, &img.Placeholder, &img.DominantColor,
		&img.Animated, &img.RecipeVersion, &img.SourceURL, &created, &processed,
		&img.Position, &img.Alt, &retryable, &focalX, &focalY); err != nil {
		return img, err
	}
	img.FocalPoint = catalog.FocalOf(focalX, focalY)
	img.Status = catalog.ImageStatus(status)
	if errCode.Valid {
		img.Error = &catalog.ImageError{Code: errCode.String, Detail: errDetail.String, Retryable: retryable}
	}
	if err := json.Unmarshal([]byte(variants), &img.Variants); err != nil {
		return img, fmt.Errorf("image %s: variants: %w", img.ID, err)
	}
	if img.Variants == nil {
		img.Variants = []catalog.Variant{}
	}
	img.CreatedAt = fromMicros(created)
	if processed.Valid {
		t := fromMicros(processed.Int64)
		img.ProcessedAt = &t
	}
	return img, nil
}

func marshalVariants(vs []catalog.Variant) (string, error) {
	if vs == nil {
		vs = []catalog.Variant{}
	}
	b, err := json.Marshal(vs)
	if err != nil {
		return "", fmt.Errorf("encode variants: %w", err)
	}
	return string(b), nil
}

func imageError(e *catalog.ImageError) (code, detail sql.NullString, retryable bool) {
	if e == nil {
		return code, detail, false
	}
	return sql.NullString{String: e.Code, Valid: true}, sql.NullString{String: e.Detail, Valid: true}, e.Retryable
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
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := bump(ctx, tx, p); err != nil {
			return err
		}
		var position int
		err := tx.QueryRowContext(ctx, `DELETE FROM images WHERE id = ? AND product_id = ? RETURNING position`, imageID, p.ID).Scan(&position)
		if errors.Is(err, sql.ErrNoRows) {
			return catalog.NotFound("image %s of product %s", imageID, p.ID)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE images SET position = position - 1 WHERE product_id = ? AND position > ?`, p.ID, position)
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
	doc, err := catalog.GalleryJSON(p.Images)
	if err != nil {
		return fmt.Errorf("save gallery of product %s: %w", p.ID, err)
	}
	now := micros(db.now())
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := bump(ctx, tx, p); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			UPDATE images SET position = g.value ->> 'position', alt = g.value ->> 'alt',
			    focal_x = g.value ->> 'focal_x', focal_y = g.value ->> 'focal_y'
			FROM json_each(?2) AS g
			WHERE images.id = g.value ->> 'id' AND images.product_id = ?1`, p.ID, string(doc))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		var stored int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM images WHERE product_id = ?`, p.ID).Scan(&stored); err != nil {
			return err
		}
		if n != int64(len(p.Images)) || stored != int64(len(p.Images)) {
			return catalog.NotFound("an image of product %s", p.ID)
		}
		for _, id := range requeue {
			if err := enqueue(ctx, tx, catalog.Job{ImageID: id, ProductID: p.ID}, now); err != nil {
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

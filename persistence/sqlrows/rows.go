package sqlrows

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// ProductRow reads a products row (ProductColumns). Its times are the
// store's to decode: a row scans into Dest, then Product makes the product.
type ProductRow struct {
	p     catalog.Product
	price int64
	sku   *string // NULL: no SKU
}

// Dest returns the scan destinations of ProductColumns; created and
// updated are those of created_at and updated_at, in the store's form.
func (r *ProductRow) Dest(created, updated any) []any {
	p := &r.p
	return []any{&p.ID, &p.UserID, &p.Name, &p.Description, &r.price, &p.Currency, created, updated, &p.Version, &r.sku}
}

// Product returns the product read, with its times as the store decoded
// them and no images yet.
func (r *ProductRow) Product(created, updated time.Time) *catalog.Product {
	p := r.p
	if r.sku != nil {
		p.SKU = *r.sku
	}
	p.Price = catalog.Price(r.price)
	p.CreatedAt, p.UpdatedAt = created, updated
	p.Images = []catalog.Image{}
	return &p
}

// ImageRow reads an images row (ImageColumns). Its times are the store's
// to decode: a row scans into Dest, then Image makes the image.
type ImageRow struct {
	img                catalog.Image
	status             string
	errCode, errDetail *string // NULL unless processing failed
	retryable          bool
	variants           []byte // JSON array of catalog.Variant
	focalX, focalY     *float64
}

// Dest returns the scan destinations of ImageColumns; created and
// processed are those of created_at and processed_at, in the store's form.
func (r *ImageRow) Dest(created, processed any) []any {
	img, o := &r.img, &r.img.Original
	return []any{&img.ID, &img.ProductID, &r.status, &r.errCode, &r.errDetail, &o.ContentType, &o.Bytes,
		&o.Width, &o.Height, &o.Frames, &o.SHA256, &r.variants, &img.Placeholder, &img.DominantColor,
		&img.Animated, &img.RecipeVersion, &img.SourceURL, created, processed,
		&img.Position, &img.Alt, &r.retryable, &r.focalX, &r.focalY}
}

// Image returns the image read, with its times as the store decoded them
// (processed nil: not processed yet).
func (r *ImageRow) Image(created time.Time, processed *time.Time) (catalog.Image, error) {
	img := r.img
	img.FocalPoint = catalog.FocalOf(r.focalX, r.focalY)
	img.Status = catalog.ImageStatus(r.status)
	if r.errCode != nil {
		img.Error = &catalog.ImageError{Code: *r.errCode, Retryable: r.retryable}
		if r.errDetail != nil {
			img.Error.Detail = *r.errDetail
		}
	}
	if err := json.Unmarshal(r.variants, &img.Variants); err != nil {
		return img, fmt.Errorf("image %s: variants: %w", img.ID, err)
	}
	if img.Variants == nil {
		img.Variants = []catalog.Variant{}
	}
	img.CreatedAt, img.ProcessedAt = created, processed
	return img, nil
}

// ImageValues is the values of ImageColumns that store img, an image of
// product productID, less position (an INSERT works it out: the image goes
// last in its gallery). variants (MarshalVariants' document), created and
// processed are in the store's form.
func ImageValues(productID string, img *catalog.Image, variants, created, processed any) []any {
	errCode, errDetail, retryable := imageError(img.Error)
	focalX, focalY := catalog.FocalColumns(img.FocalPoint)
	o := &img.Original
	return []any{img.ID, productID, string(img.Status), errCode, errDetail,
		o.ContentType, o.Bytes, o.Width, o.Height, o.Frames, o.SHA256, variants,
		img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion, img.SourceURL,
		created, processed, img.Alt, retryable, focalX, focalY}
}

// ImageStateValues is the values of ImageStateColumns that save img's
// state; variants and processed are in the store's form.
func ImageStateValues(img *catalog.Image, variants, processed any) []any {
	errCode, errDetail, retryable := imageError(img.Error)
	o := &img.Original
	return []any{string(img.Status), errCode, errDetail, o.ContentType, o.Bytes, o.Width, o.Height, o.Frames, o.SHA256,
		variants, img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion, img.SourceURL, processed, retryable}
}

// imageError is the error_code, error_detail and error_retryable columns
// of an image's error: NULL codes for none (both drivers write a nil
// pointer as NULL).
func imageError(e *catalog.ImageError) (code, detail *string, retryable bool) {
	if e == nil {
		return nil, nil, false
	}
	return &e.Code, &e.Detail, e.Retryable
}

// MarshalVariants is the JSON document of an image's variants stored in
// its variants column: an array, empty rather than null.
func MarshalVariants(vs []catalog.Variant) ([]byte, error) {
	if vs == nil {
		vs = []catalog.Variant{}
	}
	b, err := json.Marshal(vs)
	if err != nil {
		return nil, fmt.Errorf("encode variants: %w", err)
	}
	return b, nil
}

// ImageLoader is what AttachImages needs of a store.
type ImageLoader interface {
	// ImagesOf returns the images of the products of productIDs, in one
	// query: by product, each product's in gallery order (position, then
	// created_at and id).
	ImagesOf(ctx context.Context, productIDs []string) ([]catalog.Image, error)
}

// AttachImages loads the images of all products in one query and appends
// each to its product's.
func AttachImages(ctx context.Context, l ImageLoader, products []*catalog.Product) error {
	if len(products) == 0 {
		return nil
	}
	byID := make(map[string]*catalog.Product, len(products))
	ids := make([]string, len(products))
	for i, p := range products {
		byID[p.ID], ids[i] = p, p.ID
	}
	images, err := l.ImagesOf(ctx, ids)
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

package sqlrows

import (
	"context"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The writes of products and images below take the decisions; the store's
// statements do the reading and writing, in the transaction the store
// opened for the write (a lone Bump may run without one). Their errors are
// the statements' as they are, for the store to translate and wrap once.

// ProductWriter is what an optimistic write of a product needs of a store.
type ProductWriter interface {
	// UpdateProduct writes p over the stored product whose version is
	// p.Version-1, and reports whether there was one.
	UpdateProduct(ctx context.Context, p *catalog.Product) (bool, error)
	// ProductExists reports whether a product of that id is stored.
	ProductExists(ctx context.Context, id string) (bool, error)
}

// Bump writes p over the stored product if the stored version is
// p.Version-1: NotFound if there is no such product, a VersionConflict if
// another write got there first. Every write of a product's images bumps
// it first, so that its version orders them too.
func Bump(ctx context.Context, w ProductWriter, p *catalog.Product) error {
	updated, err := w.UpdateProduct(ctx, p)
	if err != nil || updated {
		return err
	}
	// Which of the two it is takes a second look: the UPDATE matched no
	// row either way.
	exists, err := w.ProductExists(ctx, p.ID)
	switch {
	case err != nil:
		return err
	case !exists:
		return catalog.NotFound("product %s", p.ID)
	default:
		return catalog.VersionConflict()
	}
}

// CheckImageOf is AddImage's refusal of img as a new image of p when it
// names another product (an empty ProductID is p's).
func CheckImageOf(p *catalog.Product, img *catalog.Image) error {
	if img.ProductID != "" && img.ProductID != p.ID {
		return fmt.Errorf("add image %s: belongs to product %q, not %s", img.ID, img.ProductID, p.ID)
	}
	return nil
}

// ImageAdder is what AddImage needs of a store.
type ImageAdder interface {
	ProductWriter
	// InsertImage stores img, a new image of product productID, last in
	// its gallery, and returns its position; an id already taken is
	// AlreadyExists.
	InsertImage(ctx context.Context, productID string, img *catalog.Image, variants []byte) (int, error)
	// InsertJob stores the pending job of a new image, due at now: the
	// image's entry of the outbox.
	InsertJob(ctx context.Context, job catalog.Job, now time.Time) error
}

// AddImage bumps p and stores img, a new image of it whose variants
// document is variants, with its pending job, due at now. img.Position is
// set to the image's place, last in the gallery.
func AddImage(ctx context.Context, a ImageAdder, p *catalog.Product, img *catalog.Image, variants []byte, now time.Time) error {
	if err := Bump(ctx, a, p); err != nil {
		return err
	}
	position, err := a.InsertImage(ctx, p.ID, img, variants)
	if err != nil {
		return err
	}
	img.Position = position
	return a.InsertJob(ctx, catalog.Job{ImageID: img.ID, ProductID: p.ID}, now)
}

// ImageSaver is what SaveImage needs of a store.
type ImageSaver interface {
	ProductWriter
	// UpdateImage writes img's state (ImageStateColumns) over the image of
	// product productID, and reports whether there was one.
	UpdateImage(ctx context.Context, productID string, img *catalog.Image, variants []byte) (bool, error)
}

// SaveImage bumps p and writes the state of img, one of its images, whose
// variants document is variants; NotFound when p has no such image.
func SaveImage(ctx context.Context, s ImageSaver, p *catalog.Product, img *catalog.Image, variants []byte) error {
	if err := Bump(ctx, s, p); err != nil {
		return err
	}
	updated, err := s.UpdateImage(ctx, p.ID, img, variants)
	if err != nil {
		return err
	}
	if !updated {
		return catalog.NotFound("image %s of product %s", img.ID, p.ID)
	}
	return nil
}

// Enqueuer is what the writes that queue a job again need of a store.
type Enqueuer interface {
	// Enqueue writes the job row of job, due at now, with no attempts
	// counted, unpublished and not leased, and drops the image's dead
	// letter.
	Enqueue(ctx context.Context, job catalog.Job, now time.Time) error
}

// ImageRequeuer is what RequeueImage needs of a store.
type ImageRequeuer interface {
	ImageSaver
	Enqueuer
}

// RequeueImage saves img as SaveImage does and queues its job again, due
// at now: how an image is processed anew.
func RequeueImage(ctx context.Context, r ImageRequeuer, p *catalog.Product, img *catalog.Image, variants []byte, now time.Time) error {
	if err := SaveImage(ctx, r, p, img, variants); err != nil {
		return err
	}
	return r.Enqueue(ctx, catalog.Job{ImageID: img.ID, ProductID: p.ID}, now)
}

// ImageDeleter is what DeleteImage needs of a store.
type ImageDeleter interface {
	ProductWriter
	// DeleteImage deletes the image of product productID (its job and dead
	// letter with it) and returns the place it had; found is false when
	// there was none.
	DeleteImage(ctx context.Context, productID, imageID string) (position int, found bool, err error)
	// CloseGap moves the images of product productID after position up one
	// place.
	CloseGap(ctx context.Context, productID string, position int) error
}

// DeleteImage bumps p and removes its image imageID; the images after it
// move up one place. NotFound when p has no such image.
func DeleteImage(ctx context.Context, d ImageDeleter, p *catalog.Product, imageID string) error {
	if err := Bump(ctx, d, p); err != nil {
		return err
	}
	position, found, err := d.DeleteImage(ctx, p.ID, imageID)
	if err != nil {
		return err
	}
	if !found {
		return catalog.NotFound("image %s of product %s", imageID, p.ID)
	}
	return d.CloseGap(ctx, p.ID, position)
}

// GallerySaver is what SaveGallery needs of a store.
type GallerySaver interface {
	ProductWriter
	Enqueuer
	// UpdateGallery writes the position, alt text and focal point of each
	// entry of doc (catalog.GalleryJSON's) over the image of product
	// productID it names, and counts the images written.
	UpdateGallery(ctx context.Context, productID string, doc []byte) (int64, error)
	// CountImages counts the images of product productID.
	CountImages(ctx context.Context, productID string) (int64, error)
}

// SaveGallery bumps p, stores its gallery, doc (catalog.GalleryJSON of
// p.Images), and queues the jobs of the images of requeue, due at now.
// p.Images must be the product's images, each once: NotFound when one is
// not, whether it is missing from the product or from p.Images.
func SaveGallery(ctx context.Context, g GallerySaver, p *catalog.Product, doc []byte, requeue []string, now time.Time) error {
	if err := Bump(ctx, g, p); err != nil {
		return err
	}
	updated, err := g.UpdateGallery(ctx, p.ID, doc)
	if err != nil {
		return err
	}
	stored, err := g.CountImages(ctx, p.ID)
	if err != nil {
		return err
	}
	if updated != int64(len(p.Images)) || stored != int64(len(p.Images)) {
		return catalog.NotFound("an image of product %s", p.ID)
	}
	for _, id := range requeue {
		if err := g.Enqueue(ctx, catalog.Job{ImageID: id, ProductID: p.ID}, now); err != nil {
			return err
		}
	}
	return nil
}

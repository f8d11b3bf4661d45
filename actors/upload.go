package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Header is what a probe reads from an image's header without decoding it.
type Header struct {
	ContentType string
	Width       int
	Height      int
	Frames      int
}

// Prober checks an upload by its magic bytes and header, within limits.
// Its errors are *catalog.Error values (unsupported media, over a limit,
// corrupt).
type Prober interface {
	Probe(data []byte) (Header, error)
}

// blobWriter is what uploads need of the blob store.
type blobWriter interface {
	Put(ctx context.Context, key string, data []byte, contentType string) error
	DeletePrefix(ctx context.Context, prefix string) error
}

// Uploads accepts image uploads: it probes them, keeps the original and
// records a pending image whose job the queue then hands to a worker.
type Uploads struct {
	service *Service
	prober  Prober
	blobs   blobWriter
	now     func() time.Time
}

// NewUploads returns Uploads over a Service.
func NewUploads(s *Service, p Prober, blobs blobWriter, now func() time.Time) *Uploads {
	return &Uploads{service: s, prober: p, blobs: blobs, now: now}
}

// Upload accepts data as a new image of product productID and returns the
// pending image as JSON.
func (u *Uploads) Upload(ctx context.Context, productID string, data []byte) (*catalog.Image, []byte, error) {
	// Unknown products are refused before any work is done for them.
	if _, err := u.service.Get(ctx, productID); err != nil {
		return nil, nil, err
	}
	if len(data) == 0 {
		return nil, nil, catalog.Errorf(catalog.KindInvalid, "empty_upload", "the uploaded file is empty")
	}
	h, err := u.prober.Probe(data)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	id := u.service.newID()
	img := &catalog.Image{
		ID:        id,
		ProductID: productID,
		Status:    catalog.StatusPending,
		Original: catalog.Original{ContentType: h.ContentType, Bytes: int64(len(data)), Width: h.Width, Height: h.Height,
			Frames: h.Frames, SHA256: hex.EncodeToString(sum[:])},
		Variants:  []catalog.Variant{},
		CreatedAt: u.now().UTC().Truncate(time.Microsecond),
	}
	if err := u.blobs.Put(ctx, catalog.OriginalKey(productID, id), data, h.ContentType); err != nil {
		return nil, nil, catalog.Unavailable("image storage", fmt.Errorf("store original of image %s: %w", id, err))
	}
	body, err := u.service.AddImage(ctx, img)
	if err != nil {
		// Nothing refers to the file: remove it (best effort; a leftover is
		// harmless, it is never served).
		_ = u.blobs.DeletePrefix(context.WithoutCancel(ctx), "products/"+productID+"/"+id+"/")
		return nil, nil, err
	}
	return img, body, nil
}

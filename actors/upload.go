package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// pending image as JSON. The same bytes uploaded again to the same product
// return the image they already made, with existing set, and no new job.
func (u *Uploads) Upload(ctx context.Context, productID string, data []byte) (img *catalog.Image, body []byte, existing bool, err error) {
	// Unknown products are refused before any work is done for them.
	if _, err := u.service.Get(ctx, productID); err != nil {
		return nil, nil, false, err
	}
	if len(data) == 0 {
		return nil, nil, false, catalog.Errorf(catalog.KindInvalid, "empty_upload", "the uploaded file is empty")
	}
	h, err := u.prober.Probe(data)
	if err != nil {
		return nil, nil, false, err
	}
	id := u.service.newID()
	img = &catalog.Image{
		ID:        id,
		ProductID: productID,
		Status:    catalog.StatusPending,
		Original:  originalOf(data, h),
		Variants:  []catalog.Variant{},
		CreatedAt: u.now().UTC().Truncate(time.Microsecond),
	}
	if err := u.blobs.Put(ctx, catalog.OriginalKey(productID, id), data, h.ContentType); err != nil {
		return nil, nil, false, catalog.Unavailable("image storage", fmt.Errorf("store original of image %s: %w", id, err))
	}
	body, existing, err = u.service.AddImage(ctx, img)
	if err != nil || existing {
		// Nothing refers to the file: remove it (best effort; a leftover is
		// harmless, it is never served).
		_ = u.blobs.DeletePrefix(context.WithoutCancel(ctx), catalog.ImagePrefix(productID, id))
	}
	if err != nil {
		return nil, nil, false, err
	}
	if existing {
		var prev catalog.Image
		if err := json.Unmarshal(body, &prev); err != nil {
			return nil, nil, false, fmt.Errorf("decode image: %w", err)
		}
		return &prev, body, true, nil
	}
	return img, body, false, nil
}

// Import records a pending image to be fetched from url by a worker.
func (u *Uploads) Import(ctx context.Context, productID, url string) (*catalog.Image, []byte, error) {
	if _, err := u.service.Get(ctx, productID); err != nil {
		return nil, nil, err
	}
	img := &catalog.Image{
		ID:        u.service.newID(),
		ProductID: productID,
		Status:    catalog.StatusPending,
		SourceURL: url,
		Variants:  []catalog.Variant{},
		CreatedAt: u.now().UTC().Truncate(time.Microsecond),
	}
	body, _, err := u.service.AddImage(ctx, img)
	if err != nil {
		return nil, nil, err
	}
	return img, body, nil
}

// originalOf describes an original from its bytes and header.
func originalOf(data []byte, h Header) catalog.Original {
	sum := sha256.Sum256(data)
	return catalog.Original{ContentType: h.ContentType, Bytes: int64(len(data)), Width: h.Width, Height: h.Height,
		Frames: h.Frames, SHA256: hex.EncodeToString(sum[:])}
}

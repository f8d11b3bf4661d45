package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// BacklogCounter counts image jobs not finished yet: uploads are refused
// beyond their limits (UploadLimits).
type BacklogCounter interface {
	// Backlog returns the jobs of every product, and of userID's products.
	Backlog(ctx context.Context, userID int64) (total, owned int, err error)
}

// UploadLimits bound the image backlog: beyond them uploads are refused,
// and nothing already accepted is dropped.
type UploadLimits struct {
	// MaxBacklog refuses uploads (503) while this many jobs wait; 0: no limit.
	MaxBacklog int
	// MaxOwnerBacklog refuses an owner's uploads (429) while this many jobs
	// of their products wait; 0: no limit.
	MaxOwnerBacklog int
	// RetryAfter is what a refused client is told to wait.
	RetryAfter time.Duration
}

// Uploads accepts image uploads: it probes them, keeps the original and
// records a pending image whose job the queue then hands to a worker.
type Uploads struct {
	service *Service
	prober  Prober
	blobs   blobWriter
	backlog BacklogCounter
	limits  UploadLimits
	now     func() time.Time
}

// NewUploads returns Uploads over a Service.
func NewUploads(s *Service, p Prober, blobs blobWriter, jobs BacklogCounter, limits UploadLimits, now func() time.Time) *Uploads {
	if limits.RetryAfter <= 0 {
		limits.RetryAfter = 10 * time.Second
	}
	return &Uploads{service: s, prober: p, blobs: blobs, backlog: jobs, limits: limits, now: now}
}

// admit checks that product productID exists, that owner (when not 0) may
// write it, and that the backlog has room for one more job.
func (u *Uploads) admit(ctx context.Context, productID string, owner int64) error {
	p, err := u.service.Get(ctx, productID)
	if err != nil {
		return err
	}
	var doc struct {
		UserID int64 `json:"user_id"`
	}
	if err := json.Unmarshal(p.Body, &doc); err != nil {
		return fmt.Errorf("decode product %s: %w", productID, err)
	}
	if owner != 0 && doc.UserID != owner {
		return catalog.Forbidden("product %s belongs to another owner; this key may change only the products of user_id %d", productID, owner)
	}
	if u.limits.MaxBacklog <= 0 && u.limits.MaxOwnerBacklog <= 0 {
		return nil
	}
	// Counted within a store call's deadline, not the request's: a
	// database that stopped answering answers the upload 503 as soon as
	// it does a product write.
	sctx, cancel := storeDeadline(ctx)
	defer cancel()
	total, owned, err := u.backlog.Backlog(sctx, doc.UserID)
	if err != nil {
		return storeTimedOut(ctx, sctx, "count the image backlog", err)
	}
	if u.limits.MaxBacklog > 0 && total >= u.limits.MaxBacklog {
		return &catalog.Error{Kind: catalog.KindUnavailable, Code: "backlog_full", RetryAfter: u.limits.RetryAfter,
			Detail: fmt.Sprintf("%d image jobs are waiting, the most this service queues; retry later", total)}
	}
	if u.limits.MaxOwnerBacklog > 0 && owned >= u.limits.MaxOwnerBacklog {
		return &catalog.Error{Kind: catalog.KindTooManyRequests, Code: "owner_backlog_full", RetryAfter: u.limits.RetryAfter,
			Detail: fmt.Sprintf("%d image jobs of user_id %d are waiting, the most one owner may queue; retry later", owned, doc.UserID)}
	}
	return nil
}

// Upload accepts data as a new image of product productID and returns the
// pending image as JSON. The same bytes uploaded again to the same product
// return the image they already made, with existing set, and no new job.
// owner, when not 0, restricts the upload to that user_id's products.
func (u *Uploads) Upload(ctx context.Context, productID string, data []byte, owner int64) (img *catalog.Image, body []byte, existing bool, err error) {
	// Unknown products and a full backlog are refused before any work.
	if err := u.admit(ctx, productID, owner); err != nil {
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
	body, existing, err = u.service.AddImage(ctx, img, owner)
	if err != nil && !refused(err) {
		// The image may have been recorded all the same (its answer was
		// lost, or the actor timed out while it went on): its job will
		// read the original, and the client's retry dedupes onto it. So
		// the file stays; if the image was never recorded, the file is
		// an orphan that the sweeper (persistence/orphans) removes after
		// its grace period.
		return nil, nil, false, err
	}
	if err != nil || existing {
		// Nothing refers to the file: remove it. A leftover is harmless
		// (originals are never served) and the orphan sweeper removes it.
		// After a dedupe the upload stands whatever the removal does.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
		if rerr := u.blobs.DeletePrefix(rctx, catalog.ImagePrefix(productID, id)); rerr != nil && err != nil {
			err = errors.Join(err, fmt.Errorf("remove the original of image %s, not recorded: %w", id, rerr))
		}
		cancel()
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
func (u *Uploads) Import(ctx context.Context, productID, url string, owner int64) (*catalog.Image, []byte, error) {
	if err := u.admit(ctx, productID, owner); err != nil {
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
	body, _, err := u.service.AddImage(ctx, img, owner)
	if err != nil {
		return nil, nil, err
	}
	return img, body, nil
}

// refused reports whether err is a write's definite refusal, so that it
// was not applied: a product that does not exist or refuses the image.
// An outcome unknown, an unavailable actor or store, or an internal error
// (an answer that could not be read) may each hide a write that was
// applied.
func refused(err error) bool {
	if errors.Is(err, ErrOutcomeUnknown) {
		return false
	}
	switch catalog.ErrorKind(err) {
	case catalog.KindUnavailable, catalog.KindInternal:
		return false
	}
	return true
}

// originalOf describes an original from its bytes and header.
func originalOf(data []byte, h Header) catalog.Original {
	sum := sha256.Sum256(data)
	return catalog.Original{ContentType: h.ContentType, Bytes: int64(len(data)), Width: h.Width, Height: h.Height,
		Frames: h.Frames, SHA256: hex.EncodeToString(sum[:])}
}

package catalog

import (
	"context"
	"strings"
	"time"
	"unicode"
)

// ProductFilter selects a page of products, newest first.
type ProductFilter struct {
	UserID   int64  // 0: any owner
	MinPrice *Price // inclusive
	MaxPrice *Price // inclusive
	Query    string // case-insensitive substring of the name
	Limit    int
	After    string // keyset cursor: the id of the last product of the previous page
}

// MatchesNothing reports whether no product can match f: its query holds a
// control character, which no name does (stores answer an empty page
// without asking their query parsers, which may refuse such text).
func (f ProductFilter) MatchesNothing() bool {
	return strings.ContainsFunc(f.Query, unicode.IsControl)
}

// ProductStore keeps products and their images durably. Writes are
// optimistic: UpdateProduct, AddImage and SaveImage take a product whose
// Version is one more than the stored one and fail with ErrVersionConflict
// otherwise; every image change bumps the product's version in the same
// transaction.
type ProductStore interface {
	CreateProduct(ctx context.Context, p *Product) error
	GetProduct(ctx context.Context, id string) (*Product, error)
	UpdateProduct(ctx context.Context, p *Product) error
	DeleteProduct(ctx context.Context, id string) error
	ListProducts(ctx context.Context, f ProductFilter) ([]*Product, error)
	// ListProductIDs returns the ids of the page ListProducts returns, in
	// its order, reading as little as it can (indexes only, where they
	// allow): the products themselves are often in the hot cache.
	ListProductIDs(ctx context.Context, f ProductFilter) ([]string, error)
	// GetProducts returns the products of ids with their images, in no
	// particular order; ids of no product are left out.
	GetProducts(ctx context.Context, ids []string) ([]*Product, error)
	// AddImage records a new image and its pending job in one transaction.
	AddImage(ctx context.Context, p *Product, img *Image) error
	// SaveImage records a change of an existing image.
	SaveImage(ctx context.Context, p *Product, img *Image) error
	Ping(ctx context.Context) error
}

// Delivery is one job handed to a consumer. Exactly one of Ack or Retry
// must be called; a delivery neither acked nor retried is redelivered after
// its consumer dies.
type Delivery interface {
	Job() Job
	// Attempt counts deliveries of this job, this one included.
	Attempt() int
	Ack(ctx context.Context) error
	// Retry puts the job back to be delivered again after delay.
	Retry(ctx context.Context, delay time.Duration) error
	// DeadLetter ends the job without success after its last attempt: it
	// is acknowledged and kept as a dead letter that an operator can list
	// and replay.
	DeadLetter(ctx context.Context, code, detail string) error
}

// JobQueue hands out image jobs, at least once each.
type JobQueue interface {
	// Receive blocks until a job is available or ctx ends.
	Receive(ctx context.Context) (Delivery, error)
}

// BlobStore keeps files: originals and variants.
type BlobStore interface {
	Put(ctx context.Context, key string, data []byte, contentType string) error
	Get(ctx context.Context, key string) ([]byte, error)
	// DeletePrefix removes every blob whose key starts with prefix.
	DeletePrefix(ctx context.Context, prefix string) error
	// URL is where clients fetch the blob.
	URL(key string) string
	Ping(ctx context.Context) error
}

// Cache keeps rendered product representations for the hot read path.
type Cache interface {
	Get(ctx context.Context, id string) ([]byte, bool)
	Set(ctx context.Context, id string, value []byte)
	Delete(ctx context.Context, id string)
}

// JobOutbox is the store's side of image jobs: AddImage writes a job row in
// the same transaction as its image, and a relay publishes due rows to a
// broker. Rows are removed when the job's outcome is stored.
type JobOutbox interface {
	// DueJobs returns up to n unpublished jobs whose time has come, oldest first.
	DueJobs(ctx context.Context, n int) ([]Job, error)
	// MarkPublished records that the broker has these jobs.
	MarkPublished(ctx context.Context, imageIDs []string) error
	// Enqueue (re)schedules an image's job to be due now and unpublished,
	// its attempts reset: reprocessing and replays go through it.
	Enqueue(ctx context.Context, job Job) error
	// StartAttempt counts one more start of the job, before it runs, and
	// returns the count; a job that no longer exists returns NotFound.
	StartAttempt(ctx context.Context, imageID string) (int, error)
	// Reschedule makes the job due again, unpublished, after delay.
	Reschedule(ctx context.Context, imageID string, delay time.Duration) error
	// FinishJob removes the job row.
	FinishJob(ctx context.Context, imageID string) error
	// BuryJob replaces the job row by a dead letter.
	BuryJob(ctx context.Context, dl DeadLetter) error
}

// DeadLetter is a job that failed for good.
type DeadLetter struct {
	Job      Job       `json:"job"`
	Code     string    `json:"code"`
	Detail   string    `json:"detail"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failed_at"`
}

// DeadLetters lets an operator see failed jobs and run them again.
type DeadLetters interface {
	// ListDeadLetters returns dead letters, newest first.
	ListDeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// ReviveDeadLetter removes the dead letter and enqueues its job again;
	// NotFound when there is none for imageID.
	ReviveDeadLetter(ctx context.Context, imageID string) (Job, error)
}

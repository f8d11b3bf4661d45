package catalog

import (
	"context"
	"errors"
	"io"
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
// Version is one more than the stored one and fail with a VersionConflict
// otherwise; every image change bumps the product's version in the same
// transaction.
type ProductStore interface {
	CreateProduct(ctx context.Context, p *Product) error
	GetProduct(ctx context.Context, id string) (*Product, error)
	UpdateProduct(ctx context.Context, p *Product) error
	DeleteProduct(ctx context.Context, id string) error
	// ListProductIDs returns the ids of a page of products, newest first,
	// that match f, reading as little as it can (indexes only, where they
	// allow): the products themselves are often in the hot cache. A Limit
	// of 0 or less means no limit.
	ListProductIDs(ctx context.Context, f ProductFilter) ([]string, error)
	// GetProducts returns the products of ids with their images, in no
	// particular order; ids of no product are left out.
	GetProducts(ctx context.Context, ids []string) ([]*Product, error)
	// ProductIDBySKU returns the id of the owner's product with that SKU;
	// NotFound when none has it. CreateProduct and UpdateProduct refuse a
	// SKU another product of the owner has, with code sku_taken.
	ProductIDBySKU(ctx context.Context, owner int64, sku string) (string, error)
	// AddImage records a new image and its pending job in one transaction.
	AddImage(ctx context.Context, p *Product, img *Image) error
	// SaveImage records a change of an existing image; its gallery
	// fields (Position, Alt) are left as stored. AddImage puts the new
	// image last in the gallery and sets its Position.
	SaveImage(ctx context.Context, p *Product, img *Image) error
	// DeleteImage removes an image of p with its job and dead letter; the
	// images after it move up one place. NotFound when there is none.
	DeleteImage(ctx context.Context, p *Product, imageID string) error
	// SaveGallery stores the order of p.Images (each one's Position becomes
	// its index), their alt texts and focal points, and queues the jobs of
	// the images of requeue (due now, attempts reset, as JobOutbox.Enqueue
	// does). p.Images must hold every image of the product once; NotFound
	// otherwise.
	SaveGallery(ctx context.Context, p *Product, requeue []string) error
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
	// Create stores data under key unless a blob is there already, and
	// reports whether it wrote: of concurrent Creates of one key, one
	// writes. Variants are created, so each is written once per recipe
	// version however often its job runs.
	Create(ctx context.Context, key string, data []byte, contentType string) (bool, error)
	Get(ctx context.Context, key string) ([]byte, error)
	// DeletePrefix removes every blob whose key starts with prefix.
	DeletePrefix(ctx context.Context, prefix string) error
	// Delete removes the blobs of keys; missing ones are no error.
	Delete(ctx context.Context, keys []string) error
	// List calls fn with each blob whose key starts with prefix, until fn
	// returns an error, which List returns.
	List(ctx context.Context, prefix string, fn func(BlobInfo) error) error
	// URL is where clients fetch the blob.
	URL(key string) string
	Ping(ctx context.Context) error
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// BlobRequest asks for a blob to be streamed, conditionally and in part,
// as an HTTP GET asks: the values of its Range and If-None-Match headers
// ("": none). HeadOnly asks for the blob's description without its
// content.
type BlobRequest struct {
	Range       string
	IfNoneMatch string
	HeadOnly    bool
}

// BlobStream is a blob being read for a BlobRequest.
type BlobStream struct {
	// Body streams the content (the range asked for); nil when NotModified,
	// Unsatisfiable or HeadOnly. The reader closes it.
	Body io.ReadCloser
	// Size is the length of Body (of the range); Total the blob's.
	Size  int64
	Total int64
	// ContentRange is the Content-Range of a partial answer, "" for the
	// whole blob.
	ContentRange string
	ContentType  string
	ETag         string
	ModTime      time.Time
	// NotModified: the request's conditions say the client's copy is
	// current. Unsatisfiable: the range lies outside the blob.
	NotModified   bool
	Unsatisfiable bool
}

// Cache keeps rendered product representations for the hot read path.
//
// Writes carry the product's version, and a cache keeps the newest write it
// was given: a write that arrives late (a slow or retried call, a second
// grain during a membership change) cannot replace a newer one. Versions
// are never negative; 0 precedes every product's.
type Cache interface {
	Get(ctx context.Context, id string) ([]byte, bool)
	// Set keeps value, the product at version, unless the cache holds
	// that version or a newer one, or the product's deletion at that
	// version or a newer one.
	Set(ctx context.Context, id string, version int64, value []byte)
	// Delete forgets the product, deleted at version (its last): a Set of
	// that version or an older one that arrives afterwards is refused, so
	// a late write cannot bring a deleted product back.
	Delete(ctx context.Context, id string, version int64)
}

// JobOutbox is the store's side of image jobs: AddImage writes a job row in
// the same transaction as its image, a relay publishes due rows to a broker,
// and the broker's consumers claim a row before its job runs and store the
// job's outcome under that claim. Rows are removed when the outcome is
// stored.
//
// Claims make duplicates harmless: one relay publishes a row at a time
// (relays of other processes claim other rows), and one delivery runs a job
// at a time (a second delivery of it finds the row claimed, or gone, and
// changes nothing, its attempt not counted). A claim that its holder does
// not release runs out after its lease: the row is then published again.
type JobOutbox interface {
	// ClaimDue claims up to n jobs for a relay to publish, for lease, oldest
	// first: those that are due and unpublished, those whose delivery's
	// lease ran out (its consumer died), and those published redeliver ago
	// or more that no delivery claimed since (their message was lost by
	// the broker; a redeliver ≤ 0 never publishes a job again for that).
	// It returns them and the claim's token.
	ClaimDue(ctx context.Context, n int, lease, redeliver time.Duration) ([]Job, int64, error)
	// MarkPublished records that the broker has the jobs of these images,
	// those still held by the relay's claim token (a job rescheduled,
	// claimed by a delivery or enqueued since is left as it is).
	MarkPublished(ctx context.Context, token int64, imageIDs []string) error
	// Unclaim gives back the jobs of these images that the relay's claim
	// token still holds, unpublished: the relay could not publish them,
	// and they are claimed again at once rather than when the claim runs
	// out.
	Unclaim(ctx context.Context, token int64, imageIDs []string) error
	// Enqueue (re)schedules an image's job to be due now and unpublished,
	// its attempts reset and its claims dropped: reprocessing and replays go
	// through it.
	Enqueue(ctx context.Context, job Job) error
	// ClaimJob claims a delivered job for lease before it runs and counts
	// its attempt. A job that no longer exists is NotFound; one that another
	// delivery holds, or that is not due (rescheduled since this delivery
	// was published), is ErrJobBusy: the delivery is a duplicate.
	ClaimJob(ctx context.Context, imageID string, lease time.Duration) (JobClaim, error)
	// Reschedule makes the job due again, unpublished, after delay; its
	// attempts are kept.
	Reschedule(ctx context.Context, imageID string, token int64, delay time.Duration) error
	// FinishJob removes the job row.
	FinishJob(ctx context.Context, imageID string, token int64) error
	// BuryJob replaces the job row by a dead letter.
	//
	// Reschedule, FinishJob and BuryJob act only while the claim token
	// holds the job; after the lease was lost they change nothing, and the
	// job belongs to its newer delivery.
	BuryJob(ctx context.Context, dl DeadLetter, token int64) error
}

// JobClaim is a delivered job's claim: Token names it, Attempt counts the
// starts of the job, this one included.
type JobClaim struct {
	Token   int64
	Attempt int
}

// ErrJobBusy is ClaimJob's answer for a job that another delivery holds, or
// that is not due: the delivery at hand is a duplicate.
var ErrJobBusy = errors.New("the job is claimed by another delivery or not due yet")

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

// Package sqlrows is what vitrine's two SQL stores, persistence/postgres
// and persistence/sqlite, share above their dialects: the column lists of
// the schema both migrate to, how a row of it is read into catalog values
// and written from them, and the decisions a write takes from what its
// statements changed or found (a product whose version moved on, an image
// that is not there, an import lease lost to another runner).
//
// The SQL stays with each store, where the dialects part ways ($1 against
// ?, timestamptz against unix microseconds, jsonb against TEXT, uuid[]
// against json_each, SKIP LOCKED): a flow here runs the store's statements
// through a small interface that the store implements, and the store
// encodes the values whose stored form is its dialect's (times, JSON
// documents) before they reach the row helpers.
package sqlrows

import (
	"math/rand/v2"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The columns that the stores read, in the order of the destinations
// (ProductRow.Dest, ImageRow.Dest, Claimed.Dest) and of the values
// (ImageValues, ImageStateValues) of this package.
const (
	// ProductColumns are a products row's, as ProductRow reads them.
	ProductColumns = `id, user_id, name, description, price, currency, created_at, updated_at, version, sku`
	// ImageColumns are an images row's, as ImageRow reads them and
	// ImageValues writes them.
	ImageColumns = `id, product_id, status, error_code, error_detail, content_type, bytes, width, height,
	frames, sha256, variants, placeholder, dominant_color, animated, recipe_version, source_url,
	created_at, processed_at, position, alt, error_retryable, focal_x, focal_y`
	// ImageStateColumns are the columns of an image that saving it writes
	// (the outcome of its processing), in ImageStateValues' order.
	ImageStateColumns = `status, error_code, error_detail, content_type, bytes, width, height, frames, sha256,
	variants, placeholder, dominant_color, animated, recipe_version, source_url, processed_at, error_retryable`
	// KeyColumns are an api_keys row's.
	KeyColumns = `id, name, hash, hint, scopes, owner, created_at, revoked_at`
	// ImportColumns are an imports row's.
	ImportColumns = `id, owner, format, status, total, applied, failed, created_at, finished_at`
	// ClaimedColumns are those of a claimed jobs row that Claimed reads.
	ClaimedColumns = `image_id, product_id, attempts, traceparent`
)

// NewToken names a claim or a lease: random, so that those of every
// process sharing a database differ.
func NewToken() int64 { return rand.Int64() } // #nosec G404 -- a fencing token telling claims apart, never a secret

// AlreadyExists is the conflict of a write that gave a new row (what: a
// product, an image) an id another row has; cause is the driver's error.
func AlreadyExists(what, id string, cause error) error {
	return &catalog.Error{Kind: catalog.KindConflict, Code: "already_exists", Detail: what + " " + id + " already exists", Err: cause}
}

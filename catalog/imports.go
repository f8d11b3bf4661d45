package catalog

import (
	"context"
	"errors"
	"time"
)

// An import brings a whole catalog in: its rows (one product each, with
// the URLs of its images) are stored durably when the file is accepted,
// then applied one at a time, in line order, by whichever node holds the
// import's lease. A row is an upsert by SKU, so applying it again (after
// the node applying it died before recording its outcome) changes nothing
// more.

// ImportStatus is where an import is.
type ImportStatus string

// The statuses of an import.
const (
	ImportQueued    ImportStatus = "queued"    // stored, no row applied yet
	ImportRunning   ImportStatus = "running"   // a node is applying its rows
	ImportCompleted ImportStatus = "completed" // every row applied or failed
)

// Import is an accepted catalog file and its progress.
type Import struct {
	ID string `json:"id"`
	// Owner is the user_id the importing key is bound to (0: any): the
	// import may write only that owner's products, and only callers that
	// may write them may read it.
	Owner      int64        `json:"-"`
	Format     string       `json:"format"` // ndjson or csv
	Status     ImportStatus `json:"status"`
	Total      int          `json:"-"`
	Applied    int          `json:"-"`
	Failed     int          `json:"-"`
	CreatedAt  time.Time    `json:"created_at"`
	FinishedAt *time.Time   `json:"finished_at"`
}

// ImportRow is one row of an import: its line in the file (for CSV, the
// line its record starts on) and its product document as JSON, with its
// images under "images": [{"url", "alt"}].
type ImportRow struct {
	Line int
	Doc  []byte
	// SKU is the row's SKU as its product will have it ("": none).
	SKU string
	// SupersededBy is the line of the import's last row of the same SKU
	// when it comes after this one (0: none): the last row of a SKU is
	// the one applied.
	SupersededBy int
}

// ImportRowError says why a row was not applied.
type ImportRowError struct {
	Line   int          `json:"line"`
	Code   string       `json:"code"`
	Detail string       `json:"detail"`
	Fields []FieldError `json:"errors,omitempty"`
}

// ErrImportLeaseLost is the answer of an import store to a runner whose
// lease on an import ran out (another runner holds it now).
var ErrImportLeaseLost = errors.New("the import's lease was lost to another runner")

// ImportStore keeps imports and their rows.
type ImportStore interface {
	// CreateImport stores imp (its Total set by the store) and every row
	// that next yields until it returns io.EOF, in one transaction: when
	// next fails, nothing is stored and its error is returned.
	CreateImport(ctx context.Context, imp *Import, next func() (ImportRow, error)) error
	// GetImport returns an import with its counts; NotFound if none.
	GetImport(ctx context.Context, id string) (*Import, error)
	// ImportErrors returns the errors of failed rows after line, in line
	// order, at most limit.
	ImportErrors(ctx context.Context, id string, afterLine, limit int) ([]ImportRowError, error)
	// ClaimImport leases, for lease, the oldest import that is not
	// completed and that no runner holds (or whose runner's lease ran
	// out), and returns it with the lease's token; NotFound when there
	// is none.
	ClaimImport(ctx context.Context, lease time.Duration) (*Import, int64, error)
	// PendingImportRows returns up to limit rows of the import whose
	// outcome is not recorded, in line order, with SupersededBy set.
	PendingImportRows(ctx context.Context, id string, limit int) ([]ImportRow, error)
	// RecordImportRow records a row's outcome (rowErr nil: applied) and
	// extends the lease; ErrImportLeaseLost when token no longer holds it.
	RecordImportRow(ctx context.Context, id string, token int64, line int, rowErr *ImportRowError, lease time.Duration) error
	// RenewImport extends the lease; ErrImportLeaseLost as above.
	RenewImport(ctx context.Context, id string, token int64, lease time.Duration) error
	// FinishImport marks the import completed and releases its lease.
	FinishImport(ctx context.Context, id string, token int64) error
}

package sqlrows

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The state column of an import_rows row whose outcome is recorded (0
// while it is pending).
const (
	rowApplied = 1
	rowFailed  = 2 // error holds its catalog.ImportRowError
)

// RowOutcome is what recording the outcome of an import's row writes: the
// row's state and error document (nil for none), and what it adds to the
// import's counts.
type RowOutcome struct {
	State           int
	Error           []byte
	Applied, Failed int
}

// OutcomeOf is the outcome of a row that rowErr failed (nil: applied).
func OutcomeOf(rowErr *catalog.ImportRowError) (RowOutcome, error) {
	if rowErr == nil {
		return RowOutcome{State: rowApplied, Applied: 1}, nil
	}
	doc, err := json.Marshal(rowErr)
	if err != nil {
		return RowOutcome{}, fmt.Errorf("encode the row's error: %w", err)
	}
	return RowOutcome{State: rowFailed, Error: doc, Failed: 1}, nil
}

// ImportRecorder is what RecordImportRow needs of a store.
type ImportRecorder interface {
	// SetRowOutcome stores the state and error document of a pending row
	// of import id, and reports whether it was pending.
	SetRowOutcome(ctx context.Context, id string, line, state int, doc []byte) (bool, error)
	// CountRow adds to the counts of import id and extends its lease by
	// lease from now, if token holds it; it reports whether it did.
	CountRow(ctx context.Context, id string, token int64, applied, failed int, lease time.Duration) (bool, error)
}

// RecordImportRow records the outcome of row line of import id under the
// lease token and extends the lease. A row recorded before (a runner that
// lost its lease, or a retry) is counted once. ErrImportLeaseLost when
// token no longer holds the import.
func RecordImportRow(ctx context.Context, r ImportRecorder, id string, token int64, line int, o RowOutcome, lease time.Duration) error {
	pending, err := r.SetRowOutcome(ctx, id, line, o.State, o.Error)
	if err != nil {
		return err
	}
	if !pending {
		o.Applied, o.Failed = 0, 0 // recorded before: count it once
	}
	held, err := r.CountRow(ctx, id, token, o.Applied, o.Failed, lease)
	if err != nil {
		return err
	}
	if !held {
		return catalog.ErrImportLeaseLost
	}
	return nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

var _ catalog.ImportStore = (*DB)(nil)

// importBatch and importBatchBytes bound what CreateImport sends to the
// server at once (and holds in memory): 500 rows, or 4 MiB of them.
const (
	importBatch      = 500
	importBatchBytes = 4 << 20
)

// CreateImport stores imp and the rows next yields in one transaction;
// nothing is stored when next fails.
func (db *DB) CreateImport(ctx context.Context, imp *catalog.Import, next func() (catalog.ImportRow, error)) error {
	if !catalog.ValidID(imp.ID) {
		return fmt.Errorf("create import: %w", invalidID("import", imp.ID))
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO imports (id, owner, format, status, total, created_at) VALUES ($1, $2, $3, $4, 0, $5)`,
			imp.ID, imp.Owner, imp.Format, string(catalog.ImportQueued), utc(imp.CreatedAt)); err != nil {
			return err
		}
		total := 0
		for done := false; !done; {
			var batch pgx.Batch
			for size := 0; batch.Len() < importBatch && size < importBatchBytes; {
				row, err := next()
				if errors.Is(err, io.EOF) {
					done = true
					break
				}
				if err != nil {
					return err
				}
				batch.Queue(`INSERT INTO import_rows (import_id, line, doc, sku) VALUES ($1, $2, $3, $4)`, imp.ID, row.Line, string(row.Doc), nullSKU(row.SKU))
				size += len(row.Doc)
			}
			total += batch.Len()
			if batch.Len() > 0 {
				if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
					return err
				}
			}
		}
		imp.Total, imp.Status = total, catalog.ImportQueued
		_, err := tx.Exec(ctx, `UPDATE imports SET total = $2 WHERE id = $1`, imp.ID, total)
		return err
	})
	if err != nil {
		return fmt.Errorf("create import %s: %w", imp.ID, err)
	}
	return nil
}

func scanImport(row pgx.Row) (*catalog.Import, error) {
	var imp catalog.Import
	var status string
	if err := row.Scan(&imp.ID, &imp.Owner, &imp.Format, &status, &imp.Total, &imp.Applied, &imp.Failed,
		&imp.CreatedAt, &imp.FinishedAt); err != nil {
		return nil, err
	}
	imp.Status = catalog.ImportStatus(status)
	imp.CreatedAt = imp.CreatedAt.UTC()
	if imp.FinishedAt != nil {
		t := imp.FinishedAt.UTC()
		imp.FinishedAt = &t
	}
	return &imp, nil
}

// GetImport returns an import with its counts.
func (db *DB) GetImport(ctx context.Context, id string) (*catalog.Import, error) {
	if !catalog.ValidID(id) {
		return nil, catalog.NotFound("import %q does not exist", id)
	}
	imp, err := scanImport(db.pool.QueryRow(ctx, `SELECT `+sqlrows.ImportColumns+` FROM imports WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, catalog.NotFound("import %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get import %s: %w", id, db.translate(ctx, err))
	}
	return imp, nil
}

// ImportErrors returns the errors of failed rows after line, in line order.
func (db *DB) ImportErrors(ctx context.Context, id string, afterLine, limit int) ([]catalog.ImportRowError, error) {
	if !catalog.ValidID(id) {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `
		SELECT error FROM import_rows WHERE import_id = $1 AND state = 2 AND line > $2 ORDER BY line LIMIT $3`, id, afterLine, limit)
	if err != nil {
		return nil, fmt.Errorf("errors of import %s: %w", id, db.translate(ctx, err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.ImportRowError, error) {
		var e catalog.ImportRowError
		var doc []byte
		if err := row.Scan(&doc); err != nil {
			return e, err
		}
		err := json.Unmarshal(doc, &e) // before the return reads e: the order of the two is unspecified
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("errors of import %s: %w", id, db.translate(ctx, err))
	}
	return out, nil
}

// ClaimImport leases the oldest import that is not completed and that no
// live lease holds.
func (db *DB) ClaimImport(ctx context.Context, lease time.Duration) (*catalog.Import, int64, error) {
	now, token := utc(db.now()), sqlrows.NewToken()
	imp, err := scanImport(db.pool.QueryRow(ctx, `
		UPDATE imports SET status = $3, lease_until = $2, lease_token = $4
		WHERE id = (SELECT id FROM imports
		            WHERE status <> 'completed' AND (lease_until IS NULL OR lease_until < $1)
		            ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+sqlrows.ImportColumns, now, utc(now.Add(lease)), string(catalog.ImportRunning), token))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, catalog.NotFound("no import to run")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("claim an import: %w", db.translate(ctx, err))
	}
	return imp, token, nil
}

// PendingImportRows returns rows whose outcome is not recorded, in line order.
func (db *DB) PendingImportRows(ctx context.Context, id string, limit int) ([]catalog.ImportRow, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT line, doc, coalesce(sku, ''),
		       coalesce((SELECT max(l.line) FROM import_rows l WHERE l.import_id = r.import_id AND l.sku = r.sku AND l.line > r.line), 0)
		FROM import_rows r WHERE import_id = $1 AND state = 0 ORDER BY line LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("rows of import %s: %w", id, db.translate(ctx, err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.ImportRow, error) {
		var r catalog.ImportRow
		var doc string
		err := row.Scan(&r.Line, &doc, &r.SKU, &r.SupersededBy)
		r.Doc = []byte(doc)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("rows of import %s: %w", id, db.translate(ctx, err))
	}
	return out, nil
}

// RecordImportRow records a row's outcome under the lease and extends it.
func (db *DB) RecordImportRow(ctx context.Context, id string, token int64, line int, rowErr *catalog.ImportRowError, lease time.Duration) error {
	outcome, err := sqlrows.OutcomeOf(rowErr)
	if err == nil {
		err = db.inTx(ctx, func(tx pgx.Tx) error {
			return sqlrows.RecordImportRow(ctx, importStatements{tx: tx, now: db.now}, id, token, line, outcome, lease)
		})
	}
	if err != nil {
		return fmt.Errorf("record row %d of import %s: %w", line, id, err)
	}
	return nil
}

// importStatements runs the statements of sqlrows.RecordImportRow in a
// transaction.
type importStatements struct {
	tx  pgx.Tx
	now func() time.Time
}

// SetRowOutcome stores the outcome of a pending row (sqlrows.RecordImportRow).
func (s importStatements) SetRowOutcome(ctx context.Context, id string, line, state int, doc []byte) (bool, error) {
	tag, err := s.tx.Exec(ctx, `
		UPDATE import_rows SET state = $3, error = $4 WHERE import_id = $1 AND line = $2 AND state = 0`, id, line, state, doc)
	return tag.RowsAffected() > 0, err
}

// CountRow adds to the counts of the import and extends its lease, if
// token holds it (sqlrows.RecordImportRow).
func (s importStatements) CountRow(ctx context.Context, id string, token int64, applied, failed int, lease time.Duration) (bool, error) {
	tag, err := s.tx.Exec(ctx, `
		UPDATE imports SET applied = applied + $3, failed = failed + $4, lease_until = $5
		WHERE id = $1 AND lease_token = $2`, id, token, applied, failed, utc(s.now().Add(lease)))
	return tag.RowsAffected() > 0, err
}

// RenewImport extends the lease while token holds it.
func (db *DB) RenewImport(ctx context.Context, id string, token int64, lease time.Duration) error {
	tag, err := db.pool.Exec(ctx, `UPDATE imports SET lease_until = $3 WHERE id = $1 AND lease_token = $2`,
		id, token, utc(db.now().Add(lease)))
	if err != nil {
		return fmt.Errorf("renew import %s: %w", id, db.translate(ctx, err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew import %s: %w", id, catalog.ErrImportLeaseLost)
	}
	return nil
}

// FinishImport marks the import completed and releases its lease.
func (db *DB) FinishImport(ctx context.Context, id string, token int64) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE imports SET status = $3, finished_at = $4, lease_until = NULL, lease_token = NULL
		WHERE id = $1 AND lease_token = $2`, id, token, string(catalog.ImportCompleted), utc(db.now()))
	if err != nil {
		return fmt.Errorf("finish import %s: %w", id, db.translate(ctx, err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish import %s: %w", id, catalog.ErrImportLeaseLost)
	}
	return nil
}

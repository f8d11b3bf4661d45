package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

var _ catalog.ImportStore = (*DB)(nil)

// CreateImport stores imp and the rows next yields in one transaction;
// nothing is stored when next fails.
func (db *DB) CreateImport(ctx context.Context, imp *catalog.Import, next func() (catalog.ImportRow, error)) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO imports (id, owner, format, status, total, created_at) VALUES (?, ?, ?, ?, 0, ?)`,
			imp.ID, imp.Owner, imp.Format, string(catalog.ImportQueued), micros(imp.CreatedAt)); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO import_rows (import_id, line, doc, sku) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close() //nolint:errcheck // the transaction's statement: the commit's error is the one that counts
		total := 0
		for {
			row, err := next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, imp.ID, row.Line, string(row.Doc), nullSKU(row.SKU)); err != nil {
				return err
			}
			total++
		}
		imp.Total, imp.Status = total, catalog.ImportQueued
		_, err = tx.ExecContext(ctx, `UPDATE imports SET total = ? WHERE id = ?`, total, imp.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("create import %s: %w", imp.ID, err)
	}
	return nil
}

func scanImport(r rowScanner) (*catalog.Import, error) {
	var imp catalog.Import
	var status string
	var created int64
	var finished sql.NullInt64
	if err := r.Scan(&imp.ID, &imp.Owner, &imp.Format, &status, &imp.Total, &imp.Applied, &imp.Failed, &created, &finished); err != nil {
		return nil, err
	}
	imp.Status, imp.CreatedAt = catalog.ImportStatus(status), fromMicros(created)
	if finished.Valid {
		t := fromMicros(finished.Int64)
		imp.FinishedAt = &t
	}
	return &imp, nil
}

// GetImport returns an import with its counts.
func (db *DB) GetImport(ctx context.Context, id string) (*catalog.Import, error) {
	imp, err := scanImport(db.sql.QueryRowContext(ctx, `SELECT `+sqlrows.ImportColumns+` FROM imports WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, catalog.NotFound("import %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get import %s: %w", id, db.translate(err))
	}
	return imp, nil
}

// ImportErrors returns the errors of failed rows after line, in line order.
func (db *DB) ImportErrors(ctx context.Context, id string, afterLine, limit int) ([]catalog.ImportRowError, error) {
	rows, err := db.sql.QueryContext(ctx, `
		SELECT error FROM import_rows WHERE import_id = ? AND state = 2 AND line > ? ORDER BY line LIMIT ?`, id, afterLine, limit)
	if err != nil {
		return nil, fmt.Errorf("errors of import %s: %w", id, db.translate(err))
	}
	defer rows.Close()
	var out []catalog.ImportRowError
	for rows.Next() {
		var doc string
		var e catalog.ImportRowError
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("errors of import %s: %w", id, db.translate(err))
		}
		if err := json.Unmarshal([]byte(doc), &e); err != nil {
			return nil, fmt.Errorf("errors of import %s: %w", id, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("errors of import %s: %w", id, db.translate(err))
	}
	return out, nil
}

// ClaimImport leases the oldest import that is not completed and that no
// live lease holds.
func (db *DB) ClaimImport(ctx context.Context, lease time.Duration) (*catalog.Import, int64, error) {
	now, token := db.now(), sqlrows.NewToken()
	imp, err := scanImport(db.sql.QueryRowContext(ctx, `
		UPDATE imports SET status = ?3, lease_until = ?2, lease_token = ?4
		WHERE id = (SELECT id FROM imports
		            WHERE status <> 'completed' AND (lease_until IS NULL OR lease_until < ?1)
		            ORDER BY created_at LIMIT 1)
		RETURNING `+sqlrows.ImportColumns, micros(now), micros(now.Add(lease)), string(catalog.ImportRunning), token))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, catalog.NotFound("no import to run")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("claim an import: %w", db.translate(err))
	}
	return imp, token, nil
}

// PendingImportRows returns rows whose outcome is not recorded, in line order.
func (db *DB) PendingImportRows(ctx context.Context, id string, limit int) ([]catalog.ImportRow, error) {
	rows, err := db.sql.QueryContext(ctx, `
		SELECT line, doc, coalesce(sku, ''),
		       coalesce((SELECT max(l.line) FROM import_rows l WHERE l.import_id = r.import_id AND l.sku = r.sku AND l.line > r.line), 0)
		FROM import_rows r WHERE import_id = ? AND state = 0 ORDER BY line LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("rows of import %s: %w", id, db.translate(err))
	}
	defer rows.Close()
	var out []catalog.ImportRow
	for rows.Next() {
		var r catalog.ImportRow
		var doc string
		if err := rows.Scan(&r.Line, &doc, &r.SKU, &r.SupersededBy); err != nil {
			return nil, fmt.Errorf("rows of import %s: %w", id, db.translate(err))
		}
		r.Doc = []byte(doc)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rows of import %s: %w", id, db.translate(err))
	}
	return out, nil
}

// RecordImportRow records a row's outcome under the lease and extends it.
func (db *DB) RecordImportRow(ctx context.Context, id string, token int64, line int, rowErr *catalog.ImportRowError, lease time.Duration) error {
	outcome, err := sqlrows.OutcomeOf(rowErr)
	if err == nil {
		err = db.inTx(ctx, func(tx *sql.Tx) error {
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
	tx  *sql.Tx
	now func() time.Time
}

// SetRowOutcome stores the outcome of a pending row (sqlrows.RecordImportRow).
func (s importStatements) SetRowOutcome(ctx context.Context, id string, line, state int, doc []byte) (bool, error) {
	res, err := s.tx.ExecContext(ctx, `
		UPDATE import_rows SET state = ?, error = ? WHERE import_id = ? AND line = ? AND state = 0`,
		state, sql.NullString{String: string(doc), Valid: doc != nil}, id, line)
	return affected(res, err)
}

// CountRow adds to the counts of the import and extends its lease, if
// token holds it (sqlrows.RecordImportRow).
func (s importStatements) CountRow(ctx context.Context, id string, token int64, applied, failed int, lease time.Duration) (bool, error) {
	res, err := s.tx.ExecContext(ctx, `
		UPDATE imports SET applied = applied + ?, failed = failed + ?, lease_until = ?
		WHERE id = ? AND lease_token = ?`, applied, failed, micros(s.now().Add(lease)), id, token)
	return affected(res, err)
}

// RenewImport extends the lease while token holds it.
func (db *DB) RenewImport(ctx context.Context, id string, token int64, lease time.Duration) error {
	return db.updateLeased(ctx, "renew", id, `UPDATE imports SET lease_until = ? WHERE id = ? AND lease_token = ?`,
		micros(db.now().Add(lease)), id, token)
}

// FinishImport marks the import completed and releases its lease.
func (db *DB) FinishImport(ctx context.Context, id string, token int64) error {
	return db.updateLeased(ctx, "finish", id, `
		UPDATE imports SET status = ?, finished_at = ?, lease_until = NULL, lease_token = NULL
		WHERE id = ? AND lease_token = ?`, string(catalog.ImportCompleted), micros(db.now()), id, token)
}

// updateLeased runs an update of an import that holds only under the
// lease token; ErrImportLeaseLost when it changed nothing.
func (db *DB) updateLeased(ctx context.Context, what, id, query string, args ...any) error {
	res, err := db.sql.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s import %s: %w", what, id, db.translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s import %s: %w", what, id, db.translate(err))
	} else if n == 0 {
		return fmt.Errorf("%s import %s: %w", what, id, catalog.ErrImportLeaseLost)
	}
	return nil
}

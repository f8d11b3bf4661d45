package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

var (
	_ access.KeyStore         = (*DB)(nil)
	_ access.IdempotencyStore = (*DB)(nil)
)

// CreateKey stores a new API key.
func (db *DB) CreateKey(ctx context.Context, k *access.APIKey) error {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO api_keys (`+sqlrows.KeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
		k.ID, k.Name, k.Hash, k.Hint, joinScopes(k.Scopes), k.Owner, micros(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, db.translate(err))
	}
	return nil
}

// KeyByHash returns the key whose secret hashes to hash, revoked or not.
func (db *DB) KeyByHash(ctx context.Context, hash string) (*access.APIKey, error) {
	k, err := scanKey(db.sql.QueryRowContext(ctx, `SELECT `+sqlrows.KeyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, catalog.NotFound("no such key")
	}
	if err != nil {
		return nil, fmt.Errorf("look up key: %w", db.translate(err))
	}
	return k, nil
}

// ListKeys returns every key, newest first.
func (db *DB) ListKeys(ctx context.Context) ([]access.APIKey, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+sqlrows.KeyColumns+` FROM api_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", db.translate(err))
	}
	defer rows.Close()
	keys := []access.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", db.translate(err))
		}
		keys = append(keys, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", db.translate(err))
	}
	return keys, nil
}

// RevokeKey marks the key revoked at at, unless it was revoked before.
func (db *DB) RevokeKey(ctx context.Context, id string, at time.Time) (*access.APIKey, error) {
	k, err := scanKey(db.sql.QueryRowContext(ctx, `
		UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?
		RETURNING `+sqlrows.KeyColumns, micros(at), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, catalog.NotFound("key %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("revoke key %s: %w", id, db.translate(err))
	}
	return k, nil
}

func scanKey(row rowScanner) (*access.APIKey, error) {
	var k access.APIKey
	var scopes string
	var owner, revoked sql.NullInt64
	var created int64
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &k.Hint, &scopes, &owner, &created, &revoked); err != nil {
		return nil, err
	}
	k.Scopes = splitScopes(scopes)
	if owner.Valid {
		k.Owner = &owner.Int64
	}
	k.CreatedAt = fromMicros(created)
	if revoked.Valid {
		t := fromMicros(revoked.Int64)
		k.RevokedAt = &t
	}
	return &k, nil
}

// joinScopes is the scopes column of a key's scopes: their names,
// separated by spaces.
func joinScopes(scopes []access.Scope) string { return strings.Join(sqlrows.ScopeNames(scopes), " ") }

// splitScopes is the scopes of a key's scopes column.
func splitScopes(s string) []access.Scope { return sqlrows.Scopes(strings.Fields(s)) }

// ReserveIdempotencyKey records rec as running unless a live record holds
// its key: one statement, so two requests racing for a key cannot both win.
func (db *DB) ReserveIdempotencyKey(ctx context.Context, rec access.IdempotencyRecord, now time.Time) (*access.IdempotencyRecord, bool, error) {
	var got access.IdempotencyRecord
	var done int
	var locked, expires int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO idempotency_keys (scope, key, fingerprint, done, locked_until, expires_at, token)
			VALUES (?1, ?2, ?3, 0, ?4, ?5, ?7)
			ON CONFLICT (scope, key) DO UPDATE
			SET fingerprint = excluded.fingerprint, done = 0, locked_until = excluded.locked_until,
			    expires_at = excluded.expires_at, status = 0, header = NULL, body = NULL, token = excluded.token
			WHERE idempotency_keys.expires_at <= ?6 OR (idempotency_keys.done = 0 AND idempotency_keys.locked_until <= ?6)`,
			rec.Scope, rec.Key, rec.Fingerprint, micros(rec.LockedUntil), micros(rec.ExpiresAt), micros(now), rec.Token)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return tx.QueryRowContext(ctx, `
			SELECT scope, key, fingerprint, done, locked_until, expires_at, status, coalesce(header, x''), coalesce(body, x'')
			FROM idempotency_keys WHERE scope = ? AND key = ?`, rec.Scope, rec.Key).
			Scan(&got.Scope, &got.Key, &got.Fingerprint, &done, &locked, &expires, &got.Status, &got.Header, &got.Body)
	})
	if err != nil {
		return nil, false, fmt.Errorf("reserve idempotency key: %w", err)
	}
	if got.Scope == "" {
		return &rec, true, nil
	}
	got.Done, got.LockedUntil, got.ExpiresAt = done == 1, fromMicros(locked), fromMicros(expires)
	return &got, false, nil
}

// CompleteIdempotencyKey stores the response of the record reserved with
// rec.Token; access.ErrReservationLost when it no longer holds the key.
func (db *DB) CompleteIdempotencyKey(ctx context.Context, rec access.IdempotencyRecord) error {
	res, err := db.sql.ExecContext(ctx, `
		UPDATE idempotency_keys SET done = 1, status = ?, header = ?, body = ?, expires_at = ?
		WHERE scope = ? AND key = ? AND token = ? AND done = 0`,
		rec.Status, rec.Header, rec.Body, micros(rec.ExpiresAt), rec.Scope, rec.Key, rec.Token)
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", db.translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", db.translate(err))
	}
	if err := sqlrows.Completed(n); err != nil {
		return fmt.Errorf("complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey drops the unfinished record reserved with token.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, scope, key, token string) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND token = ? AND done = 0`, scope, key, token)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", db.translate(err))
	}
	return nil
}

// PurgeIdempotencyKeys removes expired records.
func (db *DB) PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= ?`, micros(now))
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", db.translate(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	if !catalog.ValidID(k.ID) {
		return fmt.Errorf("create key: %w", invalidID("key", k.ID))
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO api_keys (`+sqlrows.KeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)`,
		k.ID, k.Name, k.Hash, k.Hint, sqlrows.ScopeNames(k.Scopes), k.Owner, utc(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, db.translate(ctx, err))
	}
	return nil
}

// KeyByHash returns the key whose secret hashes to hash, revoked or not.
func (db *DB) KeyByHash(ctx context.Context, hash string) (*access.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+sqlrows.KeyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, catalog.NotFound("no such key")
	}
	if err != nil {
		return nil, fmt.Errorf("look up key: %w", db.translate(ctx, err))
	}
	return k, nil
}

// ListKeys returns every key, newest first.
func (db *DB) ListKeys(ctx context.Context) ([]access.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+sqlrows.KeyColumns+` FROM api_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", db.translate(ctx, err))
	}
	defer rows.Close()
	keys := []access.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", db.translate(ctx, err))
		}
		keys = append(keys, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", db.translate(ctx, err))
	}
	return keys, nil
}

// RevokeKey marks the key revoked at at, unless it was revoked before.
func (db *DB) RevokeKey(ctx context.Context, id string, at time.Time) (*access.APIKey, error) {
	if !catalog.ValidID(id) {
		return nil, catalog.NotFound("key %s does not exist", id)
	}
	k, err := scanKey(db.pool.QueryRow(ctx, `
		UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2
		RETURNING `+sqlrows.KeyColumns, utc(at), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, catalog.NotFound("key %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("revoke key %s: %w", id, db.translate(ctx, err))
	}
	return k, nil
}

func scanKey(row pgx.Row) (*access.APIKey, error) {
	var k access.APIKey
	var scopes []string
	var revoked *time.Time
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &k.Hint, &scopes, &k.Owner, &k.CreatedAt, &revoked); err != nil {
		return nil, err
	}
	k.Scopes = sqlrows.Scopes(scopes)
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		t := revoked.UTC()
		k.RevokedAt = &t
	}
	return &k, nil
}

// ReserveIdempotencyKey records rec as running unless a live record holds
// its key: one statement, so two requests racing for a key (on any nodes)
// cannot both win.
func (db *DB) ReserveIdempotencyKey(ctx context.Context, rec access.IdempotencyRecord, now time.Time) (*access.IdempotencyRecord, bool, error) {
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO idempotency_keys AS k (scope, key, fingerprint, done, locked_until, expires_at, token)
		VALUES ($1, $2, $3, false, $4, $5, $7)
		ON CONFLICT (scope, key) DO UPDATE
		SET fingerprint = excluded.fingerprint, done = false, locked_until = excluded.locked_until,
		    expires_at = excluded.expires_at, status = 0, header = NULL, body = NULL, token = excluded.token
		WHERE k.expires_at <= $6 OR (NOT k.done AND k.locked_until <= $6)`,
		rec.Scope, rec.Key, rec.Fingerprint, utc(rec.LockedUntil), utc(rec.ExpiresAt), utc(now), rec.Token)
	if err != nil {
		return nil, false, fmt.Errorf("reserve idempotency key: %w", db.translate(ctx, err))
	}
	if tag.RowsAffected() == 1 {
		return &rec, true, nil
	}
	var got access.IdempotencyRecord
	err = db.pool.QueryRow(ctx, `
		SELECT scope, key, fingerprint, done, locked_until, expires_at, status, coalesce(header, ''), coalesce(body, '')
		FROM idempotency_keys WHERE scope = $1 AND key = $2`, rec.Scope, rec.Key).
		Scan(&got.Scope, &got.Key, &got.Fingerprint, &got.Done, &got.LockedUntil, &got.ExpiresAt, &got.Status, &got.Header, &got.Body)
	if errors.Is(err, pgx.ErrNoRows) {
		// The holder released it between the two statements: try again.
		return db.ReserveIdempotencyKey(ctx, rec, now)
	}
	if err != nil {
		return nil, false, fmt.Errorf("reserve idempotency key: %w", db.translate(ctx, err))
	}
	got.LockedUntil, got.ExpiresAt = got.LockedUntil.UTC(), got.ExpiresAt.UTC()
	return &got, false, nil
}

// CompleteIdempotencyKey stores the response of the record reserved with
// rec.Token; access.ErrReservationLost when it no longer holds the key.
func (db *DB) CompleteIdempotencyKey(ctx context.Context, rec access.IdempotencyRecord) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE idempotency_keys SET done = true, status = $1, header = $2, body = $3, expires_at = $4
		WHERE scope = $5 AND key = $6 AND token = $7 AND NOT done`,
		rec.Status, rec.Header, rec.Body, utc(rec.ExpiresAt), rec.Scope, rec.Key, rec.Token)
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", db.translate(ctx, err))
	}
	if err := sqlrows.Completed(tag.RowsAffected()); err != nil {
		return fmt.Errorf("complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey drops the unfinished record reserved with token.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, scope, key, token string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND token = $3 AND NOT done`, scope, key, token)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", db.translate(ctx, err))
	}
	return nil
}

// PurgeIdempotencyKeys removes expired records.
func (db *DB) PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, utc(now))
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", db.translate(ctx, err))
	}
	return int(tag.RowsAffected()), nil
}

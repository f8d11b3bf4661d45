package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// What the orphan sweeper needs of the store: which images exist, and a
// lease so that one process sweeps at a time.

// ExistingImages returns the ids among ids of images that exist.
func (db *DB) ExistingImages(ctx context.Context, ids []string) (map[string]bool, error) {
	found := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return found, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("existing images: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT id FROM images WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, fmt.Errorf("existing images: %w", db.translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("existing images: %w", db.translate(err))
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("existing images: %w", db.translate(err))
	}
	return found, nil
}

// TryLease takes the lease name for holder until ttl from now, or renews
// it when holder has it already; it reports false while another holder's
// lease runs.
func (db *DB) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := db.now()
	var got string
	err := db.sql.QueryRowContext(ctx, `
		INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= ?4
		RETURNING holder`, name, holder, micros(now.Add(ttl)), micros(now)).Scan(&got)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return false, fmt.Errorf("take lease %s: %w", name, db.translate(err))
	}
	return got == holder, nil
}

// ReleaseLease gives the lease name up, if holder has it.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, db.translate(err))
	}
	return nil
}

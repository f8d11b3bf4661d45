package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
)

// What the orphan sweeper needs of the store: which images exist, and a
// lease so that one process of all those sharing the database sweeps at a
// time.

// ExistingImages returns the ids among ids of images that exist; an id
// that is no uuid names no image.
func (db *DB) ExistingImages(ctx context.Context, ids []string) (map[string]bool, error) {
	found := make(map[string]bool, len(ids))
	valid := uuids(ids)
	if len(valid) == 0 {
		return found, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT id::text FROM images WHERE id = ANY ($1::uuid[])`, valid)
	if err == nil {
		var got []string
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range got {
			found[id] = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("existing images: %w", db.translate(ctx, err))
	}
	return found, nil
}

// TryLease takes the lease name for holder until ttl from now, or renews
// it when holder has it already; it reports false while another holder's
// lease runs.
func (db *DB) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := db.now()
	var got string
	err := db.pool.QueryRow(ctx, `
		INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
		WHERE leases.holder = EXCLUDED.holder OR leases.until <= $4
		RETURNING holder`, name, holder, utc(now.Add(ttl)), utc(now)).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, db.translate(ctx, err))
	}
	return got == holder, nil
}

// ReleaseLease gives the lease name up, if holder has it.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, db.translate(ctx, err))
	}
	return nil
}

// uuids is the ids among ids that are uuids: the others name no row, and
// would make PostgreSQL refuse the whole uuid[] parameter.
func uuids(ids []string) []string {
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if catalog.ValidID(id) {
			valid = append(valid, id)
		}
	}
	return valid
}

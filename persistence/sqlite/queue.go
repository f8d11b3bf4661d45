package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/jobwait"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// Receive claims the job that became available first and is not leased,
// leasing it for Options.Lease and counting the attempt before it runs. It
// blocks until there is one, ctx ends or the DB is closed. AddImage,
// Enqueue, Retry, Reschedule and ReviveDeadLetter wake waiting receivers;
// they also look again when the next delayed job falls due, and at least
// every Options.PollInterval.
func (db *DB) Receive(ctx context.Context) (catalog.Delivery, error) {
	loop := jobwait.Loop{Signal: db.wake, Closed: db.closed, Poll: db.poll, Now: db.now}
	return jobwait.Receive(ctx, loop, func(ctx context.Context) (*delivery, bool, *time.Time, error) {
		d, due, err := db.claim(ctx)
		return d, d != nil, due, err
	})
}

// claim leases the first available job in one statement. With none, it
// returns when the next one falls due (nil if the queue is empty).
func (db *DB) claim(ctx context.Context) (*delivery, *time.Time, error) {
	now := db.now()
	lease := micros(now.Add(db.lease))
	d := &delivery{db: db, lease: lease}
	err := db.sql.QueryRowContext(ctx, `
		UPDATE jobs
		SET lease_until = ?1, attempts = attempts + 1
		WHERE image_id = (
			SELECT image_id FROM jobs
			WHERE available_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2)
			ORDER BY available_at, image_id
			LIMIT 1)
		RETURNING `+sqlrows.ClaimedColumns, lease, micros(now)).Scan(d.Dest()...)
	if err == nil {
		return d, nil, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, db.translate(err)
	}
	var due sql.NullInt64
	err = db.sql.QueryRowContext(ctx, `SELECT min(max(available_at, coalesce(lease_until, 0))) FROM jobs`).Scan(&due)
	if err != nil {
		return nil, nil, db.translate(err)
	}
	if !due.Valid {
		return nil, nil, nil
	}
	t := fromMicros(due.Int64)
	return nil, &t, nil
}

// PendingJobs counts the jobs not yet acknowledged, leased ones included.
func (db *DB) PendingJobs(ctx context.Context) (int, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM jobs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending jobs: %w", db.translate(err))
	}
	return n, nil
}

// Backlog counts the jobs whose outcome is not stored yet: all of them,
// and those of the products of userID.
func (db *DB) Backlog(ctx context.Context, userID int64) (total, owned int, err error) {
	err = db.sql.QueryRowContext(ctx, `
		SELECT count(*), count(*) FILTER (WHERE p.user_id = ?)
		FROM jobs j JOIN products p ON p.id = j.product_id`, userID).Scan(&total, &owned)
	if err != nil {
		return 0, 0, fmt.Errorf("count the job backlog: %w", db.translate(err))
	}
	return total, owned, nil
}

// delivery is a leased job. The lease is identified by the attempt count and
// the lease end it was claimed with: once the lease is lost (it expired and
// the job was claimed again, or the job was enqueued anew), Ack, Retry and
// DeadLetter change nothing, as the job belongs to its newer delivery.
type delivery struct {
	sqlrows.Claimed // the job and its attempt
	db              *DB
	lease           int64 // lease_until as claimed
}

var _ catalog.Delivery = (*delivery)(nil)

// Ack deletes the job: it is done.
func (d *delivery) Ack(ctx context.Context) error {
	_, err := d.db.sql.ExecContext(ctx, `DELETE FROM jobs WHERE image_id = ? AND attempts = ? AND lease_until = ?`,
		d.Job().ImageID, d.Attempt(), d.lease)
	if err != nil {
		return fmt.Errorf("ack job %s: %w", d.Job().ImageID, d.db.translate(err))
	}
	return nil
}

// Retry releases the lease; the job is available again after delay.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	available := micros(d.db.now().Add(max(delay, 0)))
	_, err := d.db.sql.ExecContext(ctx, `
		UPDATE jobs SET available_at = ?, lease_until = NULL
		WHERE image_id = ? AND attempts = ? AND lease_until = ?`,
		available, d.Job().ImageID, d.Attempt(), d.lease)
	if err != nil {
		return fmt.Errorf("retry job %s: %w", d.Job().ImageID, d.db.translate(err))
	}
	// Waiting receivers look again and sleep until the job falls due.
	d.db.wake.Broadcast()
	return nil
}

// DeadLetter replaces the job by a dead letter holding this delivery's
// attempt count, in one transaction.
func (d *delivery) DeadLetter(ctx context.Context, code, detail string) error {
	dl := catalog.DeadLetter{Job: d.Job(), Code: code, Detail: detail, Attempts: d.Attempt(), FailedAt: d.db.now()}
	err := d.db.bury(ctx, dl, `DELETE FROM jobs WHERE image_id = ? AND attempts = ? AND lease_until = ? RETURNING product_id`,
		d.Job().ImageID, d.Attempt(), d.lease)
	if err != nil {
		return fmt.Errorf("dead-letter job %s: %w", d.Job().ImageID, err)
	}
	return nil
}

// JobsWake returns a channel closed when a job may next have become
// available (added, retried, revived, or, on PostgreSQL, announced by
// another process): a relay waits on it instead of polling.
func (db *DB) JobsWake() <-chan struct{} { return db.wake.Wait() }

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	sqlite3 "modernc.org/sqlite/lib"
)

// The jobs table is also a transactional outbox: AddImage writes a job row
// in the transaction of its image, a relay publishes the due rows to a
// broker (DueJobs, MarkPublished) and the broker's consumers store each
// job's outcome here (StartAttempt, Reschedule, FinishJob, BuryJob). The
// embedded queue (Receive) reads the same rows when no broker is used.
var (
	_ catalog.JobOutbox   = (*DB)(nil)
	_ catalog.DeadLetters = (*DB)(nil)
)

// DueJobs returns up to n jobs that are due, not yet published and not
// leased by the embedded queue, the one that fell due first first.
func (db *DB) DueJobs(ctx context.Context, n int) ([]catalog.Job, error) {
	jobs := []catalog.Job{}
	if n <= 0 {
		return jobs, nil
	}
	rows, err := db.sql.QueryContext(ctx, `
		SELECT image_id, product_id FROM jobs
		WHERE published_at IS NULL AND available_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
		ORDER BY available_at, image_id
		LIMIT ?2`, micros(db.now()), n)
	if err != nil {
		return nil, fmt.Errorf("due jobs: %w", db.translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var j catalog.Job
		if err := rows.Scan(&j.ImageID, &j.ProductID); err != nil {
			return nil, fmt.Errorf("due jobs: %w", db.translate(err))
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due jobs: %w", db.translate(err))
	}
	return jobs, nil
}

// MarkPublished records that the broker has the jobs of these images. Jobs
// that are gone, already published or not due (rescheduled since DueJobs
// returned them) are left as they are.
func (db *DB) MarkPublished(ctx context.Context, imageIDs []string) error {
	if len(imageIDs) == 0 {
		return nil
	}
	ids, err := json.Marshal(imageIDs)
	if err != nil {
		return fmt.Errorf("mark jobs published: %w", err)
	}
	_, err = db.sql.ExecContext(ctx, `
		UPDATE jobs SET published_at = ?1
		WHERE image_id IN (SELECT value FROM json_each(?2))
		  AND published_at IS NULL AND available_at <= ?1`, micros(db.now()), string(ids))
	if err != nil {
		return fmt.Errorf("mark %d jobs published: %w", len(imageIDs), db.translate(err))
	}
	return nil
}

// Enqueue queues the job of an existing image again, for example to process
// it anew: the job is available now, unpublished, with no attempts counted,
// whether or not it was pending, and the image's dead letter, if any, is
// removed. A delivery of it still running loses its lease: its Ack, Retry
// and DeadLetter do nothing. An unknown image is NotFound.
func (db *DB) Enqueue(ctx context.Context, job catalog.Job) error {
	now := micros(db.now())
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return enqueue(ctx, tx, job, now) }); err != nil {
		return fmt.Errorf("enqueue image %s: %w", job.ImageID, err)
	}
	db.wake.Broadcast()
	return nil
}

// enqueue writes the job row of job, due at now, and drops its dead letter.
func enqueue(ctx context.Context, tx *sql.Tx, job catalog.Job, now int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO jobs (image_id, product_id, attempts, available_at, lease_until, published_at, created_at)
		VALUES (?1, ?2, 0, ?3, NULL, NULL, ?3)
		ON CONFLICT (image_id) DO UPDATE
		SET product_id = excluded.product_id, attempts = 0, available_at = excluded.available_at,
		    lease_until = NULL, published_at = NULL`,
		job.ImageID, job.ProductID, now)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return catalog.NotFound("image %s", job.ImageID)
	}
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE image_id = ?`, job.ImageID)
	return err
}

// StartAttempt counts one more start of the job and returns the count; a
// job that is gone (finished, buried, or its image deleted) is NotFound.
func (db *DB) StartAttempt(ctx context.Context, imageID string) (int, error) {
	var attempts int
	err := db.sql.QueryRowContext(ctx, `UPDATE jobs SET attempts = attempts + 1 WHERE image_id = ? RETURNING attempts`, imageID).
		Scan(&attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("start job %s: %w", imageID, catalog.NotFound("job of image %s", imageID))
	}
	if err != nil {
		return 0, fmt.Errorf("start job %s: %w", imageID, db.translate(err))
	}
	return attempts, nil
}

// Reschedule makes the job due again after delay, unpublished and not
// leased; its attempts are kept. A job that is gone stays gone.
func (db *DB) Reschedule(ctx context.Context, imageID string, delay time.Duration) error {
	_, err := db.sql.ExecContext(ctx, `
		UPDATE jobs SET available_at = ?, published_at = NULL, lease_until = NULL
		WHERE image_id = ?`, micros(db.now().Add(max(delay, 0))), imageID)
	if err != nil {
		return fmt.Errorf("reschedule job %s: %w", imageID, db.translate(err))
	}
	db.wake.Broadcast()
	return nil
}

// FinishJob removes the job row; removing it twice is no error.
func (db *DB) FinishJob(ctx context.Context, imageID string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM jobs WHERE image_id = ?`, imageID); err != nil {
		return fmt.Errorf("finish job %s: %w", imageID, db.translate(err))
	}
	return nil
}

// BuryJob replaces the job row of dl.Job by dl (a zero FailedAt means now),
// in one transaction. A job that is gone (finished, buried already, or its
// image deleted) is left alone: its outcome is stored.
func (db *DB) BuryJob(ctx context.Context, dl catalog.DeadLetter) error {
	if dl.FailedAt.IsZero() {
		dl.FailedAt = db.now()
	}
	err := db.bury(ctx, dl, `DELETE FROM jobs WHERE image_id = ? RETURNING product_id`, dl.Job.ImageID)
	if err != nil {
		return fmt.Errorf("bury job %s: %w", dl.Job.ImageID, err)
	}
	return nil
}

// bury deletes the job row that deleteJob (a DELETE … RETURNING product_id)
// selects and, if there was one, writes dl in its place.
func (db *DB) bury(ctx context.Context, dl catalog.DeadLetter, deleteJob string, args ...any) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var productID string
		err := tx.QueryRowContext(ctx, deleteJob, args...).Scan(&productID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO dead_letters (image_id, product_id, code, detail, attempts, failed_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (image_id) DO UPDATE
			SET product_id = excluded.product_id, code = excluded.code, detail = excluded.detail,
			    attempts = excluded.attempts, failed_at = excluded.failed_at`,
			dl.Job.ImageID, productID, dl.Code, dl.Detail, dl.Attempts, micros(dl.FailedAt))
		return err
	})
}

// ListDeadLetters returns up to limit dead letters (all if limit <= 0),
// the last to fail first.
func (db *DB) ListDeadLetters(ctx context.Context, limit int) ([]catalog.DeadLetter, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.sql.QueryContext(ctx, `
		SELECT image_id, product_id, code, detail, attempts, failed_at FROM dead_letters
		ORDER BY failed_at DESC, image_id DESC
		LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", db.translate(err))
	}
	defer rows.Close()
	dls := []catalog.DeadLetter{}
	for rows.Next() {
		var dl catalog.DeadLetter
		var failed int64
		if err := rows.Scan(&dl.Job.ImageID, &dl.Job.ProductID, &dl.Code, &dl.Detail, &dl.Attempts, &failed); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", db.translate(err))
		}
		dl.FailedAt = fromMicros(failed)
		dls = append(dls, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", db.translate(err))
	}
	return dls, nil
}

// ReviveDeadLetter removes the image's dead letter and enqueues its job
// again, due now with no attempts counted, in one transaction; NotFound if
// the image has no dead letter.
func (db *DB) ReviveDeadLetter(ctx context.Context, imageID string) (catalog.Job, error) {
	var job catalog.Job
	now := micros(db.now())
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM dead_letters WHERE image_id = ? RETURNING image_id, product_id`, imageID).
			Scan(&job.ImageID, &job.ProductID)
		if errors.Is(err, sql.ErrNoRows) {
			return catalog.NotFound("dead letter of image %s", imageID)
		}
		if err != nil {
			return err
		}
		return enqueue(ctx, tx, job, now)
	})
	if err != nil {
		return catalog.Job{}, fmt.Errorf("revive dead letter %s: %w", imageID, err)
	}
	db.wake.Broadcast()
	return job, nil
}

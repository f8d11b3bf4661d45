package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The jobs table is also a transactional outbox: AddImage writes a job row
// in the transaction of its image, a relay publishes the due rows to a
// broker (DueJobs, MarkPublished) and the broker's consumers store each
// job's outcome here (StartAttempt, Reschedule, FinishJob, BuryJob). The
// embedded-style queue (Receive) reads the same rows when no broker is used.

// DueJobs returns up to n jobs that are due, not yet published and not
// leased by a receiver, the one that fell due first first. Relays of
// several processes may read the same rows and publish them twice: jobs
// are delivered at least once, and processing is idempotent.
func (db *DB) DueJobs(ctx context.Context, n int) ([]catalog.Job, error) {
	jobs := []catalog.Job{}
	if n <= 0 {
		return jobs, nil
	}
	rows, err := db.pool.Query(ctx, `
		SELECT image_id, product_id FROM jobs
		WHERE published_at IS NULL AND available_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
		ORDER BY available_at, image_id
		LIMIT $2`, utc(db.now()), n)
	if err == nil {
		jobs, err = pgx.AppendRows(jobs, rows, func(row pgx.CollectableRow) (catalog.Job, error) {
			var j catalog.Job
			err := row.Scan(&j.ImageID, &j.ProductID)
			return j, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("due jobs: %w", db.translate(ctx, err))
	}
	return jobs, nil
}

// MarkPublished records that the broker has the jobs of these images. Jobs
// that are gone, already published or not due (rescheduled since DueJobs
// returned them) are left as they are.
func (db *DB) MarkPublished(ctx context.Context, imageIDs []string) error {
	ids := make([]string, 0, len(imageIDs))
	for _, id := range imageIDs {
		if catalog.ValidID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE jobs SET published_at = $1
		WHERE image_id = ANY ($2::uuid[]) AND published_at IS NULL AND available_at <= $1`,
		utc(db.now()), ids)
	if err != nil {
		return fmt.Errorf("mark %d jobs published: %w", len(ids), db.translate(ctx, err))
	}
	return nil
}

// Enqueue queues the job of an existing image again, for example to process
// it anew: the job is available now, unpublished, with no attempts counted,
// whether or not it was pending, and the image's dead letter, if any, is
// removed. A delivery of it still running loses its lease: its Ack, Retry
// and DeadLetter do nothing. An unknown image is NotFound.
func (db *DB) Enqueue(ctx context.Context, job catalog.Job) error {
	if !catalog.ValidID(job.ImageID) || !catalog.ValidID(job.ProductID) {
		return fmt.Errorf("enqueue image %q: %w", job.ImageID, catalog.NotFound("image %s", job.ImageID))
	}
	_, err := db.pool.Exec(ctx, enqueueJob, job.ImageID, job.ProductID, utc(db.now()))
	if pgCode(err) == codeForeignKeyViolation {
		return fmt.Errorf("enqueue image %s: %w", job.ImageID, catalog.NotFound("image %s", job.ImageID))
	}
	if err != nil {
		return fmt.Errorf("enqueue image %s: %w", job.ImageID, db.translate(ctx, err))
	}
	db.wake.Broadcast()
	return nil
}

// enqueueJob writes the job row of image $1 of product $2, due at $3, with
// no attempts counted, unpublished and not leased, and drops the image's
// dead letter, in one statement.
const enqueueJob = `
	WITH undead AS (DELETE FROM dead_letters WHERE image_id = $1)
	INSERT INTO jobs (image_id, product_id, attempts, available_at, created_at)
	VALUES ($1, $2, 0, $3, $3)
	ON CONFLICT (image_id) DO UPDATE
	SET product_id = EXCLUDED.product_id, attempts = 0, available_at = EXCLUDED.available_at,
	    lease_until = NULL, lease_token = NULL, published_at = NULL`

// StartAttempt counts one more start of the job and returns the count; a
// job that is gone (finished, buried, or its image deleted) is NotFound.
func (db *DB) StartAttempt(ctx context.Context, imageID string) (int, error) {
	if !catalog.ValidID(imageID) {
		return 0, fmt.Errorf("start job %q: %w", imageID, catalog.NotFound("job of image %s", imageID))
	}
	var attempts int
	err := db.pool.QueryRow(ctx, `UPDATE jobs SET attempts = attempts + 1 WHERE image_id = $1 RETURNING attempts`, imageID).
		Scan(&attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("start job %s: %w", imageID, catalog.NotFound("job of image %s", imageID))
	}
	if err != nil {
		return 0, fmt.Errorf("start job %s: %w", imageID, db.translate(ctx, err))
	}
	return attempts, nil
}

// Reschedule makes the job due again after delay, unpublished and not
// leased; its attempts are kept. A job that is gone stays gone.
func (db *DB) Reschedule(ctx context.Context, imageID string, delay time.Duration) error {
	if !catalog.ValidID(imageID) {
		return nil
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE jobs SET available_at = $1, published_at = NULL, lease_until = NULL, lease_token = NULL
		WHERE image_id = $2`, utc(db.now().Add(max(delay, 0))), imageID)
	if err != nil {
		return fmt.Errorf("reschedule job %s: %w", imageID, db.translate(ctx, err))
	}
	db.wake.Broadcast()
	return nil
}

// FinishJob removes the job row; removing it twice is no error.
func (db *DB) FinishJob(ctx context.Context, imageID string) error {
	if !catalog.ValidID(imageID) {
		return nil
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM jobs WHERE image_id = $1`, imageID); err != nil {
		return fmt.Errorf("finish job %s: %w", imageID, db.translate(ctx, err))
	}
	return nil
}

// insertDeadLetter ends a statement that begins
//
//	WITH gone AS (DELETE FROM jobs WHERE … RETURNING image_id, product_id)
//
// with the dead letter of the deleted job, if there was one: code $1,
// detail $2, attempts $3, failed at $4. The statement, and so the exchange
// of the job for its dead letter, is atomic.
const insertDeadLetter = `
	INSERT INTO dead_letters (image_id, product_id, code, detail, attempts, failed_at)
	SELECT image_id, product_id, $1::text, $2::text, $3::integer, $4::timestamptz FROM gone
	ON CONFLICT (image_id) DO UPDATE
	SET product_id = EXCLUDED.product_id, code = EXCLUDED.code, detail = EXCLUDED.detail,
	    attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at`

// BuryJob replaces the job row of dl.Job by dl (a zero FailedAt means now),
// in one statement. A job that is gone (finished, buried already, or its
// image deleted) is left alone: its outcome is stored.
func (db *DB) BuryJob(ctx context.Context, dl catalog.DeadLetter) error {
	if !catalog.ValidID(dl.Job.ImageID) {
		return nil
	}
	if dl.FailedAt.IsZero() {
		dl.FailedAt = db.now()
	}
	_, err := db.pool.Exec(ctx, `
		WITH gone AS (
			DELETE FROM jobs WHERE image_id = $5
			RETURNING image_id, product_id)
		`+insertDeadLetter,
		dl.Code, dl.Detail, dl.Attempts, utc(dl.FailedAt), dl.Job.ImageID)
	if err != nil {
		return fmt.Errorf("bury job %s: %w", dl.Job.ImageID, db.translate(ctx, err))
	}
	return nil
}

// ListDeadLetters returns up to limit dead letters (all if limit <= 0),
// the last to fail first.
func (db *DB) ListDeadLetters(ctx context.Context, limit int) ([]catalog.DeadLetter, error) {
	var n *int64 // NULL: LIMIT ALL
	if limit > 0 {
		l := int64(limit)
		n = &l
	}
	dls := []catalog.DeadLetter{}
	rows, err := db.pool.Query(ctx, `
		SELECT image_id, product_id, code, detail, attempts, failed_at FROM dead_letters
		ORDER BY failed_at DESC, image_id DESC
		LIMIT $1`, n)
	if err == nil {
		dls, err = pgx.AppendRows(dls, rows, func(row pgx.CollectableRow) (catalog.DeadLetter, error) {
			var dl catalog.DeadLetter
			err := row.Scan(&dl.Job.ImageID, &dl.Job.ProductID, &dl.Code, &dl.Detail, &dl.Attempts, &dl.FailedAt)
			dl.FailedAt = dl.FailedAt.UTC()
			return dl, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", db.translate(ctx, err))
	}
	return dls, nil
}

// ReviveDeadLetter removes the image's dead letter and enqueues its job
// again, due now with no attempts counted, in one statement; NotFound if
// the image has no dead letter.
func (db *DB) ReviveDeadLetter(ctx context.Context, imageID string) (catalog.Job, error) {
	if !catalog.ValidID(imageID) {
		return catalog.Job{}, fmt.Errorf("revive dead letter %q: %w", imageID, catalog.NotFound("dead letter of image %s", imageID))
	}
	var job catalog.Job
	err := db.pool.QueryRow(ctx, `
		WITH revived AS (
			DELETE FROM dead_letters WHERE image_id = $1
			RETURNING image_id, product_id)
		INSERT INTO jobs (image_id, product_id, attempts, available_at, created_at)
		SELECT image_id, product_id, 0, $2::timestamptz, $2::timestamptz FROM revived
		ON CONFLICT (image_id) DO UPDATE
		SET product_id = EXCLUDED.product_id, attempts = 0, available_at = EXCLUDED.available_at,
		    lease_until = NULL, lease_token = NULL, published_at = NULL
		RETURNING image_id, product_id`, imageID, utc(db.now())).Scan(&job.ImageID, &job.ProductID)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Job{}, fmt.Errorf("revive dead letter %s: %w", imageID, catalog.NotFound("dead letter of image %s", imageID))
	}
	if err != nil {
		return catalog.Job{}, fmt.Errorf("revive dead letter %s: %w", imageID, db.translate(ctx, err))
	}
	db.wake.Broadcast()
	return job, nil
}

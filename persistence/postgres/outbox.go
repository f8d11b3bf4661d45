package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// The jobs table is also a transactional outbox: AddImage writes a job row
// in the transaction of its image, relays claim due rows and publish them to
// a broker (ClaimDue, MarkPublished), and the broker's consumers claim the
// row of each delivered job before it runs and store its outcome under that
// claim (ClaimJob, Reschedule, FinishJob, BuryJob). The embedded-style queue
// (Receive) reads the same rows when no broker is used.

// relayable is the condition of rows a relay publishes at $1: due, claimed
// by no relay, and either not leased and unpublished or published at or
// before $5 (no delivery claimed it since: its message was lost; NULL:
// never), or leased by a delivery whose lease ran out (its consumer died:
// its message was taken).
const relayable = `available_at <= $1 AND (relay_until IS NULL OR relay_until <= $1)
	AND ((lease_until IS NULL AND (published_at IS NULL OR published_at <= $5::timestamptz)) OR lease_until <= $1)`

// ClaimDue claims up to n relayable jobs for lease, the one that fell due
// first first, and returns them with the claim's token. A job published
// and claimed by no delivery for redeliver is relayable again (never when
// redeliver is not positive; see sqlrows.RepublishBefore). Rows locked by
// the claim of another process are skipped, so relays of several nodes
// publish different jobs. A claimed row is unpublished and not leased: if
// the relay dies, its claim runs out and the row is claimed again.
func (db *DB) ClaimDue(ctx context.Context, n int, lease, redeliver time.Duration) ([]catalog.Job, int64, error) {
	if n <= 0 {
		return []catalog.Job{}, 0, nil
	}
	now := utc(db.now())
	var republish *time.Time // NULL: published jobs wait for their message
	if before, ok := sqlrows.RepublishBefore(now, redeliver); ok {
		republish = &before
	}
	token := sqlrows.NewToken()
	rows, err := db.pool.Query(ctx, `
		UPDATE jobs
		SET relay_until = $2, relay_token = $3, published_at = NULL, lease_until = NULL, lease_token = NULL
		WHERE image_id IN (
			SELECT image_id FROM jobs
			WHERE `+relayable+`
			ORDER BY available_at, image_id
			LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING image_id, product_id, available_at, traceparent`, now, utc(now.Add(lease)), token, n, republish)
	var claimed []sqlrows.Due
	if err == nil {
		claimed, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (sqlrows.Due, error) {
			var d sqlrows.Due
			err := row.Scan(&d.Job.ImageID, &d.Job.ProductID, &d.At, &d.Job.TraceParent)
			return d, err
		})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("claim due jobs: %w", db.translate(ctx, err))
	}
	return sqlrows.InDueOrder(claimed), token, nil
}

// MarkPublished records that the broker has the jobs of these images that
// the relay claim token still holds, and releases them. Jobs that are gone,
// or that were rescheduled, claimed by a delivery or enqueued since, are
// left as they are.
func (db *DB) MarkPublished(ctx context.Context, token int64, imageIDs []string) error {
	ids := uuids(imageIDs)
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE jobs SET published_at = $1, relay_until = NULL, relay_token = NULL
		WHERE image_id = ANY ($2::uuid[]) AND relay_token = $3`,
		utc(db.now()), ids, token)
	if err != nil {
		return fmt.Errorf("mark %d jobs published: %w", len(ids), db.translate(ctx, err))
	}
	return nil
}

// Unclaim gives back, unpublished, the jobs of these images that the relay
// claim token still holds.
func (db *DB) Unclaim(ctx context.Context, token int64, imageIDs []string) error {
	ids := uuids(imageIDs)
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE jobs SET relay_until = NULL, relay_token = NULL
		WHERE image_id = ANY ($1::uuid[]) AND relay_token = $2`, ids, token)
	if err != nil {
		return fmt.Errorf("unclaim %d jobs: %w", len(ids), db.translate(ctx, err))
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
	_, err := db.pool.Exec(ctx, enqueueJob, job.ImageID, job.ProductID, utc(db.now()), traceparent.Of(ctx))
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
// no attempts counted, unpublished and not leased, within trace $4, and
// drops the image's dead letter, in one statement.
const enqueueJob = `
	WITH undead AS (DELETE FROM dead_letters WHERE image_id = $1)
	INSERT INTO jobs (image_id, product_id, attempts, available_at, created_at, traceparent)
	VALUES ($1, $2, 0, $3, $3, $4)
	ON CONFLICT (image_id) DO UPDATE
	SET product_id = EXCLUDED.product_id, attempts = 0, available_at = EXCLUDED.available_at, traceparent = EXCLUDED.traceparent,
	    lease_until = NULL, lease_token = NULL, published_at = NULL, relay_until = NULL, relay_token = NULL`

// ClaimJob claims a delivered job for lease and counts its attempt, in one
// statement: the job must be due and not leased by a live delivery. A relay
// publishing it meanwhile loses its claim (its MarkPublished changes
// nothing). A job that is gone is NotFound; one held by another delivery,
// or not due, is ErrJobBusy, and nothing is counted.
func (db *DB) ClaimJob(ctx context.Context, imageID string, lease time.Duration) (catalog.JobClaim, error) {
	if !catalog.ValidID(imageID) {
		return catalog.JobClaim{}, fmt.Errorf("claim job %q: %w", imageID, catalog.NotFound("job of image %s", imageID))
	}
	now := utc(db.now())
	c := catalog.JobClaim{Token: sqlrows.NewToken()}
	err := db.pool.QueryRow(ctx, `
		UPDATE jobs
		SET lease_until = $1, lease_token = $2, attempts = attempts + 1,
		    published_at = coalesce(published_at, $3), relay_until = NULL, relay_token = NULL
		WHERE image_id = $4 AND available_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
		RETURNING attempts`, utc(now.Add(lease)), c.Token, now, imageID).Scan(&c.Attempt)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return catalog.JobClaim{}, fmt.Errorf("claim job %s: %w", imageID, db.translate(ctx, err))
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE image_id = $1)`, imageID).Scan(&exists); err != nil {
		return catalog.JobClaim{}, fmt.Errorf("claim job %s: %w", imageID, db.translate(ctx, err))
	}
	return catalog.JobClaim{}, fmt.Errorf("claim job %s: %w", imageID, sqlrows.ClaimMiss(imageID, exists))
}

// Reschedule makes the job held by the lease token due again after delay,
// unpublished and not leased; its attempts are kept. A job that is gone, or
// whose lease was lost, is left alone.
func (db *DB) Reschedule(ctx context.Context, imageID string, token int64, delay time.Duration) error {
	if !catalog.ValidID(imageID) {
		return nil
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE jobs SET available_at = $1, published_at = NULL, lease_until = NULL, lease_token = NULL,
		    relay_until = NULL, relay_token = NULL
		WHERE image_id = $2 AND lease_token = $3`, utc(db.now().Add(max(delay, 0))), imageID, token)
	if err != nil {
		return fmt.Errorf("reschedule job %s: %w", imageID, db.translate(ctx, err))
	}
	db.wake.Broadcast()
	return nil
}

// FinishJob removes the job row that the lease token holds; removing it
// twice, or after the lease was lost, changes nothing.
func (db *DB) FinishJob(ctx context.Context, imageID string, token int64) error {
	if !catalog.ValidID(imageID) {
		return nil
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM jobs WHERE image_id = $1 AND lease_token = $2`, imageID, token); err != nil {
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

// BuryJob replaces the job row of dl.Job that the lease token holds by dl
// (a zero FailedAt means now), in one statement. A job that is gone
// (finished, buried already, or its image deleted), or whose lease was
// lost, is left alone.
func (db *DB) BuryJob(ctx context.Context, dl catalog.DeadLetter, token int64) error {
	if !catalog.ValidID(dl.Job.ImageID) {
		return nil
	}
	if dl.FailedAt.IsZero() {
		dl.FailedAt = db.now()
	}
	_, err := db.pool.Exec(ctx, `
		WITH gone AS (
			DELETE FROM jobs WHERE image_id = $5 AND lease_token = $6
			RETURNING image_id, product_id)
		`+insertDeadLetter,
		dl.Code, dl.Detail, dl.Attempts, utc(dl.FailedAt), dl.Job.ImageID, token)
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
// again, due now with no attempts counted, within ctx's trace (the replay's),
// in one statement; NotFound if the image has no dead letter.
func (db *DB) ReviveDeadLetter(ctx context.Context, imageID string) (catalog.Job, error) {
	if !catalog.ValidID(imageID) {
		return catalog.Job{}, fmt.Errorf("revive dead letter %q: %w", imageID, catalog.NotFound("dead letter of image %s", imageID))
	}
	var job catalog.Job
	err := db.pool.QueryRow(ctx, `
		WITH revived AS (
			DELETE FROM dead_letters WHERE image_id = $1
			RETURNING image_id, product_id)
		INSERT INTO jobs (image_id, product_id, attempts, available_at, created_at, traceparent)
		SELECT image_id, product_id, 0, $2::timestamptz, $2::timestamptz, $3::text FROM revived
		ON CONFLICT (image_id) DO UPDATE
		SET product_id = EXCLUDED.product_id, attempts = 0, available_at = EXCLUDED.available_at, traceparent = EXCLUDED.traceparent,
		    lease_until = NULL, lease_token = NULL, published_at = NULL, relay_until = NULL, relay_token = NULL
		RETURNING image_id, product_id, traceparent`, imageID, utc(db.now()), traceparent.Of(ctx)).Scan(&job.ImageID, &job.ProductID, &job.TraceParent)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Job{}, fmt.Errorf("revive dead letter %s: %w", imageID, catalog.NotFound("dead letter of image %s", imageID))
	}
	if err != nil {
		return catalog.Job{}, fmt.Errorf("revive dead letter %s: %w", imageID, db.translate(ctx, err))
	}
	db.wake.Broadcast()
	return job, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
	sqlite3 "modernc.org/sqlite/lib"
)

// The jobs table is also a transactional outbox: AddImage writes a job row
// in the transaction of its image, relays claim due rows and publish them to
// a broker (ClaimDue, MarkPublished), and the broker's consumers claim the
// row of each delivered job before it runs and store its outcome under that
// claim (ClaimJob, Reschedule, FinishJob, BuryJob). The embedded queue
// (Receive) reads the same rows when no broker is used.
var (
	_ catalog.JobOutbox   = (*DB)(nil)
	_ catalog.DeadLetters = (*DB)(nil)
)

// relayable is the condition of rows a relay publishes at ?1: due, claimed
// by no relay, and either not leased and unpublished or published at or
// before ?5 (no delivery claimed it since: its message was lost; NULL:
// never), or leased by a delivery whose lease ran out (its consumer died:
// its message was taken).
const relayable = `available_at <= ?1 AND (relay_until IS NULL OR relay_until <= ?1)
	AND ((lease_until IS NULL AND (published_at IS NULL OR published_at <= ?5)) OR lease_until <= ?1)`

// ClaimDue claims up to n relayable jobs for lease, the one that fell due
// first first, and returns them with the claim's token. A job published
// and claimed by no delivery for redeliver is relayable again (never when
// redeliver is not positive; see sqlrows.RepublishBefore). SQLite has one
// writer at a time, so claims of concurrent relays are disjoint. A claimed
// row is unpublished and not leased: if the relay dies, its claim runs out
// and the row is claimed again.
func (db *DB) ClaimDue(ctx context.Context, n int, lease, redeliver time.Duration) ([]catalog.Job, int64, error) {
	if n <= 0 {
		return []catalog.Job{}, 0, nil
	}
	now := db.now()
	var republish sql.NullInt64 // NULL: published jobs wait for their message
	if before, ok := sqlrows.RepublishBefore(now, redeliver); ok {
		republish = sql.NullInt64{Int64: micros(before), Valid: true}
	}
	token := sqlrows.NewToken()
	var claimed []sqlrows.Due
	err := func() error {
		rows, err := db.sql.QueryContext(ctx, `
			UPDATE jobs
			SET relay_until = ?2, relay_token = ?3, published_at = NULL, lease_until = NULL, lease_token = NULL
			WHERE image_id IN (
				SELECT image_id FROM jobs
				WHERE `+relayable+`
				ORDER BY available_at, image_id
				LIMIT ?4)
			RETURNING image_id, product_id, available_at, traceparent`, micros(now), micros(now.Add(lease)), token, n, republish)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d sqlrows.Due
			var at int64
			if err := rows.Scan(&d.Job.ImageID, &d.Job.ProductID, &at, &d.Job.TraceParent); err != nil {
				return err
			}
			d.At = fromMicros(at)
			claimed = append(claimed, d)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, 0, fmt.Errorf("claim due jobs: %w", db.translate(err))
	}
	return sqlrows.InDueOrder(claimed), token, nil
}

// MarkPublished records that the broker has the jobs of these images that
// the relay claim token still holds, and releases them. Jobs that are gone,
// or that were rescheduled, claimed by a delivery or enqueued since, are
// left as they are.
func (db *DB) MarkPublished(ctx context.Context, token int64, imageIDs []string) error {
	if len(imageIDs) == 0 {
		return nil
	}
	ids, err := json.Marshal(imageIDs)
	if err != nil {
		return fmt.Errorf("mark jobs published: %w", err)
	}
	_, err = db.sql.ExecContext(ctx, `
		UPDATE jobs SET published_at = ?1, relay_until = NULL, relay_token = NULL
		WHERE image_id IN (SELECT value FROM json_each(?2)) AND relay_token = ?3`,
		micros(db.now()), string(ids), token)
	if err != nil {
		return fmt.Errorf("mark %d jobs published: %w", len(imageIDs), db.translate(err))
	}
	return nil
}

// Unclaim gives back, unpublished, the jobs of these images that the relay
// claim token still holds.
func (db *DB) Unclaim(ctx context.Context, token int64, imageIDs []string) error {
	if len(imageIDs) == 0 {
		return nil
	}
	ids, err := json.Marshal(imageIDs)
	if err != nil {
		return fmt.Errorf("unclaim jobs: %w", err)
	}
	_, err = db.sql.ExecContext(ctx, `
		UPDATE jobs SET relay_until = NULL, relay_token = NULL
		WHERE image_id IN (SELECT value FROM json_each(?1)) AND relay_token = ?2`, string(ids), token)
	if err != nil {
		return fmt.Errorf("unclaim %d jobs: %w", len(imageIDs), db.translate(err))
	}
	return nil
}

// Enqueue queues the job of an existing image again, for example to process
// it anew: the job is available now, unpublished, with no attempts counted,
// whether or not it was pending, and the image's dead letter, if any, is
// removed. A delivery of it still running loses its lease: its Ack, Retry
// and DeadLetter do nothing. An unknown image is NotFound.
func (db *DB) Enqueue(ctx context.Context, job catalog.Job) error {
	now := db.now()
	if err := db.inTx(ctx, func(tx *sql.Tx) error { return statements{tx}.Enqueue(ctx, job, now) }); err != nil {
		return fmt.Errorf("enqueue image %s: %w", job.ImageID, err)
	}
	db.wake.Broadcast()
	return nil
}

// Enqueue writes the job row of job, due at now, within ctx's trace, and
// drops its dead letter; an unknown image is NotFound (Enqueue,
// ReviveDeadLetter, sqlrows.RequeueImage, sqlrows.SaveGallery).
func (s statements) Enqueue(ctx context.Context, job catalog.Job, now time.Time) error {
	_, err := s.tx.ExecContext(ctx, `
		INSERT INTO jobs (image_id, product_id, attempts, available_at, lease_until, published_at, created_at, traceparent)
		VALUES (?1, ?2, 0, ?3, NULL, NULL, ?3, ?4)
		ON CONFLICT (image_id) DO UPDATE
		SET product_id = excluded.product_id, attempts = 0, available_at = excluded.available_at, traceparent = excluded.traceparent,
		    lease_until = NULL, lease_token = NULL, published_at = NULL, relay_until = NULL, relay_token = NULL`,
		job.ImageID, job.ProductID, micros(now), traceparent.Of(ctx))
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return catalog.NotFound("image %s", job.ImageID)
	}
	if err != nil {
		return err
	}
	_, err = s.tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE image_id = ?`, job.ImageID)
	return err
}

// ClaimJob claims a delivered job for lease and counts its attempt, in one
// statement: the job must be due and not leased by a live delivery. A relay
// publishing it meanwhile loses its claim (its MarkPublished changes
// nothing). A job that is gone is NotFound; one held by another delivery,
// or not due, is ErrJobBusy, and nothing is counted.
func (db *DB) ClaimJob(ctx context.Context, imageID string, lease time.Duration) (catalog.JobClaim, error) {
	now := db.now()
	c := catalog.JobClaim{Token: sqlrows.NewToken()}
	err := db.sql.QueryRowContext(ctx, `
		UPDATE jobs
		SET lease_until = ?1, lease_token = ?2, attempts = attempts + 1,
		    published_at = coalesce(published_at, ?3), relay_until = NULL, relay_token = NULL
		WHERE image_id = ?4 AND available_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3)
		RETURNING attempts`, micros(now.Add(lease)), c.Token, micros(now), imageID).Scan(&c.Attempt)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return catalog.JobClaim{}, fmt.Errorf("claim job %s: %w", imageID, db.translate(err))
	}
	var exists bool
	if err := db.sql.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE image_id = ?)`, imageID).Scan(&exists); err != nil {
		return catalog.JobClaim{}, fmt.Errorf("claim job %s: %w", imageID, db.translate(err))
	}
	return catalog.JobClaim{}, fmt.Errorf("claim job %s: %w", imageID, sqlrows.ClaimMiss(imageID, exists))
}

// Reschedule makes the job held by the lease token due again after delay,
// unpublished and not leased; its attempts are kept. A job that is gone, or
// whose lease was lost, is left alone.
func (db *DB) Reschedule(ctx context.Context, imageID string, token int64, delay time.Duration) error {
	_, err := db.sql.ExecContext(ctx, `
		UPDATE jobs SET available_at = ?, published_at = NULL, lease_until = NULL, lease_token = NULL,
		    relay_until = NULL, relay_token = NULL
		WHERE image_id = ? AND lease_token = ?`, micros(db.now().Add(max(delay, 0))), imageID, token)
	if err != nil {
		return fmt.Errorf("reschedule job %s: %w", imageID, db.translate(err))
	}
	db.wake.Broadcast()
	return nil
}

// FinishJob removes the job row that the lease token holds; removing it
// twice, or after the lease was lost, changes nothing.
func (db *DB) FinishJob(ctx context.Context, imageID string, token int64) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM jobs WHERE image_id = ? AND lease_token = ?`, imageID, token); err != nil {
		return fmt.Errorf("finish job %s: %w", imageID, db.translate(err))
	}
	return nil
}

// BuryJob replaces the job row of dl.Job that the lease token holds by dl
// (a zero FailedAt means now), in one transaction. A job that is gone
// (finished, buried already, or its image deleted), or whose lease was
// lost, is left alone.
func (db *DB) BuryJob(ctx context.Context, dl catalog.DeadLetter, token int64) error {
	if dl.FailedAt.IsZero() {
		dl.FailedAt = db.now()
	}
	err := db.bury(ctx, dl, `DELETE FROM jobs WHERE image_id = ? AND lease_token = ? RETURNING product_id`, dl.Job.ImageID, token)
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
	now := db.now()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM dead_letters WHERE image_id = ? RETURNING image_id, product_id`, imageID).
			Scan(&job.ImageID, &job.ProductID)
		if errors.Is(err, sql.ErrNoRows) {
			return catalog.NotFound("dead letter of image %s", imageID)
		}
		if err != nil {
			return err
		}
		job.TraceParent = traceparent.Of(ctx)
		return statements{tx}.Enqueue(ctx, job, now)
	})
	if err != nil {
		return catalog.Job{}, fmt.Errorf("revive dead letter %s: %w", imageID, err)
	}
	db.wake.Broadcast()
	return job, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/jobwait"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// jobsChannel is the channel that the jobs table's trigger notifies when a
// job becomes available; its payload is the table's schema.
const jobsChannel = "vitrine_jobs"

// productsChannel is the channel that the products table's triggers notify
// when a product is written in a way that may change a list (migration
// 0004).
const productsChannel = "vitrine_products"

// Receive claims the job that became available first and is not leased,
// leasing it for Options.Lease and counting the attempt before it runs. It
// blocks until there is one, ctx ends or the DB is closed. Receivers of
// every process sharing the database are woken by a notification when a
// job becomes available (AddImage, Enqueue, Retry, Reschedule,
// ReviveDeadLetter); they also look again when the next delayed job or
// lease falls due, and at least every Options.PollInterval, so that a lost
// notification only delays a job.
func (db *DB) Receive(ctx context.Context) (catalog.Delivery, error) {
	db.startListener()
	loop := jobwait.Loop{Signal: db.wake, Closed: db.closed, Poll: db.poll, Now: db.now}
	return jobwait.Receive(ctx, loop, func(ctx context.Context) (*delivery, bool, *time.Time, error) {
		d, due, err := db.claim(ctx)
		return d, d != nil, due, err
	})
}

// claim leases the first available job in one statement. Receivers of
// other processes claiming at the same time skip the row it locks rather
// than wait for it. With no job available, it returns when the next one
// falls due (nil if there is none).
func (db *DB) claim(ctx context.Context) (*delivery, *time.Time, error) {
	now := utc(db.now())
	d := &delivery{db: db, token: sqlrows.NewToken()}
	err := db.pool.QueryRow(ctx, `
		UPDATE jobs
		SET lease_until = $1, lease_token = $2, attempts = attempts + 1
		WHERE image_id = (
			SELECT image_id FROM jobs
			WHERE available_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY available_at, image_id
			LIMIT 1
			FOR UPDATE SKIP LOCKED)
		RETURNING `+sqlrows.ClaimedColumns, utc(now.Add(db.lease)), d.token, now).Scan(d.Dest()...)
	if err == nil {
		return d, nil, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, db.translate(ctx, err)
	}
	var due *time.Time
	// greatest() ignores NULLs: an unleased job is due at available_at.
	if err := db.pool.QueryRow(ctx, `SELECT min(greatest(available_at, lease_until)) FROM jobs`).Scan(&due); err != nil {
		return nil, nil, db.translate(ctx, err)
	}
	return nil, due, nil
}

// PendingJobs counts the jobs whose outcome is not stored yet, leased and
// published ones included.
func (db *DB) PendingJobs(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM jobs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending jobs: %w", db.translate(ctx, err))
	}
	return n, nil
}

// Backlog counts the jobs whose outcome is not stored yet: all of them,
// and those of the products of userID.
func (db *DB) Backlog(ctx context.Context, userID int64) (total, owned int, err error) {
	err = db.pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE p.user_id = $1)
		FROM jobs j JOIN products p ON p.id = j.product_id`, userID).Scan(&total, &owned)
	if err != nil {
		return 0, 0, fmt.Errorf("count the job backlog: %w", db.translate(ctx, err))
	}
	return total, owned, nil
}

// delivery is a leased job. The lease is identified by the random token it
// was claimed with: once the lease is lost (it expired and the job was
// claimed again, or the job was enqueued or rescheduled anew), Ack, Retry
// and DeadLetter change nothing, as the job belongs to its newer delivery.
type delivery struct {
	sqlrows.Claimed // the job and its attempt
	db              *DB
	token           int64
}

var _ catalog.Delivery = (*delivery)(nil)

// Ack deletes the job: it is done.
func (d *delivery) Ack(ctx context.Context) error {
	_, err := d.db.pool.Exec(ctx, `DELETE FROM jobs WHERE image_id = $1 AND lease_token = $2`, d.Job().ImageID, d.token)
	if err != nil {
		return fmt.Errorf("ack job %s: %w", d.Job().ImageID, d.db.translate(ctx, err))
	}
	return nil
}

// Retry releases the lease; the job is available again after delay.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	_, err := d.db.pool.Exec(ctx, `
		UPDATE jobs SET available_at = $1, lease_until = NULL, lease_token = NULL
		WHERE image_id = $2 AND lease_token = $3`,
		utc(d.db.now().Add(max(delay, 0))), d.Job().ImageID, d.token)
	if err != nil {
		return fmt.Errorf("retry job %s: %w", d.Job().ImageID, d.db.translate(ctx, err))
	}
	// Local receivers look again at once and sleep until the job falls due
	// (the trigger's notification tells the other processes).
	d.db.wake.Broadcast()
	return nil
}

// DeadLetter replaces the job by a dead letter holding this delivery's
// attempt count, in one statement.
func (d *delivery) DeadLetter(ctx context.Context, code, detail string) error {
	_, err := d.db.pool.Exec(ctx, `
		WITH gone AS (
			DELETE FROM jobs WHERE image_id = $5 AND lease_token = $6
			RETURNING image_id, product_id)
		`+insertDeadLetter,
		code, detail, d.Attempt(), utc(d.db.now()), d.Job().ImageID, d.token)
	if err != nil {
		return fmt.Errorf("dead-letter job %s: %w", d.Job().ImageID, d.db.translate(ctx, err))
	}
	return nil
}

// startListener starts, once, the goroutine that keeps a connection
// listening for jobs; Close stops it.
func (db *DB) startListener() {
	if db.started.Load() {
		return
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.started.Load() || db.isClosed {
		return
	}
	db.started.Store(true)
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		db.listenLoop(db.bg)
	}()
}

// listenLoop keeps the node's one listening connection until ctx ends,
// reconnecting with a capped backoff when it is lost: new jobs wake
// receivers, product writes invalidate list pages, appended events go to
// the watchers (Watch). While it is down, receivers fall back on polling.
func (db *DB) listenLoop(ctx context.Context) {
	wait := reconnectBackOff()
	for {
		connected, _ := db.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		// Notifications may have been lost with the connection: receivers
		// look again.
		db.wake.Broadcast()
		if connected {
			wait.Reset()
		}
		timer := time.NewTimer(wait.NextBackOff())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// reconnectBackOff paces the reconnections of a listening connection:
// 100 ms, doubling to 5 s, with a little jitter so that nodes that lost
// the database together do not come back in step.
func reconnectBackOff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.2,
		Multiplier: 2, MaxInterval: 5 * time.Second}
	b.Reset()
	return b
}

// listenOnce connects, listens on the three channels and hands each
// notification of this schema on, until the connection fails or ctx ends.
// connected tells whether it got as far as listening.
func (db *DB) listenOnce(ctx context.Context) (connected bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, db.listen)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	var schema *string // NULL when no schema of the search_path exists
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+jobsChannel+`; LISTEN `+productsChannel+`; LISTEN `+eventsChannel); err != nil {
		return false, err
	}
	// Jobs added, products written and events appended before LISTEN took
	// effect notified no one.
	db.wake.Broadcast()
	db.tellWatchers("")
	db.pages.SetLive(true)
	defer db.pages.SetLive(false) // writes of others go unheard from now on
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Channel == eventsChannel {
			s, product, ok := strings.Cut(n.Payload, ":")
			if ok && (schema == nil || s == *schema) {
				db.tellWatchers(product)
			}
			continue
		}
		if schema != nil && n.Payload != *schema {
			continue
		}
		switch n.Channel {
		case jobsChannel:
			db.wake.Broadcast()
		case productsChannel:
			db.pages.Invalidate()
		}
	}
}

// JobsWake returns a channel closed when a job may next have become
// available (added, retried, revived, or, on PostgreSQL, announced by
// another process): a relay waits on it instead of polling.
func (db *DB) JobsWake() <-chan struct{} { return db.wake.Wait() }

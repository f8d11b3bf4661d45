package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
)

// eventsChannel is the channel that every appended event notifies, with
// 'schema:product_id' as its payload.
const eventsChannel = "vitrine_events"

var (
	_ catalog.EventLog   = (*DB)(nil)
	_ catalog.WebhookLog = (*DB)(nil)
)

// Append records e and notifies every node's watchers at commit; an event
// already recorded is left as it was. Now and then it also deletes the
// events past the retention window.
func (db *DB) Append(ctx context.Context, e catalog.Event) error {
	var image *string
	if e.ImageID != "" {
		image = &e.ImageID
	}
	_, err := db.pool.Exec(ctx, `
		WITH added AS (
			INSERT INTO events (product_id, seq, type, image_id, at, data)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (product_id, seq) DO NOTHING
			RETURNING product_id)
		SELECT pg_notify('`+eventsChannel+`', current_schema() || ':' || product_id::text) FROM added`,
		e.ProductID, e.Seq, string(e.Type), image, utc(e.At), string(e.Data))
	if err != nil {
		return fmt.Errorf("append event %s #%d: %w", e.ProductID, e.Seq, db.translate(ctx, err))
	}
	db.sweepEvents() //nolint:contextcheck // the sweep outlives this Append: it runs on the DB's own context, ended by Close
	return nil
}

// sweepEvents deletes expired events and webhook attempts, at most once a
// minute per process, in the background: Append runs on a product grain's
// turn, which must not wait for it. A failure waits for the next time.
func (db *DB) sweepEvents() {
	now := db.now()
	db.mu.Lock()
	defer db.mu.Unlock()
	if now.Sub(db.swept) < time.Minute || db.isClosed {
		return
	}
	db.swept = now
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		ctx, cancel := context.WithTimeout(db.bg, time.Minute)
		defer cancel()
		_, _ = db.pool.Exec(ctx, `DELETE FROM events WHERE at < $1`, utc(now.Add(-db.retention)))
		_, _ = db.pool.Exec(ctx, `DELETE FROM webhook_attempts WHERE at < $1`, utc(now.Add(-attemptsKept)))
	}()
}

// attemptsKept is how long webhook attempts are kept.
const attemptsKept = 7 * 24 * time.Hour

// After returns the events of productID after the given seq that are still
// within the retention window, oldest first.
func (db *DB) After(ctx context.Context, productID string, after int64, limit int) ([]catalog.Event, error) {
	if !catalog.ValidID(productID) {
		return nil, nil
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.pool.Query(ctx, `
		SELECT seq, type, COALESCE(image_id::text, ''), at, data::text FROM events
		WHERE product_id = $1 AND seq > $2 AND at >= $3
		ORDER BY seq LIMIT $4`, productID, after, utc(db.now().Add(-db.retention)), limit)
	if err != nil {
		return nil, fmt.Errorf("events of %s after #%d: %w", productID, after, db.translate(ctx, err))
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.Event, error) {
		e := catalog.Event{ProductID: productID}
		var typ, data string
		if err := row.Scan(&e.Seq, &typ, &e.ImageID, &e.At, &data); err != nil {
			return e, err
		}
		e.Type, e.Data, e.At = catalog.EventType(typ), []byte(data), e.At.UTC()
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("events of %s after #%d: %w", productID, after, db.translate(ctx, err))
	}
	return evs, nil
}

// watcher is one Watch call.
type watcher struct{ notify func(productID string) }

// Watch calls notify with the product of every event appended in this
// schema, by any process, until ctx ends. It is told by the node's one
// listening connection (the job queue's too: see listenLoop). Notifications
// are lost while that connection is down, so at the start and on every
// reconnection notify is called with "" to say that any product may have
// new events.
func (db *DB) Watch(ctx context.Context, notify func(productID string)) error {
	w := &watcher{notify: notify}
	db.mu.Lock()
	if db.isClosed {
		db.mu.Unlock()
		return errors.New("watch events: the database is closed")
	}
	db.watchers[w] = struct{}{}
	db.mu.Unlock()
	defer func() {
		db.mu.Lock()
		delete(db.watchers, w)
		db.mu.Unlock()
	}()
	db.startListener()
	notify("") // events appended before this watcher was registered
	select {
	case <-ctx.Done():
		return nil
	case <-db.closed:
		return errors.New("watch events: the database is closed")
	}
}

// tellWatchers calls every watcher with productID ("": any product).
func (db *DB) tellWatchers(productID string) {
	db.mu.Lock()
	ws := make([]*watcher, 0, len(db.watchers))
	for w := range db.watchers {
		ws = append(ws, w)
	}
	db.mu.Unlock()
	for _, w := range ws {
		w.notify(productID)
	}
}

// RecordAttempt keeps one webhook attempt.
func (db *DB) RecordAttempt(ctx context.Context, a catalog.WebhookAttempt) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO webhook_attempts (id, endpoint, event_type, product_id, seq, attempt, outcome, http_status, error, at, duration_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.ID, a.Endpoint, string(a.EventType), a.ProductID, a.Seq, a.Attempt, a.Outcome, a.HTTPStatus, a.Error, utc(a.At), a.DurationMS)
	if err != nil {
		return fmt.Errorf("record webhook attempt %s: %w", a.ID, db.translate(ctx, err))
	}
	return nil
}

// ListAttempts returns the latest webhook attempts, newest first.
func (db *DB) ListAttempts(ctx context.Context, limit int) ([]catalog.WebhookAttempt, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT id, endpoint, event_type, product_id::text, seq, attempt, outcome, http_status, error, at, duration_ms
		FROM webhook_attempts ORDER BY n DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", db.translate(ctx, err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.WebhookAttempt, error) {
		var a catalog.WebhookAttempt
		var typ string
		err := row.Scan(&a.ID, &a.Endpoint, &typ, &a.ProductID, &a.Seq, &a.Attempt, &a.Outcome, &a.HTTPStatus, &a.Error, &a.At, &a.DurationMS)
		a.EventType, a.At = catalog.EventType(typ), a.At.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", db.translate(ctx, err))
	}
	return out, nil
}

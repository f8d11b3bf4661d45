// Package sqlite is vitrine's embedded default store: products, images and
// the durable queue of image jobs in one SQLite database file, through the
// pure-Go driver modernc.org/sqlite.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/jobwait"
	"github.com/vitrine-dev/vitrine/persistence/migrations"
	"github.com/vitrine-dev/vitrine/persistence/pagecache"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrationFiles holds the schema migrations, NNNN_name.sql, applied in
// version order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options tune a DB. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
	// Lease is how long a received job stays invisible to other receivers
	// before it is delivered again; 0 means 5 minutes.
	Lease time.Duration
	// PollInterval bounds how long Receive sleeps before looking for jobs
	// again when nothing woke it; 0 means 500 ms.
	PollInterval time.Duration
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection; 0 means 5 seconds.
	BusyTimeout time.Duration
	// OnMigration, when set, is called by Open after each migration of the
	// schema, applied then or before, with its position and the count of
	// migrations.
	OnMigration func(done, total int, name string)
	// ReleaseLeases makes Open release the leases of jobs a previous
	// process received, so that they are delivered again at once. Only the
	// process that runs the embedded queue's workers (vitrine serve) sets
	// it: a tool opening the database beside a live server (keys, gc,
	// doctor, migrate) would hand that server's running jobs out twice.
	ReleaseLeases bool
}

// DB is a SQLite database holding the catalog and its job queue. It is safe
// for concurrent use.
type DB struct {
	sql   *sql.DB
	now   func() time.Time
	lease time.Duration
	poll  time.Duration

	onMigration func(done, total int, name string)

	wake      *jobwait.Signal
	stmts     sync.Map        // query text → *sql.Stmt (see prepared)
	pages     pagecache.Cache // pages of ids, until a product write
	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ catalog.ProductStore = (*DB)(nil)
	_ catalog.JobQueue     = (*DB)(nil)
)

// Open opens (creating if needed) the database file at path and applies the
// migrations it lacks. With ReleaseLeases it releases the leases of jobs
// received by a previous process: the embedded queue belongs to one
// process, so those jobs are delivered again at once.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Lease <= 0 {
		opts.Lease = 5 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	sqldb, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Connections are kept, not opened per request: opening one reads the
	// schema and sets the pragmas, and database/sql keeps only two idle
	// by default, so under load most requests paid for a new connection
	// (and re-prepared their statements). In WAL mode readers never wait
	// for the writer, so a few connections per core serve both.
	conns := max(8, 4*runtime.GOMAXPROCS(0))
	sqldb.SetMaxOpenConns(conns)
	sqldb.SetMaxIdleConns(conns)
	db := &DB{
		sql:    sqldb,
		now:    opts.Now,
		lease:  opts.Lease,
		poll:   opts.PollInterval,
		wake:   jobwait.NewSignal(),
		closed: make(chan struct{}),

		onMigration: opts.OnMigration,
	}
	if err := db.migrate(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if !opts.ReleaseLeases {
		return db, nil
	}
	if _, err := sqldb.ExecContext(ctx, `UPDATE jobs SET lease_until = NULL WHERE lease_until IS NOT NULL`); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("open sqlite %s: release leases: %w", path, db.translate(err))
	}
	return db, nil
}

// dsn builds the connection string. Every connection gets WAL, a busy
// timeout, foreign keys and synchronous=NORMAL (durable at checkpoints, safe
// with WAL). Writing transactions begin IMMEDIATE, taking the write lock up
// front, so concurrent writers wait for each other under the busy timeout
// instead of failing with SQLITE_BUSY when a read lock cannot be upgraded;
// read-only transactions (sql.TxOptions.ReadOnly) begin DEFERRED.
func dsn(path string, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	// A file: URI, so that a path holding '?' or '#' stays a path.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(path))
	return "file:" + escaped + "?" + q.Encode()
}

// Close releases the database. Receivers waiting for a job return.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { close(db.closed) })
	db.stmts.Range(func(_, s any) bool { _ = s.(*sql.Stmt).Close(); return true })
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.sql.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", db.translate(err))
	}
	return nil
}

// migrate applies, in version order and each in its own transaction, the
// migrations not yet recorded in schema_migrations.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at INTEGER NOT NULL -- unix microseconds UTC
) STRICT`
	if _, err := db.sql.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", db.translate(err))
	}
	for i, m := range ms {
		if err := db.apply(ctx, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if db.onMigration != nil {
			db.onMigration(i+1, len(ms), m.Name)
		}
	}
	return nil
}

func (db *DB) apply(ctx context.Context, m migrations.Migration) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		// Checked inside the (immediate) transaction, so two processes
		// opening the same new file do not both apply it.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			m.Version, micros(db.now()))
		return err
	})
}

// inTx runs fn in a writing (IMMEDIATE) transaction, committing if fn
// succeeds. Errors are translated into catalog errors.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return db.translate(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one to report
		return db.translate(err)
	}
	if err := tx.Commit(); err != nil {
		return db.translate(err)
	}
	return nil
}

// affected reports whether the statement that res and err are the outcome
// of changed a row.
func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// translate turns driver errors into catalog errors: a database that is
// closed, locked for longer than the busy timeout, out of space or failing
// I/O is Unavailable. Context errors and catalog errors pass unchanged;
// anything else (a bug) is returned as is and reads as internal.
func (db *DB) translate(err error) error {
	if err == nil {
		return nil
	}
	var ce *catalog.Error
	if errors.As(err, &ce) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	select {
	case <-db.closed:
		return catalog.Unavailable("database", err)
	default:
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		return catalog.Unavailable("database", err)
	}
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return catalog.Unavailable("database", err)
	}
	return err
}

// sqliteCode is the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// micros is t as the stored unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the UTC time of stored unix microseconds.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

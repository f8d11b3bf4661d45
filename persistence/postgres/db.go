// Package postgres is vitrine's shared store: products, images, the jobs of
// images and their dead letters in PostgreSQL, through pgx and its pool.
// Several processes use one database at once: the job queue leases rows
// with FOR UPDATE SKIP LOCKED and wakes receivers with LISTEN/NOTIFY, and a
// broker's relay and consumers use the same rows as an outbox.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/jobwait"
	"github.com/vitrine-dev/vitrine/persistence/migrations"
	"github.com/vitrine-dev/vitrine/persistence/pagecache"
)

// migrationFiles holds the schema migrations, NNNN_name.sql, applied in
// version order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options tune a DB. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now. Job times (due, leases, dead
	// letters) are the application's, not the server's, so tests move them.
	Now func() time.Time
	// Lease is how long a received job stays invisible to other receivers
	// (of every process) before it is delivered again; 0 means 5 minutes.
	Lease time.Duration
	// PollInterval bounds how long Receive sleeps before looking for jobs
	// again when no notification woke it; 0 means 1 second.
	PollInterval time.Duration
	// ConnectTimeout bounds each connection attempt, so that an unreachable
	// server fails fast with catalog.Unavailable; 0 means the URL's
	// connect_timeout, or 5 seconds without one.
	ConnectTimeout time.Duration
	// MaxConns caps the pool; 0 means the URL's pool_max_conns, or pgxpool's
	// default (the larger of 4 and the number of CPUs).
	MaxConns int32
	// SkipMigrations leaves the schema alone at Open, for deployments that
	// run Migrate (vitrine migrate) as a step of their own.
	SkipMigrations bool
	// EventRetention is how long product events are kept; 0 means 1 hour.
	EventRetention time.Duration
	// OnMigration, when set, is called by Open and Migrate after each
	// migration of the schema, applied then or before, with its position
	// and the count of migrations.
	OnMigration func(done, total int, name string)
}

// DB is a PostgreSQL database holding the catalog and its jobs. It is safe
// for concurrent use.
type DB struct {
	pool   *pgxpool.Pool
	listen *pgx.ConnConfig // the LISTEN connection's, made on first Receive
	server string          // host:port/database, for messages (never the password)
	now    func() time.Time
	lease  time.Duration
	poll   time.Duration
	// retention is how long events are kept; swept is when expired ones
	// were last deleted (under mu).
	retention   time.Duration
	swept       time.Time
	onMigration func(done, total int, name string)

	wake *jobwait.Signal
	// pages keeps pages of list ids while the listener hears of every
	// product write.
	pages pagecache.Cache

	// watchers are the Watch calls under way, told of events by the
	// listener (under mu).
	watchers map[*watcher]struct{}

	mu        sync.Mutex  // guards isClosed, swept, watchers, and the start of the listener
	started   atomic.Bool // the listener was started (set under mu): the lock-free check of every list
	isClosed  bool
	stop      context.CancelFunc // ends the listener
	bg        context.Context
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ catalog.ProductStore = (*DB)(nil)
	_ catalog.JobQueue     = (*DB)(nil)
	_ catalog.JobOutbox    = (*DB)(nil)
	_ catalog.DeadLetters  = (*DB)(nil)
)

// Open connects to the database at url (postgres://user:pass@host:port/db?…
// or key=value pairs, as libpq takes them) and, unless opts.SkipMigrations,
// applies the migrations it lacks. Leases of jobs held by other processes
// are left alone: those that expire are delivered again.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Lease <= 0 {
		opts.Lease = 5 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.EventRetention <= 0 {
		opts.EventRetention = time.Hour
	}
	switch {
	case opts.ConnectTimeout > 0:
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	case cfg.ConnConfig.ConnectTimeout <= 0:
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	server := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + cfg.ConnConfig.Database

	listen := cfg.ConnConfig.Copy()
	app := listen.RuntimeParams["application_name"]
	if app == "" {
		app = "vitrine"
	}
	listen.RuntimeParams["application_name"] = app + " (listen)"

	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", server, err)
	}
	bg, stop := context.WithCancel(context.Background())
	db := &DB{
		pool:        pool,
		listen:      listen,
		server:      server,
		now:         opts.Now,
		lease:       opts.Lease,
		poll:        opts.PollInterval,
		wake:        jobwait.NewSignal(),
		retention:   opts.EventRetention,
		onMigration: opts.OnMigration,
		bg:          bg,
		stop:        stop,
		closed:      make(chan struct{}),
		watchers:    map[*watcher]struct{}{},
	}
	db.pages.SetLive(false) // until the listener hears
	if opts.SkipMigrations {
		err = db.Ping(ctx)
	} else {
		err = db.Migrate(ctx)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", server, err)
	}
	return db, nil
}

// Close stops the listener and closes the pool once the connections in use
// are returned. Receivers waiting for a job return.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.isClosed = true
		db.mu.Unlock()
		close(db.closed)
		db.stop()
		db.wg.Wait()
		db.pool.Close()
	})
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres %s: %w", db.server, db.translate(ctx, err))
	}
	return nil
}

// migrationLock is the key of the advisory lock that makes processes
// starting at once apply the migrations one after the other ("vitrine" in
// ASCII).
const migrationLock int64 = 0x76_69_74_72_69_6e_65

// Migrate applies, in version order, the migrations not yet recorded in
// schema_migrations, all in one transaction that holds an advisory lock:
// of several processes starting at once, one applies them and the others
// then find them recorded. It is safe to run at any time.
func (db *DB) Migrate(ctx context.Context) error {
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			CREATE TABLE IF NOT EXISTS schema_migrations (
			    version    integer     NOT NULL PRIMARY KEY,
			    name       text        NOT NULL,
			    applied_at timestamptz NOT NULL DEFAULT now()
			)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		for i, m := range ms {
			if !slices.Contains(applied, m.Version) {
				// No arguments: sent with the simple protocol, which runs
				// the file's several statements.
				if _, err := tx.Exec(ctx, m.SQL); err != nil {
					return fmt.Errorf("migration %s: %w", m.Name, err)
				}
				if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
					return fmt.Errorf("migration %s: %w", m.Name, err)
				}
			}
			if db.onMigration != nil {
				db.onMigration(i+1, len(ms), m.Name)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Migrations counts the migrations recorded in the schema and those this
// build knows, without applying any (vitrine doctor reports the gap).
func (db *DB) Migrations(ctx context.Context) (applied, known int, err error) {
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return 0, 0, err
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, len(ms), db.translate(ctx, err)
	}
	if exists {
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
			return 0, len(ms), db.translate(ctx, err)
		}
	}
	return applied, len(ms), nil
}

// inTx runs fn in a read-committed transaction, committing if fn succeeds.
// Errors are translated into catalog errors.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, db.pool, fn); err != nil {
		return db.translate(ctx, err)
	}
	return nil
}

// translate turns driver errors into catalog errors: a server that cannot
// be reached, refuses connections, shuts down, runs out of resources or
// times out is Unavailable, as is a closed DB. Catalog errors pass
// unchanged, and so do context errors when ctx itself ended (the caller
// gave up); anything else (a bug) is returned as is and reads as internal.
func (db *DB) translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ce *catalog.Error
	if errors.As(err, &ce) {
		return err
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	select {
	case <-db.closed:
		return catalog.Unavailable("database", err)
	default:
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if unavailableCode(pgErr.Code) {
			return catalog.Unavailable("database", err)
		}
		return err
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return catalog.Unavailable("database", err)
	}
	return err
}

// unavailableCode reports whether a server error means "try again later"
// rather than a bug: https://www.postgresql.org/docs/current/errcodes-appendix.html
func unavailableCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"),  // insufficient resources: too many connections, disk full, out of memory
		strings.HasPrefix(code, "57P"): // admin or crash shutdown, cannot connect now
		return true
	}
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available
		"57014", // query_canceled: statement_timeout
		"25006": // read_only_sql_transaction: a standby after a failover
		return true
	}
	return false
}

// Postgres error codes the adapter turns into catalog errors.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// pgCode is the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// utc is t as stored: UTC, truncated to the microsecond that timestamptz
// keeps (rather than rounded by the server).
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

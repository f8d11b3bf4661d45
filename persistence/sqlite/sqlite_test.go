package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/accesstest"
	"github.com/vitrine-dev/vitrine/persistence/fakeclock"
	"github.com/vitrine-dev/vitrine/persistence/importtest"
	"github.com/vitrine-dev/vitrine/persistence/outboxtest"
	"github.com/vitrine-dev/vitrine/persistence/queuetest"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
	"github.com/vitrine-dev/vitrine/persistence/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, path string, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestProductStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) catalog.ProductStore {
		return open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{})
	})
}

func TestImportStore(t *testing.T) {
	importtest.Run(t, func(t *testing.T) catalog.ImportStore {
		return open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{})
	})
}

func TestAccessStore(t *testing.T) {
	accesstest.Run(t, func(t *testing.T) accesstest.Store {
		return open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{})
	})
}

func TestJobQueue(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		path := filepath.Join(t.TempDir(), "vitrine.db")
		// A poll interval far beyond the suite's patience: every delivery
		// must come from a wake-up or a due time, never from polling.
		opts := sqlite.Options{PollInterval: time.Hour, ReleaseLeases: true} // Crash restarts a server
		db := open(t, path, opts)
		return queuetest.Harness{
			Queue: func() catalog.JobQueue { return db },
			Add:   func(t *testing.T) catalog.Job { return storetest.AddJob(t, db) },
			Crash: func(t *testing.T) {
				if err := db.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				db = open(t, path, opts)
			},
			DeadLetters: func() catalog.DeadLetters { return db },
		}
	})
}

func TestJobOutbox(t *testing.T) {
	outboxtest.Run(t, func(t *testing.T) outboxtest.Harness {
		clk := fakeclock.At(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
		db := open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{Now: clk.Now})
		return outboxtest.Harness{Store: db, Advance: clk.Advance}
	})
}

func receive(t *testing.T, db *sqlite.DB, wait time.Duration) (catalog.Delivery, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	return db.Receive(ctx)
}

func mustReceive(t *testing.T, db *sqlite.DB) catalog.Delivery {
	t.Helper()
	d, err := receive(t, db, 5*time.Second)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return d
}

func pending(t *testing.T, db *sqlite.DB) int {
	t.Helper()
	n, err := db.PendingJobs(t.Context())
	if err != nil {
		t.Fatalf("PendingJobs: %v", err)
	}
	return n
}

func TestMigrationsAppliedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vitrine.db")
	db := open(t, path, sqlite.Options{})
	job := storetest.AddJob(t, db)
	db.Close()

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	migrations := func() map[int]int64 {
		rows, err := raw.Query(`SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[int]int64{}
		for rows.Next() {
			var v int
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			m[v] = at
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := migrations()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	if len(first) != len(files) {
		t.Fatalf("%d migrations recorded, %d files", len(first), len(files))
	}

	db = open(t, path, sqlite.Options{})
	if fmt.Sprint(migrations()) != fmt.Sprint(first) {
		t.Errorf("re-opening changed schema_migrations: %v, was %v", migrations(), first)
	}
	if _, err := db.GetProduct(t.Context(), job.ProductID); err != nil {
		t.Errorf("product lost on re-open: %v", err)
	}
	if n := pending(t, db); n != 1 {
		t.Errorf("PendingJobs after re-open = %d, want 1", n)
	}
	var mode string
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
}

func TestLeaseExpires(t *testing.T) {
	clk := fakeclock.At(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	db := open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{Now: clk.Now, Lease: time.Minute})
	job := storetest.AddJob(t, db)
	first := mustReceive(t, db)
	if _, err := receive(t, db, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive while leased: error = %v, want deadline exceeded", err)
	}
	clk.Advance(time.Minute)
	second := mustReceive(t, db)
	if second.Job() != job || second.Attempt() != 2 {
		t.Fatalf("after the lease expired: %+v attempt %d, want %+v attempt 2", second.Job(), second.Attempt(), job)
	}
	// The first delivery lost its lease: its Ack and Retry change nothing.
	if err := first.Retry(t.Context(), time.Hour); err != nil {
		t.Fatalf("stale Retry: %v", err)
	}
	if err := first.Ack(t.Context()); err != nil {
		t.Fatalf("stale Ack: %v", err)
	}
	if err := first.DeadLetter(t.Context(), catalog.FailInternal, "stale"); err != nil {
		t.Fatalf("stale DeadLetter: %v", err)
	}
	if dls, err := db.ListDeadLetters(t.Context(), 0); err != nil || len(dls) != 0 {
		t.Fatalf("after a stale DeadLetter: dead letters %+v (%v), want none", dls, err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("PendingJobs after a stale Ack = %d, want 1", n)
	}
	if err := second.Ack(t.Context()); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if n := pending(t, db); n != 0 {
		t.Fatalf("PendingJobs after Ack = %d, want 0", n)
	}
}

func TestRetryDelayFollowsClock(t *testing.T) {
	clk := fakeclock.At(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	db := open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{Now: clk.Now, PollInterval: 20 * time.Millisecond})
	storetest.AddJob(t, db)
	d := mustReceive(t, db)
	if err := d.Retry(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := receive(t, db, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive before the delay: error = %v, want deadline exceeded", err)
	}
	clk.Advance(time.Hour)
	if again := mustReceive(t, db); again.Attempt() != 2 {
		t.Errorf("Attempt() = %d, want 2", again.Attempt())
	}
}

func TestEnqueue(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{})
	job := storetest.AddJob(t, db)
	d := mustReceive(t, db)
	if err := d.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, db); n != 0 {
		t.Fatalf("PendingJobs = %d, want 0", n)
	}

	if err := db.Enqueue(t.Context(), job); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	running := mustReceive(t, db)
	if running.Job() != job || running.Attempt() != 1 {
		t.Fatalf("re-queued job: %+v attempt %d, want %+v attempt 1", running.Job(), running.Attempt(), job)
	}
	// Enqueued again while it runs: the running delivery loses the job.
	if err := db.Enqueue(t.Context(), job); err != nil {
		t.Fatalf("Enqueue while leased: %v", err)
	}
	if err := running.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	again := mustReceive(t, db)
	if again.Job() != job || again.Attempt() != 1 {
		t.Fatalf("job enqueued while running: %+v attempt %d, want %+v attempt 1", again.Job(), again.Attempt(), job)
	}

	err := db.Enqueue(t.Context(), catalog.Job{ImageID: storetest.NewID(t), ProductID: job.ProductID})
	if !catalog.IsNotFound(err) {
		t.Errorf("Enqueue(unknown image) error = %v, want not found", err)
	}
}

func TestDeleteProductDropsJobs(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{})
	job := storetest.AddJob(t, db)
	other := storetest.AddJob(t, db)
	if n := pending(t, db); n != 2 {
		t.Fatalf("PendingJobs = %d, want 2", n)
	}
	if err := db.DeleteProduct(t.Context(), job.ProductID); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("PendingJobs after delete = %d, want 1", n)
	}
	if d := mustReceive(t, db); d.Job() != other {
		t.Errorf("delivered %+v, want %+v", d.Job(), other)
	}
}

// TestWritersOnTwoHandles checks that writers on two connections pools (as
// two processes would be) wait for each other instead of failing busy.
func TestWritersOnTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vitrine.db")
	dbs := []*sqlite.DB{open(t, path, sqlite.Options{}), open(t, path, sqlite.Options{})}
	var wg sync.WaitGroup
	for i := range 8 {
		db := dbs[i%2]
		wg.Go(func() {
			for range 10 {
				now := time.Now()
				p := &catalog.Product{ID: storetest.NewID(t), UserID: 1, Name: "Chair", Price: 100, Currency: "EUR",
					CreatedAt: now, UpdatedAt: now, Version: 1}
				if err := db.CreateProduct(t.Context(), p); err != nil {
					t.Errorf("CreateProduct: %v", err)
					return
				}
				p.Version, p.Name = 2, "Stool"
				if err := db.UpdateProduct(t.Context(), p); err != nil {
					t.Errorf("UpdateProduct: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	ps, err := dbs[0].ListProductIDs(t.Context(), catalog.ProductFilter{Query: "stool"})
	if err != nil || len(ps) != 80 {
		t.Errorf("listed %d updated products (%v), want 80", len(ps), err)
	}
}

func TestTimesTruncatedToMicroseconds(t *testing.T) {
	storetest.CheckMicrosecondTimes(t, open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{}))
}

func TestClosed(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := db.Receive(t.Context())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if catalog.ErrorKind(err) != catalog.KindUnavailable {
			t.Errorf("Receive on close: error = %v, want unavailable", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive did not return when the DB closed")
	}
	if err := db.Ping(t.Context()); catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Errorf("Ping after Close: error = %v, want unavailable", err)
	}
	if _, err := db.GetProduct(t.Context(), storetest.NewID(t)); catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Errorf("GetProduct after Close: error = %v, want unavailable", err)
	}
}

func TestPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a?b#c%20d.db")
	db := open(t, path, sqlite.Options{})
	storetest.AddJob(t, db)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %s: %v", path, err)
	}
}

// TestClaimDueSkipsLeased checks that the outbox does not hand a broker the
// job that the embedded queue is running, until its lease expires.
func TestClaimDueSkipsLeased(t *testing.T) {
	clk := fakeclock.At(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	db := open(t, filepath.Join(t.TempDir(), "vitrine.db"), sqlite.Options{Now: clk.Now, Lease: time.Minute})
	job := storetest.AddJob(t, db)
	d := mustReceive(t, db)
	if jobs, _, err := db.ClaimDue(t.Context(), 10, time.Second, 0); err != nil || len(jobs) != 0 {
		t.Fatalf("ClaimDue while leased = %+v (%v), want none", jobs, err)
	}
	clk.Advance(time.Minute)
	if jobs, _, err := db.ClaimDue(t.Context(), 10, time.Second, 0); err != nil || len(jobs) != 1 || jobs[0] != job {
		t.Fatalf("ClaimDue after the lease expired = %+v (%v), want [%+v]", jobs, err, job)
	}
	// Enqueue drops the lease: the delivery is stale.
	if err := db.Enqueue(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, db); n != 1 {
		t.Errorf("PendingJobs after a stale Ack = %d, want 1", n)
	}
}

// TestMigrationFromVersion1 opens a database made by the first schema and
// checks that its pending job survives the outbox migration.
func TestMigrationFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vitrine.db")
	db := open(t, path, sqlite.Options{})
	job := storetest.AddJob(t, db)
	db.Close()

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, stmt := range []string{
		`DROP TABLE dead_letters`,
		`DROP INDEX jobs_unpublished`,
		`ALTER TABLE jobs DROP COLUMN published_at`,
		`DELETE FROM schema_migrations WHERE version = 2`,
	} {
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw.Close()

	db = open(t, path, sqlite.Options{})
	jobs, _, err := db.ClaimDue(t.Context(), 10, time.Second, 0)
	if err != nil || len(jobs) != 1 || jobs[0] != job {
		t.Fatalf("ClaimDue after migrating = %+v (%v), want [%+v]", jobs, err, job)
	}
	if dls, err := db.ListDeadLetters(t.Context(), 0); err != nil || len(dls) != 0 {
		t.Fatalf("ListDeadLetters after migrating = %+v (%v)", dls, err)
	}
}

// TestOnlyTheServerReleasesLeases: a tool opening the database beside a
// live server (vitrine keys, gc, doctor, migrate) leaves the server's
// running job leased; a server starting again releases it.
func TestOnlyTheServerReleasesLeases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vitrine.db")
	server := open(t, path, sqlite.Options{ReleaseLeases: true})
	job := storetest.AddJob(t, server)
	running := mustReceive(t, server)

	tool := open(t, path, sqlite.Options{})
	if d, err := receive(t, tool, 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after a tool opened the database: %v %v, want the running job still leased", d, err)
	}
	restarted := open(t, path, sqlite.Options{ReleaseLeases: true})
	again := mustReceive(t, restarted)
	if again.Job() != job || again.Attempt() != 2 {
		t.Fatalf("after a server restart: %+v attempt %d, want %+v attempt 2", again.Job(), again.Attempt(), job)
	}
	_ = running
}

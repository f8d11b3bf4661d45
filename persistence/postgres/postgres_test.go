//go:build integration

// The integration tests run against a real PostgreSQL, the one that
// VITRINE_POSTGRES_URL names:
//
//	eval "$(scripts/services up postgres)"
//	go test -tags integration ./persistence/postgres/
//
// Each test works in a fresh schema of its own, dropped at its end.
package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/accesstest"
	"github.com/vitrine-dev/vitrine/persistence/fakeclock"
	"github.com/vitrine-dev/vitrine/persistence/importtest"
	"github.com/vitrine-dev/vitrine/persistence/outboxtest"
	"github.com/vitrine-dev/vitrine/persistence/postgres"
	"github.com/vitrine-dev/vitrine/persistence/queuetest"
	"github.com/vitrine-dev/vitrine/persistence/storetest"
)

func open(t *testing.T, url string, opts postgres.Options) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestProductStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) catalog.ProductStore {
		url, _ := postgres.FreshSchema(t)
		return open(t, url, postgres.Options{})
	})
}

func TestImportStore(t *testing.T) {
	t.Parallel()
	importtest.Run(t, func(t *testing.T) catalog.ImportStore {
		url, _ := postgres.FreshSchema(t)
		return open(t, url, postgres.Options{})
	})
}

func TestAccessStore(t *testing.T) {
	t.Parallel()
	accesstest.Run(t, func(t *testing.T) accesstest.Store {
		url, _ := postgres.FreshSchema(t)
		return open(t, url, postgres.Options{})
	})
}

func TestJobQueue(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		url, _ := postgres.FreshSchema(t)
		clk := fakeclock.Offset()
		// A poll interval far beyond the suite's patience: every delivery
		// must come from a wake-up or a due time, never from polling.
		opts := postgres.Options{Now: clk.Now, Lease: time.Minute, PollInterval: time.Hour}
		db := open(t, url, opts)
		return queuetest.Harness{
			Queue: func() catalog.JobQueue { return db },
			Add:   func(t *testing.T) catalog.Job { return storetest.AddJob(t, db) },
			// Processes sharing PostgreSQL do not release each other's
			// leases: a dead consumer's jobs come back when their lease
			// expires, which the clock skips to.
			Crash: func(t *testing.T) {
				db.Close()
				clk.Advance(opts.Lease)
				db = open(t, url, opts)
			},
			DeadLetters: func() catalog.DeadLetters { return db },
		}
	})
}

func newClock() *fakeclock.Clock { return fakeclock.At(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) }

func TestJobOutbox(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, func(t *testing.T) outboxtest.Harness {
		url, _ := postgres.FreshSchema(t)
		clk := newClock()
		db := open(t, url, postgres.Options{Now: clk.Now})
		return outboxtest.Harness{Store: db, Advance: clk.Advance}
	})
}

func receive(t *testing.T, q catalog.JobQueue, wait time.Duration) (catalog.Delivery, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	return q.Receive(ctx)
}

func mustReceive(t *testing.T, q catalog.JobQueue) catalog.Delivery {
	t.Helper()
	d, err := receive(t, q, 5*time.Second)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return d
}

func expectNothing(t *testing.T, q catalog.JobQueue) {
	t.Helper()
	if d, err := receive(t, q, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			t.Fatalf("Receive delivered %+v attempt %d, want nothing", d.Job(), d.Attempt())
		}
		t.Fatalf("Receive error = %v, want deadline exceeded", err)
	}
}

func pending(t *testing.T, db *postgres.DB) int {
	t.Helper()
	n, err := db.PendingJobs(t.Context())
	if err != nil {
		t.Fatalf("PendingJobs: %v", err)
	}
	return n
}

func migrationFiles(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	return len(files)
}

// TestMigrationsRace opens the same empty schema from several processes at
// once: one applies the migrations, the others wait for it and find them
// applied.
func TestMigrationsRace(t *testing.T) {
	t.Parallel()
	url, schema := postgres.FreshSchema(t)
	const opens = 4
	dbs := make([]*postgres.DB, opens)
	errs := make([]error, opens)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range opens {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = postgres.Open(t.Context(), url, postgres.Options{})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
			continue
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, versions int
	err = conn.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM `+schema+`.schema_migrations`).Scan(&rows, &versions)
	if err != nil {
		t.Fatal(err)
	}
	if want := migrationFiles(t); rows != want || versions != want {
		t.Errorf("schema_migrations has %d rows of %d versions, want %d once each", rows, versions, want)
	}
	// Every handle works, and Migrate again changes nothing.
	for _, db := range dbs {
		storetest.AddJob(t, db)
		if err := db.Migrate(t.Context()); err != nil {
			t.Errorf("Migrate again: %v", err)
		}
	}
	if n := pending(t, dbs[0]); n != opens {
		t.Errorf("PendingJobs = %d, want %d", n, opens)
	}
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM `+schema+`.schema_migrations`).Scan(&rows); err != nil || rows != migrationFiles(t) {
		t.Errorf("after Migrate again: %d rows (%v)", rows, err)
	}

	// SkipMigrations opens a migrated schema without touching it.
	skip := open(t, url, postgres.Options{SkipMigrations: true})
	if n := pending(t, skip); n != opens {
		t.Errorf("PendingJobs through a SkipMigrations handle = %d, want %d", n, opens)
	}
}

func TestLeaseExpires(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	clk := newClock()
	db := open(t, url, postgres.Options{Now: clk.Now, Lease: time.Minute})
	job := storetest.AddJob(t, db)
	first := mustReceive(t, db)
	expectNothing(t, db)
	clk.Advance(time.Minute)
	second := mustReceive(t, db)
	if second.Job() != job || second.Attempt() != 2 {
		t.Fatalf("after the lease expired: %+v attempt %d, want %+v attempt 2", second.Job(), second.Attempt(), job)
	}
	// The first delivery lost its lease: its Retry, DeadLetter and Ack
	// change nothing.
	if err := first.Retry(t.Context(), time.Hour); err != nil {
		t.Fatalf("stale Retry: %v", err)
	}
	if err := first.DeadLetter(t.Context(), catalog.FailInternal, "stale"); err != nil {
		t.Fatalf("stale DeadLetter: %v", err)
	}
	if err := first.Ack(t.Context()); err != nil {
		t.Fatalf("stale Ack: %v", err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("PendingJobs after stale calls = %d, want 1", n)
	}
	if dls, err := db.ListDeadLetters(t.Context(), 0); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters after a stale DeadLetter: %+v (%v)", dls, err)
	}
	// Enqueued again while it runs (same clock, same lease end): the
	// running delivery loses the job to the next one.
	if err := db.Enqueue(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	third := mustReceive(t, db)
	if err := second.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, db); n != 1 {
		t.Fatalf("PendingJobs after the Ack of a re-enqueued job = %d, want 1", n)
	}
	if err := third.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, db); n != 0 {
		t.Fatalf("PendingJobs after Ack = %d, want 0", n)
	}
}

// TestLeasesKeptAtOpen checks that a process starting does not take the
// jobs that another, live one is running.
func TestLeasesKeptAtOpen(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	a := open(t, url, postgres.Options{})
	job := storetest.AddJob(t, a)
	d := mustReceive(t, a)
	b := open(t, url, postgres.Options{})
	expectNothing(t, b)
	if err := d.Retry(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if got := mustReceive(t, b); got.Job() != job || got.Attempt() != 2 {
		t.Errorf("delivered %+v attempt %d by the other process, want %+v attempt 2", got.Job(), got.Attempt(), job)
	}
}

// TestConcurrentProcesses has receivers of three processes share a queue:
// each job goes to one of them.
func TestConcurrentProcesses(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	var dbs []*postgres.DB
	for range 3 {
		dbs = append(dbs, open(t, url, postgres.Options{PollInterval: 50 * time.Millisecond}))
	}
	const jobs = 30
	for range jobs {
		storetest.AddJob(t, dbs[0])
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 6 {
		db := dbs[i%3]
		wg.Go(func() {
			for {
				d, err := receive(t, db, 500*time.Millisecond)
				if errors.Is(err, context.DeadlineExceeded) {
					return
				}
				if err != nil {
					t.Errorf("Receive: %v", err)
					return
				}
				mu.Lock()
				seen[d.Job().ImageID]++
				mu.Unlock()
				if err := d.Ack(t.Context()); err != nil {
					t.Errorf("Ack: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Errorf("%d jobs delivered, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s delivered %d times", id, n)
		}
	}
}

// TestClaimDueSkipsLeased checks that the outbox does not hand a broker the
// job that a receiver is running, until its lease expires.
func TestClaimDueSkipsLeased(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	clk := newClock()
	db := open(t, url, postgres.Options{Now: clk.Now, Lease: time.Minute})
	job := storetest.AddJob(t, db)
	mustReceive(t, db)
	if jobs, _, err := db.ClaimDue(t.Context(), 10, time.Second, 0); err != nil || len(jobs) != 0 {
		t.Fatalf("ClaimDue while leased = %+v (%v), want none", jobs, err)
	}
	clk.Advance(time.Minute)
	if jobs, _, err := db.ClaimDue(t.Context(), 10, time.Second, 0); err != nil || len(jobs) != 1 || jobs[0] != job {
		t.Fatalf("ClaimDue after the lease expired = %+v (%v), want [%+v]", jobs, err, job)
	}
}

// TestBadIDs checks that strings that are not UUIDs, which a uuid column
// cannot hold, read as absent rather than as a server error.
func TestBadIDs(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	db := open(t, url, postgres.Options{})
	const bad = "not-a-uuid"
	if _, err := db.GetProduct(t.Context(), bad); !catalog.IsNotFound(err) {
		t.Errorf("GetProduct: %v, want not found", err)
	}
	if err := db.DeleteProduct(t.Context(), bad); !catalog.IsNotFound(err) {
		t.Errorf("DeleteProduct: %v, want not found", err)
	}
	if _, err := db.ClaimJob(t.Context(), bad, time.Minute); !catalog.IsNotFound(err) {
		t.Errorf("ClaimJob: %v, want not found", err)
	}
	if _, err := db.ReviveDeadLetter(t.Context(), bad); !catalog.IsNotFound(err) {
		t.Errorf("ReviveDeadLetter: %v, want not found", err)
	}
	if err := db.MarkPublished(t.Context(), 1, []string{bad}); err != nil {
		t.Errorf("MarkPublished: %v", err)
	}
	if _, err := db.ListProductIDs(t.Context(), catalog.ProductFilter{After: bad}); catalog.ErrorKind(err) != catalog.KindInvalid {
		t.Errorf("ListProductIDs(after %q): %v, want invalid", bad, err)
	}
	p := &catalog.Product{ID: bad, UserID: 1, Name: "x", Currency: "EUR", Version: 1}
	if err := db.CreateProduct(t.Context(), p); catalog.ErrorKind(err) != catalog.KindInvalid {
		t.Errorf("CreateProduct: %v, want invalid", err)
	}
}

// proxy forwards TCP connections to a server, and can cut them all or stop
// accepting, as a network failure or a server that stops would.
type proxy struct {
	t      *testing.T
	target string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, ln: ln}
	p.wg.Go(p.serve)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		// Each copy ends when either side closes (cut does): no error to see.
		p.wg.Go(func() { _, _ = io.Copy(s, c); s.Close(); c.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, s); s.Close(); c.Close() })
	}
}

// cut closes every connection open through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// stop refuses new connections and cuts the open ones.
func (p *proxy) stop() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// through returns u with its host replaced by the proxy's.
func (p *proxy) through(u string) string {
	p.t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		p.t.Fatalf("the proxy tests need VITRINE_POSTGRES_URL as a URL: %v", err)
	}
	parsed.Host = p.ln.Addr().String()
	return parsed.String()
}

func serverAddr(t *testing.T, u string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// TestServerGoneUnavailableFast stops a server (as seen through a proxy)
// under an open DB: its calls fail fast with Unavailable, none hangs.
func TestServerGoneUnavailableFast(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	p := startProxy(t, serverAddr(t, url))
	const connect = time.Second
	db := open(t, p.through(url), postgres.Options{ConnectTimeout: connect})
	job := storetest.AddJob(t, db)
	p.stop()

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", db.Ping},
		{"GetProduct", func(ctx context.Context) error { _, err := db.GetProduct(ctx, job.ProductID); return err }},
		{"ListProductIDs", func(ctx context.Context) error {
			_, err := db.ListProductIDs(ctx, catalog.ProductFilter{Limit: 10})
			return err
		}},
		{"Receive", func(ctx context.Context) error { _, err := db.Receive(ctx); return err }},
		{"ClaimDue", func(ctx context.Context) error { _, _, err := db.ClaimDue(ctx, 10, time.Second, 0); return err }},
		{"Enqueue", func(ctx context.Context) error { return db.Enqueue(ctx, job) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := c.call(ctx)
			if catalog.ErrorKind(err) != catalog.KindUnavailable {
				t.Errorf("error = %v, want unavailable", err)
			}
			// The promise: a call fails within the connect timeout (one
			// attempt; the server refuses at once), not after ctx's 30 s.
			if elapsed := time.Since(start); elapsed > 2*connect {
				t.Errorf("took %v to fail, more than twice the connect timeout %v", elapsed, connect)
			}
		})
	}
}

// TestNotifyAcrossProcesses checks that a job added by one process wakes
// the receivers of another at once (no polling), also after the receiving
// process lost its connections and got them back.
func TestNotifyAcrossProcesses(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	p := startProxy(t, serverAddr(t, url))
	receiver := open(t, p.through(url), postgres.Options{PollInterval: time.Hour})
	writer := open(t, url, postgres.Options{})

	// wakesWithin starts a receiver, adds a job from the writer once the
	// receiver waits, and expects it delivered soon.
	wakesWithin := func(t *testing.T) {
		t.Helper()
		got := make(chan catalog.Delivery, 1)
		errc := make(chan error, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		go func() {
			d, err := receiver.Receive(ctx)
			if err != nil {
				errc <- err
				return
			}
			got <- d
		}()
		time.Sleep(300 * time.Millisecond) // the receiver is waiting by now
		job := storetest.AddJob(t, writer)
		select {
		case d := <-got:
			if d.Job() != job {
				t.Errorf("woken with %+v, want %+v", d.Job(), job)
			}
			if err := d.Ack(t.Context()); err != nil {
				t.Error(err)
			}
		case err := <-errc:
			t.Fatalf("Receive: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("a job added by another process was not delivered within 5s")
		}
	}
	t.Run("listening", wakesWithin)
	p.cut() // the listener and the pooled connections are lost
	// The listener reconnects within its first backoff; the pool replaces
	// its connections once found broken (it pings those idle for over a second).
	time.Sleep(1500 * time.Millisecond)
	t.Run("after reconnecting", wakesWithin)
}

// TestTimesUTC checks that times come back in UTC, to the microsecond.
func TestTimesUTC(t *testing.T) {
	t.Parallel()
	url, _ := postgres.FreshSchema(t)
	storetest.CheckMicrosecondTimes(t, open(t, url, postgres.Options{}))
}

// TestOneListeningConnection: a node's job queue and its event watchers
// share one LISTEN connection (it was one each).
func TestOneListeningConnection(t *testing.T) {
	t.Parallel()
	u, schema := postgres.FreshSchema(t)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := parsed.Query()
	q.Set("application_name", "listen-"+schema)
	parsed.RawQuery = q.Encode()
	db := open(t, parsed.String(), postgres.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	heard := make(chan string, 16)
	go func() { _ = db.Watch(ctx, func(id string) { heard <- id }) }()
	go func() { _, _ = db.Receive(ctx) }()
	<-heard // the watcher is registered
	conn, err := pgx.Connect(t.Context(), postgres.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	listening := func() (n int) {
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
			"listen-"+schema+" (listen)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for listening() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a second listener, if there were one, has had time to connect
	if n := listening(); n != 1 {
		t.Fatalf("%d listening connections, want 1 for the queue and the watcher together", n)
	}
	// And the one connection still tells the watcher of events.
	p := &catalog.Product{ID: storetest.NewID(t), UserID: 1, Name: "lamp", Price: 100, Currency: "EUR", Version: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := db.CreateProduct(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := db.Append(t.Context(), catalog.Event{ProductID: p.ID, Seq: 1, Type: catalog.EventProductCreated, At: time.Now(), Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case id := <-heard:
			if id == p.ID {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the watcher never heard of the event")
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/cluster"
	"github.com/vitrine-dev/vitrine/persistence/postgres"
	"github.com/vitrine-dev/vitrine/persistence/redis"
	"github.com/vitrine-dev/vitrine/persistence/s3"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
	"github.com/vitrine-dev/vitrine/transport/kafka"
)

// A finding of vitrine doctor.
type finding struct {
	status string // ok, warn, FAIL
	name   string
	detail string
	fix    string
}

const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "FAIL"
)

// doctor checks the configuration and every backend it names, prints what
// is wrong and how to fix it, and fails when something would stop vitrine
// serve. It makes no bucket, topic or PostgreSQL migration; it does create
// the data directory, and opens an existing SQLite file as serve does
// (which applies its migrations).
func doctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		var findings []finding
		for _, e := range splitErrors(err) {
			findings = append(findings, finding{statusFail, "configuration", e.Error(),
				"set the flag or variable it names to a valid value (vitrine serve --help lists them)"})
		}
		return report(stdout, findings)
	}
	return report(stdout, diagnose(ctx, cfg, checkLibvips))
}

// splitErrors lists the errors that errors.Join put together.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// report prints the findings; it fails when one of them failed.
func report(w io.Writer, findings []finding) error {
	failed, warned := 0, 0
	for _, f := range findings {
		fmt.Fprintf(w, "%-5s %-14s %s\n", f.status, f.name, f.detail)
		if f.fix != "" && f.status != statusOK {
			fmt.Fprintf(w, "      %-14s fix: %s\n", "", f.fix)
		}
		switch f.status {
		case statusFail:
			failed++
		case statusWarn:
			warned++
		}
	}
	switch {
	case failed > 0:
		fmt.Fprintf(w, "\n%d problem(s) and %d warning(s): vitrine serve would fail or misbehave until they are fixed.\n", failed, warned)
		return fmt.Errorf("%d problem(s) found", failed)
	case warned > 0:
		fmt.Fprintf(w, "\nNo problem; %d warning(s).\n", warned)
	default:
		fmt.Fprintln(w, "\nEverything vitrine needs answers.")
	}
	return nil
}

// diagnose runs every check that the configuration calls for.
func diagnose(ctx context.Context, cfg Config, libvips func(Config) finding) []finding {
	out := []finding{{statusOK, "configuration", fmt.Sprintf("%s mode, role %s, %s", cfg.Access.Env, cfg.Role, backends(cfg)), ""}}
	if cfg.Access.openWrites {
		out = append(out, finding{statusWarn, "access", "clients without a key may write (development mode)",
			"VITRINE_ENV=production and API keys (vitrine keys create) for anything but a local trial"})
	}
	if f, ok := checkProxies(cfg); ok {
		out = append(out, f)
	}
	out = append(out, checkListen(cfg))
	out = append(out, checkDatabase(ctx, cfg)...)
	if cfg.PostgresURL == "" || cfg.S3Bucket == "" {
		out = append(out, checkDataDir(cfg))
	}
	if cfg.RedisURL != "" {
		out = append(out, checkRedis(ctx, cfg))
	}
	if cfg.KafkaBrokers != "" {
		out = append(out, checkKafka(ctx, cfg))
	}
	if cfg.S3Bucket != "" {
		out = append(out, checkS3(ctx, cfg))
	}
	if cfg.provider() == cluster.ProviderEtcd {
		out = append(out, checkEtcd(ctx, cfg))
	}
	for _, ep := range cfg.Events.endpoints {
		out = append(out, checkWebhook(ctx, ep))
	}
	if cfg.Role != "api" {
		out = append(out, libvips(cfg))
	}
	return out
}

// checkProxies warns when anonymous reads are limited per client address,
// served on an address others can reach, and no proxy is trusted: behind
// a CDN or load balancer every reader then shares the proxy's address and
// one limit, and the shop's public traffic gets 429s.
func checkProxies(cfg Config) (finding, bool) {
	a := cfg.Access
	if a.PublicReads == "false" || a.rateAnonymous.Off() || len(a.trustedProxies) > 0 || isLoopback(cfg.Addr) {
		return finding{}, false
	}
	return finding{statusWarn, "access", fmt.Sprintf("anonymous reads are limited to %s per client address and no proxy is trusted: "+
		"behind a CDN or load balancer every reader shares its address and that one limit", a.RateAnonymousText),
		"behind a proxy, set VITRINE_TRUSTED_PROXIES to its addresses (README, \"Behind a CDN or load balancer\"); " +
			"facing clients directly, nothing to do"}, true
}

func within(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 5*time.Second)
}

func checkListen(cfg Config) finding {
	if cfg.Role == "worker" {
		return finding{statusOK, "listen", "a worker serves no HTTP", ""}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if vitrineAt(cfg.Addr) {
			return finding{statusOK, "listen", "a vitrine already serves on " + cfg.Addr + ": the other checks ran beside it", ""}
		}
		return finding{statusFail, "listen", fmt.Sprintf("cannot listen on %s: %v", cfg.Addr, err),
			"stop what uses that address or set VITRINE_ADDR (--addr) to a free one"}
	}
	_ = ln.Close() // only probed
	return finding{statusOK, "listen", cfg.Addr + " is free", ""}
}

// vitrineAt asks what listens on addr (a listen address: no host means
// this machine) whether it is a vitrine, by its index (GET /).
func vitrineAt(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + net.JoinHostPort(host, port) + "/")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var index struct{ Name string }
	return res.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&index) == nil && index.Name == "vitrine"
}

func checkDataDir(cfg Config) finding {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return finding{statusFail, "data directory", fmt.Sprintf("%s: %v", cfg.DataDir, err),
			"create it with write access for this user, or set VITRINE_DATA_DIR (--data-dir)"}
	}
	f, err := os.CreateTemp(cfg.DataDir, ".doctor-*")
	if err != nil {
		return finding{statusFail, "data directory", fmt.Sprintf("%s is not writable: %v", cfg.DataDir, err),
			"give this user write access to it, or set VITRINE_DATA_DIR (--data-dir)"}
	}
	_ = f.Close()
	_ = os.Remove(f.Name())
	return finding{statusOK, "data directory", cfg.DataDir + " is writable", ""}
}

func checkDatabase(ctx context.Context, cfg Config) []finding {
	if cfg.PostgresURL == "" {
		path := filepath.Join(cfg.DataDir, "vitrine.db")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return []finding{{statusOK, "database", "SQLite " + path + " does not exist yet: vitrine serve creates it", ""}}
		}
		db, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			return []finding{{statusFail, "database", fmt.Sprintf("SQLite %s: %v", path, err),
				"check the file's permissions; move a damaged file away to start over"}}
		}
		defer db.Close() //nolint:errcheck // the doctor only reads
		return []finding{{statusOK, "database", "SQLite " + path + " opens, its migrations applied", ""}, checkKeys(ctx, cfg, db)}
	}
	where := maskURL(cfg.PostgresURL)
	c, cancel := within(ctx)
	defer cancel()
	db, err := postgres.Open(c, cfg.PostgresURL, postgres.Options{SkipMigrations: true, ConnectTimeout: 3 * time.Second})
	if err != nil {
		return []finding{{statusFail, "database", fmt.Sprintf("PostgreSQL %s: %v", where, err),
			"start PostgreSQL there, or fix VITRINE_POSTGRES_URL (user, password, host, port, database)"}}
	}
	defer db.Close() //nolint:errcheck // the doctor only reads
	applied, known, err := db.Migrations(c)
	switch {
	case err != nil:
		return []finding{{statusFail, "database", fmt.Sprintf("PostgreSQL %s: %v", where, err),
			"start PostgreSQL there, or fix VITRINE_POSTGRES_URL (user, password, host, port, database)"}}
	case applied < known:
		return []finding{{statusWarn, "database", fmt.Sprintf("PostgreSQL %s answers; %d of %d migrations applied", where, applied, known),
			"run vitrine migrate (vitrine serve also applies them at start)"}}
	case applied > known:
		return []finding{{statusWarn, "database", fmt.Sprintf("PostgreSQL %s has %d migrations, this build knows %d: a newer vitrine migrated it", where, applied, known),
			"run the newer vitrine"}}
	}
	return []finding{{statusOK, "database", fmt.Sprintf("PostgreSQL %s answers; all %d migrations applied", where, known), ""}, checkKeys(ctx, cfg, db)}
}

func checkKeys(ctx context.Context, cfg Config, store access.KeyStore) finding {
	c, cancel := within(ctx)
	defer cancel()
	keys, err := store.ListKeys(c)
	if err != nil {
		return finding{statusWarn, "api keys", "could not list them: " + err.Error(), ""}
	}
	active := 0
	for _, k := range keys {
		if !k.Revoked() {
			active++
		}
	}
	switch {
	case active == 0 && !cfg.Access.openWrites && cfg.Access.AdminToken == "":
		return finding{statusWarn, "api keys", "no API key and no admin token: every write will be refused",
			"vitrine keys create --scopes write (or admin), or set VITRINE_ADMIN_TOKEN"}
	default:
		return finding{statusOK, "api keys", fmt.Sprintf("%d active", active), ""}
	}
}

func checkRedis(ctx context.Context, cfg Config) finding {
	where := maskURL(cfg.RedisURL)
	c, err := redis.New(cfg.RedisURL, redis.Options{Timeout: 2 * time.Second}) //nolint:contextcheck // the cache's repair loop runs until Close, not for ctx
	if err == nil {
		defer c.Close() //nolint:contextcheck // the doctor only pings: Close has no missed write to repair
		cc, cancel := within(ctx)
		defer cancel()
		err = c.Ping(cc)
	}
	if err != nil {
		return finding{statusFail, "redis", fmt.Sprintf("%s: %v", where, err),
			"start Redis there or fix VITRINE_REDIS_URL; unset it to cache in process (vitrine serves without Redis, slower across nodes)"}
	}
	return finding{statusOK, "redis", where + " answers", ""}
}

func checkKafka(ctx context.Context, cfg Config) finding {
	c, cancel := within(ctx)
	defer cancel()
	if err := kafka.Ping(c, kafka.Config{Brokers: splitList(cfg.KafkaBrokers)}); err != nil {
		return finding{statusFail, "kafka", fmt.Sprintf("%s: %v", cfg.KafkaBrokers, err),
			"start the brokers or fix VITRINE_KAFKA_BROKERS; unset it to queue image jobs in the database (uploads still answer 202 while Kafka is away)"}
	}
	return finding{statusOK, "kafka", cfg.KafkaBrokers + " answer", ""}
}

func checkS3(ctx context.Context, cfg Config) finding {
	c, cancel := within(ctx)
	defer cancel()
	where := cfg.S3Endpoint + " bucket " + cfg.S3Bucket
	st, err := s3.Open(c, cfg.s3Config())
	if err == nil {
		err = st.Ping(c)
	}
	if err != nil {
		return finding{statusFail, "s3", fmt.Sprintf("%s: %v", where, err),
			"check VITRINE_S3_ENDPOINT and the credentials (VITRINE_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY); a bucket that does not exist yet is created by vitrine serve"}
	}
	return finding{statusOK, "s3", where + " answers", ""}
}

func checkEtcd(ctx context.Context, cfg Config) finding {
	endpoints := splitList(cfg.EtcdEndpoints)
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 3 * time.Second})
	if err == nil {
		defer cli.Close() //nolint:errcheck // a status probe: nothing to lose on close
		c, cancel := within(ctx)
		defer cancel()
		_, err = cli.Status(c, endpoints[0])
	}
	if err != nil {
		return finding{statusFail, "etcd", fmt.Sprintf("%s: %v", cfg.EtcdEndpoints, err),
			"start etcd there or fix VITRINE_ETCD_ENDPOINTS (host:port, comma-separated)"}
	}
	return finding{statusOK, "etcd", cfg.EtcdEndpoints + " answers", ""}
}

// checkWebhook tries to reach a webhook endpoint's host (without sending
// an event).
func checkWebhook(ctx context.Context, endpoint string) finding {
	u, _ := url.Parse(endpoint) // validated with the configuration
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	c, cancel := within(ctx)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(c, "tcp", host)
	if err != nil {
		return finding{statusWarn, "webhook", fmt.Sprintf("%s: %v", endpoint, err),
			"start the receiver or fix VITRINE_WEBHOOK_URLS; deliveries are retried, then logged as failed (GET /admin/webhooks/deliveries)"}
	}
	_ = conn.Close() // only probed
	return finding{statusOK, "webhook", endpoint + " is reachable", ""}
}

// checkLibvips starts libvips once, with the recipe, as a worker does.
func checkLibvips(cfg Config) finding {
	e, err := startEngine(cfg)
	if err != nil {
		fix := "run scripts/install-deps (libvips from apt)"
		if strings.Contains(err.Error(), "RECIPE") {
			fix = "fix the recipe file VITRINE_RECIPE_FILE names"
		}
		return finding{statusFail, "libvips", err.Error(), fix}
	}
	defer e.Shutdown()
	return finding{statusOK, "libvips", "starts, with recipe version " + fmt.Sprint(e.recipe.Version), ""}
}

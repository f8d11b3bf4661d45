package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/cluster"
	"github.com/vitrine-dev/vitrine/persistence/cachemetrics"
	"github.com/vitrine-dev/vitrine/persistence/localfs"
	"github.com/vitrine-dev/vitrine/persistence/memory"
	"github.com/vitrine-dev/vitrine/persistence/orphans"
	"github.com/vitrine-dev/vitrine/persistence/postgres"
	"github.com/vitrine-dev/vitrine/persistence/redis"
	"github.com/vitrine-dev/vitrine/persistence/s3"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
	"github.com/vitrine-dev/vitrine/transport/kafka"
	"github.com/vitrine-dev/vitrine/transport/rest"
	"github.com/vitrine-dev/vitrine/transport/urlfetch"
	"github.com/vitrine-dev/vitrine/transport/webhook"
)

// imageEngine is the image side vitrine needs: a header probe for uploads
// and the processor for jobs.
type imageEngine interface {
	actors.Prober
	actors.Processor
	actors.Renderer
}

// database is the store, embedded or PostgreSQL, as its consumers name it:
// each line is an interface a consumer owns (actors', orphans') or a port
// of catalog's, no method of its own.
type database interface {
	actors.GrainStore       // product grains; the service's reads and imports' SKU lookups are a part
	actors.BacklogCounter   // upload limits, and the vitrine_image_jobs_backlog gauge
	catalog.ImportStore     // the import runner
	catalog.JobQueue        // image workers, without Kafka
	catalog.JobOutbox       // Kafka's relay and consumer
	catalog.DeadLetters     // admin
	access.KeyStore         // the HTTP front door, vitrine keys and vitrine doctor
	access.IdempotencyStore // the HTTP front door
	orphans.Images          // the orphan sweep (vitrine gc, and every VITRINE_GC_INTERVAL)
	orphans.Lease           // one periodic sweep at a time
	io.Closer
}

var (
	_ database = (*sqlite.DB)(nil)
	_ database = (*postgres.DB)(nil)
)

// App is a running vitrine: the one process that tests start and stop too.
type App struct {
	cfg   Config
	log   *zap.Logger
	db    database
	cache *redis.Cache
	node  *cluster.Node
	pool  *actors.ImagePool
	// renders makes files on demand for this node's grains; nil: none.
	renders *actors.RenderPool
	server  *rest.Server
	ln      net.Listener
	served  chan error
	pprof   *http.Server
	// metrics is the process's metric registry; metricsSrv serves it on
	// VITRINE_METRICS_ADDR.
	metrics    *prometheus.Registry
	metricsSrv *http.Server
	webhooks   *webhook.Dispatcher
	eventSink  *eventSink // nil on worker nodes
	consumer   *kafka.Consumer
	relay      *kafka.Relay
	stopBG     context.CancelFunc
	bg         sync.WaitGroup
}

// Start opens storage, joins the cluster and starts what cfg.Role asks for.
// tracer, when not nil, traces requests and image jobs (startTracing).
func Start(ctx context.Context, cfg Config, log *zap.Logger, engine imageEngine, tracer trace.TracerProvider) (app *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
			defer cancel()
			_ = a.Close(closeCtx)
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	serveAPI := cfg.Role == "all" || cfg.Role == "api"
	runWorkers := cfg.Role == "all" || cfg.Role == "worker"
	if serveAPI {
		a.ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	var bgCtx context.Context
	bgCtx, a.stopBG = context.WithCancel(context.WithoutCancel(ctx)) // until Close, not for Start's context

	// Products, images and jobs.
	if a.db, err = openDatabase(ctx, cfg, true, nil); err != nil {
		return nil, err
	}

	// Files.
	blobs, files, streamer, err := openFiles(ctx, cfg, a.ln, log)
	if err != nil {
		return nil, err
	}

	// Metrics: one registry for the process, exposed at /metrics (and on
	// VITRINE_METRICS_ADDR when set).
	a.metrics = prometheus.NewRegistry()
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c, ok := engine.(interface{ Collector() prometheus.Collector }); ok {
		a.metrics.MustRegister(c.Collector())
	}
	cacheMetrics := cachemetrics.New(a.metrics)
	actorMetrics := actors.NewMetrics(a.metrics)
	a.metrics.MustRegister(backlogGauge(bgCtx, a.db))

	// The hot-read cache and the rate limits: in-process, or shared by
	// every node through Redis. Without Redis, a node of a cluster caches
	// nothing: a copy in one node's memory would not see another node's
	// writes (its rate limits are then its own).
	var cache catalog.Cache = memory.New(cfg.CacheEntries).Instrument(cacheMetrics)
	if cfg.RedisURL == "" && cfg.clustered() {
		cache = memory.New(0).Instrument(cacheMetrics)
		log.Info("no hot-read cache: this node is part of a cluster and VITRINE_REDIS_URL is not set")
	}
	var limiter access.RateLimiter = memory.NewLimiter(nil)
	if cfg.RedisURL != "" {
		a.cache, err = redis.New(cfg.RedisURL, redis.Options{Log: log.Named("redis"), Metrics: cacheMetrics}) //nolint:contextcheck // the cache repairs missed writes until Close, not for Start's context
		if err != nil {
			return nil, fmt.Errorf("open redis: %w", err)
		}
		cache = a.cache
		limiter = a.cache.Limiter(limiter)
	}

	// Products' events: in this process's memory on the embedded default,
	// in PostgreSQL when every node shares it; webhooks are sent by the
	// node whose grain made the change.
	events := eventLogOf(a.db, cfg.Events.Retention)
	if serveAPI && len(cfg.Events.endpoints) > 0 {
		attempts := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vitrine_webhook_attempts_seconds", Help: "Webhook delivery attempts by outcome (delivered, retrying, failed, dropped) and their duration.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"})
		a.metrics.MustRegister(attempts)
		a.webhooks = webhook.New(webhook.Config{Endpoints: cfg.Events.endpoints, Secret: cfg.Events.secret, Events: cfg.Events.types, //nolint:contextcheck // the dispatcher delivers until Close, not for Start's context
			Observe: func(outcome string, took time.Duration) { attempts.WithLabelValues(outcome).Observe(took.Seconds()) }},
			events, log.Named("webhooks"))
	}

	// Product grains live on API nodes only: a worker node, whose decoders
	// may crash it, calls them there.
	var kinds []*pcluster.Kind
	var node atomic.Pointer[cluster.Node] // set once started; grains may activate before
	if serveAPI {
		a.eventSink = newEventSink(events, a.webhookSink(), log.Named("events")) //nolint:contextcheck // the sink retries events until Close, not for Start's context
		sink := a.eventSink
		a.metrics.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vitrine_events_pending", Help: "Events the event log refused, waiting on this node to be appended again."},
				func() float64 { return float64(sink.Pending()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vitrine_event_appends_failed_total", Help: "Appends to the event log that failed on this node, retries included."},
				func() float64 { return float64(sink.Failed()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vitrine_events_lost_total", Help: "Events of stored changes that never reached the event log (live streams of their products sent stream.reset)."},
				func() float64 { return float64(sink.Lost()) }))
		if cfg.RenderWorkers > 0 {
			a.renders = actors.NewRenderPool(actors.RenderDeps{Blobs: blobs, Renderer: engine, Widths: cfg.renderWidths(), //nolint:contextcheck // the render workers run until Close, not for Start's context
				Workers: cfg.RenderWorkers, Queue: cfg.RenderQueue, Timeout: cfg.JobTimeout, Log: log.Named("render"), Registerer: a.metrics})
		}
		kinds = append(kinds, actors.NewProductKind(actors.ProductDeps{Store: a.db, Cache: cache, Blobs: blobs, Log: log.Named("product"), Metrics: actorMetrics, Tracer: tracer,
			Renders: a.renders,
			Owns: func(id string) bool {
				n := node.Load()
				return n == nil || n.Owns(id, actors.ProductKind)
			},
			Events: a.eventSink}))
	}
	a.node, err = cluster.Start(cfg.clusterConfig(), log.Named("cluster"), kinds...) //nolint:contextcheck // the membership lasts until Close, not for Start's context
	if err != nil {
		return nil, fmt.Errorf("start cluster node: %w", err)
	}
	node.Store(a.node)
	members := a.node
	a.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vitrine_cluster_members",
		Help: "Members hosting product grains in this node's view of the membership."},
		func() float64 { return float64(len(members.Members(actors.ProductKind))) }))
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	service := actors.NewService(a.node, cache, a.db, newID, 5*time.Second, actorMetrics)

	// Image jobs: Kafka when configured, else the database's own queue.
	var queue catalog.JobQueue = a.db
	if cfg.KafkaBrokers != "" {
		kcfg := kafka.Config{Brokers: splitList(cfg.KafkaBrokers), Topic: cfg.KafkaTopic, Partitions: cfg.KafkaPartitions,
			ReplicationFactor: cfg.KafkaReplication, MinInSyncReplicas: cfg.KafkaMinISR,
			Redeliver: cfg.KafkaRedeliver, JobLease: jobLease(cfg)}
		if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
			// Kafka may come later: the outbox keeps every job until then.
			log.Warn("create kafka topics", zap.Error(err))
		}
		if serveAPI {
			a.relay = kafka.NewRelay(kcfg, a.db, log.Named("relay"))
			a.bg.Add(1)
			go func() { defer a.bg.Done(); a.relay.Run(bgCtx) }()
		}
		if runWorkers {
			if a.consumer, err = kafka.NewConsumer(kcfg, a.db, log.Named("kafka")); err != nil { //nolint:contextcheck // the consumer reads until Close, not for Start's context
				return nil, err
			}
			queue = a.consumer
		}
		a.metrics.MustRegister(kafka.NewLagCollector(kcfg))
	}
	allow, _ := urlfetch.ParseAllow(splitList(cfg.FetchAllow)) // validated with the configuration
	fetcher := urlfetch.New(urlfetch.Config{MaxBytes: int64(cfg.MaxUploadBytes), Allow: allow})
	if runWorkers {
		a.pool, err = actors.StartImages(a.node.System, actors.ImageDeps{ //nolint:contextcheck // the workers run until Stop, not for Start's context
			Queue: queue, Images: service, Blobs: blobs, Processor: engine, Prober: engine, Metrics: actorMetrics,
			Fetcher: fetcher,
			Log:     log.Named("images"), Tracer: tracer, Workers: cfg.Workers, MaxAttempts: cfg.JobMaxAttempts, JobTimeout: cfg.JobTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("start image workers: %w", err)
		}
	}
	if serveAPI {
		checks := []rest.Check{{Name: "database", Check: a.db.Ping}, {Name: "files", Check: blobs.Ping}}
		if p := cfg.provider(); p == cluster.ProviderStatic || p == cluster.ProviderEtcd {
			checks = append(checks, rest.Check{Name: "cluster", Check: a.membership})
		}
		if cfg.KafkaBrokers != "" {
			kcfg := kafka.Config{Brokers: splitList(cfg.KafkaBrokers)}
			checks = append(checks, rest.Check{Name: "kafka", Check: func(ctx context.Context) error { return kafka.Ping(ctx, kcfg) }})
		}
		// Redis is not a readiness check: vitrine serves without it.
		limits := actors.UploadLimits{MaxBacklog: cfg.Access.MaxBacklog, MaxOwnerBacklog: cfg.Access.MaxOwnerBacklog}
		restCfg := cfg.Access.rest(cfg.MaxUploadBytes, cfg.RequestTimeout, cfg.MetricsAccess)
		cfg.Events.rest(&restCfg)
		restCfg.MediaURL = blobs.URL("products/")
		restCfg.RenderWidths = cfg.renderWidths()
		restCfg.SigningKeys, _ = signingKeys(cfg.MediaSigningKeys) // validated with the configuration
		restCfg.MaxImportBytes, restCfg.MaxImportRows = cfg.MaxImportBytes, cfg.MaxImportRows
		uploads := actors.NewUploads(service, engine, blobs, a.db, limits, time.Now)
		// Imports are applied by every API node, one import per node at a
		// time, each import by one node at a time (its lease).
		imports := actors.NewImportRunner(actors.ImportDeps{Store: a.db, SKUs: a.db, Service: service, Uploads: uploads,
			CheckURL: fetcher.CheckTarget, Log: log.Named("imports"), Lease: cfg.ImportLease})
		a.bg.Add(1)
		go func() { defer a.bg.Done(); imports.Run(bgCtx) }()
		a.server = rest.New(restCfg, //nolint:contextcheck // the server's event hub lives until the server shuts down
			rest.Deps{
				Products:    service,
				Uploads:     uploads,
				Imports:     imports,
				Reprocess:   service,
				Gallery:     service,
				Admin:       actors.NewAdmin(service, a.db),
				Keys:        a.db,
				Limiter:     limiter,
				Idempotency: a.db,
				Files:       files,
				Events:      events,
				Webhooks:    events,
				Blobs:       streamer,
				Renders:     renders(service, a.renders),
				Checks:      checks,
				NewID:       newID,
				Metrics:     a.metrics,
				Gatherer:    a.metrics,
				Tracer:      tracer,
			}, log.Named("http"))
		server := a.server
		a.metrics.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vitrine_event_subscribers", Help: "Live event streams (SSE) open on this node."},
				func() float64 { return float64(server.EventSubscribers()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vitrine_event_subscribers_dropped_total", Help: "Event streams this node ended because their client fell behind."},
				func() float64 { return float64(server.DroppedSubscribers()) }))
		a.served = make(chan error, 1)
		go func() { a.served <- a.server.Serve(a.ln) }() //nolint:contextcheck // the server serves until Close shuts it down
		if cfg.GCInterval > 0 {
			sweeper := &orphans.Periodic{Images: a.db, Blobs: blobs, Lease: a.db, Holder: newID(), Interval: cfg.GCInterval,
				Options: orphans.Options{Grace: cfg.GCGrace}, Log: log.Named("gc")}
			a.bg.Add(1)
			go func() { defer a.bg.Done(); sweeper.Run(bgCtx) }()
		}
	}
	if cfg.PprofAddr != "" {
		if err := a.startPprof(cfg.PprofAddr); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsAddr != "" {
		if err := a.startMetrics(cfg.MetricsAddr); err != nil {
			return nil, err
		}
	}
	log.Info("vitrine started", zap.Any("config", cfg.fields()), zap.String("listen", a.Addr()),
		zap.String("actor_address", a.node.Address()),
		zap.String("backends", backends(cfg)))
	if cfg.Access.openWrites {
		log.Warn("anonymous clients may write: every product is open to anyone who reaches "+a.Addr(),
			zap.String("env", cfg.Access.Env), zap.String("fix", "VITRINE_ENV=production and API keys (vitrine keys create)"))
	}
	return a, nil
}

// backlogGauge is vitrine_image_jobs_backlog: the image jobs of the whole
// cluster whose outcome is not stored yet; NaN when the store fails to
// count them within 2 s. Its reads end with ctx.
func backlogGauge(ctx context.Context, jobs actors.BacklogCounter) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vitrine_image_jobs_backlog", Help: "Image jobs waiting or running (their outcome not stored yet), in the whole cluster.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		total, _, err := jobs.Backlog(ctx, 0)
		if err != nil {
			return math.NaN()
		}
		return float64(total)
	})
}

// webhookSink is the webhook dispatcher as grains emit to it; nil without
// webhooks.
func (a *App) webhookSink() actors.EventSink {
	if a.webhooks == nil {
		return nil
	}
	return a.webhooks
}

// s3Config is the S3 bucket's settings from vitrine's.
func (c Config) s3Config() s3.Config {
	return s3.Config{Endpoint: c.S3Endpoint, Region: c.S3Region, Bucket: c.S3Bucket,
		AccessKeyID: c.S3AccessKey, SecretAccessKey: c.S3SecretKey, PathStyle: c.S3PathStyle == "true"}
}

// openFiles opens the blob store: S3 when configured (its variants then
// streamed by /media, the bucket staying private), else the local
// directory (its files served by /media). Variant URLs start with
// VITRINE_PUBLIC_URL, by default this node's /media.
func openFiles(ctx context.Context, cfg Config, ln net.Listener, log *zap.Logger) (catalog.BlobStore, rest.Files, rest.BlobStreamer, error) {
	publicURL := mediaURL(cfg, ln, log)
	if cfg.S3Bucket != "" {
		scfg := cfg.s3Config()
		scfg.PublicBaseURL = publicURL
		store, err := s3.New(ctx, scfg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open S3 bucket %s: %w", cfg.S3Bucket, err)
		}
		return store, nil, store, nil
	}
	fs, err := localfs.New(filepath.Join(cfg.DataDir, "files"), publicURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open file store: %w", err)
	}
	return fs, fs, nil, nil
}

// mediaURL is the base of variant URLs: VITRINE_PUBLIC_URL; else, on a
// node of a cluster, the path /media, which every API node answers (and
// which clients resolve against the node they called); else
// http://localhost:PORT/media of this node.
func mediaURL(cfg Config, ln net.Listener, log *zap.Logger) string {
	switch {
	case cfg.PublicURL != "":
		return cfg.PublicURL
	case cfg.clustered():
		log.Info("variant URLs are paths (/media/...) since VITRINE_PUBLIC_URL is not set: set it to the address clients reach the API or a CDN at")
		return "/media"
	}
	port := "8080"
	if ln != nil {
		_, port, _ = net.SplitHostPort(ln.Addr().String())
	} else if _, p, err := net.SplitHostPort(cfg.Addr); err == nil {
		port = p
	}
	return "http://localhost:" + port + "/media"
}

// openDatabase opens PostgreSQL when configured, else the embedded SQLite
// file; either applies its migrations.
// onMigration, when set, hears of each migration (vitrine migrate shows
// them as a progress bar).
// openDatabase opens the configured database. serving says the caller is
// vitrine serve: on the embedded database it then owns the job queue, and
// releases the leases a previous process held; tools (keys, gc, migrate)
// leave a live server's jobs alone.
func openDatabase(ctx context.Context, cfg Config, serving bool, onMigration func(done, total int, name string)) (database, error) {
	if cfg.PostgresURL != "" {
		db, err := postgres.Open(ctx, cfg.PostgresURL, postgres.Options{EventRetention: cfg.Events.Retention, OnMigration: onMigration, Lease: jobLease(cfg)})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return db, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "vitrine.db"), sqlite.Options{OnMigration: onMigration, Lease: jobLease(cfg), ReleaseLeases: serving})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// jobLease is how long a job is claimed by the worker that runs it: its
// time limit, and time to store its outcome. A worker that dies lets its
// jobs go after it.
func jobLease(cfg Config) time.Duration {
	return cfg.JobTimeout + 30*time.Second
}

func backends(cfg Config) string {
	pick := func(isReal bool, yes, no string) string {
		if isReal {
			return yes
		}
		return no
	}
	return "store=" + pick(cfg.PostgresURL != "", "postgres", "sqlite") +
		" cache=" + pick(cfg.RedisURL != "", "redis", "memory") +
		" queue=" + pick(cfg.KafkaBrokers != "", "kafka", "database") +
		" files=" + pick(cfg.S3Bucket != "", "s3", "localfs") +
		" workers=" + strconv.Itoa(cfg.Workers)
}

// startMetrics serves /metrics on a listener of its own (no key needed:
// bind it where only the scraper reaches).
func (a *App) startMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", rest.MetricsHandler(a.metrics))
	a.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.metricsSrv.Serve(ln) }()
	return nil
}

// startPprof serves the Go profiler on its own listener, never on the
// public port.
func (a *App) startPprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.pprof.Serve(ln) }()
	return nil
}

// Addr is the address the HTTP server listens on, or "" without one.
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// membership is the readiness check of a cluster node: it is a member.
func (a *App) membership(context.Context) error {
	if !a.node.IsMember() {
		return catalog.Unavailable("the cluster", fmt.Errorf("this node (%s) is not in the membership", a.node.Address()))
	}
	return nil
}

// Close leaves gracefully, in this order: readiness turns false (and
// responses close their connections) for VITRINE_SHUTDOWN_DRAIN while
// requests are still served, so that load balancers and clients move to
// other nodes; then new connections are refused and in-flight requests
// finish; running image jobs finish (or stay queued when ctx ends first);
// this node leaves the cluster membership and, once the other nodes have
// seen it go, its grains passivate (they activate again elsewhere at their
// next request); the Kafka consumer leaves its group; storage closes.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.server != nil {
		a.server.Drain()
		if a.cfg.ShutdownDrain > 0 {
			a.log.Info("draining: readiness is false", zap.Duration("for", a.cfg.ShutdownDrain))
			select {
			case <-time.After(a.cfg.ShutdownDrain):
			case <-ctx.Done():
			}
		}
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
		}
		if err := <-a.served; err != nil {
			errs = append(errs, fmt.Errorf("serve HTTP: %w", err))
		}
	} else if a.ln != nil {
		_ = a.ln.Close()
	}
	if a.pprof != nil {
		_ = a.pprof.Close()
	}
	if a.metricsSrv != nil {
		_ = a.metricsSrv.Close()
	}
	if a.pool != nil {
		if err := a.pool.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.renders != nil { // the server no longer waits on any
		a.renders.Close()
	}
	if a.webhooks != nil {
		a.webhooks.Close()
	}
	if a.stopBG != nil {
		a.stopBG()
		a.bg.Wait()
	}
	if a.node != nil {
		a.node.Leave(ctx)
	}
	if a.eventSink != nil { // the grains stopped: nothing emits any more
		a.eventSink.Close(ctx)
	}
	if a.consumer != nil {
		if err := a.consumer.Close(); err != nil { //nolint:contextcheck // the consumer's last commit has a deadline of its own
			errs = append(errs, fmt.Errorf("close kafka consumer: %w", err))
		}
	}
	if a.relay != nil {
		if err := a.relay.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close kafka relay: %w", err))
		}
	}
	if a.cache != nil {
		a.cache.Close() //nolint:contextcheck // its last repair of missed writes has a deadline of its own
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	return errors.Join(errs...)
}

// renders is the front door's on-demand renders: none without a pool.
func renders(service *actors.Service, pool *actors.RenderPool) rest.Renders {
	if pool == nil {
		return nil
	}
	return service
}

// renderWidths is the configured ladder of on-demand widths.
func (c Config) renderWidths() catalog.Widths {
	return catalog.Widths{Step: c.RenderWidthStep, Max: c.RenderMaxWidth}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/cluster"
	"github.com/vitrine-dev/vitrine/persistence/localfs"
	"github.com/vitrine-dev/vitrine/persistence/memory"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
	"github.com/vitrine-dev/vitrine/transport/rest"
)

// imageEngine is the image side vitrine needs: a header probe for uploads
// and the processor for jobs.
type imageEngine interface {
	actors.Prober
	actors.Processor
}

// App is a running vitrine: the one process that tests start and stop too.
type App struct {
	cfg    Config
	log    *zap.Logger
	db     *sqlite.DB
	node   *cluster.Node
	pool   *actors.ImagePool
	server *rest.Server
	ln     net.Listener
	served chan error
}

// Start opens storage, joins the cluster and starts what cfg.Role asks for.
func Start(ctx context.Context, cfg Config, log *zap.Logger, engine imageEngine) (app *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			_ = a.Close(closeCtx)
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	serveAPI := cfg.Role == "all" || cfg.Role == "api"
	publicURL := cfg.PublicURL
	if serveAPI {
		a.ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	if publicURL == "" {
		port := "8080"
		if a.ln != nil {
			_, port, _ = net.SplitHostPort(a.ln.Addr().String())
		} else if _, p, err := net.SplitHostPort(cfg.Addr); err == nil {
			port = p
		}
		publicURL = "http://localhost:" + port + "/media"
	}

	a.db, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "vitrine.db"), sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	blobs, err := localfs.New(filepath.Join(cfg.DataDir, "files"), publicURL)
	if err != nil {
		return nil, fmt.Errorf("open file store: %w", err)
	}
	cache := memory.New(cfg.CacheEntries)

	kind := actors.NewProductKind(actors.ProductDeps{Store: a.db, Cache: cache, Blobs: blobs, Log: log.Named("product")})
	a.node, err = cluster.Start(cluster.Config{Name: cfg.ClusterName, Host: cfg.ClusterHost, Port: cfg.ClusterPort}, log, kind)
	if err != nil {
		return nil, fmt.Errorf("start cluster node: %w", err)
	}
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	service := actors.NewService(a.node.Cluster, cache, a.db, newID, 5*time.Second)

	if cfg.Role == "all" || cfg.Role == "worker" {
		a.pool, err = actors.StartImages(a.node.System, actors.ImageDeps{
			Queue: a.db, Images: service, Blobs: blobs, Processor: engine, Log: log.Named("images"),
			Workers: cfg.Workers, MaxAttempts: cfg.JobMaxAttempts, JobTimeout: cfg.JobTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("start image workers: %w", err)
		}
	}
	if serveAPI {
		uploads := actors.NewUploads(service, engine, blobs, time.Now)
		checks := []rest.Check{{Name: "database", Check: a.db.Ping}, {Name: "files", Check: blobs.Ping}}
		a.server = rest.New(rest.Config{MaxUploadBytes: cfg.MaxUploadBytes, RequestTimeout: cfg.RequestTimeout},
			service, uploads, blobs, checks, log.Named("http"))
		a.served = make(chan error, 1)
		go func() { a.served <- a.server.Serve(a.ln) }()
	}
	log.Info("vitrine started", zap.Any("config", cfg.fields()), zap.String("listen", a.Addr()), zap.String("public_url", publicURL))
	return a, nil
}

// Addr is the address the HTTP server listens on, or "" without one.
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Close stops accepting requests, finishes in-flight ones, lets running
// jobs finish (or leaves them queued when ctx ends first), leaves the
// cluster and closes storage.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.server != nil {
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
		}
		if err := <-a.served; err != nil {
			errs = append(errs, fmt.Errorf("serve HTTP: %w", err))
		}
	} else if a.ln != nil {
		_ = a.ln.Close()
	}
	if a.pool != nil {
		if err := a.pool.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.node != nil {
		a.node.Stop()
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	return errors.Join(errs...)
}

var _ catalog.JobQueue = (*sqlite.DB)(nil)

// Package vips reads and renders images with libvips: Probe reads a header
// without decoding, ProcessImage makes a recipe's variants (WebP, JPEG,
// AVIF) and describes the image for rendering (size, BlurHash placeholder,
// dominant colour, animation), Process the variants alone. It is vitrine's
// only cgo package.
//
// libvips is process-global: it is initialised once, its loaders, cache and
// thread settings are shared by everything in the process, and it cannot be
// restarted. Start makes that explicit: it may be called once per process
// and returns the Runtime handle through which images are processed.
//
// Security: Start blocks every libvips loader except the buffer loaders of
// JPEG, PNG, WebP, GIF, HEIF/AVIF and TIFF, and libvips' "untrusted"
// operations, so SVG, PDF, PostScript, ImageMagick, BMP and friends never
// run, whatever a file claims to be. Every input is also sniffed by
// media.Sniff first and must agree with it.
package vips

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/vitrine-dev/vitrine/media"
)

// Config tunes libvips for the process.
type Config struct {
	// Concurrency is the number of threads libvips uses for one operation.
	// The default, 1, suits a service that runs several jobs in parallel:
	// parallelism comes from the jobs, and one job cannot hog the cores.
	Concurrency int
	// CacheMaxOperations and CacheMaxMemory bound libvips' operation cache.
	// The zero default turns it off: every job brings a different buffer, so
	// cached operations would never be reused, while the cache would keep
	// their decoded images and input buffers alive.
	CacheMaxOperations int
	CacheMaxMemory     int64
	// Limits are enforced by Process before decoding; zero fields mean
	// the defaults of media.DefaultLimits.
	Limits media.Limits
	// Logger receives libvips' warnings and errors. Nil, the default,
	// discards all libvips logging.
	Logger *slog.Logger
}

// Runtime is the handle to the started libvips. Its methods are safe for
// concurrent use.
type Runtime struct {
	limits media.Limits

	mu     sync.RWMutex // held for reading by each call, for writing by Shutdown
	closed bool
}

// started guards Start: libvips can be initialised once per process. It is
// this package's only mutable global and mirrors libvips' own global state.
var started atomic.Bool

// ErrStarted is returned by a second call to Start.
var ErrStarted = errors.New("vips: libvips is process-global and was already started; Start may be called once per process")

// ErrShutdown is returned by calls on a Runtime after Shutdown.
var ErrShutdown = errors.New("vips: the runtime is shut down")

// Start initialises libvips for the process, applies cfg, and blocks every
// loader but the accepted ones (see the package documentation) before
// returning. It may be called once per process; later calls return
// ErrStarted, even after Shutdown, because libvips cannot be restarted.
func Start(cfg Config) (*Runtime, error) {
	if cfg.Concurrency < 0 || cfg.CacheMaxOperations < 0 || cfg.CacheMaxMemory < 0 {
		return nil, fmt.Errorf("vips: start: negative concurrency %d or cache limits %d, %d",
			cfg.Concurrency, cfg.CacheMaxOperations, cfg.CacheMaxMemory)
	}
	if !started.CompareAndSwap(false, true) {
		return nil, ErrStarted
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1 // libvips reads 0 as "one thread per core"
	}
	if cfg.Logger != nil {
		govips.LoggingSettings(logTo(cfg.Logger), govips.LogLevelWarning)
	} else {
		govips.LoggingSettings(func(string, govips.LogLevel, string) {}, govips.LogLevelError)
	}
	if err := startup(cfg); err != nil {
		return nil, fmt.Errorf("vips: start: %w", err)
	}
	if err := blockLoaders(); err != nil {
		govips.Shutdown()
		return nil, fmt.Errorf("vips: start: %w", err)
	}
	return &Runtime{limits: cfg.Limits.WithDefaults()}, nil
}

// startup runs govips' Startup, which panics when libvips cannot start.
func startup(cfg Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("libvips failed to start: %v", r)
		}
	}()
	govips.Startup(&govips.Config{
		ConcurrencyLevel: cfg.Concurrency,
		MaxCacheFiles:    0,
		MaxCacheMem:      int(cfg.CacheMaxMemory),
		MaxCacheSize:     cfg.CacheMaxOperations,
	})
	return nil
}

// logTo adapts a logger to govips' log handler.
func logTo(l *slog.Logger) govips.LoggingHandlerFunction {
	return func(domain string, level govips.LogLevel, msg string) {
		lv := slog.LevelInfo
		switch level {
		case govips.LogLevelError, govips.LogLevelCritical:
			lv = slog.LevelError
		case govips.LogLevelWarning:
			lv = slog.LevelWarn
		case govips.LogLevelDebug:
			lv = slog.LevelDebug
		}
		l.Log(context.Background(), lv, msg, "component", "libvips", "domain", domain)
	}
}

// Shutdown waits for calls in progress, then shuts libvips down. Later
// calls on the Runtime return ErrShutdown. It is idempotent.
func (rt *Runtime) Shutdown() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return
	}
	rt.closed = true
	govips.Shutdown()
}

// enter marks a call in progress; the caller calls leave when done.
func (rt *Runtime) enter() (leave func(), err error) {
	rt.mu.RLock()
	if rt.closed {
		rt.mu.RUnlock()
		return nil, ErrShutdown
	}
	return rt.mu.RUnlock, nil
}

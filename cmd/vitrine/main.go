// Command vitrine is the product catalog service: `vitrine serve` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore default handling: a second signal ends the process at once
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "vitrine:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return errUsage
	}
	if isHelp(args[0]) {
		if len(args) > 1 {
			if c, ok := findCommand(args[1]); ok {
				fmt.Fprint(stdout, c.help())
				return nil
			}
		}
		fmt.Fprint(stdout, usage())
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version" // as GNU tools and most CLIs answer it
	}
	c, ok := findCommand(args[0])
	if !ok {
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage())
		return errUsage
	}
	if wantsHelp(args[1:]) {
		fmt.Fprint(stdout, c.help())
		return nil
	}
	err := c.run(ctx, args[1:], getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func serve(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	engine, err := startEngine(cfg) //nolint:contextcheck // libvips is the process's: it runs until Shutdown, not for a context
	if err != nil {
		return err
	}
	defer engine.Shutdown()
	tracer, stopTracing, err := startTracing(ctx, getenv)
	if err != nil {
		return err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stopTracing(c)
	}()
	app, err := Start(ctx, cfg, log, engine, tracer)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", zap.Duration("grace", cfg.ShutdownTimeout))
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout) // ctx is done: the grace starts now
	defer cancel()
	if err := app.Close(closeCtx); err != nil {
		log.Error("shutdown", zap.Error(err))
		return err
	}
	log.Info("stopped")
	return nil
}

// migrate applies the migrations of the configured database and exits.
func migrate(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	var bar *progressbar.ProgressBar
	count := 0
	db, err := openDatabase(ctx, cfg, false, func(done, total int, name string) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionShowCount(),
				progressbar.OptionSetDescription("migrate"), progressbar.OptionSetPredictTime(false))
		}
		bar.Describe("migrate " + name)
		_ = bar.Set(done)
		count = total
	})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: %d migrations, all applied\n", databaseName(cfg), count)
	return db.Close()
}

// databaseName says which database the configuration names, without a
// password.
func databaseName(cfg Config) string {
	if cfg.PostgresURL != "" {
		return "PostgreSQL " + maskURL(cfg.PostgresURL)
	}
	return "SQLite " + filepath.Join(cfg.DataDir, "vitrine.db")
}

// newLogger builds the process logger: JSON lines in production, readable
// console lines in development.
func newLogger(format, level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var enc zapcore.Encoder
	if format == "console" {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl), zap.ErrorOutput(zapcore.AddSync(w))), nil
}

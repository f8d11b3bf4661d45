package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/persistence/orphans"
)

const gcUsage = `Usage:
  vitrine gc [--dry-run] [--grace 1h]

Sweeps orphan files: files under products/ of the configured file store
(VITRINE_DATA_DIR's files, or the S3 bucket) whose image does not exist in
the configured database, older than the grace period. They are left by a
process that died between writing a file and recording it, or by a
removal that failed; a running vitrine sweeps them every
VITRINE_GC_INTERVAL too. --dry-run counts them and removes nothing.
`

// gc sweeps orphan files once, with a progress bar and a summary.
func gc(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("vitrine gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, gcUsage); fs.PrintDefaults() }
	dryRun := fs.Bool("dry-run", false, "count the orphans, remove none")
	grace := fs.Duration("grace", 0, "how old an orphan must be to go (default VITRINE_GC_GRACE, 1h)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if *grace <= 0 {
		*grace = cfg.GCGrace
	}
	db, err := openDatabase(ctx, cfg, false, nil)
	if err != nil {
		return err
	}
	defer closeChecked(db, &err)
	blobs, _, _, err := openFiles(ctx, cfg, nil, zap.NewNop())
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("files"),
		progressbar.OptionShowCount(), progressbar.OptionSpinnerType(14), progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond))
	start := time.Now()
	st, err := orphans.Sweep(ctx, db, blobs, orphans.Options{Grace: *grace, DryRun: *dryRun,
		Progress: func(s orphans.Stats) {
			_ = bar.Set64(s.Files)
			bar.Describe(fmt.Sprintf("files, %d orphans", s.Orphans))
		}})
	_ = bar.Finish()
	verb := "removed"
	if *dryRun {
		verb = "would remove (dry run)"
	}
	fmt.Fprintf(stdout, "%d files (%s) looked at in %s: %d orphans (%s) older than %s, %s %d; %d younger orphans left; %d files of no image left\n",
		st.Files, mib(st.Bytes), time.Since(start).Round(time.Millisecond), st.Orphans, mib(st.OrphanBytes), *grace,
		verb, map[bool]int64{true: st.Orphans, false: st.Removed}[*dryRun], st.Young, st.Unrecognized)
	return err
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

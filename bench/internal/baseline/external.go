package baseline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/vipscli"
)

// PgbenchResult is a pgbench -S run.
type PgbenchResult struct {
	TPS       float64
	LatencyMs float64 // average
	Clients   int
	Duration  time.Duration
	Scale     int
	Output    string
}

const pgbenchSchema = "vitrine_bench_pgbench"

var (
	tpsRe     = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	latencyRe = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// Pgbench runs `pgbench -S` (select-only: one primary-key SELECT a
// transaction) against the database at url for d with the given clients.
// Its tables are made with `pgbench -i` in a schema of their own
// (vitrine_bench_pgbench, through PGOPTIONS' search_path), so vitrine's
// tables are untouched, and the schema is dropped afterwards. It returns
// an error saying why when pgbench or psql is not installed.
func Pgbench(ctx context.Context, url string, clients int, d time.Duration) (PgbenchResult, error) {
	return pgbench(ctx, url, pgbenchSchema, clients, d)
}

// pgbench is Pgbench with its tables in schema.
func pgbench(ctx context.Context, url, schema string, clients int, d time.Duration) (PgbenchResult, error) {
	for _, tool := range []string{"pgbench", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			return PgbenchResult{}, fmt.Errorf("%s is not installed (Debian: apt-get install postgresql-client postgresql-contrib)", tool)
		}
	}
	env := append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
	run := func(name string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, name, args...) // #nosec G204 -- pgbench or psql, with the bench's own arguments and the operator's database URL
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args[:len(args)-1], " "), err, out)
		}
		return string(out), nil
	}
	if _, err := run("psql", "-qXc", "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema, url); err != nil {
		return PgbenchResult{}, err
	}
	defer func() {
		_, _ = exec.Command("psql", "-qXc", "DROP SCHEMA IF EXISTS "+schema+" CASCADE", url).CombinedOutput() // #nosec G204 -- psql, no shell: schema is the constant pgbenchSchema, url the operator's
	}()
	const scale = 1 // 100,000 accounts: a table of the catalog's order of size
	if _, err := run("pgbench", "-i", "-q", "-s", strconv.Itoa(scale), url); err != nil {
		return PgbenchResult{}, err
	}
	clients = max(clients, 1)
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	out, err := run("pgbench", "-S", "-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 4)), "-T", strconv.Itoa(secs), url)
	if err != nil {
		return PgbenchResult{}, err
	}
	res := PgbenchResult{Clients: clients, Duration: time.Duration(secs) * time.Second, Scale: scale, Output: out}
	m := tpsRe.FindStringSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("pgbench: no tps in its output:\n%s", out)
	}
	res.TPS, _ = strconv.ParseFloat(m[1], 64)
	if m := latencyRe.FindStringSubmatch(out); m != nil {
		res.LatencyMs, _ = strconv.ParseFloat(m[1], 64)
	}
	return res, nil
}

// VipsResult is a run of the vips command line over photos.
type VipsResult struct {
	Images       int
	Commands     int
	Elapsed      time.Duration
	ImagesPerSec float64
	PerImage     *hist.Histogram // ns to make one image's variants
	Version      string
}

// Vips makes recipe's variants of count images (files taken in turn) with
// the vips command line, the reference commands of vipscli.Commands (one
// process per output), workers images at a time (VIPS_CONCURRENCY=1, as
// vitrine runs libvips, one job a worker), and reports images per second.
func Vips(ctx context.Context, files []string, count, workers int, recipe media.Recipe, tmp string) (VipsResult, error) {
	vips, err := exec.LookPath("vips")
	if err != nil {
		return VipsResult{}, fmt.Errorf("the vips command is not installed (Debian: apt-get install libvips-tools)")
	}
	if len(files) == 0 || count < 1 {
		return VipsResult{}, fmt.Errorf("no images")
	}
	// Whether each photo carries an ICC profile, asked once, off the clock.
	icc := make([]bool, len(files))
	for i, f := range files {
		if icc[i], err = vipscli.HasICC(vips, f); err != nil {
			return VipsResult{}, err
		}
	}
	res := VipsResult{Images: count, PerImage: &hist.Histogram{}}
	if b, err := exec.Command(vips, "--version").Output(); err == nil { // #nosec G204 -- vips is the vips executable found on PATH
		res.Version = strings.TrimSpace(string(b))
	}
	env := append(os.Environ(), "VIPS_CONCURRENCY=1")
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= count {
					return
				}
				dir := filepath.Join(tmp, fmt.Sprintf("vips-%d-%d", w, k))
				if err := os.MkdirAll(dir, 0o750); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				t0 := time.Now()
				cmds := vipscli.Commands(files[k%len(files)], icc[k%len(files)], dir, recipe)
				for _, args := range cmds {
					cmd := exec.CommandContext(ctx, vips, args...) // #nosec G204 -- vips found on PATH, arguments from vipscli.Commands
					cmd.Env = env
					if out, err := cmd.CombinedOutput(); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("vips %s: %w\n%s", strings.Join(args, " "), err, out)
						}
						mu.Unlock()
						return
					}
				}
				d := time.Since(t0)
				_ = os.RemoveAll(dir)
				mu.Lock()
				res.PerImage.Record(int64(d))
				res.Commands += len(cmds)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.ImagesPerSec = float64(res.PerImage.Count()) / res.Elapsed.Seconds()
	return res, nil
}

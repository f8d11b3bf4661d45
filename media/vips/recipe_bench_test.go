package vips

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
	"github.com/vitrine-dev/vitrine/media/vipscli"
)

// benchPhotos are the corpus's large photos.
var benchPhotos = []string{
	"photo_mate_wood.jpg",              // 2560×1920
	"photo_mate_twowings.jpg",          // 2560×1600
	"photo_adobergb_2000x1072.jpg",     // Adobe RGB
	"photo_iphonex_p3_orient6_gps.jpg", // 4032×3024, Display P3, orientation 6
	"photo_pixel6pro_ultrahdr_p3.jpg",  // 4080×3072, Display P3: the largest, 12.5 MP
	"progressive_mate_freshflower.jpg", // 1600×1203, progressive
}

// cliRecipeCommands are the vips commands that make the recipe's outputs
// of a file, one process per output: the reference command line the bench's
// vips-cli baseline runs too (vipscli.Commands).
func cliRecipeCommands(tb testing.TB, in, outDir string, recipe media.Recipe) [][]string {
	tb.Helper()
	icc, err := vipscli.HasICC(vipsCLI(tb), in)
	if err != nil {
		tb.Fatal(err)
	}
	return vipscli.Commands(in, icc, outDir, recipe)
}

// runCLI runs the commands on workers processes at a time, each libvips
// process with one thread (VIPS_CONCURRENCY=1), as vitrine's jobs have; it
// returns the wall time. (The children's ru_maxrss would not tell their
// peak RSS: a child started with vfork inherits the parent's.)
func runCLI(tb testing.TB, vips string, cmds [][]string, workers int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cmds) {
					return
				}
				cmd := exec.Command(vips, cmds[i]...)
				cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
				if out, err := cmd.CombinedOutput(); err != nil {
					errs <- fmt.Errorf("vips %s: %w\n%s", strings.Join(cmds[i], " "), err, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return took
}

// runVitrine processes every input with the recipe on workers goroutines
// and returns the wall time.
func runVitrine(tb testing.TB, inputs [][]byte, recipe media.Recipe, workers int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(inputs) {
					return
				}
				res, err := testRuntime.ProcessImage(context.Background(), inputs[i], recipe)
				if err == nil && len(res.Outputs) != recipe.Outputs() {
					err = fmt.Errorf("%d outputs", len(res.Outputs))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return took
}

// procStatusKiB reads a "kB" field of /proc/self/status, e.g. VmHWM, the
// peak resident set size.
func procStatusKiB(tb testing.TB, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// resetPeakRSS sets the process's VmHWM back to its current RSS (Linux
// 4.0+, clear_refs 5), so that a benchmark sees its own peak rather than
// that of tests run before it; it reports whether that worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// benchRow is one line of the table BenchmarkRecipeVsCLI prints.
type benchRow struct {
	workers              int
	vitrine, cli, ratio  float64
	peak, base           float64 // MiB
	peakReset            bool
	vitrineTime, cliTime time.Duration
	images               int
}

// BenchmarkRecipeVsCLI makes the default recipe's outputs of the large
// photos with vitrine and, in the same run, with the vips command (one
// process per output, see cliRecipeCommands), at concurrency 1 and 2, and
// reports images per second for both, their ratio, and vitrine's peak RSS
// (VmHWM, reset before each sub-benchmark; base_rss_MiB is the test
// binary's RSS at that point). Run it with -benchtime=3x or so: one
// iteration is every photo once with each. Figures depend on what else the
// machine is doing.
func BenchmarkRecipeVsCLI(b *testing.B) {
	vips := vipsCLI(b)
	recipe := media.DefaultRecipe()
	dir := corpustest.Dir(b)
	outDir := b.TempDir()
	var inputs [][]byte
	var cmds [][]string
	for _, name := range benchPhotos {
		inputs = append(inputs, corpustest.Read(b, name))
		cmds = append(cmds, cliRecipeCommands(b, filepath.Join(dir, name), outDir, recipe)...)
	}
	var rows []benchRow
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("concurrency=%d", workers), func(b *testing.B) {
			row := benchRow{workers: workers, peakReset: resetPeakRSS()}
			row.base = float64(procStatusKiB(b, "VmRSS")) / 1024
			for b.Loop() {
				row.vitrineTime += runVitrine(b, inputs, recipe, workers)
				row.cliTime += runCLI(b, vips, cmds, workers)
				row.images += len(inputs)
			}
			row.peak = float64(procStatusKiB(b, "VmHWM")) / 1024
			row.vitrine = float64(row.images) / row.vitrineTime.Seconds()
			row.cli = float64(row.images) / row.cliTime.Seconds()
			row.ratio = row.vitrine / row.cli
			b.ReportMetric(row.vitrine, "vitrine_img/s")
			b.ReportMetric(row.cli, "cli_img/s")
			b.ReportMetric(row.ratio, "ratio")
			b.ReportMetric(row.peak, "peak_rss_MiB")
			b.ReportMetric(row.base, "base_rss_MiB")
			rows = append(rows, row)
		})
	}
	fmt.Printf("\nDefault recipe (%d outputs) on %d photos; CLI: %d processes per image, VIPS_CONCURRENCY=1\n", recipe.Outputs(), len(inputs), recipe.Outputs())
	fmt.Printf("%-11s %8s %14s %10s %7s %14s %14s\n", "concurrency", "images", "vitrine img/s", "cli img/s", "ratio", "peak RSS MiB", "base RSS MiB")
	for _, r := range rows {
		reset := ""
		if !r.peakReset {
			reset = " (VmHWM not reset: process peak)"
		}
		fmt.Printf("%-11d %8d %14.2f %10.2f %7.2f %14.0f %14.0f%s\n", r.workers, r.images, r.vitrine, r.cli, r.ratio, r.peak, r.base, reset)
	}
}

// BenchmarkSingleWebP800 makes one 800 px WebP of the largest corpus photo
// (photo_pixel6pro_ultrahdr_p3.jpg, 4080×3072, 12.5 MP: the corpus has no
// 18 MP photo) on two goroutines, and reports results per second, with the
// vips command doing the same (one process per result, two at a time) for
// comparison.
func BenchmarkSingleWebP800(b *testing.B) {
	const workers = 2
	const file = "photo_pixel6pro_ultrahdr_p3.jpg"
	data := corpustest.Read(b, file)
	recipe := media.Recipe{Version: 1, Variants: []media.Variant{{Name: "medium", Width: 800, Height: 800,
		Formats: []media.Encoding{{Format: media.FormatWebP, Quality: 80}}}}}
	b.Run("vitrine", func(b *testing.B) {
		reset := resetPeakRSS()
		inputs := make([][]byte, b.N)
		for i := range inputs {
			inputs[i] = data
		}
		b.ResetTimer()
		took := runVitrine(b, inputs, recipe, workers)
		b.ReportMetric(float64(b.N)/took.Seconds(), "results/s")
		if reset {
			b.ReportMetric(float64(procStatusKiB(b, "VmHWM"))/1024, "peak_rss_MiB")
		}
	})
	b.Run("cli", func(b *testing.B) {
		vips := vipsCLI(b)
		one := cliRecipeCommands(b, filepath.Join(corpustest.Dir(b), file), b.TempDir(), recipe)
		cmds := make([][]string, 0, b.N)
		for range b.N {
			cmds = append(cmds, one...)
		}
		b.ResetTimer()
		took := runCLI(b, vips, cmds, workers)
		b.ReportMetric(float64(b.N)/took.Seconds(), "results/s")
	})
}

// BenchmarkEncodeCost measures what each encoding of one variant costs,
// the image already decoded and shrunk (photo_mate_wood.jpg at 400 and
// 1600 px): WebP q80, JPEG q82 and AVIF at the effort vitrine uses and at
// the saver's default, with the size of the result.
func BenchmarkEncodeCost(b *testing.B) {
	data := corpustest.Read(b, "photo_mate_wood.jpg")
	h, err := testRuntime.Probe(data, media.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	blob := newBlob(data)
	defer blob.close()
	for _, side := range []int{400, 1600} {
		img, err := decode(context.Background(), blob, h, side, side, false)
		if err != nil {
			b.Fatal(err)
		}
		bare, err := strip(img)
		img.close()
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			enc    media.Encoding
			effort int
		}{
			{"webp-q80", media.Encoding{Format: media.FormatWebP, Quality: 80}, avifEffort},
			{"jpeg-q82", media.Encoding{Format: media.FormatJPEG, Quality: 82}, avifEffort},
			{fmt.Sprintf("avif-q55-effort%d", avifEffort), media.Encoding{Format: media.FormatAVIF, Quality: 55}, avifEffort},
			{"avif-q55-effort4", media.Encoding{Format: media.FormatAVIF, Quality: 55}, 4},
		} {
			b.Run(fmt.Sprintf("%dpx/%s", side, c.name), func(b *testing.B) {
				var size int
				for b.Loop() {
					var out []byte
					var err error
					if c.enc.Format == media.FormatAVIF {
						out, err = saveAVIFEffort(bare, c.enc.Quality, c.effort)
					} else {
						out, _, _, err = encodeOne(bare, c.enc)
					}
					if err != nil {
						b.Fatal(err)
					}
					size = len(out)
				}
				b.ReportMetric(float64(size), "bytes")
			})
		}
		bare.close()
	}
}

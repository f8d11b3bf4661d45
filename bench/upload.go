// upload.go: the upload burst of corpus photos and the vips CLI baseline.

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/media"
)

// corpusDir is the image corpus: -corpus, $VITRINE_CORPUS/public, or
// ../shared/corpus/public beside the repository at root. On an error (no
// MANIFEST.tsv there) it still names the directory it looked in.
func corpusDir(o options, getenv func(string) string, root string) (string, error) {
	dir := o.corpus
	if dir == "" {
		if c := getenv("VITRINE_CORPUS"); c != "" {
			dir = filepath.Join(c, "public")
		} else if root != "" {
			dir = filepath.Join(root, "..", "shared", "corpus", "public")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil { // #nosec G703 -- the operator's corpus directory (-corpus or VITRINE_CORPUS)
		return dir, fmt.Errorf("image corpus (-corpus or VITRINE_CORPUS): %w", err)
	}
	return dir, nil
}

// repoPhoto is the photo shipped in the repository (1200x900 JPEG): the
// bench's photo when there is no corpus.
const repoPhoto = "testdata/desk-lamp.jpg"

// photoSource is where the upload and images scenarios' photos come from.
type photoSource struct {
	source string   // the corpus directory, or repoPhoto
	upload []string // the upload scenario's photos
	large  string   // the photo the images scenario's photo is made from
	note   string   // one line saying which
}

// findPhotos takes the photos from the corpus when there is one, else the
// repository's own photo (for both scenarios).
func findPhotos(root string, o options, getenv func(string) string) (photoSource, error) {
	dir, cerr := corpusDir(o, getenv, root)
	if cerr == nil {
		paths, err := corpusPhotos(dir, o.photos)
		if err != nil {
			return photoSource{}, err
		}
		return photoSource{source: dir, upload: paths, large: filepath.Join(dir, o.imagesPhoto),
			note: fmt.Sprintf("photos: the corpus in %s (upload: %d matching -photos %q; images: made from %s)", dir, len(paths), o.photos, o.imagesPhoto)}, nil
	}
	if root == "" {
		return photoSource{}, fmt.Errorf("no photos: %w, and no repository to take %s from", cerr, repoPhoto)
	}
	p := filepath.Join(root, repoPhoto)
	if _, err := os.Stat(p); err != nil { // #nosec G703 -- a fixed path in the repository
		return photoSource{}, fmt.Errorf("no photos: %w, nor %w", cerr, err)
	}
	return photoSource{source: repoPhoto, upload: []string{p}, large: p,
		note: fmt.Sprintf("photos: %s, the repository's (no image corpus in %s; -corpus or VITRINE_CORPUS gives one)", repoPhoto, dir)}, nil
}

// corpusPhotos lists the corpus files to upload: the accepted JPEGs whose
// category or name holds match.
func corpusPhotos(dir, match string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv")) // #nosec G304 G703 -- the operator's corpus directory (-corpus or VITRINE_CORPUS)
	if err != nil {
		return nil, fmt.Errorf("image corpus (-corpus or VITRINE_CORPUS): %w", err)
	}
	defer f.Close() //nolint:errcheck // opened read-only: closing it loses nothing
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header: file category expected orientation_fix width height format …
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 7 || cols[2] != "accept" || cols[6] != "jpeg" {
			continue
		}
		if strings.Contains(cols[1], match) || strings.Contains(cols[0], match) {
			out = append(out, filepath.Join(dir, cols[0]))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no accepted JPEG in %s matches -photos %q", dir, match)
	}
	return out, sc.Err()
}

func (b *bench) upload(ctx context.Context) (*report.Scenario, error) {
	paths := b.photoSrc.upload
	for _, p := range paths {
		b.rep.Config.Photos = append(b.rep.Config.Photos, filepath.Base(p))
	}
	photos, err := scenario.LoadPhotos(paths)
	if err != nil {
		return nil, err
	}
	s := &report.Scenario{Name: "upload", Unit: "images/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("A burst of %d multipart uploads of %d photos (%s), %d at a time, each polled every 25 ms until ready; latency is 202 → ready.",
			b.o.uploads, len(photos), strings.Join(b.rep.Config.Photos, ", "), b.o.uploadConc)}
	label := fmt.Sprintf("upload %d images", b.o.uploads)
	b.resetMem()
	prof := b.startProfile(ctx, "upload.burst")
	res, err := scenario.Upload(ctx, b.client, b.ids, photos, b.o.uploads, b.o.uploadConc, 25*time.Millisecond, 5*time.Minute, b.bar.Tick(label))
	prof()
	if err != nil {
		return nil, err
	}
	ph := &report.Phase{Name: "burst", Mode: "burst", Concurrency: b.o.uploadConc, Seconds: report.Round2(res.Elapsed.Seconds()),
		Requests: uint64(res.Images), OK: uint64(res.Ready), ThroughputRPS: report.Round2(res.ImagesPerSec), // #nosec G115 -- counts of images: ≥ 0
		Latency: report.LatencyOf(res.ToReady), Errors: res.Fails, Status: map[string]uint64{},
		ByOp: map[string]report.OpStats{
			"accept (POST → 202)": {Count: res.Accept.Count(), Latency: report.LatencyOf(res.Accept)},
			"ready (202 → ready)": {Count: res.ToReady.Count(), Latency: report.LatencyOf(res.ToReady)},
		},
		Timeline: report.TimelineOf(res.Timeline), Percentiles: report.PercentilesOf(res.ToReady)}
	for k, v := range res.Status {
		ph.Status[fmt.Sprint(k)] = v
	}
	ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
	s.PeakRSSBytes = ph.PeakRSSBytes
	s.Phases = append(s.Phases, ph)
	s.SetMain(ph)
	s.Extra = map[string]any{"uploaded_mib": report.Round2(float64(res.Bytes) / (1 << 20)), "ready": res.Ready, "images": res.Images,
		"recipe_outputs": media.DefaultRecipe().Outputs()}
	b.bar.Done(label, summary(ph, "images/s"))
	if b.o.baselines["vips"] {
		bl := b.vips(ctx, paths)
		b.rep.Baselines = append(b.rep.Baselines, bl)
		if bl.Skipped == "" {
			s.Compare(bl.Name, bl.Value, bl.Unit)
		}
	}
	return s, ctx.Err()
}

func (b *bench) vips(ctx context.Context, paths []string) *report.Baseline {
	workers := b.workers()
	recipe := media.DefaultRecipe()
	var names []string
	for _, v := range recipe.Variants {
		for _, e := range v.Formats {
			names = append(names, fmt.Sprintf("%s %s %dx%d %s q%d", v.Name, orDefault(string(v.Fit), "inside"), v.Width, v.Height, e.Format.Name(), e.Quality))
		}
	}
	bl := &report.Baseline{Name: "vips-cli", Unit: "images/s",
		Description: fmt.Sprintf("the vips command line making the same %d outputs of the same photos (one `vips thumbnail` per output: %s), %d images at a time, VIPS_CONCURRENCY=1",
			recipe.Outputs(), strings.Join(names, ", "), workers)}
	label := fmt.Sprintf("vips-cli %d images", b.o.uploads)
	b.bar.Logf("%s (%d at a time)", label, workers)
	res, err := baseline.Vips(ctx, paths, b.o.uploads, workers, recipe, b.tmp)
	if err != nil {
		bl.Skipped = err.Error()
		return bl
	}
	bl.Value = report.Round2(res.ImagesPerSec)
	bl.Phase = &report.Phase{Name: "burst", Mode: "burst", Concurrency: workers, Seconds: report.Round2(res.Elapsed.Seconds()),
		Requests: uint64(res.Images), OK: res.PerImage.Count(), ThroughputRPS: bl.Value, Latency: report.LatencyOf(res.PerImage), // #nosec G115 -- a count of images: ≥ 0
		Errors: map[string]uint64{}, Status: map[string]uint64{}, Timeline: []report.Point{}, Percentiles: report.PercentilesOf(res.PerImage)}
	bl.Extra = map[string]any{"commands": res.Commands, "vips_version": res.Version}
	b.bar.Done(label, summary(bl.Phase, "images/s"))
	return bl
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// workers is the started vitrine's image workers (VITRINE_WORKERS, default
// the number of CPUs).
func (b *bench) workers() int {
	if v := b.getenv("VITRINE_WORKERS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return cpus()
}

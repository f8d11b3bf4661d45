// images.go: the images scenario — vitrine's upload-to-ready throughput,
// CPU time per image and idle latency against the libvips floor, for the
// single-WebP-800 recipe and the default recipe, on a large photo made at
// bench time.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/floor"
	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
	"github.com/vitrine-dev/vitrine/media"
)

// imageRecipe is a recipe the images scenario measures.
type imageRecipe struct {
	name   string
	recipe media.Recipe
}

func imageRecipes(names []string) []imageRecipe {
	var out []imageRecipe
	for _, n := range names {
		switch n {
		case "webp800":
			out = append(out, imageRecipe{n, media.Recipe{Version: 1, Variants: []media.Variant{{Name: "medium", Width: 800, Height: 800,
				Formats: []media.Encoding{{Format: media.FormatWebP, Quality: 80}}}}}})
		case "default":
			out = append(out, imageRecipe{n, media.DefaultRecipe()})
		}
	}
	return out
}

// imageRound is one round of one recipe: the floor, vitrine's pipeline
// in-process, and vitrine over HTTP, each on the same count of images.
type imageRound struct {
	Floor   roundFigures `json:"floor"`
	Process roundFigures `json:"process"`
	Vitrine roundFigures `json:"vitrine"`
	// Imgproxy is imgproxy making the same output of the same photo, the
	// same count (webp800 only, when imgproxy runs).
	Imgproxy *roundFigures `json:"imgproxy,omitempty"`
}

type roundFigures struct {
	ImagesPerSec float64 `json:"images_per_s"`
	CPUMs        float64 `json:"cpu_ms_per_image"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	Seconds      float64 `json:"seconds"`
}

func figuresOf(r *floor.Result) roundFigures {
	return roundFigures{ImagesPerSec: report.Round2(r.ImagesPerSec()), CPUMs: report.Round2(float64(r.CPUPerImage().Microseconds()) / 1e3),
		PeakRSSBytes: r.PeakRSS, Seconds: report.Round2(time.Duration(r.Elapsed).Seconds())}
}

// largePhoto makes the scenario's photo from the corpus photo (or, without
// a corpus, the repository's), scaled by -images-scale or to the profile's
// width (Lanczos 3) and saved as a baseline JPEG at Q92 without metadata,
// into the bench's temporary directory. It returns the scale too.
func (b *bench) largePhoto(ctx context.Context, exe string) (string, *floor.Result, float64, error) {
	src := b.photoSrc.large
	scale, err := imageScale(src, b.o.imagesScale, b.o.imagesWidth)
	if err != nil {
		return "", nil, 0, err
	}
	dst := filepath.Join(b.tmp, "large-photo.jpg")
	res, err := floor.Run(ctx, exe, floor.Request{Op: "resize", Src: src, Dst: dst, Factor: scale, Quality: 92})
	if err != nil {
		return "", nil, 0, err
	}
	return dst, res, scale, nil
}

// imageScale is scale when it is set, else the scale that makes the JPEG
// at path width pixels wide.
func imageScale(path string, scale float64, width int) (float64, error) {
	if scale > 0 {
		return scale, nil
	}
	f, err := os.Open(path) // #nosec G304 G703 -- the corpus photo of -images-photo, or the repository's
	if err != nil {
		return 0, err
	}
	defer f.Close() //nolint:errcheck // opened read-only: closing it loses nothing
	cfg, err := jpeg.DecodeConfig(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Width < 1 {
		return 0, fmt.Errorf("%s: no width", path)
	}
	return float64(width) / float64(cfg.Width), nil
}

// largePhotoMade is the images scenario's photo, made once a run.
type largePhotoMade struct {
	path  string
	made  *floor.Result
	scale float64
	body  []byte
}

// ensurePhoto makes the large photo once (the images and on-demand
// scenarios share it).
func (b *bench) ensurePhoto(ctx context.Context, exe string) (*largePhotoMade, error) {
	if b.photo != nil {
		return b.photo, nil
	}
	photo, made, scale, err := b.largePhoto(ctx, exe)
	if err != nil {
		return nil, fmt.Errorf("make the large photo: %w", err)
	}
	b.rep.Config.Photos = append(b.rep.Config.Photos, filepath.Base(photo))
	b.bar.Logf("images: %s, %dx%d (%.1f MP), %.1f MiB, from %s scaled by %.3g, Q92 baseline, no metadata",
		filepath.Base(photo), made.Width, made.Height, float64(made.Width*made.Height)/1e6, float64(made.Bytes)/(1<<20), filepath.Base(b.photoSrc.large), scale)
	body, err := os.ReadFile(photo) // #nosec G304 G703 -- the large photo the bench made in its temporary directory
	if err != nil {
		return nil, err
	}
	b.photo = &largePhotoMade{path: photo, made: made, scale: scale, body: body}
	return b.photo, nil
}

// images runs the images scenario: one report scenario per recipe.
func (b *bench) images(ctx context.Context) ([]*report.Scenario, error) {
	recipes := imageRecipes(b.o.imagesRecipes)
	skipped := func(why string) []*report.Scenario {
		var out []*report.Scenario
		for _, r := range recipes {
			out = append(out, &report.Scenario{Name: "images-" + r.name, Unit: "images/s", Errors: map[string]uint64{}, Skipped: why})
		}
		return out
	}
	if b.proc == nil {
		return skipped("needs a vitrine started by the bench (it starts one per recipe)"), nil
	}
	exe, err := os.Executable()
	if err != nil {
		return skipped("cannot find the bench executable: " + err.Error()), nil
	}
	lp, err := b.ensurePhoto(ctx, exe)
	if err != nil {
		return nil, err
	}
	photo, made, scale, body := lp.path, lp.made, lp.scale, lp.body
	var out []*report.Scenario // the recipes completed, also on an error
	for _, r := range recipes {
		s, err := b.imageRecipe(ctx, exe, photo, body, made, scale, r)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", r.name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (b *bench) imageRecipe(ctx context.Context, exe, photo string, body []byte, made *floor.Result, scale float64, r imageRecipe) (_ *report.Scenario, err error) {
	workers := b.workers()
	name := "images-" + r.name
	s := &report.Scenario{Name: name, Unit: "images/s", Errors: map[string]uint64{},
		Description: fmt.Sprintf("%d raw-body uploads of a %dx%d JPEG (Q92, %.1f MiB) to a vitrine with the %s recipe (%d outputs) and %d workers, timed from the first upload to the last image seen complete (ready with every format made); %d rounds, alternating with the libvips floor (floor-%s: %d images at a time in one process) and vitrine's pipeline without the service (ProcessImage, same process and concurrency). Throughput is the median round; latency is that of single uploads on the idle node (upload sent → ready seen, and → complete, polled every millisecond from 3/4 of the expected time on), each paired with ProcessImage of the same photo alone just before.",
			b.o.imagesUploads, made.Width, made.Height, float64(len(body))/(1<<20), r.name, r.recipe.Outputs(), workers, b.o.imagesRounds, r.name, workers)}
	recipeFile := filepath.Join(b.tmp, "recipe-"+r.name+".json")
	rj, err := json.Marshal(r.recipe)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(recipeFile, rj, 0o600); err != nil { // #nosec G703 -- recipeFile is in the bench's own temporary directory
		return nil, err
	}
	// Always the embedded default: on shared PostgreSQL or Kafka, the main
	// vitrine's workers would take these jobs too.
	env := []string{"VITRINE_LOG_LEVEL=" + b.o.logLevel, "VITRINE_RECIPE_FILE=" + recipeFile, fmt.Sprintf("VITRINE_WORKERS=%d", workers),
		"VITRINE_POSTGRES_URL=", "VITRINE_REDIS_URL=", "VITRINE_KAFKA_BROKERS=", "VITRINE_S3_ENDPOINT=", "VITRINE_S3_BUCKET="}
	env = append(env, benchEnv()...)
	if b.getenv("MALLOC_ARENA_MAX") == "" {
		env = append(env, "MALLOC_ARENA_MAX=2")
	}
	pprofAddr := ""
	if b.o.pprof {
		port, err := target.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, "VITRINE_PPROF_ADDR="+pprofAddr)
	}
	b.bar.Logf("%s: starting a vitrine with the %s recipe", name, r.name)
	p, err := target.Start(ctx, target.Options{Bin: b.rep.Target.Binary, DataDir: filepath.Join(b.tmp, "data-"+r.name), Env: env,
		LogPath: filepath.Join(b.tmp, "vitrine-"+r.name+".log")})
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := p.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stop vitrine: %w", stopErr)
		}
	}()
	c, err := httpc.New(p.URL(), 8, time.Minute)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	n := b.o.imagesUploads
	ids, _, err := scenario.Seed(ctx, c, 1+n*b.o.imagesRounds+b.o.imagesIdle, 4, b.o.seed, nil)
	if err != nil {
		return nil, fmt.Errorf("seed products: %w", err)
	}
	// Warm-up: one image, so that the first round pays no first-use costs.
	var x httpc.Exchange
	loc, err := scenario.UploadRaw(c, &x, ids[0], body)
	if err != nil {
		return nil, err
	}
	if err := scenario.WaitComplete(ctx, c, loc, 5*time.Millisecond, time.Now().Add(5*time.Minute)); err != nil {
		return nil, err
	}
	// What the recipe stores of the photo, and what a browser downloads.
	stored, err := scenario.ImageBytes(c, loc)
	if err != nil {
		return nil, err
	}
	ids = ids[1:]

	child, err := floor.Start(ctx, exe)
	if err != nil {
		return nil, err
	}
	defer func() {
		if closeErr := child.Close(); closeErr != nil && err == nil {
			err = fmt.Errorf("floor child: %w", closeErr)
		}
	}()
	// imgproxy, webp800 only: the same output of the same photo.
	var ip *baseline.Imgproxy
	ipWhy, ipCheck, ipBust := "", map[string]any(nil), 0
	ipFile := filepath.Base(photo)
	if r.name == "webp800" {
		if ip, ipWhy = b.startImgproxy(ctx, filepath.Dir(photo), workers, r.name); ip != nil {
			started := ip // ip becomes nil when its output is not vitrine's
			defer func() {
				if stopErr := started.Stop(); stopErr != nil && err == nil {
					err = fmt.Errorf("stop imgproxy: %w", stopErr)
				}
			}()
			// Once (the warm-up too): imgproxy makes what vitrine makes, a
			// WebP fitted into the 800 px box.
			ic, err := httpc.New(ip.URL(), 1, 2*time.Minute)
			if err != nil {
				return nil, err
			}
			wantH := fitHeight(made.Width, made.Height, 800)
			if made.Height > made.Width {
				wantH = 800
			}
			wantW := 800
			if made.Height > made.Width {
				wantW = fitHeight(made.Height, made.Width, 800)
			}
			w, h, nb, cerr := checkWebP(ic, baseline.ImgproxyPath(ipFile, 800, 800, imgproxyQuality, 0), wantW, wantH)
			ic.Close()
			if cerr != nil {
				_ = ip.Stop()
				ip, ipWhy = nil, "imgproxy's output is not vitrine's: "+cerr.Error()
			} else {
				ipCheck = map[string]any{"width": w, "height": h, "bytes": nb, "format": "webp"}
			}
		}
		if ipWhy != "" {
			b.note("%s: no imgproxy baseline (%s); the floor stays its baseline", name, ipWhy)
		}
	}
	ipRun := func(round *imageRound) error {
		if ip == nil {
			return nil
		}
		paths := make([]string, n)
		for i := range paths {
			ipBust++
			paths[i] = baseline.ImgproxyPath(ipFile, 800, 800, imgproxyQuality, ipBust)
		}
		res, err := runImgproxy(ctx, ip, paths, 4)
		if err != nil {
			return err
		}
		f := res.figures()
		round.Imgproxy = &f
		return nil
	}

	var rounds []imageRound
	req := floor.Request{Op: "run", Files: []string{photo}, Count: n, Concurrency: workers, Recipe: r.recipe}
	for k := range b.o.imagesRounds {
		var round imageRound
		label := fmt.Sprintf("%s round %d/%d", name, k+1, b.o.imagesRounds)
		// The floor and the pipeline alone, then vitrine; in odd rounds
		// vitrine first, so that none is always measured after the others.
		var fr *floor.Result
		inChild := func() error {
			var err error
			req.Mode = floor.ModeFloor
			if fr, err = child.Do(req); err != nil {
				return err
			}
			round.Floor = figuresOf(fr)
			req.Mode = floor.ModeProcess
			pr, err := child.Do(req)
			if err != nil {
				return err
			}
			round.Process = figuresOf(pr)
			return nil
		}
		if k%2 == 0 {
			if err := inChild(); err != nil {
				return nil, err
			}
		} else if err := ipRun(&round); err != nil {
			return nil, err
		}
		cpu0, err := target.CPUTime(p.Pid())
		if err != nil {
			return nil, err
		}
		p.Mem.Reset()
		var prof func()
		if k == 0 {
			prof = b.profileAt(ctx, pprofAddr, name+".burst", time.Duration(float64(fr.Elapsed)*1.1))
		}
		br, err := scenario.Burst(ctx, c, ids[:n], body, 4, 20*time.Millisecond, 10*time.Minute)
		if prof != nil {
			prof()
		}
		if err != nil {
			return nil, err
		}
		ids = ids[n:]
		cpu1, err := target.CPUTime(p.Pid())
		if err != nil {
			return nil, err
		}
		rss, _ := p.Mem.Peak()
		round.Vitrine = roundFigures{ImagesPerSec: report.Round2(br.ImagesPerSec()), CPUMs: report.Round2(float64((cpu1 - cpu0).Microseconds()) / 1e3 / float64(n)),
			PeakRSSBytes: rss, Seconds: report.Round2(br.Elapsed.Seconds())}
		if k%2 == 1 {
			if err := inChild(); err != nil {
				return nil, err
			}
		} else if err := ipRun(&round); err != nil {
			return nil, err
		}
		rounds = append(rounds, round)
		ph := &report.Phase{Name: fmt.Sprintf("round %d", k+1), Mode: "burst", Concurrency: 4, Seconds: round.Vitrine.Seconds,
			Requests: uint64(n), OK: uint64(n), ThroughputRPS: round.Vitrine.ImagesPerSec, Latency: report.LatencyOf(br.ToReady), // #nosec G115 -- n is -images-uploads, checked positive in parseFlags
			Errors: map[string]uint64{}, Status: map[string]uint64{}, PeakRSSBytes: &rss, Timeline: []report.Point{}, Percentiles: report.PercentilesOf(br.ToReady)}
		s.Phases = append(s.Phases, ph)
		ipLine := ""
		if round.Imgproxy != nil {
			ipLine = fmt.Sprintf(" | imgproxy %.2f/s %.0f ms", round.Imgproxy.ImagesPerSec, round.Imgproxy.CPUMs)
		}
		b.bar.Done(label, fmt.Sprintf("vitrine %.2f images/s %.0f CPU ms/image %s | process %.2f/s %.0f ms | floor %.2f/s %.0f ms %s%s",
			round.Vitrine.ImagesPerSec, round.Vitrine.CPUMs, report.MiB(&rss), round.Process.ImagesPerSec, round.Process.CPUMs,
			round.Floor.ImagesPerSec, round.Floor.CPUMs, report.MiB(&round.Floor.PeakRSSBytes), ipLine))
	}

	// Idle latency: single uploads, each paired with the same pipeline
	// in-process on one image just before (the pure processing time), so
	// that both see the same load from the rest of the machine.
	process, ir := &hist.Histogram{}, scenario.NewIdleResult()
	var diffs, jobDiffs []float64 // upload → complete, 202 → complete, less the pipeline alone
	req.Mode, req.Count, req.Concurrency = floor.ModeProcess, 1, 1
	for i := range b.o.imagesIdle {
		pr, err := child.Do(req)
		if err != nil {
			return nil, err
		}
		quiet := time.Duration(pr.PerImage[0]) * 3 / 4
		one, err := scenario.Idle(ctx, c, ids[i:i+1], body, 200*time.Millisecond, quiet, time.Millisecond, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		process.Record(pr.PerImage[0])
		ir.Merge(one)
		diffs = append(diffs, report.Ms(one.UploadToComplete.Max()-pr.PerImage[0]))
		jobDiffs = append(jobDiffs, report.Ms(one.AcceptToComplete.Max()-pr.PerImage[0]))
	}
	slices.Sort(diffs)
	slices.Sort(jobDiffs)
	idle := b.o.imagesIdle
	idlePh := &report.Phase{Name: "idle", Mode: "idle", Concurrency: 1, Requests: uint64(idle), OK: uint64(idle), // #nosec G115 -- -images-idle, checked positive in parseFlags
		Latency: report.LatencyOf(ir.UploadToReady), Errors: map[string]uint64{}, Status: map[string]uint64{},
		ByOp: map[string]report.OpStats{
			"upload → ready":          {Count: ir.UploadToReady.Count(), Latency: report.LatencyOf(ir.UploadToReady)},
			"upload → complete":       {Count: ir.UploadToComplete.Count(), Latency: report.LatencyOf(ir.UploadToComplete)},
			"202 → ready":             {Count: ir.AcceptToReady.Count(), Latency: report.LatencyOf(ir.AcceptToReady)},
			"upload → 202":            {Count: ir.Accept.Count(), Latency: report.LatencyOf(ir.Accept)},
			"ProcessImage in-process": {Count: process.Count(), Latency: report.LatencyOf(process)},
		},
		Timeline: []report.Point{}, Percentiles: report.PercentilesOf(ir.UploadToReady)}
	s.Phases = append(s.Phases, idlePh)
	added, jobAdded := median(diffs), median(jobDiffs)
	b.bar.Done(name+" idle", fmt.Sprintf("upload → ready p50 %.1f p99 %.1f ms, → complete p50 %.1f ms; ProcessImage alone p50 %.1f ms; the service adds %.1f ms to complete (median of %d pairs, %.1f to %.1f), %.1f ms after the 202",
		report.Ms(ir.UploadToReady.Quantile(0.5)), report.Ms(ir.UploadToReady.Quantile(0.99)), report.Ms(ir.UploadToComplete.Quantile(0.5)),
		report.Ms(process.Quantile(0.5)), added, len(diffs), diffs[0], diffs[len(diffs)-1], jobAdded))

	// Medians over the rounds, and their ratios.
	med := func(f func(imageRound) float64) (m, lo, hi float64) {
		var v []float64
		for _, r := range rounds {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return median(v), v[0], v[len(v)-1]
	}
	vIPS, vIPSlo, vIPShi := med(func(r imageRound) float64 { return r.Vitrine.ImagesPerSec })
	fIPS, _, _ := med(func(r imageRound) float64 { return r.Floor.ImagesPerSec })
	vCPU, vCPUlo, vCPUhi := med(func(r imageRound) float64 { return r.Vitrine.CPUMs })
	fCPU, fCPUlo, fCPUhi := med(func(r imageRound) float64 { return r.Floor.CPUMs })
	pCPU, _, _ := med(func(r imageRound) float64 { return r.Process.CPUMs })
	pIPS, _, _ := med(func(r imageRound) float64 { return r.Process.ImagesPerSec })
	ipsRatio, _, _ := med(func(r imageRound) float64 { return r.Vitrine.ImagesPerSec / r.Floor.ImagesPerSec })
	cpuRatio, cpuRatioLo, cpuRatioHi := med(func(r imageRound) float64 { return r.Vitrine.CPUMs / r.Floor.CPUMs })
	var peak int64
	for _, r := range rounds {
		peak = max(peak, r.Vitrine.PeakRSSBytes)
	}
	s.ThroughputRPS, s.Latency = report.Round2(vIPS), idlePh.Latency
	s.PeakRSSBytes, s.PeakRSSScope = &peak, "scenario"
	bl := &report.Baseline{Name: "floor-" + r.name, Unit: "images/s", Value: report.Round2(fIPS),
		Description: fmt.Sprintf("the libvips floor of the %s recipe: thumbnail_buffer with shrink-on-load to the largest box, each smaller variant from the previous in memory, the same savers and qualities, %d images at a time in one process (vips.Runtime.Floor); median of %d rounds, %.0f CPU ms/image",
			r.name, workers, len(rounds), fCPU),
		Extra: map[string]any{"cpu_ms_per_image": report.Round2(fCPU), "cpu_ms_per_image_min": fCPUlo, "cpu_ms_per_image_max": fCPUhi}}
	b.rep.Baselines = append(b.rep.Baselines, bl)
	s.Baseline = &report.BaselineRef{Name: bl.Name, Value: bl.Value, Unit: bl.Unit}
	ratio := roundTo(ipsRatio, 3)
	s.Ratio = &ratio
	floorRatio := ratio
	s.Extra = map[string]any{
		"floor_ratio": floorRatio,
		"recipe":      r.recipe, "outputs": r.recipe.Outputs(), "workers": workers, "photo": map[string]any{"width": made.Width, "height": made.Height, "bytes": len(body), "from": filepath.Base(b.photoSrc.large), "scale": roundTo(scale, 4), "quality": 92},
		"images_per_s":               map[string]float64{"median": report.Round2(vIPS), "min": vIPSlo, "max": vIPShi},
		"cpu_ms_per_image":           map[string]float64{"median": report.Round2(vCPU), "min": vCPUlo, "max": vCPUhi},
		"floor_cpu_ms_per_image":     report.Round2(fCPU),
		"cpu_ratio":                  roundTo(cpuRatio, 3),
		"cpu_ratio_min":              roundTo(cpuRatioLo, 3),
		"cpu_ratio_max":              roundTo(cpuRatioHi, 3),
		"process_images_per_s":       report.Round2(pIPS),
		"process_cpu_ms_per_image":   report.Round2(pCPU),
		"idle_upload_to_ready_ms":    map[string]float64{"p50": idlePh.Latency.P50, "p99": idlePh.Latency.P99},
		"idle_upload_to_complete_ms": map[string]float64{"p50": report.Ms(ir.UploadToComplete.Quantile(0.5)), "p99": report.Ms(ir.UploadToComplete.Quantile(0.99))},
		"idle_process_ms":            map[string]float64{"p50": report.Ms(process.Quantile(0.5)), "p99": report.Ms(process.Quantile(0.99))},
		"idle_added_ms":              added,
		"idle_added_ms_min":          diffs[0],
		"idle_added_ms_max":          diffs[len(diffs)-1],
		"idle_added_after_202_ms":    jobAdded,
		"idle_upload_to_202_ms":      map[string]float64{"p50": report.Ms(ir.Accept.Quantile(0.5)), "p99": report.Ms(ir.Accept.Quantile(0.99))},
		"rounds":                     rounds,
		"bytes_per_image":            bytesFigures(stored),
	}
	if r.name == "webp800" {
		b.imgproxyFigures(s, rounds, ipCheck, ipWhy)
	}
	return s, nil
}

// imgproxyFigures makes imgproxy the baseline of s (images-webp800) when it
// was measured in every round: s.Ratio becomes the median of the rounds'
// images/s ratios to imgproxy, extra.imgproxy holds them and the CPU ratios
// with their spread; the floor's ratio stays in extra.floor_ratio.
func (b *bench) imgproxyFigures(s *report.Scenario, rounds []imageRound, check map[string]any, why string) {
	var vIPS, vCPU, iIPS, iCPU []float64
	for _, r := range rounds {
		if r.Imgproxy == nil {
			if why == "" {
				why = "imgproxy was not measured in every round"
			}
			s.Extra["imgproxy_skipped"] = why
			return
		}
		vIPS, vCPU = append(vIPS, r.Vitrine.ImagesPerSec), append(vCPU, r.Vitrine.CPUMs)
		iIPS, iCPU = append(iIPS, r.Imgproxy.ImagesPerSec), append(iCPU, r.Imgproxy.CPUMs)
	}
	ipsR, cpuR := ratioSpread(vIPS, iIPS), ratioSpread(vCPU, iCPU)
	ips, ipsLo, ipsHi := spread(slices.Clone(iIPS))
	cpu, cpuLo, cpuHi := spread(slices.Clone(iCPU))
	bl := &report.Baseline{Name: "imgproxy-webp800", Unit: "images/s", Value: report.Round2(ips),
		Description: fmt.Sprintf("imgproxy %s (built from its public source by scripts/imgproxy), IMGPROXY_WORKERS = vitrine's workers, making the same 800 px WebP q80 of the same photo from a local directory (rs:fit:800:800/q:80, metadata stripped, sRGB), the same count of images a round, 4 requests in flight; median of %d rounds alternating with vitrine's, %.0f CPU ms/image of the imgproxy process",
			baseline.ImgproxyVersion, len(rounds), cpu),
		Extra: map[string]any{"cpu_ms_per_image": report.Round2(cpu), "cpu_ms_per_image_min": cpuLo, "cpu_ms_per_image_max": cpuHi,
			"images_per_s_min": ipsLo, "images_per_s_max": ipsHi, "version": baseline.ImgproxyVersion, "output": check}}
	b.rep.Baselines = append(b.rep.Baselines, bl)
	s.Baseline = &report.BaselineRef{Name: bl.Name, Value: bl.Value, Unit: bl.Unit}
	ratio := ipsR["median"]
	s.Ratio = &ratio
	s.Extra["imgproxy"] = map[string]any{
		"version":            baseline.ImgproxyVersion,
		"images_per_s":       map[string]float64{"median": report.Round2(ips), "min": ipsLo, "max": ipsHi},
		"cpu_ms_per_image":   map[string]float64{"median": report.Round2(cpu), "min": cpuLo, "max": cpuHi},
		"images_per_s_ratio": ipsR,
		"cpu_ratio":          cpuR,
		"output":             check,
	}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// bytesFigures are the bytes a recipe makes of the photo: every file, by
// format, and what a browser downloads to show each variant once, by the
// best format it decodes. Recipe 2 (the default before AVIF: the same
// variants as WebP q80 and JPEG q82, the settings recipe 3 keeps) stored
// recipe 3's WebP and JPEG files; a browser without AVIF got WebP, as it
// still does.
func bytesFigures(b scenario.Bytes) map[string]any {
	out := map[string]any{"total": b.Total(), "by_format": b.ByFormat}
	webp := b.Served("webp", "jpeg")
	out["served_webp_browser"] = webp
	if b.ByFormat["avif"] > 0 && webp > 0 {
		avif := b.Served("avif", "webp", "jpeg")
		recipe2 := b.ByFormat["webp"] + b.ByFormat["jpeg"]
		out["served_avif_browser"] = avif
		out["recipe2_total"] = recipe2
		out["stored_vs_recipe2"] = roundTo(float64(b.Total())/float64(recipe2), 3)
		out["served_avif_browser_vs_recipe2"] = roundTo(float64(avif)/float64(webp), 3)
	}
	return out
}

// ondemand.go: the on-demand scenarios — vitrine making a WebP of a width
// asked for in the URL on its first hit (ondemand-first) and streaming the
// stored file on later hits (ondemand-repeat), each against imgproxy
// making the same transforms of the same photo, in alternating rounds.

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
)

// Widths vitrine makes on demand snap up to a multiple of this.
const ondemandStep = 16

// ondemandPath is vitrine's on-demand URL of an image's WebP width px wide.
func ondemandPath(productID, imageID string, width int) string {
	return fmt.Sprintf("/media/products/%s/%s/w%d.webp", productID, imageID, width)
}

// ondemandWidths are n distinct widths, multiples of 16 from 320 to
// min(1600, maxWidth) less probe (the width the bench asks for first, to
// learn whether vitrine has the route), in a random order drawn from seed.
func ondemandWidths(n, maxWidth, probe int, seed uint64) []int {
	var all []int
	for w := 320; w <= min(1600, maxWidth); w += ondemandStep {
		if w != probe {
			all = append(all, w)
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x6f6e64656d616e64)) // #nosec G404 -- a benchmark's order, not a secret
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(n, len(all))]
}

// imageIDOf is the image id of an upload's location,
// /products/{product_id}/images/{image_id}.
func imageIDOf(location string) (string, error) {
	parts := strings.Split(strings.Trim(location, "/"), "/")
	if len(parts) != 4 || parts[0] != "products" || parts[2] != "images" || parts[3] == "" {
		return "", fmt.Errorf("image location %q: want /products/{id}/images/{image_id}", location)
	}
	return parts[3], nil
}

// ondemandState is what the two on-demand scenarios share.
type ondemandState struct {
	productID, imageID string
	photo              *largePhotoMade
	probe              int   // the width asked for first
	made               []int // widths vitrine has made
	skip               string
}

// ondemandSetup uploads the photo to a new product, waits until it is
// ready and asks for one width: a 404 means vitrine has no on-demand route.
func (b *bench) ondemandSetup(ctx context.Context) (*ondemandState, error) {
	if b.od != nil {
		return b.od, nil
	}
	st := &ondemandState{}
	b.od = st
	if b.proc == nil {
		st.skip = "needs a vitrine started by the bench (its CPU time is read from /proc)"
		return st, nil
	}
	exe, err := os.Executable()
	if err != nil {
		st.skip = "cannot find the bench executable: " + err.Error()
		return st, nil
	}
	if st.photo, err = b.ensurePhoto(ctx, exe); err != nil {
		return nil, err
	}
	ids, _, err := scenario.Seed(ctx, b.client, 1, 1, b.o.seed+7, nil)
	if err != nil {
		return nil, fmt.Errorf("seed a product: %w", err)
	}
	var x httpc.Exchange
	loc, err := scenario.UploadRaw(b.client, &x, ids[0], st.photo.body)
	if err != nil {
		return nil, err
	}
	if err := scenario.WaitReady(ctx, b.client, loc, 20*time.Millisecond, time.Now().Add(5*time.Minute)); err != nil {
		return nil, err
	}
	st.productID = ids[0]
	if st.imageID, err = imageIDOf(loc); err != nil {
		return nil, err
	}
	st.probe = min(1600, st.photo.made.Width) / ondemandStep * ondemandStep
	p := ondemandPath(st.productID, st.imageID, st.probe)
	code, _, err := b.client.Get(p)
	switch {
	case err != nil:
		return nil, fmt.Errorf("GET %s: %s", p, httpc.Fail(err))
	case code == 404:
		st.skip = "vitrine has no on-demand route (GET " + p + " answered 404)"
		return st, nil
	case code == 403:
		st.skip = "vitrine wants signed on-demand URLs (VITRINE_MEDIA_SIGNING_KEY is set; GET " + p + " answered 403)"
		return st, nil
	}
	// Once: vitrine's answer is a WebP of that width, as imgproxy's.
	wantH := fitHeight(st.photo.made.Width, st.photo.made.Height, st.probe)
	if _, _, _, err := checkWebP(b.client, p, st.probe, wantH); err != nil {
		return nil, fmt.Errorf("vitrine's on-demand output: %w", err)
	}
	st.made = append(st.made, st.probe)
	return st, nil
}

// ondemand runs ondemand-first or ondemand-repeat.
func (b *bench) ondemand(ctx context.Context, name string) (_ *report.Scenario, err error) {
	s := &report.Scenario{Name: name, Unit: "req/s", Errors: map[string]uint64{}}
	st, err := b.ondemandSetup(ctx)
	if err != nil {
		return nil, err
	}
	if st.skip != "" {
		s.Skipped = st.skip
		b.warnOnce("ondemand-skip", "ondemand-first and ondemand-repeat skipped: "+st.skip)
		return s, nil
	}
	workers := b.workers()
	photo := st.photo
	ip, why := b.startImgproxy(ctx, filepath.Dir(photo.path), workers, name)
	if ip == nil {
		s.Skipped = "no imgproxy to compare with: " + why
		return s, nil
	}
	defer func() {
		if stopErr := ip.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stop imgproxy: %w", stopErr)
		}
	}()
	file := filepath.Base(photo.path)
	if _, err := runImgproxy(ctx, ip, []string{baseline.ImgproxyPath(file, st.probe, 0, imgproxyQuality, 1)}, 1); err != nil { // warm-up
		return nil, err
	}
	bust := 1
	ipPaths := func(widths []int) []string {
		out := make([]string, len(widths))
		for i, w := range widths {
			bust++
			out[i] = baseline.ImgproxyPath(file, w, 0, imgproxyQuality, bust)
		}
		return out
	}
	vPath := func(w int) string { return ondemandPath(st.productID, st.imageID, w) }
	rounds := b.o.imagesRounds
	var vitrine, imgproxy []roundFigures
	all := &hist.Histogram{} // vitrine's latencies, every round
	phaseConc := workers     // requests in flight
	b.resetMem()
	measure := func(k int, v, i func() (getsResult, error)) error {
		first, second := v, i
		if k%2 == 1 {
			first, second = i, v
		}
		r1, err := first()
		if err != nil {
			return err
		}
		r2, err := second()
		if err != nil {
			return err
		}
		if k%2 == 1 {
			r1, r2 = r2, r1
		}
		vitrine, imgproxy = append(vitrine, r1.figures()), append(imgproxy, r2.figures())
		all.Merge(r1.Latency)
		n := uint64(r1.Requests) // #nosec G115 -- a count of requests
		s.Phases = append(s.Phases, &report.Phase{Name: fmt.Sprintf("round %d", k+1), Mode: "closed", Concurrency: phaseConc,
			Seconds: report.Round2(r1.Elapsed.Seconds()), Requests: n, OK: n, ThroughputRPS: vitrine[k].ImagesPerSec,
			Latency: report.LatencyOf(r1.Latency), Errors: map[string]uint64{}, Status: map[string]uint64{"200": n},
			Timeline: []report.Point{}, Percentiles: report.PercentilesOf(r1.Latency),
			ByOp: map[string]report.OpStats{"imgproxy": {Count: r2.Latency.Count(), Latency: report.LatencyOf(r2.Latency)}}})
		b.bar.Done(fmt.Sprintf("%s round %d/%d", name, k+1, rounds), fmt.Sprintf("vitrine %.2f/s %.2f CPU ms | imgproxy %.2f/s %.2f CPU ms",
			vitrine[k].ImagesPerSec, vitrine[k].CPUMs, imgproxy[k].ImagesPerSec, imgproxy[k].CPUMs))
		return nil
	}
	var desc string
	switch name {
	case "ondemand-first":
		widths := ondemandWidths(b.o.ondemandWidths, photo.made.Width, st.probe, b.o.seed)
		per := max(len(widths)/rounds, 1)
		for k := range rounds {
			ws := widths[min(k*per, len(widths)):min((k+1)*per, len(widths))]
			if len(ws) == 0 {
				break
			}
			if err := measure(k, func() (getsResult, error) {
				return runGets(ctx, b.client.Base(), b.proc.Pid(), workers, len(ws), 0, func(j int) string { return vPath(ws[j]) })
			}, func() (getsResult, error) { return runImgproxy(ctx, ip, ipPaths(ws), workers) }); err != nil {
				return nil, err
			}
			st.made = append(st.made, ws...)
		}
		desc = fmt.Sprintf("first hits of %d distinct widths (multiples of 16, 320–%d px, WebP q80) of a %dx%d photo on vitrine's on-demand route, %d in flight, split over %d rounds; each round alternating with imgproxy %s making the same widths (rs:fit:W:0/q:80, a cache buster each) with IMGPROXY_WORKERS=%d. Throughput is requests/s; CPU is the serving process's per request.",
			len(widths), min(1600, photo.made.Width), photo.made.Width, photo.made.Height, workers, rounds, baseline.ImgproxyVersion, workers)
	case "ondemand-repeat":
		// Without ondemand-first before it, vitrine makes a few widths
		// first (not measured).
		if want := 2 * workers; len(st.made) < want {
			more := ondemandWidths(want-len(st.made), photo.made.Width, st.probe, b.o.seed+1)
			if _, err := runGets(ctx, b.client.Base(), b.proc.Pid(), workers, len(more), 0, func(j int) string { return vPath(more[j]) }); err != nil {
				return nil, err
			}
			st.made = append(st.made, more...)
		}
		made := st.made
		conc := max(workers, 4)
		phaseConc = conc
		for k := range rounds {
			if err := measure(k, func() (getsResult, error) {
				return runGets(ctx, b.client.Base(), b.proc.Pid(), conc, 0, b.o.duration, func(j int) string { return vPath(made[j%len(made)]) })
			}, func() (getsResult, error) {
				return runImgproxy(ctx, ip, ipPaths(made[:min(len(made), 2*workers)]), conc)
			}); err != nil {
				return nil, err
			}
		}
		desc = fmt.Sprintf("repeated hits of %d widths vitrine has made (the stored files streamed), a closed loop of %v with %d in flight, against imgproxy recomputing the same transforms (%d requests a round, the same concurrency); %d alternating rounds. Throughput is requests/s; CPU is the serving process's per request.",
			len(made), b.o.duration, conc, min(len(made), 2*workers), rounds)
	default:
		return nil, fmt.Errorf("unknown scenario %s", name)
	}
	var vRPS, vCPU, iRPS, iCPU []float64
	for k := range vitrine {
		vRPS, vCPU = append(vRPS, vitrine[k].ImagesPerSec), append(vCPU, vitrine[k].CPUMs)
		iRPS, iCPU = append(iRPS, imgproxy[k].ImagesPerSec), append(iCPU, imgproxy[k].CPUMs)
	}
	rpsR, cpuR := ratioSpread(vRPS, iRPS), ratioSpread(vCPU, iCPU)
	vr, vrLo, vrHi := spread(append([]float64(nil), vRPS...))
	ir, irLo, irHi := spread(append([]float64(nil), iRPS...))
	vc, vcLo, vcHi := spread(append([]float64(nil), vCPU...))
	ic, icLo, icHi := spread(append([]float64(nil), iCPU...))
	s.Description = desc
	s.ThroughputRPS = report.Round2(vr)
	s.Latency = report.LatencyOf(all)
	s.PeakRSSBytes, s.PeakRSSScope = b.peak()
	bl := &report.Baseline{Name: "imgproxy-" + name, Unit: "req/s", Value: report.Round2(ir),
		Description: fmt.Sprintf("imgproxy %s making the same WebP widths of the same photo, IMGPROXY_WORKERS=%d; median of %d rounds", baseline.ImgproxyVersion, workers, len(imgproxy)),
		Extra:       map[string]any{"cpu_ms_per_request": map[string]float64{"median": ic, "min": icLo, "max": icHi}}}
	b.rep.Baselines = append(b.rep.Baselines, bl)
	s.Baseline = &report.BaselineRef{Name: bl.Name, Value: bl.Value, Unit: bl.Unit}
	ratio := rpsR["median"]
	s.Ratio = &ratio
	s.Extra = map[string]any{
		"workers":                     workers,
		"photo":                       map[string]any{"width": photo.made.Width, "height": photo.made.Height, "bytes": len(photo.body)},
		"req_per_s":                   map[string]float64{"median": report.Round2(vr), "min": vrLo, "max": vrHi},
		"imgproxy_req_per_s":          map[string]float64{"median": report.Round2(ir), "min": irLo, "max": irHi},
		"cpu_ms_per_request":          map[string]float64{"median": vc, "min": vcLo, "max": vcHi},
		"imgproxy_cpu_ms_per_request": map[string]float64{"median": ic, "min": icLo, "max": icHi},
		"req_per_s_ratio":             rpsR,
		"cpu_ratio":                   cpuR,
		"rounds":                      map[string]any{"vitrine": vitrine, "imgproxy": imgproxy},
	}
	return s, nil
}

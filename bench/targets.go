// targets.go: the goals, reported and never asserted.

package main

import (
	"fmt"
	"math"

	"github.com/vitrine-dev/vitrine/bench/internal/report"
)

func f64(v float64) *float64 { return &v }
func boolp(v bool) *bool     { return &v }

// targets reports the goals, never asserting them.
func (b *bench) targets() {
	t := &b.rep.Targets
	*t = []report.Check{}
	if s := b.rep.Find("read-hot"); s != nil {
		c := report.Check{Name: "cached GET vs bare fasthttp (peak rates)", Unit: "×", Goal: "≥ 0.6×"}
		if s.Ratio != nil {
			c.Value, c.Met = s.Ratio, boolp(*s.Ratio >= 0.6)
			c.Detail = fmt.Sprintf("%.0f vs %.0f req/s", s.ThroughputRPS, s.Baseline.Value)
		} else {
			c.Detail = "no bare-fasthttp baseline"
		}
		*t = append(*t, c)
		c = report.Check{Name: "cached GET CPU per request vs bare fasthttp", Unit: "×", Goal: "≤ 1.15×"}
		if rr := b.cpuRoundsResult(); rr != nil {
			c.Value, c.Met = f64(rr.Ratio["median"]), boolp(rr.Ratio["median"] <= 1.15)
			c.Detail = fmt.Sprintf("median of %d alternating rounds (%.3f to %.3f): %.1f vs %.1f µs of server CPU a request",
				len(rr.Rounds), rr.Ratio["min"], rr.Ratio["max"], rr.VitrineUs["median"], rr.BareUs["median"])
		} else {
			c.Detail = "needs the bare baseline, -cpu-rounds > 0 and a vitrine started by the bench"
		}
		*t = append(*t, c)
		c = report.Check{Name: "read-hot p99 at 50% of vitrine's peak (open loop)", Unit: " ms", Goal: "≤ 2 ms"}
		if op, cl := s.Phase("open"), s.Phase("closed"); op != nil && cl != nil && b.o.rate <= 0 {
			c.Value, c.Met = f64(op.Latency.P99), boolp(op.Latency.P99 <= 2)
			c.Detail = fmt.Sprintf("%.0f req/s scheduled (half of %.0f), p50 %.3f ms, p99.9 %.3f ms", op.TargetRPS, cl.ThroughputRPS, op.Latency.P50, op.Latency.P999)
			if bl := b.rep.FindBaseline("bare-fasthttp"); bl != nil && bl.Extra != nil {
				if bo, ok := bl.Extra["open"].(*report.Phase); ok {
					c.Detail += fmt.Sprintf("; bare-fasthttp at the same rate: p99 %.3f ms (this machine and client's floor)", bo.Latency.P99)
				}
			}
		} else {
			c.Detail = "needs -mode both without -rate"
		}
		*t = append(*t, c)
	}
	if s := b.rep.Find("upload"); s != nil {
		c := report.Check{Name: "images/s vs the vips CLI", Unit: "×", Goal: "≥ 1.2×"}
		if s.Ratio != nil {
			c.Value, c.Met = s.Ratio, boolp(*s.Ratio >= 1.2)
			c.Detail = fmt.Sprintf("%.2f vs %.2f images/s", s.ThroughputRPS, s.Baseline.Value)
		} else {
			c.Detail = "no vips-cli baseline"
		}
		*t = append(*t, c)
	}
	if s := b.rep.Find("list"); s != nil && s.Skipped == "" {
		cl, op := s.Phase("closed"), s.Phase("open")
		if cl != nil {
			c := report.Check{Name: "list pages, peak rate", Unit: " req/s", Goal: "≥ 10000 req/s", Value: f64(cl.ThroughputRPS), Met: boolp(cl.ThroughputRPS >= 10000)}
			if cl.CPUUsPerRequest != nil {
				c.Detail = fmt.Sprintf("vitrine used %.0f µs of CPU a page (%.2f s over the phase): %.0f pages/s for each core it gets; the load generator shares the machine",
					*cl.CPUUsPerRequest, *cl.CPUSeconds, 1e6 / *cl.CPUUsPerRequest)
			}
			*t = append(*t, c)
		}
		if op != nil && b.o.rate <= 0 {
			*t = append(*t, report.Check{Name: "list p99 at 50% of the peak (open loop)", Unit: " ms", Goal: "≤ 10 ms", Value: f64(op.Latency.P99), Met: boolp(op.Latency.P99 <= 10),
				Detail: fmt.Sprintf("%.0f req/s scheduled, p50 %.3f ms, p99.9 %.3f ms", op.TargetRPS, op.Latency.P50, op.Latency.P999)})
		}
	}
	b.imageTargets()
	b.ondemandTargets()
	if s := b.rep.Find("read-cold"); s != nil && s.Skipped == "" {
		c := report.Check{Name: "cold reads vs pgbench -S", Unit: "×", Goal: "reported"}
		if s.Ratio != nil {
			c.Value = s.Ratio
			c.Detail = fmt.Sprintf("%.0f req/s vs %.0f tx/s", s.ThroughputRPS, s.Baseline.Value)
		} else {
			c.Detail = "no pgbench baseline (needs VITRINE_POSTGRES_URL and pgbench)"
		}
		*t = append(*t, c)
	}
	for _, s := range b.rep.Scenarios {
		if s.Skipped != "" {
			continue
		}
		c := report.Check{Name: "peak RSS, " + s.Name, Unit: " MiB", Goal: "printed"}
		if s.PeakRSSBytes != nil {
			c.Value = f64(math.Round(float64(*s.PeakRSSBytes) / (1 << 20)))
			c.Detail = "VmHWM of the vitrine process"
			if s.PeakRSSScope == "process" {
				c.Detail += " (since its start: the kernel refused to reset it)"
			}
		} else {
			c.Detail = "unknown: vitrine was not started by the bench"
		}
		*t = append(*t, c)
	}
}

// ondemandTargets reports the on-demand scenarios' goals against imgproxy.
func (b *bench) ondemandTargets() {
	for _, g := range []struct {
		name string
		goal float64
		what string
	}{{"ondemand-first", 1, "first hits of distinct widths vs imgproxy"}, {"ondemand-repeat", 20, "repeated hits vs imgproxy recomputing"}} {
		s := b.rep.Find(g.name)
		if s == nil || s.Skipped != "" || s.Ratio == nil {
			continue
		}
		cr, _ := s.Extra["cpu_ratio"].(map[string]float64)
		rr, _ := s.Extra["req_per_s_ratio"].(map[string]float64)
		b.rep.Targets = append(b.rep.Targets, report.Check{Name: "req/s, " + g.what, Unit: "×", Goal: fmt.Sprintf("≥ %.0f×", g.goal),
			Value: s.Ratio, Met: boolp(*s.Ratio >= g.goal),
			Detail: fmt.Sprintf("median of the rounds' ratios (%v–%v); CPU per request ratio %v (%v–%v)", rr["min"], rr["max"], cr["median"], cr["min"], cr["max"])})
	}
}

// imageTargets reports the images scenario's goals against the floor.
func (b *bench) imageTargets() {
	t := &b.rep.Targets
	for _, g := range []struct {
		recipe        string
		ips, cpu, rss float64 // 0: no goal
	}{{"webp800", 0.95, 1.1, 400}, {"default", 0, 1.3, 400}} {
		s := b.rep.Find("images-" + g.recipe)
		if s == nil || s.Skipped != "" || s.Ratio == nil {
			continue
		}
		x := s.Extra
		if fr, ok := x["floor_ratio"].(float64); ok && g.ips > 0 {
			*t = append(*t, report.Check{Name: "images/s vs the libvips floor, " + g.recipe, Unit: "×", Goal: fmt.Sprintf("≥ %.2f×", g.ips),
				Value: f64(fr), Met: boolp(fr >= g.ips),
				Detail: fmt.Sprintf("%.2f images/s vs the floor's (median of the rounds' ratios; images/s %v)", s.ThroughputRPS, x["images_per_s"])})
		}
		if ip, ok := x["imgproxy"].(map[string]any); ok {
			ipsR, _ := ip["images_per_s_ratio"].(map[string]float64)
			cpuR, _ := ip["cpu_ratio"].(map[string]float64)
			*t = append(*t, report.Check{Name: "images/s vs imgproxy, " + g.recipe, Unit: "×", Goal: "≥ 1.00×",
				Value: f64(ipsR["median"]), Met: boolp(ipsR["median"] >= 1),
				Detail: fmt.Sprintf("median of the rounds' ratios (%v–%v); imgproxy %v images/s %v", ipsR["min"], ipsR["max"], ip["version"], ip["images_per_s"])})
			*t = append(*t, report.Check{Name: "CPU ms per image vs imgproxy, " + g.recipe, Unit: "×", Goal: "≤ 1.00×",
				Value: f64(cpuR["median"]), Met: boolp(cpuR["median"] <= 1),
				Detail: fmt.Sprintf("median of the rounds' ratios (%v–%v); vitrine %v ms, imgproxy %v ms", cpuR["min"], cpuR["max"], x["cpu_ms_per_image"], ip["cpu_ms_per_image"])})
		}
		if cr, ok := x["cpu_ratio"].(float64); ok {
			*t = append(*t, report.Check{Name: "CPU ms per image vs the libvips floor, " + g.recipe, Unit: "×", Goal: fmt.Sprintf("≤ %.2f×", g.cpu),
				Value: f64(cr), Met: boolp(cr <= g.cpu),
				Detail: fmt.Sprintf("vitrine %v ms, floor %v ms, vitrine's pipeline alone %v ms (ratio over rounds %v–%v)",
					x["cpu_ms_per_image"], x["floor_cpu_ms_per_image"], x["process_cpu_ms_per_image"], x["cpu_ratio_min"], x["cpu_ratio_max"])})
		}
		if g.rss > 0 && s.PeakRSSBytes != nil {
			mib := math.Round(float64(*s.PeakRSSBytes) / (1 << 20))
			*t = append(*t, report.Check{Name: "peak RSS, images " + g.recipe, Unit: " MiB", Goal: fmt.Sprintf("≤ %.0f MiB", g.rss),
				Value: f64(mib), Met: boolp(mib <= g.rss), Detail: fmt.Sprintf("VmHWM of vitrine over the bursts, %v workers", x["workers"])})
		}
		if added, ok := x["idle_added_after_202_ms"].(float64); ok {
			*t = append(*t, report.Check{Name: "idle node: 202 → ready over the pure processing time, " + g.recipe, Unit: " ms", Goal: "≤ 20 ms",
				Value: f64(added), Met: boolp(added <= 20),
				Detail: fmt.Sprintf("median of pairs; upload → ready %v ms (adds %v ms: the upload itself, %v ms, is the rest) vs ProcessImage alone %v ms",
					x["idle_upload_to_ready_ms"], x["idle_added_ms"], x["idle_upload_to_202_ms"], x["idle_process_ms"])})
		}
	}
}

// cpuRoundsResult is the read-hot CPU rounds the bare baseline recorded.
func (b *bench) cpuRoundsResult() *cpuRoundsResult {
	bl := b.rep.FindBaseline("bare-fasthttp")
	if bl == nil {
		return nil
	}
	rr, _ := bl.Extra["cpu_rounds"].(*cpuRoundsResult)
	return rr
}

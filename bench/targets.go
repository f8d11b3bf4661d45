package main

// The targets the report states (never asserted).

import (
	"fmt"
	"math"

	"github.com/vitrine-dev/vitrine/bench/internal/report"
)

func f64(v float64) *float64 { return &v }

func boolp(v bool) *bool { return &v }

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

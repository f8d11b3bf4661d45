package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// MiB formats bytes as MiB, "-" when unknown.
func MiB(b *int64) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(*b)/(1<<20))
}

func errs(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func phaseLabel(p *Phase) string {
	switch p.Mode {
	case "open":
		return fmt.Sprintf("open @%s/s", num(p.TargetRPS))
	case "closed":
		return fmt.Sprintf("closed c=%d", p.Concurrency)
	}
	return p.Mode
}

// WriteText prints the table of phases, the baselines and the targets.
func (r *Report) WriteText(w io.Writer) {
	if r.Partial && r.Stopped != nil {
		fmt.Fprintf(w, "PARTIAL REPORT: %s at %s: %s\ncompleted: %s; not run: %s\n\n", r.Stopped.Cause, r.Stopped.At, r.Stopped.Error,
			orNone(r.Stopped.Completed), orNone(r.Stopped.NotRun))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tphase\tthroughput\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tpeak RSS\t")
	row := func(name, unit string, p *Phase) {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t%s\t%s\t\n", name, phaseLabel(p), num(p.ThroughputRPS), unit,
			p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.P999, p.Latency.Max, errs(p.Errors), MiB(p.PeakRSSBytes))
	}
	for _, s := range r.Scenarios {
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\t\n", s.Name)
			continue
		}
		for _, p := range s.Phases {
			row(s.Name, s.Unit, p)
		}
	}
	for _, b := range r.Baselines {
		for _, p := range b.Phases() {
			row("["+b.Name+"]", b.Unit, p)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "baselines (same machine, same run):")
	for _, b := range r.Baselines {
		if b.Skipped != "" {
			fmt.Fprintf(w, "  %-14s skipped: %s\n", b.Name, b.Skipped)
			continue
		}
		fmt.Fprintf(w, "  %-14s %s %s — %s\n", b.Name, num(b.Value), b.Unit, b.Description)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratios to the baselines:")
	for _, s := range r.Scenarios {
		switch {
		case s.Skipped != "":
		case s.Ratio != nil:
			fmt.Fprintf(w, "  %-10s %s %s = %.2f× %s (%s %s)\n", s.Name, num(s.ThroughputRPS), s.Unit, *s.Ratio, s.Baseline.Name, num(s.Baseline.Value), s.Baseline.Unit)
		case s.Baseline != nil:
			fmt.Fprintf(w, "  %-10s no ratio: %s unavailable\n", s.Name, s.Baseline.Name)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (reported, not asserted):")
	for _, c := range r.Targets {
		mark := "n/a "
		switch {
		case c.Met == nil && c.Value != nil:
			mark = "info"
		case c.Met != nil && *c.Met:
			mark = "MET "
		case c.Met != nil:
			mark = "MISS"
		}
		val := "-"
		if c.Value != nil {
			val = fmt.Sprintf("%.3g%s", *c.Value, c.Unit)
		}
		fmt.Fprintf(w, "  [%s] %-40s %-10s goal %-10s %s\n", mark, c.Name, val, c.Goal, c.Detail)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "peak RSS of vitrine by scenario:")
	for _, s := range r.Scenarios {
		if s.Skipped == "" {
			fmt.Fprintf(w, "  %-10s %s\n", s.Name, MiB(s.PeakRSSBytes))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

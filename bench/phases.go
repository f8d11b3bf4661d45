// phases.go: closed- and open-loop phases of an HTTP scenario.

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/load"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

func summary(p *report.Phase, unit string) string {
	s := fmt.Sprintf("%s %s  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.1f ms  errors %d", fmtNum(p.ThroughputRPS), unit,
		p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.P999, p.Latency.Max, p.Requests-p.OK)
	if p.Unsent > 0 {
		s += fmt.Sprintf("  unsent %d", p.Unsent)
	}
	if p.PeakRSSBytes != nil {
		s += "  rss " + report.MiB(p.PeakRSSBytes)
	}
	if p.CPUUsPerRequest != nil {
		s += fmt.Sprintf("  cpu %.0f µs/req", *p.CPUUsPerRequest)
	}
	return s
}

// cpuMeter starts measuring the CPU time of the vitrine the bench started;
// the returned function gives the time used since (-1 when unknown).
func (b *bench) cpuMeter() func() time.Duration {
	if b.proc == nil {
		return func() time.Duration { return -1 }
	}
	pid := b.proc.Pid()
	start, err := target.CPUTime(pid)
	return func() time.Duration {
		end, err2 := target.CPUTime(pid)
		if err != nil || err2 != nil {
			return -1
		}
		return end - start
	}
}

func fmtNum(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// phases runs a scenario's closed and/or open phases with op.
func (b *bench) phases(ctx context.Context, name string, op load.Op, s *report.Scenario) {
	var peak float64
	if b.o.mode != "open" {
		label := fmt.Sprintf("%s closed c=%d", name, b.o.concurrency)
		b.resetMem()
		prof := b.startProfile(ctx, name+".closed")
		cpu := b.cpuMeter()
		lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Seed: b.o.seed, Setup: scenario.Setup, Tick: b.bar.Tick(label)}, op)
		used := cpu()
		prof()
		ph := report.PhaseOf("closed", lp)
		ph.SetCPU(used)
		ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
		s.Phases = append(s.Phases, ph)
		s.SetMain(ph)
		peak = lp.Throughput()
		b.bar.Done(label, summary(ph, "req/s"))
	}
	if b.o.mode != "closed" && ctx.Err() == nil {
		rate := b.o.rate
		if rate <= 0 {
			rate = peak / 2
		}
		if rate < 1 {
			b.note("%s: no open-loop phase: the closed-loop peak was %.1f req/s", name, peak)
			return
		}
		label := fmt.Sprintf("%s open @%.0f/s", name, rate)
		b.resetMem()
		prof := b.startProfile(ctx, name+".open")
		cpu := b.cpuMeter()
		lp := load.Open(ctx, load.Config{Concurrency: b.o.openWorkers, Rate: rate, Duration: b.o.duration, Seed: b.o.seed + 1,
			Setup: scenario.Setup, Tick: b.bar.Tick(label)}, op)
		used := cpu()
		prof()
		ph := report.PhaseOf("open", lp)
		ph.SetCPU(used)
		ph.PeakRSSBytes, s.PeakRSSScope = b.peak()
		s.Phases = append(s.Phases, ph)
		if b.o.mode == "open" {
			s.SetMain(ph)
		}
		b.bar.Done(label, summary(ph, "req/s"))
	}
	for _, ph := range s.Phases {
		if ph.PeakRSSBytes != nil && (s.PeakRSSBytes == nil || *ph.PeakRSSBytes > *s.PeakRSSBytes) {
			v := *ph.PeakRSSBytes
			s.PeakRSSBytes = &v
		}
	}
}

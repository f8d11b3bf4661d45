// cpurounds.go: the front door's CPU per cached GET against bare fasthttp's,
// in alternating rounds of the same closed-loop load.

package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

// cpuRound is one round: server CPU per request of vitrine and of the bare
// baseline under the same load, one after the other.
type cpuRound struct {
	VitrineUs float64 `json:"vitrine_cpu_us_per_request"`
	BareUs    float64 `json:"bare_cpu_us_per_request"`
	VitrineRS float64 `json:"vitrine_req_per_s"`
	BareRS    float64 `json:"bare_req_per_s"`
	Ratio     float64 `json:"ratio"`
}

// cpuRoundsResult is the median of the rounds and their spread.
type cpuRoundsResult struct {
	Rounds      []cpuRound         `json:"rounds"`
	Ratio       map[string]float64 `json:"ratio"`
	VitrineUs   map[string]float64 `json:"vitrine_cpu_us_per_request"`
	BareUs      map[string]float64 `json:"bare_cpu_us_per_request"`
	Concurrency int                `json:"concurrency"`
	Seconds     float64            `json:"seconds_per_round"`
}

// cpuRounds alternates closed-loop read-hot rounds against vitrine and the
// bare server at barePid (reached through bare), measuring each server's
// CPU time per request. On 2 shared cores the load generator is the limit
// of both, so their request rates say little; the CPU each server spends
// on a request is what tells the front door's cost.
func (b *bench) cpuRounds(ctx context.Context, bare *httpc.Client, barePid int) (*cpuRoundsResult, error) {
	if b.proc == nil || b.o.cpuRounds <= 0 {
		return nil, nil
	}
	measure := func(label string, c *httpc.Client, pid int) (usPerReq, rps float64, err error) {
		cpu0, err := target.CPUTime(pid)
		if err != nil {
			return 0, 0, err
		}
		lp := load.Closed(ctx, load.Config{Concurrency: b.o.concurrency, Duration: b.o.duration, Seed: b.o.seed, Setup: scenario.Setup, Tick: b.bar.Tick(label)},
			scenario.ReadHot(c, b.keys))
		cpu1, err := target.CPUTime(pid)
		if err != nil {
			return 0, 0, err
		}
		n := lp.OK()
		if n == 0 {
			return 0, 0, fmt.Errorf("%s: no request succeeded", label)
		}
		usPerReq = float64((cpu1 - cpu0).Microseconds()) / float64(n)
		b.bar.Done(label, fmt.Sprintf("%.0f req/s, %.1f µs CPU/request", lp.Throughput(), usPerReq))
		return usPerReq, lp.Throughput(), nil
	}
	res := &cpuRoundsResult{Concurrency: b.o.concurrency, Seconds: b.o.duration.Seconds()}
	for i := range b.o.cpuRounds {
		var r cpuRound
		var err error
		if r.VitrineUs, r.VitrineRS, err = measure(fmt.Sprintf("cpu round %d/%d vitrine", i+1, b.o.cpuRounds), b.client, b.proc.Pid()); err != nil {
			return nil, err
		}
		if r.BareUs, r.BareRS, err = measure(fmt.Sprintf("cpu round %d/%d bare-fasthttp", i+1, b.o.cpuRounds), bare, barePid); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.Ratio = roundTo(r.VitrineUs/r.BareUs, 3)
		r.VitrineUs, r.BareUs = roundTo(r.VitrineUs, 2), roundTo(r.BareUs, 2)
		r.VitrineRS, r.BareRS = roundTo(r.VitrineRS, 0), roundTo(r.BareRS, 0)
		res.Rounds = append(res.Rounds, r)
	}
	spread := func(f func(cpuRound) float64) map[string]float64 {
		var v []float64
		for _, r := range res.Rounds {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return map[string]float64{"median": roundTo(median(v), 3), "min": v[0], "max": v[len(v)-1]}
	}
	res.Ratio = spread(func(r cpuRound) float64 { return r.Ratio })
	res.VitrineUs = spread(func(r cpuRound) float64 { return r.VitrineUs })
	res.BareUs = spread(func(r cpuRound) float64 { return r.BareUs })
	return res, nil
}

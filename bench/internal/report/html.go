package report

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
)

// chartsOf makes a scenario's charts: for each phase, latency over time and
// throughput over time; then the percentile distribution of all phases
// (and of the compared baseline's, when there is one).
func chartsOf(s *Scenario, r *Report) []template.HTML {
	var out []template.HTML
	for _, p := range s.Phases {
		var t, p50, p90, p99, rps []float64
		for _, pt := range p.Timeline {
			t = append(t, pt.T)
			rps = append(rps, pt.RPS)
			if pt.RPS == 0 { // an empty bucket has no latency: leave a gap, not a zero
				p50, p90, p99 = append(p50, math.NaN()), append(p90, math.NaN()), append(p99, math.NaN())
				continue
			}
			p50, p90, p99 = append(p50, pt.P50), append(p90, pt.P90), append(p99, pt.P99)
		}
		logY := false
		if lo, hi := minPos(p50), maxOf(p99); lo > 0 && hi/lo > 30 {
			logY = true
		}
		title := fmt.Sprintf("%s — %s: latency over time", s.Name, phaseLabel(p))
		xl := "seconds (requests by start time; open loop: by scheduled time)"
		yl, unit := "requests/s", "req/s"
		if p.Mode == "burst" {
			title = fmt.Sprintf("%s: 202 → ready, by the time the image was ready", s.Name)
			xl = "seconds from the first upload"
			yl, unit = "images/s", "images/s"
		}
		out = append(out, template.HTML(Chart{Class: "latency-over-time", Title: title, XLabel: xl, YLabel: "latency (ms)", LogY: logY,
			Series: []Series{{Name: "p50", X: t, Y: p50}, {Name: "p90", X: t, Y: p90}, {Name: "p99", X: t, Y: p99}}}.SVG())) // #nosec G203 -- SVG() escapes every text it writes; the rest is numbers and constant colours
		out = append(out, template.HTML(Chart{Class: "throughput-over-time", Title: fmt.Sprintf("%s — %s: throughput over time", s.Name, phaseLabel(p)),
			XLabel: xl, YLabel: yl, Series: []Series{{Name: unit, X: t, Y: rps, Color: "#2ca02c"}}}.SVG())) // #nosec G203 -- SVG() escapes every text it writes; the rest is numbers and constant colours
	}
	var series []Series
	add := func(name string, p *Phase, dash bool) {
		var x, y []float64
		for _, q := range p.Percentiles {
			if q.Q > 0 { // the minimum says little and squashes the axis
				x, y = append(x, PercentileX(q.Q)), append(y, q.Ms)
			}
		}
		series = append(series, Series{Name: name, X: x, Y: y, Dash: dash})
	}
	for _, p := range s.Phases {
		add(phaseLabel(p), p, false)
	}
	if s.Baseline != nil {
		if b := r.FindBaseline(s.Baseline.Name); b != nil && b.Phase != nil {
			add(b.Name+" "+phaseLabel(b.Phase), b.Phase, true)
			if op, ok := b.Extra["open"].(*Phase); ok {
				add(b.Name+" "+phaseLabel(op), op, true)
			}
		}
	}
	if len(series) > 0 {
		out = append(out, template.HTML(Chart{Class: "percentiles", Title: s.Name + ": latency by percentile", XLabel: "percentile",
			YLabel: "latency (ms)", LogY: true, XTicks: PercentileTicks, Series: series}.SVG())) // #nosec G203 -- SVG() escapes every text it writes; the rest is numbers and constant colours
	}
	return out
}

func minPos(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		if x > 0 && (m == 0 || x < m) {
			m = x
		}
	}
	return m
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"charts": chartsOf,
	"num":    num,
	"mib":    MiB,
	"errs":   errs,
	"phase":  phaseLabel,
	"join":   func(v []string) string { return strings.Join(v, ", ") },
	"deref": func(f *float64) string {
		if f == nil {
			return "-"
		}
		return fmt.Sprintf("%.3g", *f)
	},
	"metclass": func(b *bool) string {
		switch {
		case b == nil:
			return "na"
		case *b:
			return "met"
		}
		return "missed"
	},
	"met": func(c Check) string {
		b := c.Met
		switch {
		case b == nil && c.Value != nil:
			return "info"
		case b == nil:
			return "n/a"
		case *b:
			return "met"
		}
		return "missed"
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>vitrine bench — {{.StartedAt.Format "2006-01-02 15:04:05"}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1340px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}
.met{color:#1a7f37;font-weight:600}.missed{color:#c62828;font-weight:600}.na{color:#888}
.meta{color:#555}.partial{background:#fff3e0;border-left:4px solid #e65100;padding:6px 10px}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e4e4e4;border-radius:4px}
svg .grid line{stroke:#eee}svg .frame{fill:none;stroke:#bbb}
svg text{font:11px system-ui,sans-serif;fill:#444}svg .title{font-size:13px;font-weight:600;fill:#222}
svg .ylab{text-anchor:end}svg .xlab,svg .axis{text-anchor:middle}svg .legend{font-size:11px}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
</style></head><body>
<h1>vitrine bench{{if .Partial}} — partial{{end}}</h1>
{{with .Stopped}}<p class="partial"><b>Partial report</b>: {{.Cause}} at <code>{{.At}}</code>: {{.Error}}. Completed: {{if .Completed}}{{join .Completed}}{{else}}none{{end}}; not run: {{if .NotRun}}{{join .NotRun}}{{else}}none{{end}}.</p>
{{end}}<p class="meta">{{.StartedAt.Format "2006-01-02 15:04:05 MST"}} · {{printf "%.0f" .WallSeconds}} s ·
target <code>{{.Target.URL}}</code>{{if .Target.Managed}} (started by the bench){{end}} · {{.Target.Backends}} ·
{{.Machine.CPUs}} CPUs, {{.Machine.OS}}, {{.Machine.GoVersion}} · load average {{.Machine.LoadStart}} → {{.Machine.LoadEnd}}</p>
<p class="meta">{{printf "%.3g" .Config.PhaseSeconds}} s a phase · {{.Config.Concurrency}} closed-loop workers · {{.Config.OpenWorkers}} open-loop workers ·
{{.Config.Products}} products · Zipf s={{.Config.ZipfS}} · seed {{.Config.Seed}} · {{.Config.Uploads}} uploads</p>

<h2>Targets</h2>
<p class="meta">Reported, never asserted.</p>
<table><tr><th>target</th><th>value</th><th>goal</th><th>result</th><th>detail</th></tr>
{{range .Targets}}<tr><td>{{.Name}}</td><td>{{deref .Value}}{{.Unit}}</td><td>{{.Goal}}</td><td class="{{metclass .Met}}">{{met .}}</td><td style="text-align:left">{{.Detail}}</td></tr>
{{end}}</table>

<h2>Baselines</h2>
<table><tr><th>baseline</th><th>value</th><th>what</th></tr>
{{range .Baselines}}<tr><td>{{.Name}}</td><td>{{if .Skipped}}skipped{{else}}{{num .Value}} {{.Unit}}{{end}}</td><td style="text-align:left">{{if .Skipped}}{{.Skipped}}{{else}}{{.Description}}{{end}}</td></tr>
{{end}}</table>

<h2>Summary</h2>
<table><tr><th>scenario</th><th>phase</th><th>throughput</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th><th>peak RSS</th><th>ratio to baseline</th></tr>
{{range $s := .Scenarios}}{{if $s.Skipped}}<tr><td>{{$s.Name}}</td><td>skipped</td><td colspan="9" style="text-align:left">{{$s.Skipped}}</td></tr>
{{else}}{{range $s.Phases}}<tr><td>{{$s.Name}}</td><td>{{phase .}}</td><td>{{num .ThroughputRPS}} {{$s.Unit}}</td><td>{{.Latency.P50}}</td><td>{{.Latency.P90}}</td><td>{{.Latency.P99}}</td><td>{{.Latency.P999}}</td><td>{{.Latency.Max}}</td><td>{{errs .Errors}}</td><td>{{mib .PeakRSSBytes}}</td><td>{{if eq .Mode "closed" "burst"}}{{if $s.Ratio}}{{deref $s.Ratio}}× {{$s.Baseline.Name}}{{else}}-{{end}}{{end}}</td></tr>
{{end}}{{end}}{{end}}{{range $b := .Baselines}}{{range $b.Phases}}<tr><td>[{{$b.Name}}]</td><td>{{phase .}}</td><td>{{num .ThroughputRPS}} {{$b.Unit}}</td><td>{{.Latency.P50}}</td><td>{{.Latency.P90}}</td><td>{{.Latency.P99}}</td><td>{{.Latency.P999}}</td><td>{{.Latency.Max}}</td><td>{{errs .Errors}}</td><td>{{mib .PeakRSSBytes}}</td><td></td></tr>
{{end}}{{end}}</table>

{{range $s := .Scenarios}}{{if not $s.Skipped}}
<h2 id="{{$s.Name}}">{{$s.Name}}</h2>
<p>{{$s.Description}} Peak RSS of vitrine: <b>{{mib $s.PeakRSSBytes}}</b>{{if eq $s.PeakRSSScope "process"}} (since the process started){{end}}.</p>
{{range $s.Phases}}{{if .ByOp}}<h3>{{phase .}} by operation</h3>
<table><tr><th>operation</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>
{{range $k, $v := .ByOp}}<tr><td>{{$k}}</td><td>{{$v.Count}}</td><td>{{$v.Latency.P50}}</td><td>{{$v.Latency.P90}}</td><td>{{$v.Latency.P99}}</td><td>{{$v.Latency.P999}}</td><td>{{$v.Latency.Max}}</td></tr>
{{end}}</table>{{end}}{{if .Unsent}}<p>{{.Unsent}} scheduled requests were never sent: the client was that far behind (their delay is counted as a lower bound).</p>{{end}}{{end}}
<div class="charts">{{range charts $s $}}{{.}}{{end}}</div>
{{end}}{{end}}

{{if .Notes}}<h2>Notes</h2><ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>
`))

// WriteHTML writes the self-contained HTML report to path.
func (r *Report) WriteHTML(path string) error {
	var buf bytes.Buffer
	if err := page.Execute(&buf, r); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644) // #nosec G306 -- a bench report, meant to be read and published
}

package report

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Series is one line of a chart.
type Series struct {
	Name  string
	Color string
	X, Y  []float64
	Dash  bool
}

// Tick is an axis label at a value.
type Tick struct {
	V     float64
	Label string
}

// Chart is a line chart rendered as inline SVG.
type Chart struct {
	Class          string // CSS class, e.g. "latency-over-time"
	Title          string
	XLabel, YLabel string
	Series         []Series
	XTicks         []Tick // fixed x ticks; nil for automatic
	LogY           bool
	W, H           int
}

// Palette of series colours.
var Palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

const (
	padL, padR, padT, padB = 64.0, 16.0, 28.0, 72.0
)

// SVG renders the chart.
func (c Chart) SVG() string {
	w, h := float64(c.W), float64(c.H)
	if w == 0 {
		w = 640
	}
	if h == 0 {
		h = 300
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range s.X {
			if i >= len(s.Y) || math.IsNaN(s.Y[i]) || (c.LogY && s.Y[i] <= 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
		}
	}
	for _, t := range c.XTicks {
		xmin, xmax = math.Min(xmin, t.V), math.Max(xmax, t.V)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart %s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s">`,
		html.EscapeString(c.Class), w, h, w, h, html.EscapeString(c.Title))
	// Presentation attributes inline, so that the SVG looks right on its own too.
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/><text x="%.0f" y="18" class="title" font-family="sans-serif" font-size="13" font-weight="600" fill="#222">%s</text>`, padL, html.EscapeString(c.Title))
	if math.IsInf(xmin, 0) || math.IsInf(ymin, 0) {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="empty" font-family="sans-serif" font-size="12" fill="#888">no data</text></svg>`, w/2-30, h/2)
		return b.String()
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	// y axis
	var yt []Tick
	var ylo, yhi float64
	fy := func(v float64) float64 { return v }
	if c.LogY {
		ylo, yhi = math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if yhi == ylo {
			yhi++
		}
		fy = func(v float64) float64 { return math.Log10(math.Max(v, 1e-9)) }
		for e := ylo; e <= yhi; e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				if fy(v) <= yhi+1e-9 && (m == 1 || yhi-ylo <= 2) {
					yt = append(yt, Tick{v, num(v)})
				}
			}
		}
	} else {
		ylo = 0
		if ymin < 0 {
			ylo = ymin
		}
		step := niceStep((ymax - ylo) / 5)
		yhi = math.Ceil(ymax/step) * step
		if yhi <= ylo {
			yhi = ylo + step
		}
		for v := ylo; v <= yhi+step/2; v += step {
			yt = append(yt, Tick{v, num(v)})
		}
	}
	pw, ph := w-padL-padR, h-padT-padB
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return padT + ph - (fy(y)-ylo)/(yhi-ylo)*ph }
	b.WriteString(`<g class="grid" stroke="#e8e8e8" font-family="sans-serif" font-size="11" fill="#444">`)
	for _, t := range yt {
		y := py(t.V)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" class="ylab" text-anchor="end" stroke="none">%s</text>`,
			padL, y, padL+pw, y, padL-6, y+4, t.Label)
	}
	xt := c.XTicks
	if xt == nil {
		step := niceStep((xmax - xmin) / 6)
		for v := math.Ceil(xmin/step) * step; v <= xmax+1e-9; v += step {
			xt = append(xt, Tick{v, num(v)})
		}
	}
	for _, t := range xt {
		x := px(t.V)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" class="xlab" text-anchor="middle" stroke="none">%s</text>`,
			x, padT, x, padT+ph, x, padT+ph+16, html.EscapeString(t.Label))
	}
	b.WriteString(`</g>`)
	fmt.Fprintf(&b, `<rect class="frame" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#bbb"/>`, padL, padT, pw, ph)
	fmt.Fprintf(&b, `<g font-family="sans-serif" font-size="11" fill="#444" text-anchor="middle"><text x="%.1f" y="%.1f" class="axis">%s</text>`, padL+pw/2, padT+ph+32, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" class="axis" transform="rotate(-90 14 %.1f)">%s</text></g>`, padT+ph/2, padT+ph/2, html.EscapeString(c.YLabel))
	legendX, legendY := padL, h-22
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = Palette[i%len(Palette)]
		}
		var pts []string
		for j := range s.X {
			if j >= len(s.Y) || math.IsNaN(s.Y[j]) || (c.LogY && s.Y[j] <= 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[j]), py(s.Y[j])))
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<polyline class="series" fill="none" stroke="%s" stroke-width="1.8"%s points="%s"><title>%s</title></polyline>`,
			color, dash, strings.Join(pts, " "), html.EscapeString(s.Name))
		if len(pts) == 1 {
			var x, y float64
			_, _ = fmt.Sscanf(pts[0], "%f,%f", &x, &y)
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x, y, color)
		}
		// legend: flowed left to right, wrapping onto a second row
		itemW := 30 + 6.5*float64(len([]rune(s.Name)))
		if legendX+itemW > w-padR && legendX > padL {
			legendX, legendY = padL, legendY+14
		}
		lx, ly := legendX, legendY
		legendX += itemW
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/><text x="%.1f" y="%.1f" class="legend" font-family="sans-serif" font-size="11" fill="#444">%s</text>`,
			lx, ly-4, lx+18, ly-4, color, dash, lx+22, ly, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// num formats a tick value compactly.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e6:
		return trim(fmt.Sprintf("%.1fM", v/1e6))
	case a >= 1e4:
		return trim(fmt.Sprintf("%.1fk", v/1e3))
	case a >= 10:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return trim(fmt.Sprintf("%.1f", v))
	case a >= 0.01:
		return trim(fmt.Sprintf("%.2f", v))
	default:
		return trim(fmt.Sprintf("%.3f", v))
	}
}

func trim(s string) string {
	if i := strings.IndexAny(s, "kM"); i > 0 {
		return strings.TrimRight(strings.TrimRight(s[:i], "0"), ".") + s[i:]
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// PercentileX maps a quantile to the x of a percentile chart: -log10(1-q),
// so 90 %, 99 %, 99.9 % are evenly spaced. The maximum (q = 1) is put one
// step past 99.99 %.
func PercentileX(q float64) float64 {
	if q >= 1 {
		return 5
	}
	return -math.Log10(1 - q)
}

// PercentileTicks label a percentile chart's x axis.
var PercentileTicks = []Tick{{0.30103, "50%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "max"}}

// Package progress draws a one-line progress bar on a terminal, and a
// summary line per phase elsewhere (CI logs, make output through a pipe).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/load"
)

// Bar writes progress to w.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	quiet bool
	width int
	last  int // length of the last line drawn
}

// New is a bar on w; it redraws in place when w is a terminal.
func New(w io.Writer, quiet bool) *Bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Bar{w: w, tty: tty, quiet: quiet, width: 30}
}

// Tick returns a load.Config.Tick for a phase named label.
func (b *Bar) Tick(label string) func(load.Progress) {
	return func(p load.Progress) { b.Draw(label, p) }
}

// Draw shows the phase's state.
func (b *Bar) Draw(label string, p load.Progress) {
	if b.quiet || !b.tty {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var bar string
	if p.Planned > 0 {
		frac := min(max(p.Elapsed.Seconds()/p.Planned.Seconds(), 0), 1)
		n := int(frac * float64(b.width))
		bar = "[" + strings.Repeat("█", n) + strings.Repeat("░", b.width-n) + "] " +
			fmt.Sprintf("%4.1fs/%.0fs", p.Elapsed.Seconds(), p.Planned.Seconds())
	} else {
		bar = fmt.Sprintf("%5.1fs", p.Elapsed.Seconds())
	}
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	line := fmt.Sprintf("%-26s %s %9d done %9.0f/s  errors %d", label, bar, p.Done, rate, p.Fails)
	pad := ""
	if n := b.last - len([]rune(line)); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(b.w, "\r%s%s", line, pad)
	b.last = len([]rune(line))
}

// Done ends a phase with a summary line.
func (b *Bar) Done(label, summary string) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && b.last > 0 {
		fmt.Fprintf(b.w, "\r%s\r", strings.Repeat(" ", b.last))
		b.last = 0
	}
	fmt.Fprintf(b.w, "%-26s %s\n", label, summary)
}

// Logf prints a line between phases.
func (b *Bar) Logf(format string, args ...any) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && b.last > 0 {
		fmt.Fprintf(b.w, "\r%s\r", strings.Repeat(" ", b.last))
		b.last = 0
	}
	fmt.Fprintf(b.w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Package progress shows the bench's phases: a progress bar on a terminal
// (schollz/progressbar, as vitrine's own commands use), and a summary line
// per phase everywhere (CI logs, make output through a pipe).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/vitrine-dev/vitrine/bench/internal/load"
)

// Bar writes progress to w: on a terminal, one schollz/progressbar bar per
// phase (its time against the phase's planned length, with the requests
// done, their rate and the errors); elsewhere only the summary lines.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	quiet bool
	cur   *progressbar.ProgressBar // the phase being drawn
	label string                   // its label
	most  int64                    // its planned milliseconds, -1 if open-ended
}

// New is a bar on w; it redraws in place when w is a terminal.
func New(w io.Writer, quiet bool) *Bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Bar{w: w, tty: tty, quiet: quiet}
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
	if b.cur == nil || b.label != label {
		b.clear()
		b.label, b.most = label, -1
		if p.Planned > 0 {
			b.most = p.Planned.Milliseconds()
		}
		b.cur = progressbar.NewOptions64(b.most, progressbar.OptionSetWriter(b.w), progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(), progressbar.OptionSpinnerType(14))
	}
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	b.cur.Describe(fmt.Sprintf("%-26s %9d done %9.0f/s  errors %d", label, p.Done, rate, p.Fails))
	done := p.Elapsed.Milliseconds()
	if b.most > 0 {
		done = min(done, b.most)
	}
	_ = b.cur.Set64(done)
}

// clear takes the phase's bar off the terminal. b.mu is held.
func (b *Bar) clear() {
	if b.cur != nil {
		_ = b.cur.Clear()
		b.cur = nil
	}
}

// Done ends a phase with a summary line.
func (b *Bar) Done(label, summary string) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	fmt.Fprintf(b.w, "%-26s %s\n", label, summary)
}

// Logf prints a line between phases.
func (b *Bar) Logf(format string, args ...any) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	fmt.Fprintf(b.w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

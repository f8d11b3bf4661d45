package progress

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/load"
)

// TestBarOnATerminal: on a terminal a phase draws a bar with its counts,
// and its summary line follows once the bar is cleared; an open-ended
// phase draws too.
func TestBarOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	b := &Bar{w: &buf, tty: true}
	for i := range 5 {
		b.Draw("read-hot closed", load.Progress{Elapsed: time.Duration(i) * 200 * time.Millisecond, Planned: time.Second, Done: uint64(i * 100)})
		time.Sleep(120 * time.Millisecond) // past the bar's throttle
	}
	b.Done("read-hot closed", "5000 req/s")
	b.Draw("upload burst", load.Progress{Elapsed: time.Second, Done: 7})
	b.Logf("next: %s", "images")
	out := buf.String()
	for _, want := range []string{"read-hot closed", "400 done", "5000 req/s\n", "upload burst", "next: images\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	var quiet bytes.Buffer
	q := New(&quiet, false) // not a terminal: summaries only
	q.Draw("x", load.Progress{Elapsed: time.Second, Planned: 2 * time.Second})
	q.Done("x", "done")
	if quiet.String() != fmt.Sprintf("%-26s %s\n", "x", "done") {
		t.Errorf("off a terminal: %q", quiet.String())
	}
}

package target

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestMemoryOfSelf(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatalf("the bench reads memory from /proc (Linux): %v", err)
	}
	if st.RSS <= 0 || st.HWM < st.RSS {
		t.Fatalf("status %+v", st)
	}
	m := Watch(os.Getpid())
	defer m.Stop()
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	peak, _ := m.Peak()
	if peak < 64<<20 {
		t.Errorf("peak %d after touching 64 MiB", peak)
	}
	_ = big[len(big)-1]
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/cmd/vitrine"); err != nil {
		t.Errorf("root %s has no cmd/vitrine", root)
	}
	if _, err := ModuleRoot(os.TempDir()); err == nil {
		t.Errorf("found a vitrine module above %s", os.TempDir())
	}
}

// CPUTime agrees with getrusage about this process.
func TestCPUTime(t *testing.T) {
	rusage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until /proc says 200 ms more were used (bounded).
	x := 0
	for start := time.Now(); time.Since(start) < 20*time.Second; {
		for range 1 << 20 {
			x++
		}
		if d, _ := CPUTime(os.Getpid()); d-before >= 200*time.Millisecond {
			break
		}
	}
	got, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := rusage()
	if got-before < 200*time.Millisecond || got > want+20*time.Millisecond || got < want-50*time.Millisecond {
		t.Errorf("after %d iterations /proc says %v (%v more), getrusage %v", x, got, got-before, want)
	}
}

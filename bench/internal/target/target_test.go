package target

import (
	"os"
	"testing"
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

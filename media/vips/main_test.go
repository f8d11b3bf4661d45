package vips

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
)

// testRuntime is the runtime of this test binary: libvips can be started
// once per process.
var testRuntime *Runtime

func TestMain(m *testing.M) {
	rt, err := Start(Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start libvips:", err)
		os.Exit(1)
	}
	testRuntime = rt
	code := m.Run()
	rt.Shutdown()
	os.Exit(code)
}

// decoded is what a test learns by decoding an encoded file.
type decoded struct {
	format        media.Format
	width, height int
	bands         int
	hasAlpha      bool
	fields        []string
}

// inspect decodes data strictly and completely, as a client would.
func inspect(t testing.TB, data []byte) decoded {
	t.Helper()
	f, err := media.Sniff(data)
	if err != nil {
		t.Fatalf("sniff output: %v", err)
	}
	b := newBlob(data)
	defer b.close()
	im, err := load(b, loaderFor(f), failOnWarning, 0, 0)
	if err != nil {
		t.Fatalf("load output: %v", err)
	}
	defer im.close()
	mem, err := render(context.Background(), im)
	if err != nil {
		t.Fatalf("decode output: %v", err)
	}
	defer mem.close()
	return decoded{format: f, width: im.width(), height: im.height(), bands: im.bands(), hasAlpha: im.hasAlpha(), fields: im.fields()}
}

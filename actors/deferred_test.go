package actors_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
)

// slowFormats is a processor whose runs give WebP to Early, with AVIF
// pending, then make AVIF: after release is closed, failing the first
// failSlow runs' AVIF.
type slowFormats struct {
	calls    atomic.Int32
	release  chan struct{}
	failSlow int32
}

func (p *slowFormats) Process(ctx context.Context, data []byte, opts actors.ProcessOptions) (actors.Processed, error) {
	call := p.calls.Add(1)
	webp := actors.Rendition{Name: "thumb", Format: "webp", ContentType: "image/webp", Width: 5, Height: 5, Data: []byte("RIFFwebp")}
	avif := actors.Rendition{Name: "thumb", Format: "avif", ContentType: "image/avif", Width: 5, Height: 5}
	if opts.Early != nil {
		if err := opts.Early(actors.Processed{RecipeVersion: 1, Renditions: []actors.Rendition{webp}, Pending: []actors.Rendition{avif}}); err != nil {
			return actors.Processed{}, err
		}
	}
	select {
	case <-p.release:
	case <-ctx.Done():
		return actors.Processed{}, ctx.Err()
	}
	if call <= p.failSlow {
		return actors.Processed{}, errors.New("injected AVIF encoder failure")
	}
	avif.Data = []byte("....ftypavif")
	return actors.Processed{RecipeVersion: 1, Renditions: []actors.Rendition{webp, avif}}, nil
}

// statusOf is the status of the image's variant file of that format.
func statusOf(img *catalog.Image, format string) string {
	for _, v := range img.Variants {
		if v.Format == format {
			if v.Status == "" {
				return catalog.FileReady
			}
			return v.Status
		}
	}
	return "absent"
}

// waitFormat waits until the image's file of format has status.
func (f *fixture) waitFormat(img *catalog.Image, format, status string) *catalog.Image {
	f.t.Helper()
	return f.waitFor(img, "ready with its "+format+" file "+status, func(got *catalog.Image) bool {
		return got.Status == catalog.StatusReady && statusOf(got, format) == status
	})
}

// TestReadyBeforeTheSlowFormats: the image is ready, serving WebP, while
// its AVIF is still being made; then the AVIF file is stored and recorded.
func TestReadyBeforeTheSlowFormats(t *testing.T) {
	p := &slowFormats{release: make(chan struct{})}
	f := newFixture(t, p, nil, 3)
	img := f.waitFormat(f.upload(f.product()), "avif", catalog.FilePending)
	if statusOf(img, "webp") != catalog.FileReady {
		t.Fatalf("ready with webp %s", statusOf(img, "webp"))
	}
	r := img.Renditions()
	if len(r) != 1 || len(r[0].Formats) != 2 || r[0].Formats[1].Status != catalog.FilePending {
		t.Fatalf("renditions %+v", r)
	}
	close(p.release)
	img = f.waitFormat(img, "avif", catalog.FileReady)
	for _, v := range img.Variants {
		path, err := f.blobs.Path(strings.TrimPrefix(v.URL, "http://test/media/"))
		if err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(path); err != nil || len(data) == 0 || v.Bytes != int64(len(data)) {
			t.Errorf("%s: %d bytes recorded, file %q (%v)", filepath.Base(path), v.Bytes, data, err)
		}
	}
	if p.calls.Load() != 1 {
		t.Errorf("%d processing runs, want 1", p.calls.Load())
	}
}

// TestSlowFormatRetried: the AVIF encoder fails once; the job's next
// attempt makes it (processing again), the image ready throughout.
func TestSlowFormatRetried(t *testing.T) {
	p := &slowFormats{release: make(chan struct{}), failSlow: 1}
	close(p.release)
	f := newFixture(t, p, nil, 3)
	img := f.waitFormat(f.upload(f.product()), "avif", catalog.FileReady)
	if img.Status != catalog.StatusReady || p.calls.Load() != 2 {
		t.Fatalf("image %s after %d runs; want ready after 2", img.Status, p.calls.Load())
	}
}

// TestSlowFormatFailsAlone: an AVIF encoder failing every time leaves the
// image ready, its AVIF file failed, after the job's last attempt.
func TestSlowFormatFailsAlone(t *testing.T) {
	p := &slowFormats{release: make(chan struct{}), failSlow: 100}
	close(p.release)
	f := newFixture(t, p, nil, 3)
	img := f.waitFormat(f.upload(f.product()), "avif", catalog.FileFailed)
	if img.Error != nil || statusOf(img, "webp") != catalog.FileReady || p.calls.Load() != 3 {
		t.Fatalf("image %s error %+v webp %s after %d runs; want ready, no error, webp ready after 3", img.Status, img.Error, statusOf(img, "webp"), p.calls.Load())
	}
}

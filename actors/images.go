package actors

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Rendition is one encoded output of the image processor.
type Rendition struct {
	Name string
	// Fit is catalog.FitInside or catalog.FitCover ("" counts as inside).
	Fit         string
	Format      string
	ContentType string
	Width       int
	Height      int
	Data        []byte
}

// Processed is what processing made of an original.
type Processed struct {
	Renditions []Rendition
	// Pending are the files still to be made when Processed is given to
	// ProcessOptions.Early (slow formats: AVIF), without Data; the final
	// Processed has them among Renditions.
	Pending       []Rendition
	Placeholder   string // blurhash
	DominantColor string // #rrggbb
	Animated      bool
	RecipeVersion int
}

// Processor turns an original into renditions. Its errors are
// *catalog.Error values whose Code is a catalog.Fail* code when the input is
// at fault.
type Processor interface {
	Process(ctx context.Context, data []byte, opts ProcessOptions) (Processed, error)
}

// ProcessOptions are an image's own settings of processing.
type ProcessOptions struct {
	// Focus is where cover variants are cropped around (nil: libvips'
	// attention strategy).
	Focus *catalog.FocalPoint
	// CoverOnly makes only the cover variants: an image whose focal point
	// changed gets new crops, its other variants stand.
	CoverOnly bool
	// Early, when set, is given the renditions of every variant's fast
	// formats as soon as they are made, with the slow ones still to come
	// (Processed.Pending); an error from it ends processing with that
	// error. Process then returns every rendition.
	Early func(Processed) error
}

// Fetcher downloads an imported image. Its errors are *catalog.Error values
// with code fetch_failed, of kind Unavailable when worth retrying.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// imageBook is how workers read and record images: through product grains.
type imageBook interface {
	Image(ctx context.Context, productID, imageID string) (*catalog.Image, []byte, error)
	SaveImage(ctx context.Context, img *catalog.Image) error
}

// ImageDeps are what the image supervisor and its workers need.
type ImageDeps struct {
	// Metrics counts jobs by outcome; nil: none.
	Metrics   *Metrics
	Queue     catalog.JobQueue
	Images    imageBook
	Blobs     catalog.BlobStore
	Processor Processor
	Prober    Prober
	Fetcher   Fetcher
	Log       *zap.Logger
	Now       func() time.Time
	// Tracer, when not nil, traces each job as a span continuing the
	// upload's trace (Job.TraceParent), with child spans for reading the
	// original, libvips and storing the variants.
	Tracer trace.TracerProvider
	tracer trace.Tracer
	// Workers is the number of worker actors, so of jobs run at once.
	Workers int
	// MaxAttempts bounds how often a job is started, crashes included.
	MaxAttempts int
	// JobTimeout bounds one processing run.
	JobTimeout time.Duration
	// RetryBase is the first retry delay; it doubles per attempt, with jitter.
	RetryBase time.Duration
	// RestartBackoff is how long a crashed worker waits before it is
	// restarted; it doubles with each crash of that worker in a row (no
	// job run to its end in between, within RestartWindow), up to
	// RestartBackoffMax. A worker is always restarted, however often it
	// crashes.
	RestartBackoff    time.Duration
	RestartBackoffMax time.Duration
	RestartWindow     time.Duration
}

func (d *ImageDeps) defaults() {
	d.tracer = tracerOf(d.Tracer)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Workers <= 0 {
		d.Workers = 1
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 5
	}
	if d.JobTimeout <= 0 {
		d.JobTimeout = 60 * time.Second
	}
	if d.RetryBase <= 0 {
		d.RetryBase = time.Second
	}
	if d.RestartBackoff <= 0 {
		d.RestartBackoff = 100 * time.Millisecond
	}
	if d.RestartBackoffMax <= 0 {
		d.RestartBackoffMax = 10 * time.Second
	}
	if d.RestartWindow <= 0 {
		d.RestartWindow = time.Minute
	}
}

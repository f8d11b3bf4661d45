package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Rendition is one encoded output of the image processor.
type Rendition struct {
	Name        string
	Format      string
	ContentType string
	Width       int
	Height      int
	Data        []byte
}

// Processed is what processing made of an original.
type Processed struct {
	Renditions    []Rendition
	Placeholder   string // blurhash
	DominantColor string // #rrggbb
	Animated      bool
	RecipeVersion int
}

// Processor turns an original into renditions. Its errors are
// *catalog.Error values whose Code is a catalog.Fail* code when the input is
// at fault.
type Processor interface {
	Process(ctx context.Context, data []byte) (Processed, error)
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
	Queue     catalog.JobQueue
	Images    imageBook
	Blobs     catalog.BlobStore
	Processor Processor
	Prober    Prober
	Fetcher   Fetcher
	Log       *zap.Logger
	Now       func() time.Time
	// Workers is the number of worker actors, so of jobs run at once.
	Workers int
	// MaxAttempts bounds how often a job is started, crashes included.
	MaxAttempts int
	// JobTimeout bounds one processing run.
	JobTimeout time.Duration
	// RetryBase is the first retry delay; it doubles per attempt, with jitter.
	RetryBase time.Duration
}

func (d *ImageDeps) defaults() {
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
}

// ImagePool is a running image supervisor with its workers.
type ImagePool struct {
	system    *actor.ActorSystem
	pid       *actor.PID
	stopFeed  context.CancelFunc
	stopJobs  context.CancelFunc
	fed       sync.WaitGroup // the feeder goroutine
	inflight  sync.WaitGroup // jobs handed to workers and not yet finished
	workerCtx context.Context
}

// StartImages spawns the image supervisor, which spawns deps.Workers worker
// actors and takes a job from the queue only when one of them is free.
func StartImages(system *actor.ActorSystem, deps ImageDeps) (*ImagePool, error) {
	deps.defaults()
	pool := &ImagePool{system: system}
	var feedCtx context.Context
	feedCtx, pool.stopFeed = context.WithCancel(context.Background())
	pool.workerCtx, pool.stopJobs = context.WithCancel(context.Background())
	tokens := make(chan struct{}, deps.Workers)
	sup := &supervisor{deps: &deps, pool: pool, tokens: tokens, inflight: map[string]catalog.Delivery{}}
	pid, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return sup }), "image-supervisor")
	if err != nil {
		return nil, fmt.Errorf("spawn image supervisor: %w", err)
	}
	pool.pid = pid
	pool.fed.Add(1)
	go pool.feed(feedCtx, &deps, tokens)
	return pool, nil
}

// feed takes a job from the queue whenever a worker is free: the queue is
// the buffer, so memory stays bounded however many jobs wait.
func (p *ImagePool) feed(ctx context.Context, deps *ImageDeps, tokens chan struct{}) {
	defer p.fed.Done()
	for {
		select {
		case <-tokens:
		case <-ctx.Done():
			return
		}
		d, err := deps.Queue.Receive(ctx)
		if err != nil {
			tokens <- struct{}{}
			if ctx.Err() != nil {
				return
			}
			deps.Log.Warn("receive image job", zap.Error(err))
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		p.inflight.Add(1)
		p.system.Root.Send(p.pid, &dispatch{d: d})
	}
}

// Stop stops taking jobs and waits for running ones until ctx ends; jobs
// still running then are cancelled and stay in the queue, to be delivered
// again.
func (p *ImagePool) Stop(ctx context.Context) error {
	p.stopFeed()
	p.fed.Wait()
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("image jobs still running at shutdown: %w", ctx.Err())
		p.stopJobs()
		<-done
	}
	p.stopJobs()
	if stopErr := p.system.Root.StopFuture(p.pid).Wait(); stopErr != nil && err == nil {
		err = fmt.Errorf("stop image supervisor: %w", stopErr)
	}
	return err
}

type dispatch struct{ d catalog.Delivery }
type work struct{ d catalog.Delivery }
type workDone struct{ worker *actor.PID }

// supervisor hands jobs to free workers and restarts crashed ones.
type supervisor struct {
	deps     *ImageDeps
	pool     *ImagePool
	tokens   chan struct{}
	free     []*actor.PID
	inflight map[string]catalog.Delivery // by worker PID id
	strategy actor.SupervisorStrategy
}

func (s *supervisor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		// One-for-one: a crashed worker is restarted alone, at most 10 times a minute.
		s.strategy = actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
		props := actor.PropsFromProducer(func() actor.Actor { return &worker{deps: s.deps, ctx: s.pool.workerCtx} })
		for i := 0; i < s.deps.Workers; i++ {
			pid, err := c.SpawnNamed(props, fmt.Sprintf("worker-%d", i))
			if err != nil {
				s.deps.Log.Error("spawn image worker", zap.Error(err))
				continue
			}
			s.free = append(s.free, pid)
			s.tokens <- struct{}{}
		}
	case *dispatch:
		if len(s.free) == 0 { // every worker gave up restarting
			s.deps.Log.Error("no image worker left; job put back", zap.String("image_id", m.d.Job().ImageID))
			_ = m.d.Retry(context.Background(), time.Minute)
			s.pool.inflight.Done()
			return
		}
		w := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		s.inflight[w.Id] = m.d
		c.Send(w, &work{d: m.d})
	case *workDone:
		s.release(m.worker)
	case *actor.Terminated:
		for i, w := range s.free {
			if w.Id == m.Who.Id {
				s.free = append(s.free[:i], s.free[i+1:]...)
			}
		}
	}
}

func (s *supervisor) release(w *actor.PID) {
	if _, ok := s.inflight[w.Id]; !ok {
		return
	}
	delete(s.inflight, w.Id)
	s.free = append(s.free, w)
	s.tokens <- struct{}{}
	s.pool.inflight.Done()
}

// HandleFailure is called when a worker panics: the job it held is put
// back with a backoff (its attempt was counted before it started), and the
// worker is restarted one-for-one.
func (s *supervisor) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message interface{}) {
	if d, ok := s.inflight[child.Id]; ok {
		job := d.Job()
		s.deps.Log.Error("image worker crashed; job put back", zap.String("image_id", job.ImageID),
			zap.Int("attempt", d.Attempt()), zap.Any("reason", reason))
		if err := d.Retry(context.Background(), backoff(s.deps.RetryBase, d.Attempt())); err != nil {
			s.deps.Log.Error("put back image job", zap.String("image_id", job.ImageID), zap.Error(err))
		}
		s.release(child)
	}
	s.strategy.HandleFailure(system, sup, child, rs, reason, message)
}

// backoff is exponential with full jitter, capped at five minutes.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 16)
	if d <= 0 || d > 5*time.Minute {
		d = 5 * time.Minute
	}
	return d/2 + rand.N(d/2+1)
}

// worker runs one job at a time.
type worker struct {
	deps    *ImageDeps
	ctx     context.Context
	marking <-chan error // the job's processing-status save, while under way
	// processing is the time the job's Process call took, for its log line.
	processing time.Duration
}

func (w *worker) Receive(c actor.Context) {
	if m, ok := c.Message().(*work); ok {
		w.run(m.d)
		c.Send(c.Parent(), &workDone{worker: c.Self()})
	}
}

// outcome is how a job ended, for the log line and the queue.
type outcome struct {
	result string // ready, failed, retry, skipped, dead_letter
	code   string
	detail string
}

func (w *worker) run(d catalog.Delivery) {
	start := w.deps.Now()
	job := d.Job()
	ctx, cancel := context.WithTimeout(w.ctx, w.deps.JobTimeout)
	defer cancel()
	w.processing = 0
	out := w.process(ctx, d)
	fields := []zap.Field{zap.String("image_id", job.ImageID), zap.String("product_id", job.ProductID),
		zap.Int("attempt", d.Attempt()), zap.String("outcome", out.result), zap.Duration("duration", w.deps.Now().Sub(start))}
	if w.processing > 0 {
		fields = append(fields, zap.Duration("processing", w.processing))
	}
	if out.code != "" {
		fields = append(fields, zap.String("code", out.code), zap.String("detail", out.detail))
	}
	// Acknowledge with a fresh context: the job's own may have expired.
	ackCtx, cancelAck := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelAck()
	var err error
	switch out.result {
	case "retry":
		err = d.Retry(ackCtx, backoff(w.deps.RetryBase, d.Attempt()))
	case "dead_letter":
		err = d.DeadLetter(ackCtx, out.code, out.detail)
	default:
		err = d.Ack(ackCtx)
	}
	if err != nil {
		fields = append(fields, zap.NamedError("queue_error", err))
	}
	w.deps.Log.Info("image job", fields...)
}

func (w *worker) process(ctx context.Context, d catalog.Delivery) outcome {
	job := d.Job()
	img, _, err := w.deps.Images.Image(ctx, job.ProductID, job.ImageID)
	switch {
	case catalog.IsNotFound(err):
		return outcome{result: "skipped", detail: "the image or its product was deleted"}
	case err != nil:
		return w.transient(ctx, d, nil, catalog.FailInternal, err)
	case img.Status == catalog.StatusReady || img.Status == catalog.StatusFailed:
		// A redelivered job: processing it again would change nothing.
		return outcome{result: "skipped", detail: "already " + string(img.Status)}
	}
	if d.Attempt() > w.deps.MaxAttempts {
		out := w.fail(ctx, img, catalog.FailInternal,
			fmt.Sprintf("processing was started %d times without finishing (the process crashed or was stopped each time)", d.Attempt()-1))
		if out.result == "failed" {
			out.result = "dead_letter"
		}
		return out
	}
	// The processing status is recorded while the original is read and
	// processed, not before: the product's grain orders this save before
	// the final one, which waits for it. A save that fails ends the job as
	// it did when it came first; only the work done meanwhile is lost.
	w.markProcessing(ctx, img)
	defer w.awaitMark() // the save never outlives the job
	data, out, ok := w.original(ctx, d, img)
	if !ok {
		if err := w.awaitMark(); err != nil {
			return w.notMarked(ctx, d, img, err)
		}
		return out
	}
	started := w.deps.Now()
	res, err := w.deps.Processor.Process(ctx, data)
	w.processing = w.deps.Now().Sub(started)
	if markErr := w.awaitMark(); markErr != nil {
		return w.notMarked(ctx, d, img, markErr)
	}
	if err != nil {
		var ce *catalog.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			if w.ctx.Err() != nil { // shutting down: leave it for the next run
				return outcome{result: "retry", detail: "interrupted by shutdown"}
			}
			return w.fail(ctx, img, catalog.FailTimeout, fmt.Sprintf("processing took longer than %s", w.deps.JobTimeout))
		case errors.As(err, &ce) && (ce.Kind == catalog.KindUnprocessableImage || ce.Kind == catalog.KindUnsupportedMedia):
			return w.fail(ctx, img, ce.Code, ce.Detail)
		default:
			return w.transient(ctx, d, img, catalog.FailInternal, err)
		}
	}
	variants, err := w.store(ctx, job, res)
	if err != nil {
		return w.transient(ctx, d, img, catalog.FailStorageUnavailable, err)
	}
	oldRecipe := img.RecipeVersion
	now := w.deps.Now().UTC().Truncate(time.Microsecond)
	img.Status, img.Error, img.Variants, img.ProcessedAt = catalog.StatusReady, nil, variants, &now
	img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion = res.Placeholder, res.DominantColor, res.Animated, res.RecipeVersion
	if err := w.deps.Images.SaveImage(ctx, img); err != nil {
		if catalog.IsNotFound(err) {
			return outcome{result: "skipped", detail: "the image or its product was deleted"}
		}
		return w.transient(ctx, d, img, catalog.FailInternal, err)
	}
	if oldRecipe != 0 && oldRecipe != res.RecipeVersion {
		// The new variants are recorded: the old ones can go.
		if err := w.deps.Blobs.DeletePrefix(ctx, catalog.VariantPrefix(job.ProductID, job.ImageID, oldRecipe)); err != nil {
			w.deps.Log.Warn("delete old variants", zap.String("image_id", job.ImageID), zap.Int("recipe_version", oldRecipe), zap.Error(err))
		}
	}
	return outcome{result: "ready"}
}

// markProcessing records img as processing, in the background: the
// returned channel yields the outcome of the save. img is copied, so the
// caller may go on changing it.
func (w *worker) markProcessing(ctx context.Context, img *catalog.Image) {
	marked := make(chan error, 1)
	m := *img
	m.Status = catalog.StatusProcessing
	go func() { marked <- w.deps.Images.SaveImage(ctx, &m) }()
	img.Status = catalog.StatusProcessing
	w.marking = marked
}

// awaitMark waits for the processing status's save, if one is under way,
// and returns its error once; later calls return nil.
func (w *worker) awaitMark() error {
	if w.marking == nil {
		return nil
	}
	err := <-w.marking
	w.marking = nil
	return err
}

// notMarked ends a job whose processing status could not be recorded.
func (w *worker) notMarked(ctx context.Context, d catalog.Delivery, img *catalog.Image, err error) outcome {
	if catalog.IsNotFound(err) {
		return outcome{result: "skipped", detail: "the image or its product was deleted"}
	}
	return w.transient(ctx, d, img, catalog.FailInternal, err)
}

// store writes the renditions to the blob store, all at once (each Put
// waits for its file to be durable), and returns their variants in order.
func (w *worker) store(ctx context.Context, job catalog.Job, res Processed) ([]catalog.Variant, error) {
	variants := make([]catalog.Variant, len(res.Renditions))
	errs := make([]error, len(res.Renditions))
	var wg sync.WaitGroup
	for i, o := range res.Renditions {
		key := catalog.VariantKey(job.ProductID, job.ImageID, res.RecipeVersion, o.Name, o.Format)
		variants[i] = catalog.Variant{Name: o.Name, Format: o.Format, Width: o.Width, Height: o.Height,
			Bytes: int64(len(o.Data)), URL: w.deps.Blobs.URL(key)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.deps.Blobs.Put(ctx, key, o.Data, o.ContentType)
		}()
	}
	wg.Wait()
	return variants, errors.Join(errs...)
}

// original returns the image's original bytes: from the blob store, or,
// for an import not fetched yet, from its URL (then probed and kept).
func (w *worker) original(ctx context.Context, d catalog.Delivery, img *catalog.Image) ([]byte, outcome, bool) {
	key := catalog.OriginalKey(img.ProductID, img.ID)
	if img.SourceURL == "" || img.Original.SHA256 != "" {
		data, err := w.deps.Blobs.Get(ctx, key)
		if err != nil {
			if catalog.IsNotFound(err) {
				return nil, w.fail(ctx, img, catalog.FailInternal, "the original file is missing from storage"), false
			}
			return nil, w.transient(ctx, d, img, catalog.FailStorageUnavailable, err), false
		}
		return data, outcome{}, true
	}
	if w.deps.Fetcher == nil || w.deps.Prober == nil {
		return nil, w.fail(ctx, img, catalog.FailInternal, "this worker cannot import images from URLs"), false
	}
	data, err := w.deps.Fetcher.Fetch(ctx, img.SourceURL)
	if err != nil {
		var ce *catalog.Error
		if errors.As(err, &ce) && ce.Kind == catalog.KindUnavailable {
			return nil, w.transient(ctx, d, img, catalog.FailFetch, err), false
		}
		if errors.As(err, &ce) {
			return nil, w.fail(ctx, img, catalog.FailFetch, ce.Detail), false
		}
		return nil, w.transient(ctx, d, img, catalog.FailFetch, err), false
	}
	h, err := w.deps.Prober.Probe(data)
	if err != nil {
		var ce *catalog.Error
		if errors.As(err, &ce) {
			code := ce.Code
			if ce.Kind == catalog.KindUnsupportedMedia {
				code = catalog.FailUnsupportedFormat
			}
			return nil, w.fail(ctx, img, code, ce.Detail), false
		}
		return nil, w.transient(ctx, d, img, catalog.FailInternal, err), false
	}
	if err := w.deps.Blobs.Put(ctx, key, data, h.ContentType); err != nil {
		return nil, w.transient(ctx, d, img, catalog.FailStorageUnavailable, err), false
	}
	img.Original = originalOf(data, h)
	return data, outcome{}, true
}

// transient retries the job later or, after the last attempt, fails the
// image and keeps the job as a dead letter.
func (w *worker) transient(ctx context.Context, d catalog.Delivery, img *catalog.Image, code string, err error) outcome {
	var ce *catalog.Error
	detail := err.Error()
	if errors.As(err, &ce) {
		detail = ce.Detail
	}
	if d.Attempt() < w.deps.MaxAttempts || img == nil {
		return outcome{result: "retry", code: code, detail: err.Error()}
	}
	out := w.fail(ctx, img, code, fmt.Sprintf("gave up after %d attempts: %s", d.Attempt(), detail))
	if out.result == "failed" {
		out.result = "dead_letter"
	}
	return out
}

func (w *worker) fail(ctx context.Context, img *catalog.Image, code, detail string) outcome {
	// After the processing status, never before it.
	if err := w.awaitMark(); catalog.IsNotFound(err) {
		return outcome{result: "skipped", detail: "the image or its product was deleted"}
	}
	now := w.deps.Now().UTC().Truncate(time.Microsecond)
	img.Status, img.Error, img.ProcessedAt = catalog.StatusFailed, &catalog.ImageError{Code: code, Detail: detail}, &now
	img.Variants = []catalog.Variant{}
	if err := w.deps.Images.SaveImage(ctx, img); err != nil && !catalog.IsNotFound(err) {
		return outcome{result: "retry", code: code, detail: fmt.Sprintf("%s (and recording the failure failed: %v)", detail, err)}
	}
	return outcome{result: "failed", code: code, detail: detail}
}

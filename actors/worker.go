package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
)

// cleanupTimeout bounds removing the files of a job whose image was deleted.
const cleanupTimeout = 30 * time.Second

// goneTimeout bounds looking up whether the image of a job that wrote
// files it did not record still exists (worker.abandoned).
const goneTimeout = 5 * time.Second

// worker runs one job at a time.
type worker struct {
	deps    *ImageDeps
	ctx     context.Context
	marking <-chan error // the job's processing-status save, while under way
	// processing is the time the job's Process call took, for its log line.
	processing time.Duration
	// wrote is whether the job wrote files (variants, crops, an imported
	// original), which are its to remove if its image turns out deleted.
	wrote bool
}

func (w *worker) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started: // at first, and after each restart
		c.Send(c.Parent(), &workerReady{worker: c.Self()})
	case *work:
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
	ctx, span := w.startJobSpan(ctx, job, d.Attempt())
	w.processing, w.wrote = 0, false
	w.deps.Log.Debug("image job started", zap.String("image_id", job.ImageID), zap.Int("attempt", d.Attempt()))
	out := w.abandoned(ctx, job, w.process(ctx, d))
	fields := []zap.Field{zap.String("image_id", job.ImageID), zap.String("product_id", job.ProductID),
		zap.Int("attempt", d.Attempt()), zap.String("outcome", out.result), zap.Duration("duration", w.deps.Now().Sub(start))}
	if sc := span.SpanContext(); sc.IsValid() {
		fields = append(fields, zap.String("trace_id", sc.TraceID().String()))
	}
	endJobSpan(span, out)
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
	w.deps.Metrics.job(out.result, out.code, w.deps.Now().Sub(start))
}

func (w *worker) process(ctx context.Context, d catalog.Delivery) outcome {
	job := d.Job()
	img, _, err := w.deps.Images.Image(ctx, job.ProductID, job.ImageID)
	switch {
	case catalog.IsNotFound(err):
		return w.deleted(ctx, job)
	case err != nil:
		return w.transient(ctx, d, nil, catalog.FailInternal, err)
	case img.Status == catalog.StatusReady && img.PendingFiles():
		// Its slow formats were not all made (the process stopped, a
		// retry): make them now.
		return w.complete(ctx, d, img)
	case img.Status == catalog.StatusReady && img.CropsStale():
		// Its focal point moved: new crops, the other variants stand.
		return w.recrop(ctx, d, img)
	case img.Status == catalog.StatusReady || img.Status == catalog.StatusFailed:
		// A redelivered job: processing it again would change nothing.
		return outcome{result: "skipped", detail: "already " + string(img.Status)}
	}
	if d.Attempt() > w.deps.MaxAttempts {
		out := w.fail(ctx, img, catalog.FailInternal,
			fmt.Sprintf("processing was started %d times without finishing (the process crashed or was stopped each time)", d.Attempt()-1), true)
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
	defer w.awaitMark() //nolint:errcheck // the save never outlives the job; each path that depends on it checks its error first
	data, out, ok := w.original(ctx, d, img)
	if !ok {
		if err := w.awaitMark(); err != nil {
			return w.notMarked(ctx, d, img, err)
		}
		return out
	}
	started := w.deps.Now()
	pctx, endProcess := startSpan(ctx, w.deps.tracer, "libvips process", trace.WithAttributes(attribute.Int("vitrine.original_bytes", len(data))))
	var early earlyRecord
	res, err := w.deps.Processor.Process(pctx, data, ProcessOptions{Focus: img.FocalPoint, Early: func(res Processed) error {
		return w.recordEarly(ctx, d, img, res, &early)
	}})
	endProcess(&err)
	w.processing = w.deps.Now().Sub(started)
	if early.out != nil { // recording the fast formats did not succeed
		return *early.out
	}
	if markErr := w.awaitMark(); markErr != nil {
		return w.notMarked(ctx, d, img, markErr)
	}
	if early.variants != nil { // ready: the slow formats are what is left
		return w.finishDeferred(ctx, d, img, res, err)
	}
	if err != nil {
		var ce *catalog.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			if w.ctx.Err() != nil { // shutting down: leave it for the next run
				return outcome{result: "retry", detail: "interrupted by shutdown"}
			}
			return w.fail(ctx, img, catalog.FailTimeout, fmt.Sprintf("processing took longer than %s", w.deps.JobTimeout), true)
		case errors.As(err, &ce) && (ce.Kind == catalog.KindUnprocessableImage || ce.Kind == catalog.KindUnsupportedMedia):
			return w.fail(ctx, img, ce.Code, ce.Detail, catalog.RetryableFailure(ce.Code))
		default:
			return w.transient(ctx, d, img, catalog.FailInternal, err)
		}
	}
	return w.finish(ctx, d, img, res)
}

// finish stores the renditions of a whole processing run and records the
// image ready with them.
func (w *worker) finish(ctx context.Context, d catalog.Delivery, img *catalog.Image, res Processed) outcome {
	variants, err := w.store(ctx, d.Job(), res, img.FocalPoint)
	if err != nil {
		return w.transient(ctx, d, img, catalog.FailStorageUnavailable, err)
	}
	return w.recordReady(ctx, d, img, res, variants)
}

// recordReady records the image ready with variants made by res, then
// removes the files of the recipe that made its variants before.
func (w *worker) recordReady(ctx context.Context, d catalog.Delivery, img *catalog.Image, res Processed, variants []catalog.Variant) outcome {
	job := d.Job()
	oldRecipe := img.RecipeVersion
	now := w.deps.Now().UTC().Truncate(time.Microsecond)
	img.Status, img.Error, img.Variants, img.ProcessedAt = catalog.StatusReady, nil, variants, &now
	img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion = res.Placeholder, res.DominantColor, res.Animated, res.RecipeVersion
	if err := w.deps.Images.SaveImage(ctx, img); err != nil {
		if catalog.IsNotFound(err) {
			return w.deleted(ctx, job) // the variants just written go with it
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
		return w.deleted(ctx, d.Job())
	}
	return w.transient(ctx, d, img, catalog.FailInternal, err)
}

// deleted ends a job whose image or product was deleted: what it may have
// written (variants, an imported original) is removed, and nothing is
// recorded. The product's delete removed what existed when it ran; this
// removes what the job wrote after it. A removal that fails leaves orphans
// for the sweeper.
func (w *worker) deleted(ctx context.Context, job catalog.Job) outcome {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := w.deps.Blobs.DeletePrefix(ctx, catalog.ImagePrefix(job.ProductID, job.ImageID)); err != nil {
		w.deps.Log.Warn("remove the files of a deleted image", zap.String("image_id", job.ImageID), zap.Error(err))
	}
	return outcome{result: "skipped", detail: "the image or its product was deleted"}
}

// abandoned ends as deleted a job that wrote files without recording them
// (it is to be retried, or it failed) when its image is gone. Recording
// may fail for a reason other than not-found (the grain did not answer,
// the store timed out) while the image is being deleted: its job's row
// goes with it, so the retry would never come, and the delete, if it ran
// before the files were written, did not remove them; /media would serve
// them until the orphan sweep. Only a clear not-found removes them: an
// image that may exist keeps its outcome.
func (w *worker) abandoned(ctx context.Context, job catalog.Job, out outcome) outcome {
	if !w.wrote || out.result == "ready" || out.result == "skipped" {
		return out
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), goneTimeout)
	defer cancel()
	if _, _, err := w.deps.Images.Image(lctx, job.ProductID, job.ImageID); catalog.IsNotFound(err) {
		return w.deleted(ctx, job)
	}
	return out
}

// recrop makes an image's cover variants again around its new focal point
// (its status stays ready and its old crops serve until the new ones are
// recorded), then removes the old crops. A failure leaves the image as it
// was: the job is retried, and after its last attempt given up (logged).
// An image made by an older recipe is processed whole instead.
func (w *worker) recrop(ctx context.Context, d catalog.Delivery, img *catalog.Image) outcome {
	job := d.Job()
	giveUp := func(code string, err error) outcome {
		if d.Attempt() < w.deps.MaxAttempts && code != catalog.FailInternal {
			return outcome{result: "retry", code: code, detail: err.Error()}
		}
		return outcome{result: "failed", code: code, detail: "new crops not made, the old ones stand: " + err.Error()}
	}
	data, err := w.deps.Blobs.Get(ctx, catalog.OriginalKey(img.ProductID, img.ID))
	switch {
	case catalog.IsNotFound(err):
		return giveUp(catalog.FailInternal, errors.New("the original file is missing from storage"))
	case err != nil:
		return giveUp(catalog.FailStorageUnavailable, err)
	}
	started := w.deps.Now()
	pctx, endProcess := startSpan(ctx, w.deps.tracer, "libvips crop", trace.WithAttributes(attribute.Int("vitrine.original_bytes", len(data))))
	res, err := w.deps.Processor.Process(pctx, data, ProcessOptions{Focus: img.FocalPoint, CoverOnly: true})
	endProcess(&err)
	w.processing = w.deps.Now().Sub(started)
	if err == nil && res.RecipeVersion != img.RecipeVersion {
		res, err = w.deps.Processor.Process(pctx, data, ProcessOptions{Focus: img.FocalPoint})
		if err == nil {
			return w.finish(ctx, d, img, res)
		}
	}
	if err != nil {
		return giveUp(catalog.FailInternal, err)
	}
	crops, err := w.store(ctx, job, res, img.FocalPoint)
	if err != nil {
		return giveUp(catalog.FailStorageUnavailable, err)
	}
	made := make(map[string]catalog.Variant, len(crops))
	for _, v := range crops {
		made[v.Name+"."+v.Format] = v
	}
	var old []string
	variants := slices.Clone(img.Variants)
	for i, v := range variants {
		if c, ok := made[v.Name+"."+v.Format]; ok {
			if key := catalog.CropKey(job.ProductID, job.ImageID, img.RecipeVersion, v.Name, v.Format, v.FocalPoint); !catalog.SameFocus(v.FocalPoint, c.FocalPoint) {
				old = append(old, key)
			}
			variants[i] = c
		}
	}
	img.Variants = variants
	if err := w.deps.Images.SaveImage(ctx, img); err != nil {
		if catalog.IsNotFound(err) {
			return w.deleted(ctx, job) // the crops just written go with it
		}
		return giveUp(catalog.FailStorageUnavailable, err)
	}
	// The crops made on demand around the old focus: their URLs name new
	// files now.
	prefix := catalog.RenderCropPrefix(job.ProductID, job.ImageID, img.RecipeVersion)
	if err := w.deps.Blobs.List(ctx, prefix, func(b catalog.BlobInfo) error {
		if catalog.StaleRenderCrop(b.Key, img.FocalPoint) {
			old = append(old, b.Key)
		}
		return nil
	}); err != nil {
		w.deps.Log.Warn("list the crops made on demand", zap.String("image_id", job.ImageID), zap.Error(err))
	}
	if err := w.deps.Blobs.Delete(ctx, old); err != nil {
		w.deps.Log.Warn("delete old crops", zap.String("image_id", job.ImageID), zap.Strings("keys", old), zap.Error(err))
	}
	return outcome{result: "ready", detail: "new crops"}
}

// variantOf is the record of rendition o of the job's image, made by
// recipeVersion (a cover one cropped around focus), and its file's key.
func (w *worker) variantOf(job catalog.Job, recipeVersion int, o Rendition, focus *catalog.FocalPoint) (catalog.Variant, string) {
	fit, crop := cmp.Or(o.Fit, catalog.FitInside), (*catalog.FocalPoint)(nil)
	if fit == catalog.FitCover {
		crop = focus
	}
	key := catalog.CropKey(job.ProductID, job.ImageID, recipeVersion, o.Name, o.Format, crop)
	return catalog.Variant{Name: o.Name, Format: o.Format, Width: o.Width, Height: o.Height,
		Bytes: int64(len(o.Data)), URL: w.deps.Blobs.URL(key), Fit: fit, FocalPoint: crop}, key
}

// store writes the renditions to the blob store, all at once (each
// write waits for its file to be durable), and returns their variants in
// order. A variant already stored (by an earlier run of this job that did
// not record its outcome) is kept, not written again: keys name a recipe
// version, and a crop's its focal point, which make the same file.
func (w *worker) store(ctx context.Context, job catalog.Job, res Processed, focus *catalog.FocalPoint) (_ []catalog.Variant, err error) {
	ctx, end := startSpan(ctx, w.deps.tracer, "store variants", trace.WithAttributes(attribute.Int("vitrine.variants", len(res.Renditions))))
	defer func() { end(&err) }()
	w.wrote = true // some may be written, even if others fail
	variants := make([]catalog.Variant, len(res.Renditions))
	errs := make([]error, len(res.Renditions))
	var wg sync.WaitGroup
	for i, o := range res.Renditions {
		v, key := w.variantOf(job, res.RecipeVersion, o, focus)
		variants[i] = v
		wg.Go(func() {
			written, err := w.deps.Blobs.Create(ctx, key, o.Data, o.ContentType)
			errs[i] = err
			if err == nil {
				w.deps.Log.Debug("variant stored", zap.String("image_id", job.ImageID), zap.String("key", key), zap.Bool("written", written))
			}
		})
	}
	wg.Wait()
	return variants, errors.Join(errs...)
}

// original returns the image's original bytes: from the blob store, or,
// for an import not fetched yet, from its URL (then probed and kept).
func (w *worker) original(ctx context.Context, d catalog.Delivery, img *catalog.Image) ([]byte, outcome, bool) {
	key := catalog.OriginalKey(img.ProductID, img.ID)
	if img.SourceURL == "" || img.Original.SHA256 != "" {
		gctx, end := startSpan(ctx, w.deps.tracer, "read original")
		data, err := w.deps.Blobs.Get(gctx, key)
		end(&err)
		if err != nil {
			if catalog.IsNotFound(err) {
				return nil, w.fail(ctx, img, catalog.FailInternal, "the original file is missing from storage", false), false
			}
			return nil, w.transient(ctx, d, img, catalog.FailStorageUnavailable, err), false
		}
		return data, outcome{}, true
	}
	if w.deps.Fetcher == nil || w.deps.Prober == nil {
		return nil, w.fail(ctx, img, catalog.FailInternal, "this worker cannot import images from URLs", true), false
	}
	fctx, endFetch := startSpan(ctx, w.deps.tracer, "fetch original", trace.WithSpanKind(trace.SpanKindClient))
	data, err := w.deps.Fetcher.Fetch(fctx, img.SourceURL)
	endFetch(&err)
	if err != nil {
		var ce *catalog.Error
		if errors.As(err, &ce) && ce.Kind == catalog.KindUnavailable {
			return nil, w.transient(ctx, d, img, catalog.FailFetch, err), false
		}
		if errors.As(err, &ce) {
			return nil, w.fail(ctx, img, catalog.FailFetch, ce.Detail, false), false
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
			return nil, w.fail(ctx, img, code, ce.Detail, catalog.RetryableFailure(code)), false
		}
		return nil, w.transient(ctx, d, img, catalog.FailInternal, err), false
	}
	w.wrote = true // a failed write may leave the file
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
	out := w.fail(ctx, img, code, fmt.Sprintf("gave up after %d attempts: %s", d.Attempt(), detail), true)
	if out.result == "failed" {
		out.result = "dead_letter"
	}
	return out
}

// fail records the image as failed with code and detail; retryable says
// whether processing it again may succeed (catalog.ImageError.Retryable).
func (w *worker) fail(ctx context.Context, img *catalog.Image, code, detail string, retryable bool) outcome {
	// After the processing status, never before it.
	if err := w.awaitMark(); catalog.IsNotFound(err) {
		return w.deleted(ctx, catalog.Job{ImageID: img.ID, ProductID: img.ProductID})
	}
	now := w.deps.Now().UTC().Truncate(time.Microsecond)
	img.Status, img.Error, img.ProcessedAt = catalog.StatusFailed, &catalog.ImageError{Code: code, Detail: detail, Retryable: retryable}, &now
	img.Variants = []catalog.Variant{}
	err := w.deps.Images.SaveImage(ctx, img)
	if catalog.IsNotFound(err) {
		return w.deleted(ctx, catalog.Job{ImageID: img.ID, ProductID: img.ProductID})
	}
	if err != nil {
		return outcome{result: "retry", code: code, detail: fmt.Sprintf("%s (and recording the failure failed: %v)", detail, err)}
	}
	return outcome{result: "failed", code: code, detail: detail}
}

// startJobSpan starts the job's span, continuing the upload's trace when
// the job carries one (else a trace of its own); a no-op span when tracing
// is off.
func (w *worker) startJobSpan(ctx context.Context, job catalog.Job, attempt int) (context.Context, trace.Span) {
	if w.deps.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = traceparent.With(ctx, job.TraceParent)
	return w.deps.tracer.Start(ctx, "image job", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("vitrine.image_id", job.ImageID), attribute.String("vitrine.product_id", job.ProductID),
			attribute.Int("vitrine.attempt", attempt)))
}

// endJobSpan records the job's outcome on its span and ends it: an error
// status unless the image is ready or the job had nothing to do.
func endJobSpan(span trace.Span, out outcome) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("vitrine.outcome", out.result))
	if out.code != "" {
		span.SetAttributes(attribute.String("vitrine.failure_code", out.code))
	}
	if out.result != "ready" && out.result != "skipped" {
		span.SetStatus(codes.Error, out.result+": "+out.detail)
	}
	span.End()
}

package actors

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// An image is ready once every variant has its fast formats (WebP, JPEG);
// its slow ones (AVIF) are made after, each variant file recording its own
// status: pending, then ready (or failed). This file is that second step.

// errEarlyNotRecorded ends a processing run whose fast formats could not
// be recorded: the outcome is in earlyRecord.out.
var errEarlyNotRecorded = errors.New("the fast formats were not recorded")

// earlyRecord is what recording a run's fast formats did: the variants
// recorded (the slow ones pending), or the job's outcome when it failed.
type earlyRecord struct {
	variants []catalog.Variant
	out      *outcome
}

// recordEarly is ProcessOptions.Early of a job: it stores the fast
// formats' files and records the image ready with them, its slow formats
// pending. It runs after the processing status's save, as finishing does.
func (w *worker) recordEarly(ctx context.Context, d catalog.Delivery, img *catalog.Image, res Processed, rec *earlyRecord) error {
	stop := func(out outcome) error {
		rec.out = &out
		return errEarlyNotRecorded
	}
	if err := w.awaitMark(); err != nil {
		return stop(w.notMarked(ctx, d, img, err))
	}
	job := d.Job()
	variants, err := w.store(ctx, job, res, img.FocalPoint)
	if err != nil {
		return stop(w.transient(ctx, d, img, catalog.FailStorageUnavailable, err))
	}
	for _, p := range res.Pending {
		v, _ := w.variantOf(job, res.RecipeVersion, p, img.FocalPoint)
		v.Status = catalog.FilePending
		variants = append(variants, v)
	}
	if out := w.recordReady(ctx, d, img, res, variants); out.result != "ready" {
		return stop(out)
	}
	rec.variants = variants
	return nil
}

// finishDeferred ends a job whose image was recorded ready with its slow
// formats pending: procErr is how making them ended. Made, they are
// stored and recorded ready; a shutdown or a failure worth retrying
// leaves them pending for the job's next attempt (complete); a failure
// after the last attempt, or a timeout, records them failed. The image
// stays ready throughout.
func (w *worker) finishDeferred(ctx context.Context, d catalog.Delivery, img *catalog.Image, res Processed, procErr error) outcome {
	if procErr != nil {
		if w.ctx.Err() != nil {
			return outcome{result: "retry", detail: "interrupted by shutdown while making the slow formats"}
		}
		code, timedOut := catalog.FailInternal, errors.Is(procErr, context.DeadlineExceeded) || ctx.Err() != nil
		if timedOut {
			code = catalog.FailTimeout
		}
		if !timedOut && d.Attempt() < w.deps.MaxAttempts {
			return outcome{result: "retry", code: code, detail: procErr.Error()}
		}
		return w.failPending(ctx, d, code, procErr)
	}
	var late Processed
	late.RecipeVersion = res.RecipeVersion
	for _, r := range res.Renditions {
		if pendingIn(img.Variants, r) {
			late.Renditions = append(late.Renditions, r)
		}
	}
	if len(late.Renditions) == 0 {
		return outcome{result: "ready"}
	}
	stored, err := w.store(ctx, d.Job(), late, img.FocalPoint)
	if err != nil {
		if d.Attempt() < w.deps.MaxAttempts {
			return outcome{result: "retry", code: catalog.FailStorageUnavailable, detail: err.Error()}
		}
		return w.failPending(ctx, d, catalog.FailStorageUnavailable, err)
	}
	return w.settlePending(ctx, d, func(v *catalog.Variant) {
		for _, s := range stored {
			if s.URL == v.URL {
				*v = s
			}
		}
	})
}

// pendingIn reports whether rendition r is a pending file of variants.
func pendingIn(variants []catalog.Variant, r Rendition) bool {
	for _, v := range variants {
		if v.Status == catalog.FilePending && v.Name == r.Name && v.Format == r.Format {
			return true
		}
	}
	return false
}

// failPending records the image's pending files failed: the image stays
// ready with its other formats.
func (w *worker) failPending(ctx context.Context, d catalog.Delivery, code string, cause error) outcome {
	w.deps.Log.Warn("slow formats not made", zap.String("image_id", d.Job().ImageID), zap.String("code", code), zap.Error(cause))
	out := w.settlePending(ctx, d, func(v *catalog.Variant) { v.Status = catalog.FileFailed })
	if out.result == "ready" {
		out.code, out.detail = code, "the slow formats failed: "+cause.Error()
	}
	return out
}

// settlePending applies settle to each pending file of the image as
// recorded now (read again: the gallery or a recrop may have changed it
// meanwhile) and records it.
func (w *worker) settlePending(ctx context.Context, d catalog.Delivery, settle func(*catalog.Variant)) outcome {
	job := d.Job()
	img, _, err := w.deps.Images.Image(ctx, job.ProductID, job.ImageID)
	switch {
	case catalog.IsNotFound(err):
		return w.deleted(ctx, job)
	case err != nil:
		return outcome{result: "retry", code: catalog.FailInternal, detail: fmt.Sprintf("read the image to record its slow formats: %v", err)}
	case img.Status != catalog.StatusReady || !img.PendingFiles():
		return outcome{result: "skipped", detail: "no pending formats any more"}
	}
	for i := range img.Variants {
		if img.Variants[i].Status == catalog.FilePending {
			settle(&img.Variants[i])
		}
	}
	if err := w.deps.Images.SaveImage(ctx, img); err != nil {
		if catalog.IsNotFound(err) {
			return w.deleted(ctx, job)
		}
		return outcome{result: "retry", code: catalog.FailInternal, detail: fmt.Sprintf("record the slow formats: %v", err)}
	}
	return outcome{result: "ready"}
}

// complete makes the pending slow formats of a ready image whose job
// stopped before them (a crash, a shutdown, a retry). Its original is
// processed again whole; only the pending files are stored. An image made
// by another recipe or cropped around another point meanwhile is
// processed and recorded whole instead.
func (w *worker) complete(ctx context.Context, d catalog.Delivery, img *catalog.Image) outcome {
	data, err := w.deps.Blobs.Get(ctx, catalog.OriginalKey(img.ProductID, img.ID))
	switch {
	case catalog.IsNotFound(err):
		return w.failPending(ctx, d, catalog.FailInternal, errors.New("the original file is missing from storage"))
	case err != nil:
		return w.finishDeferred(ctx, d, img, Processed{}, err)
	}
	started := w.deps.Now()
	pctx, endProcess := startSpan(ctx, w.deps.tracer, "libvips process", trace.WithAttributes(attribute.Int("vitrine.original_bytes", len(data))))
	res, err := w.deps.Processor.Process(pctx, data, ProcessOptions{Focus: img.FocalPoint})
	endProcess(&err)
	w.processing = w.deps.Now().Sub(started)
	if err == nil && (res.RecipeVersion != img.RecipeVersion || img.CropsStale()) {
		return w.finish(ctx, d, img, res)
	}
	return w.finishDeferred(ctx, d, img, res, err)
}

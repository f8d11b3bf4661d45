package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// CodeOutcomeNotStored is the code of a dead-letter message that surfaces
// a job whose outcome could not be stored: the job keeps its outbox row
// and runs again once its claim runs out.
const CodeOutcomeNotStored = "outcome_not_stored"

// delivery is a claimed job. Each of Ack, Retry and DeadLetter stores the
// job's outcome under the claim, trying again with backoff, and ends the
// delivery whatever happens: a partition never waits on a delivery whose
// outcome could not be stored. Such a delivery is surfaced on the
// dead-letter topic; its job, still in the outbox, is published again when
// its claim runs out.
type delivery struct {
	c     *Consumer
	entry entry
	job   catalog.Job
	claim catalog.JobClaim
}

func (d *delivery) Job() catalog.Job { return d.job }
func (d *delivery) Attempt() int     { return d.claim.Attempt }

// Ack removes the job from the outbox.
func (d *delivery) Ack(ctx context.Context) error {
	defer d.c.end(d.entry)
	return d.store(ctx, "ack", func(ctx context.Context) error {
		return d.c.outbox.FinishJob(ctx, d.job.ImageID, d.claim.Token)
	})
}

// Retry reschedules the job in the outbox, whose relay publishes it again
// when it is due.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	defer d.c.end(d.entry)
	return d.store(ctx, "retry", func(ctx context.Context) error {
		return d.c.outbox.Reschedule(ctx, d.job.ImageID, d.claim.Token, delay)
	})
}

// DeadLetter keeps the job as a dead letter in the store, then publishes
// it to the dead-letter topic.
func (d *delivery) DeadLetter(ctx context.Context, code, detail string) error {
	defer d.c.end(d.entry)
	dl := catalog.DeadLetter{Job: d.job, Code: code, Detail: detail, Attempts: d.claim.Attempt, FailedAt: time.Now().UTC()}
	buried := d.store(ctx, "dead letter", func(ctx context.Context) error {
		return d.c.outbox.BuryJob(ctx, dl, d.claim.Token)
	})
	if buried != nil {
		return buried // surfaced on the topic already
	}
	return d.c.publishDeadLetter(ctx, dl)
}

// store stores an outcome with backoff; when it cannot, it surfaces the
// delivery on the dead-letter topic.
func (d *delivery) store(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	err := retry(ctx, d.c.cfg.OutcomeAttempts, d.c.cfg.OutcomeBackoff, fn)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("%s job %s: %w", what, d.job.ImageID, err)
	dl := catalog.DeadLetter{Job: d.job, Code: CodeOutcomeNotStored, Attempts: d.claim.Attempt, FailedAt: time.Now().UTC(),
		Detail: fmt.Sprintf("%v; the job runs again when its claim runs out", err)}
	d.c.log.Error("image job outcome not stored", zap.String("image_id", d.job.ImageID), zap.String("outcome", what), zap.Error(err))
	// With a context of its own: the caller's may be what ran out.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if perr := d.c.publishDeadLetter(sctx, dl); perr != nil {
		err = errors.Join(err, perr)
	}
	return err
}

// publishDeadLetter writes dl to the dead-letter topic, with backoff.
func (c *Consumer) publishDeadLetter(ctx context.Context, dl catalog.DeadLetter) error {
	v, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter %s: %w", dl.Job.ImageID, err)
	}
	msg := kafkago.Message{Key: []byte(dl.Job.ProductID), Value: v}
	err = retry(ctx, c.cfg.OutcomeAttempts, c.cfg.OutcomeBackoff, func(ctx context.Context) error {
		return c.dlq.WriteMessages(ctx, msg)
	})
	if err != nil {
		c.log.Error("publish dead letter", zap.String("image_id", dl.Job.ImageID), zap.String("code", dl.Code), zap.Error(err))
		return catalog.Unavailable("kafka", fmt.Errorf("publish dead letter %s to %s: %w", dl.Job.ImageID, c.cfg.DeadLetterTopic, err))
	}
	return nil
}

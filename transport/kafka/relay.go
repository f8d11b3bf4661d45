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

// Relay publishes the outbox: jobs the store committed with their images,
// jobs whose delivery's claim ran out, and jobs published Config.Redeliver
// ago that no delivery claimed (their message was lost). It claims the rows it publishes,
// so relays of several nodes publish different jobs, and marks them
// published only after the brokers acknowledged them: a relay that dies in
// between lets its claim run out and the jobs are published again
// (processing is idempotent).
type Relay struct {
	cfg    Config
	outbox catalog.JobOutbox
	writer *kafkago.Writer
	log    *zap.Logger
}

// NewRelay returns a relay from outbox to the job topic.
func NewRelay(cfg Config, outbox catalog.JobOutbox, log *zap.Logger) *Relay {
	cfg.Defaults()
	return &Relay{cfg: cfg, outbox: outbox, log: log, writer: &kafkago.Writer{
		Addr:         kafkago.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafkago.Hash{}, // by product id: one product's jobs stay in order
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: time.Millisecond,
		WriteTimeout: 5 * time.Second,
		MaxAttempts:  1, // the relay itself retries, from the outbox
		Transport:    newTransport(cfg),
	}}
}

// Run publishes due jobs until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	failing := false
	// An outbox that says when a job becomes available wakes the relay at
	// once; RelayInterval is then only the fallback (and how soon the jobs
	// of a dead consumer are seen).
	woken, _ := r.outbox.(interface{ JobsWake() <-chan struct{} })
	for {
		var wake <-chan struct{} // nil: never
		if woken != nil {
			wake = woken.JobsWake() // before looking, so no wake-up is missed
		}
		n, err := r.PublishDue(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing { // one line when publishing starts failing, not one per tick
				r.log.Warn("publish image jobs", zap.Error(err))
			}
			failing = true
		case err == nil && failing:
			r.log.Info("publishing image jobs again")
			failing = false
		}
		if n > 0 && err == nil {
			continue // there may be more
		}
		wait := r.cfg.RelayInterval
		if failing {
			wait = time.Second
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-wake:
			timer.Stop()
		}
	}
}

// PublishDue claims one batch of due jobs, publishes it and returns how
// many it published. Jobs it could not publish are given back.
func (r *Relay) PublishDue(ctx context.Context) (int, error) {
	jobs, token, err := r.outbox.ClaimDue(ctx, 100, r.cfg.RelayLease, r.cfg.Redeliver)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	msgs := make([]kafkago.Message, len(jobs))
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		v, err := json.Marshal(message{ImageID: j.ImageID, ProductID: j.ProductID})
		if err != nil {
			return 0, fmt.Errorf("encode job %s: %w", j.ImageID, err)
		}
		msgs[i] = kafkago.Message{Key: []byte(j.ProductID), Value: v}
		if j.TraceParent != "" {
			// The upload's trace, continued by the worker (W3C Trace
			// Context in a header, as OpenTelemetry's Kafka propagators do).
			msgs[i].Headers = []kafkago.Header{{Key: traceparentHeader, Value: []byte(j.TraceParent)}}
		}
		ids[i] = j.ImageID
	}
	if err := r.writer.WriteMessages(ctx, msgs...); err != nil {
		// Given back to be published at the next try (some may have been
		// written: their duplicates change nothing).
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = catalog.Unavailable("kafka", fmt.Errorf("write %d jobs to %s: %w", len(msgs), r.cfg.Topic, err))
		if uerr := r.outbox.Unclaim(uctx, token, ids); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return 0, err
	}
	if err := r.outbox.MarkPublished(ctx, token, ids); err != nil {
		// Published, not marked: the claim runs out and they are published
		// again; the duplicates change nothing.
		return 0, fmt.Errorf("mark %d jobs published: %w", len(ids), err)
	}
	return len(jobs), nil
}

// Close flushes and closes the writer.
func (r *Relay) Close() error { return r.writer.Close() }

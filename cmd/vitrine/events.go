package main

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// eventStore keeps products' events and the webhook delivery log.
type eventStore interface {
	catalog.EventLog
	catalog.WebhookLog
}

// eventLogOf is the event log a node uses: the database's when it is one
// every node shares (PostgreSQL), else this process's memory (the embedded
// default runs one node).
func eventLogOf(db database, retention time.Duration) eventStore {
	if shared, ok := db.(eventStore); ok {
		return shared
	}
	return memory.NewEvents(memory.EventOptions{Retention: retention})
}

// eventSink is what product grains emit to: the event log, within a
// bounded wait, then the webhooks, which queue without waiting.
type eventSink struct {
	log   catalog.EventLog
	hooks actors.EventSink // nil: no webhooks
	zap   *zap.Logger
}

// appendTimeout bounds how long a grain waits for the event log: a change
// is stored already, and a missed event only makes subscribers reload.
const appendTimeout = 2 * time.Second

func newEventSink(log catalog.EventLog, hooks actors.EventSink, logger *zap.Logger) actors.EventSink {
	return &eventSink{log: log, hooks: hooks, zap: logger}
}

func (s *eventSink) Emit(ctx context.Context, e catalog.Event) {
	c, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	if err := s.log.Append(c, e); err != nil {
		s.zap.Warn("append event", zap.String("product_id", e.ProductID), zap.Int64("seq", e.Seq),
			zap.String("type", string(e.Type)), zap.Error(err))
	}
	if s.hooks != nil {
		s.hooks.Emit(ctx, e)
	}
}

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Config configures a Dispatcher. Zero values take the defaults that New
// documents.
type Config struct {
	// Endpoints are the URLs every event is POSTed to.
	Endpoints []string
	Secret    Secret
	// Events are the event types delivered; empty: all.
	Events []catalog.EventType
	// MaxAttempts bounds the tries of one delivery (6).
	MaxAttempts int
	// RetryBase is the first retry delay (1 s); it doubles at each
	// attempt, with jitter, up to an hour.
	RetryBase time.Duration
	// Timeout bounds one attempt (10 s).
	Timeout time.Duration
	// Queue bounds the deliveries waiting, to be tried or tried again
	// (1000): past it new ones are dropped, and logged as such.
	Queue int
	// Workers is the number of attempts made at once (4).
	Workers int
	// Client sends the requests; nil: one without redirects or proxies.
	Client *http.Client
	// Now is the clock (time.Now).
	Now func() time.Time
	// Observe, when set, is told each attempt's outcome (for metrics).
	Observe func(outcome string, took time.Duration)
}

// Dispatcher delivers events to the endpoints. Deliveries live in this
// process: those waiting when it stops (or dies) are lost, and the event
// log's retention window is where a receiver catches up
// (GET /products/{id}/events).
type Dispatcher struct {
	cfg    Config
	log    catalog.WebhookLog
	logger *zap.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	pending chan *delivery // deliveries due now
	slots   chan struct{}  // one per delivery not finished: the bound
	// drops are deliveries refused by a full queue, to be recorded by
	// their own goroutine: Emit runs on a product actor's turn and must
	// not wait for the database. Drops past its room are only counted.
	drops      chan *delivery
	unrecorded atomic.Int64
	wg         sync.WaitGroup
}

// dropRoom is how many refused deliveries wait to be recorded at most.
const dropRoom = 1024

// delivery is one event for one endpoint.
type delivery struct {
	id       string
	endpoint string
	event    catalog.Event
	payload  []byte
	attempt  int // attempts made
}

// New starts a dispatcher's workers; Close stops them.
func New(cfg Config, log catalog.WebhookLog, logger *zap.Logger) *Dispatcher {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 6
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: cfg.Workers, IdleConnTimeout: time.Minute},
			// A redirect is an answer: the endpoint is what the operator configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	d := &Dispatcher{cfg: cfg, log: log, logger: logger,
		pending: make(chan *delivery, cfg.Queue), slots: make(chan struct{}, cfg.Queue), drops: make(chan *delivery, dropRoom)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for range cfg.Workers {
		d.wg.Add(1)
		go d.work()
	}
	d.wg.Add(1)
	go d.recordDrops()
	return d
}

// recordDrops records refused deliveries in the webhook log, and says how
// many it could not keep up with.
func (d *Dispatcher) recordDrops() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case dl := <-d.drops:
			d.record(d.ctx, dl, catalog.WebhookDropped, 0, "the delivery queue is full", 0)
			if n := d.unrecorded.Swap(0); n > 0 {
				d.logger.Warn("webhook deliveries dropped without a log entry: the log fell behind", zap.Int64("count", n))
			}
		}
	}
}

// Close stops the workers after their current attempts; deliveries still
// waiting are dropped.
func (d *Dispatcher) Close() {
	d.cancel()
	d.wg.Wait()
}

// Emit queues e for every endpoint, without waiting: when the queue is
// full the delivery is dropped, and recorded as such in the webhook log
// by another goroutine (Emit never waits for the database).
func (d *Dispatcher) Emit(_ context.Context, e catalog.Event) {
	if len(d.cfg.Events) > 0 && !slices.Contains(d.cfg.Events, e.Type) {
		return
	}
	payload, err := json.Marshal(map[string]any{"type": e.Type, "timestamp": e.At.UTC().Format(time.RFC3339Nano), "data": e})
	if err != nil {
		d.logger.Error("render webhook payload", zap.Error(err))
		return
	}
	for _, ep := range d.cfg.Endpoints {
		dl := &delivery{id: MessageID(e), endpoint: ep, event: e, payload: payload}
		select {
		case d.slots <- struct{}{}:
			d.pending <- dl // never blocks: it has as much room as there are slots
		default:
			select {
			case d.drops <- dl:
			default:
				d.unrecorded.Add(1)
			}
		}
	}
}

// MessageID is the webhook-id of an event: the same for every attempt, so
// a receiver can tell a retry from a new event.
func MessageID(e catalog.Event) string {
	return "evt_" + e.ProductID + "_" + strconv.FormatInt(e.Seq, 10)
}

func (d *Dispatcher) work() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case dl := <-d.pending:
			d.attempt(dl)
		}
	}
}

// attempt tries dl once, then finishes it or schedules its next try.
func (d *Dispatcher) attempt(dl *delivery) {
	dl.attempt++
	start := d.cfg.Now()
	status, err := d.send(dl, start)
	took := d.cfg.Now().Sub(start)
	if err == nil {
		d.record(d.ctx, dl, catalog.WebhookDelivered, status, "", took)
		<-d.slots
		return
	}
	if dl.attempt >= d.cfg.MaxAttempts || d.ctx.Err() != nil {
		d.record(d.ctx, dl, catalog.WebhookFailed, status, err.Error(), took)
		<-d.slots
		return
	}
	d.record(d.ctx, dl, catalog.WebhookRetrying, status, err.Error(), took)
	time.AfterFunc(d.backoff(dl.attempt), func() {
		select {
		case <-d.ctx.Done():
			<-d.slots
		case d.pending <- dl:
		}
	})
}

// backoff is exponential with jitter: about base, 2·base, 4·base… up to an
// hour; a function of the delivery's attempt number, kept with it (so not
// a cenkalti/backoff BackOff, whose state is its own).
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.cfg.RetryBase << min(attempt-1, 20)
	if b <= 0 || b > time.Hour {
		b = time.Hour
	}
	return b/2 + rand.N(b/2+1) // #nosec G404 -- jitter, not security
}

// send POSTs the signed payload; an answer other than 2xx is an error.
func (d *Dispatcher) send(dl *delivery, at time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.endpoint, bytes.NewReader(dl.payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vitrine-webhooks")
	req.Header.Set(HeaderID, dl.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(HeaderSignature, d.cfg.Secret.Sign(dl.id, at, dl.payload))
	res, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("the endpoint answered %s", res.Status)
	}
	return res.StatusCode, nil
}

func (d *Dispatcher) record(ctx context.Context, dl *delivery, outcome string, status int, detail string, took time.Duration) {
	a := catalog.WebhookAttempt{ID: dl.id, Endpoint: dl.endpoint, EventType: dl.event.Type, ProductID: dl.event.ProductID,
		Seq: dl.event.Seq, Attempt: dl.attempt, Outcome: outcome, HTTPStatus: status, Error: detail,
		At: d.cfg.Now().UTC().Truncate(time.Microsecond), DurationMS: took.Milliseconds()}
	fields := []zap.Field{zap.String("webhook_id", a.ID), zap.String("endpoint", a.Endpoint), zap.Int("attempt", a.Attempt),
		zap.String("outcome", outcome), zap.Int("status", status)}
	if detail != "" {
		fields = append(fields, zap.String("error", detail))
	}
	if d.cfg.Observe != nil {
		d.cfg.Observe(outcome, took)
	}
	if outcome == catalog.WebhookDelivered {
		d.logger.Debug("webhook", fields...)
	} else {
		d.logger.Warn("webhook", fields...)
	}
	// Recorded even when ctx has ended (the dispatcher closing).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.log.RecordAttempt(ctx, a); err != nil {
		d.logger.Warn("record webhook attempt", zap.String("webhook_id", a.ID), zap.Error(err))
	}
}

// Package kafka carries image jobs over Apache Kafka (segmentio/kafka-go):
// a relay publishes the store's outbox to a topic keyed by product id, and
// a consumer-group reader hands the jobs to the image supervisor, committing
// offsets only once a job's outcome is stored, in order per partition.
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Config says where the jobs go.
type Config struct {
	Brokers           []string
	Topic             string // default vitrine.image-jobs
	DeadLetterTopic   string // default Topic + ".dead-letters"
	GroupID           string // default Topic + ".workers"
	Partitions        int    // default 6, used when creating topics
	ReplicationFactor int    // default 1
	// RelayInterval is how often the relay looks for unpublished jobs.
	RelayInterval time.Duration
	// DialTimeout bounds connecting to a broker.
	DialTimeout time.Duration
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Topic == "" {
		c.Topic = "vitrine.image-jobs"
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + ".dead-letters"
	}
	if c.GroupID == "" {
		c.GroupID = c.Topic + ".workers"
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.RelayInterval <= 0 {
		c.RelayInterval = 100 * time.Millisecond
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 3 * time.Second
	}
}

// EnsureTopics creates the job and dead-letter topics when they are missing.
func EnsureTopics(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	if len(cfg.Brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	dialer := &kafkago.Dialer{Timeout: cfg.DialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", cfg.Brokers[0])
	if err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("dial %s: %w", cfg.Brokers[0], err))
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("find controller: %w", err))
	}
	cc, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("dial controller: %w", err))
	}
	defer cc.Close()
	topics := []kafkago.TopicConfig{
		{Topic: cfg.Topic, NumPartitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor},
		{Topic: cfg.DeadLetterTopic, NumPartitions: 1, ReplicationFactor: cfg.ReplicationFactor},
	}
	if err := cc.CreateTopics(topics...); err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return fmt.Errorf("create topics %s, %s: %w", cfg.Topic, cfg.DeadLetterTopic, err)
	}
	// Topics are created asynchronously: wait until every partition has a
	// leader, so the first write does not fail.
	for _, tc := range topics {
		for {
			parts, err := conn.ReadPartitions(tc.Topic)
			ready := err == nil && len(parts) >= tc.NumPartitions
			for _, p := range parts {
				ready = ready && p.Leader.Host != ""
			}
			if ready {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("topic %s not ready: %w", tc.Topic, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Ping checks that a broker answers.
func Ping(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	dialer := &kafkago.Dialer{Timeout: cfg.DialTimeout}
	for _, b := range cfg.Brokers {
		conn, err := dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.Brokers()
			conn.Close()
			if err == nil {
				return nil
			}
		}
	}
	return catalog.Unavailable("kafka", fmt.Errorf("no broker of %s answers", strings.Join(cfg.Brokers, ",")))
}

// newTransport gives each writer its own connections and metadata cache:
// kafka-go's shared default transport keeps topic metadata for a while and
// would not see a topic created after its last refresh.
func newTransport(cfg Config) *kafkago.Transport {
	return &kafkago.Transport{
		Dial:        (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
		MetadataTTL: 5 * time.Second,
	}
}

// message is a job on the wire.
type message struct {
	ImageID   string `json:"image_id"`
	ProductID string `json:"product_id"`
}

// Relay publishes the outbox: jobs the store committed with their images.
// A job is marked published only after the brokers acknowledged it, so a
// crash in between publishes it again (processing is idempotent).
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
	// once; RelayInterval is then only the fallback.
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
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-wake:
		}
	}
}

// PublishDue publishes one batch of due jobs and returns how many.
func (r *Relay) PublishDue(ctx context.Context) (int, error) {
	jobs, err := r.outbox.DueJobs(ctx, 100)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	msgs := make([]kafkago.Message, len(jobs))
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		v, _ := json.Marshal(message{ImageID: j.ImageID, ProductID: j.ProductID})
		msgs[i] = kafkago.Message{Key: []byte(j.ProductID), Value: v}
		ids[i] = j.ImageID
	}
	if err := r.writer.WriteMessages(ctx, msgs...); err != nil {
		return 0, catalog.Unavailable("kafka", fmt.Errorf("write %d jobs to %s: %w", len(msgs), r.cfg.Topic, err))
	}
	if err := r.outbox.MarkPublished(ctx, ids); err != nil {
		return 0, fmt.Errorf("mark %d jobs published: %w", len(ids), err)
	}
	return len(jobs), nil
}

// Close flushes and closes the writer.
func (r *Relay) Close() error { return r.writer.Close() }

// Consumer is a catalog.JobQueue over the job topic, in a consumer group.
type Consumer struct {
	cfg     Config
	reader  *kafkago.Reader
	dlq     *kafkago.Writer
	outbox  catalog.JobOutbox
	log     *zap.Logger
	mu      sync.Mutex
	pending map[int]*partitionLog // fetched, not yet committed, by partition
}

var _ catalog.JobQueue = (*Consumer)(nil)

// NewConsumer joins the consumer group of the job topic.
func NewConsumer(cfg Config, outbox catalog.JobOutbox, log *zap.Logger) *Consumer {
	cfg.Defaults()
	return &Consumer{
		cfg: cfg, outbox: outbox, log: log, pending: map[int]*partitionLog{},
		reader: kafkago.NewReader(kafkago.ReaderConfig{
			Brokers:        cfg.Brokers,
			GroupID:        cfg.GroupID,
			Topic:          cfg.Topic,
			MinBytes:       1,
			MaxBytes:       1 << 20,
			MaxWait:        250 * time.Millisecond,
			CommitInterval: 0, // commit synchronously, when we say so
			StartOffset:    kafkago.FirstOffset,
			// A worker that dies without leaving the group holds its
			// partitions until its session ends: keep that short.
			SessionTimeout:    10 * time.Second,
			RebalanceTimeout:  10 * time.Second,
			HeartbeatInterval: time.Second,
			Dialer:            &kafkago.Dialer{Timeout: cfg.DialTimeout},
			// Prefetch little: a worker takes a job only when free, and a
			// job fetched here is one another node cannot take.
			QueueCapacity: 1,
		}),
		dlq: &kafkago.Writer{
			Addr:         kafkago.TCP(cfg.Brokers...),
			Topic:        cfg.DeadLetterTopic,
			RequiredAcks: kafkago.RequireAll,
			BatchTimeout: time.Millisecond,
			WriteTimeout: 5 * time.Second,
			Transport:    newTransport(cfg),
		},
	}
}

// Close leaves the group.
func (c *Consumer) Close() error {
	return errors.Join(c.reader.Close(), c.dlq.Close())
}

// Receive fetches the next job and counts its attempt in the store before
// handing it out. Messages for jobs that no longer exist (duplicates of
// finished jobs) are committed and skipped.
func (c *Consumer) Receive(ctx context.Context) (catalog.Delivery, error) {
	for {
		msg, err := c.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, catalog.Unavailable("kafka", fmt.Errorf("fetch from %s: %w", c.cfg.Topic, err))
		}
		entry := c.track(msg)
		var m message
		if err := json.Unmarshal(msg.Value, &m); err != nil || m.ImageID == "" {
			c.log.Error("undecodable image job skipped", zap.Int("partition", msg.Partition), zap.Int64("offset", msg.Offset), zap.Error(err))
			c.done(ctx, entry)
			continue
		}
		attempt, err := c.outbox.StartAttempt(ctx, m.ImageID)
		if catalog.IsNotFound(err) {
			c.done(ctx, entry)
			continue
		}
		if err != nil {
			// The store is down: leave the message uncommitted; it is
			// fetched again after a restart or rebalance. Meanwhile hand it
			// out with the attempt unknown-but-counted-as-first.
			c.log.Warn("count image job attempt", zap.String("image_id", m.ImageID), zap.Error(err))
			attempt = 1
		}
		return &delivery{c: c, entry: entry, job: catalog.Job{ImageID: m.ImageID, ProductID: m.ProductID}, attempt: attempt}, nil
	}
}

// partitionLog keeps a partition's fetched messages in offset order.
type partitionLog struct {
	entries []*entry
}

type entry struct {
	msg  kafkago.Message
	done bool
}

func (c *Consumer) track(msg kafkago.Message) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[msg.Partition]
	if p == nil {
		p = &partitionLog{}
		c.pending[msg.Partition] = p
	}
	if n := len(p.entries); n > 0 && p.entries[n-1].msg.Offset >= msg.Offset {
		// The partition was rewound (a rebalance): what we held is stale.
		p.entries = nil
	}
	e := &entry{msg: msg}
	p.entries = append(p.entries, e)
	return e
}

// done marks e finished and commits the partition's longest finished
// prefix, so an offset is never committed past an unfinished job.
func (c *Consumer) done(ctx context.Context, e *entry) error {
	c.mu.Lock()
	e.done = true
	p := c.pending[e.msg.Partition]
	var last *kafkago.Message
	for p != nil && len(p.entries) > 0 && p.entries[0].done {
		last = &p.entries[0].msg
		p.entries = p.entries[1:]
	}
	c.mu.Unlock()
	if last == nil {
		return nil
	}
	if err := c.reader.CommitMessages(ctx, *last); err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("commit %s/%d@%d: %w", last.Topic, last.Partition, last.Offset, err))
	}
	return nil
}

type delivery struct {
	c       *Consumer
	entry   *entry
	job     catalog.Job
	attempt int
}

func (d *delivery) Job() catalog.Job { return d.job }
func (d *delivery) Attempt() int     { return d.attempt }

// Ack removes the job from the outbox, then commits its offset.
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.c.outbox.FinishJob(ctx, d.job.ImageID); err != nil {
		return fmt.Errorf("finish job %s: %w", d.job.ImageID, err)
	}
	return d.c.done(ctx, d.entry)
}

// Retry reschedules the job in the outbox, whose relay publishes it again
// when it is due, then commits this delivery.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	if err := d.c.outbox.Reschedule(ctx, d.job.ImageID, delay); err != nil {
		return fmt.Errorf("reschedule job %s: %w", d.job.ImageID, err)
	}
	return d.c.done(ctx, d.entry)
}

// DeadLetter publishes the job to the dead-letter topic, keeps it as a
// dead letter in the store, then commits.
func (d *delivery) DeadLetter(ctx context.Context, code, detail string) error {
	dl := catalog.DeadLetter{Job: d.job, Code: code, Detail: detail, Attempts: d.attempt, FailedAt: time.Now().UTC()}
	v, _ := json.Marshal(dl)
	if err := d.c.dlq.WriteMessages(ctx, kafkago.Message{Key: []byte(d.job.ProductID), Value: v}); err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("publish dead letter %s: %w", d.job.ImageID, err))
	}
	if err := d.c.outbox.BuryJob(ctx, dl); err != nil {
		return fmt.Errorf("bury job %s: %w", d.job.ImageID, err)
	}
	return d.c.done(ctx, d.entry)
}

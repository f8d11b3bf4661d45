// Package kafka carries image jobs over Apache Kafka (segmentio/kafka-go):
// a relay publishes the store's outbox to a topic keyed by product id, and
// a consumer group hands the jobs to the image supervisor, claiming each
// job in the store before it runs and committing offsets only once a job's
// outcome is stored, in order per partition and never backwards.
//
// Delivery is at least once, with idempotent effects: the outbox row of a
// job lives until its outcome is stored, and a row whose claim runs out
// (a relay or a consumer died holding it), or that no consumer claimed for
// Config.Redeliver after it was published (the brokers lost its message),
// is published again. Duplicates find the row claimed or gone and change
// nothing.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	kafkago "github.com/segmentio/kafka-go"

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
	// MinInSyncReplicas is the topics' min.insync.replicas: with acks=all,
	// a write is acknowledged once that many replicas have it (0: the
	// broker's default).
	MinInSyncReplicas int
	// RelayInterval is how often the relay looks for unpublished jobs.
	RelayInterval time.Duration
	// RelayLease is how long a relay holds the jobs it publishes; a relay
	// that dies lets them go after it (default 15 s).
	RelayLease time.Duration
	// Redeliver is how long a published job may wait for a delivery to
	// claim it before the relay publishes it again: its message may have
	// been lost by the brokers (wiped or replaced, retention expired, an
	// unclean leader election), and the job would wait for ever. Longer
	// than the consumers usually lag, as each job that waits longer is
	// published again, a duplicate that its claim turns away (default
	// 5 min).
	Redeliver time.Duration
	// JobLease is how long a delivered job is claimed for its run: longer
	// than a job may take to run and store its outcome. A consumer that
	// dies lets its jobs go after it, and they are published again
	// (default 5 min).
	JobLease time.Duration
	// OutcomeAttempts bounds how often storing a job's outcome (or a
	// commit) is tried before it is given up and surfaced on the
	// dead-letter topic (default 4); OutcomeBackoff is the first pause
	// between tries, doubled each time (default 100 ms).
	OutcomeAttempts int
	OutcomeBackoff  time.Duration
	// CommitRetry is how often a commit that failed is tried again while
	// nothing new finishes (default 1 s).
	CommitRetry time.Duration
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
	if c.RelayLease <= 0 {
		c.RelayLease = 15 * time.Second
	}
	if c.Redeliver <= 0 {
		c.Redeliver = 5 * time.Minute
	}
	if c.JobLease <= 0 {
		c.JobLease = 5 * time.Minute
	}
	if c.OutcomeAttempts <= 0 {
		c.OutcomeAttempts = 4
	}
	if c.OutcomeBackoff <= 0 {
		c.OutcomeBackoff = 100 * time.Millisecond
	}
	if c.CommitRetry <= 0 {
		c.CommitRetry = time.Second
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
	defer conn.Close() //nolint:errcheck // an admin connection: the topics are made or not by then
	controller, err := conn.Controller()
	if err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("find controller: %w", err))
	}
	cc, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("dial controller: %w", err))
	}
	defer cc.Close() //nolint:errcheck // an admin connection: the topics are made or not by then
	var entries []kafkago.ConfigEntry
	if cfg.MinInSyncReplicas > 0 {
		entries = append(entries, kafkago.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(cfg.MinInSyncReplicas)})
	}
	topics := []kafkago.TopicConfig{
		{Topic: cfg.Topic, NumPartitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor, ConfigEntries: entries},
		{Topic: cfg.DeadLetterTopic, NumPartitions: 1, ReplicationFactor: cfg.ReplicationFactor, ConfigEntries: entries},
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
			_ = conn.Close()
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

// traceparentHeader carries the upload's W3C traceparent.
const traceparentHeader = "traceparent"

// header is the value of m's header key, or "".
func header(m kafkago.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// message is a job on the wire.
type message struct {
	ImageID   string `json:"image_id"`
	ProductID string `json:"product_id"`
}

// retry calls fn until it succeeds, attempts times at most, pausing first
// between tries (doubled each time, cenkalti/backoff) and stopping when ctx
// ends. It returns fn's last error (joined with ctx's when that stopped it).
func retry(ctx context.Context, attempts int, first time.Duration, fn func(ctx context.Context) error) error {
	b := &backoff.ExponentialBackOff{InitialInterval: first, Multiplier: 2, MaxInterval: first << 20}
	b.Reset()
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		last = fn(ctx)
		return struct{}{}, last
	}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(max(attempts, 1))), backoff.WithMaxElapsedTime(0)) // #nosec G115 -- at least 1
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && last != nil:
		return errors.Join(last, ctx.Err())
	case last != nil:
		return last
	}
	return err
}

package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Consumer is a catalog.JobQueue over the job topic, in a consumer group.
//
// It follows the group's generations itself (kafka-go's ConsumerGroup):
// each generation reads its partitions from the offsets the group
// committed, and commits through that generation only, so a commit made
// for a generation that ended is refused by the coordinator instead of
// moving another member's offset back. Within a generation, a partition's
// committed offset is the first offset whose delivery has not ended (or
// the next to read): it only grows (unless the partition's log lost the
// offset and reading starts again from its first message), and it is
// committed under the lock that orders commits. A partition keeps only the offsets of its
// deliveries in flight, so its memory is bounded by the deliveries the
// workers hold, however far behind a slow job the others finish.
type Consumer struct {
	cfg    Config
	outbox catalog.JobOutbox
	log    *zap.Logger
	group  *kafkago.ConsumerGroup
	dlq    *kafkago.Writer

	fetched chan fetched // from the partition readers, one message at a time
	kick    chan struct{}

	mu    sync.Mutex
	parts map[int]*partition // the current generation's

	commitMu sync.Mutex // orders commits

	stop      context.CancelFunc
	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ catalog.JobQueue = (*Consumer)(nil)

// partition is a partition of the current (or an ended) generation.
type partition struct {
	gen       *kafkago.Generation
	id        int
	next      int64          // offset after the last message handed out; -1: none yet
	open      map[int64]bool // offsets handed out whose delivery has not ended
	committed int64          // committed in this generation (at first what it started from); -1: nothing
	ended     bool           // its generation ended: nothing more is committed for it
}

// target is the offset to commit: the first delivery not ended, else the
// next offset to read; -1 when nothing was read.
func (p *partition) target() int64 {
	t := int64(-1)
	for off := range p.open {
		if t < 0 || off < t {
			t = off
		}
	}
	if t < 0 {
		t = p.next
	}
	return t
}

// fetched is a message read from a partition.
type fetched struct {
	msg  kafkago.Message
	part *partition
}

// entry is one delivery's place in its partition.
type entry struct {
	part   *partition
	offset int64
}

// NewConsumer joins the consumer group of the job topic.
func NewConsumer(cfg Config, outbox catalog.JobOutbox, log *zap.Logger) (*Consumer, error) {
	cfg.Defaults()
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:      cfg.GroupID,
		Brokers: cfg.Brokers,
		Topics:  []string{cfg.Topic},
		Dialer:  &kafkago.Dialer{Timeout: cfg.DialTimeout},
		// A worker that dies without leaving the group holds its
		// partitions until its session ends: keep that short.
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: time.Second,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafkago.FirstOffset,
		Timeout:           5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka consumer group %s: %w", cfg.GroupID, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Consumer{
		cfg: cfg, outbox: outbox, log: log, group: group,
		fetched: make(chan fetched),
		kick:    make(chan struct{}, 1),
		parts:   map[int]*partition{},
		stop:    stop,
		done:    make(chan struct{}),
		dlq: &kafkago.Writer{
			Addr:         kafkago.TCP(cfg.Brokers...),
			Topic:        cfg.DeadLetterTopic,
			RequiredAcks: kafkago.RequireAll,
			BatchTimeout: time.Millisecond,
			WriteTimeout: 5 * time.Second,
			MaxAttempts:  1, // retried by the caller, with backoff
			Transport:    newTransport(cfg),
		},
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.follow(ctx) }()
	go func() { defer c.wg.Done(); c.commitLoop(ctx) }()
	return c, nil
}

// Close commits what finished, leaves the group and stops reading.
// Deliveries still in flight are delivered again to the next owner of
// their partitions.
func (c *Consumer) Close() error {
	var err error
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		commitErr := c.commit(ctx)
		close(c.done)
		c.stop()
		groupErr := c.group.Close()
		c.wg.Wait()
		err = errors.Join(commitErr, groupErr, c.dlq.Close())
	})
	return err
}

// follow joins each generation of the group in turn and reads its
// partitions, until ctx ends.
func (c *Consumer) follow(ctx context.Context) {
	failing := false
	for {
		gen, err := c.group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			if !c.pauseAfter(ctx, &failing, "join the image job consumer group", zap.String("group", c.cfg.GroupID), zap.Error(err)) {
				return
			}
			continue
		}
		if failing {
			c.log.Info("joined the image job consumer group again", zap.String("group", c.cfg.GroupID))
			failing = false
		}
		c.startGeneration(gen)
	}
}

// startGeneration ends the partitions of the previous generation and reads
// those of gen. The previous generation has ended: kafka-go hands out the
// next one only once every reader of the last has returned.
func (c *Consumer) startGeneration(gen *kafkago.Generation) {
	c.mu.Lock()
	for _, p := range c.parts {
		p.ended = true
	}
	c.parts = map[int]*partition{}
	var started []*partition
	for _, a := range gen.Assignments[c.cfg.Topic] {
		p := &partition{gen: gen, id: a.ID, next: -1, committed: -1, open: map[int64]bool{}}
		if a.Offset >= 0 {
			p.next, p.committed = a.Offset, a.Offset
		}
		c.parts[a.ID] = p
		started = append(started, p)
	}
	c.mu.Unlock()
	for _, p := range started {
		start := p.committed
		gen.Start(func(ctx context.Context) { c.read(ctx, p, start) })
	}
}

// read hands the messages of one partition to Receive, from offset (-1:
// the first), until its generation ends.
func (c *Consumer) read(ctx context.Context, p *partition, offset int64) {
	for c.readFrom(ctx, p, offset) {
		// The partition's log no longer holds the offset: its messages
		// expired, or it lost them (a broker's disk wiped or replaced, an
		// unclean leader election) and it started again from 0. Reading
		// goes on from its first message: what it lost, the relay publishes
		// again (Config.Redeliver), after the offset this consumer had; a
		// reader left there would skip those until the log grew past it.
		c.log.Warn("image job partition no longer holds its offset: reading from its first",
			zap.Int("partition", p.id), zap.Int64("offset", offset))
		c.rewind(p)
		offset = kafkago.FirstOffset
	}
}

// readFrom reads the partition from offset until its generation ends
// (false) or the offset is out of the log's range (true).
func (c *Consumer) readFrom(ctx context.Context, p *partition, offset int64) (outOfRange bool) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     c.cfg.Topic,
		Partition: p.id,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   250 * time.Millisecond,
		// Prefetch little: a worker takes a job only when free.
		QueueCapacity:   1,
		ReadLagInterval: -1,
		Dialer:          &kafkago.Dialer{Timeout: c.cfg.DialTimeout},
		// An offset past the log's end is an error, not a wait for the
		// log to grow to it.
		OffsetOutOfRangeError: true,
	})
	defer r.Close() //nolint:errcheck // a reader of one partition without a group: closing commits nothing
	if offset < 0 {
		offset = kafkago.FirstOffset
	}
	if err := r.SetOffset(offset); err != nil {
		c.log.Error("set the offset of an image job partition", zap.Int("partition", p.id), zap.Error(err))
	}
	failing := false
	for {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if errors.Is(err, kafkago.OffsetOutOfRange) {
				return true
			}
			if !c.pauseAfter(ctx, &failing, "read image jobs", zap.Int("partition", p.id), zap.Error(err)) {
				return false
			}
			continue
		}
		failing = false
		select {
		case c.fetched <- fetched{msg: msg, part: p}:
		case <-ctx.Done():
			return false // not handed out: the next owner reads it again
		}
	}
}

// rewind lets a partition whose log started again commit offsets below
// what it committed before.
func (c *Consumer) rewind(p *partition) {
	c.commitMu.Lock() // a commit under way would leave the old offset
	defer c.commitMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	p.next, p.committed = -1, -1
}

// pauseAfter is how the consumer's loops meet a failure: a warning when
// the loop starts failing (one per outage, not one per try), then a
// second's pause before the next try. *failing becomes true; false is
// returned when ctx ended during the pause.
func (c *Consumer) pauseAfter(ctx context.Context, failing *bool, msg string, fields ...zap.Field) bool {
	if !*failing {
		c.log.Warn(msg, fields...)
	}
	*failing = true
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// Receive takes the next job, claims it in the store (counting its
// attempt) and hands it out. Messages of jobs that are gone (duplicates of
// finished jobs) or held by another delivery are ended at once. While the
// store cannot be reached, the claim is tried again, with backoff, until
// it succeeds or ctx ends: nothing runs unclaimed.
func (c *Consumer) Receive(ctx context.Context) (catalog.Delivery, error) {
	for {
		var f fetched
		select {
		case f = <-c.fetched:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, catalog.Unavailable("kafka", errors.New("the consumer is closed"))
		}
		e, ok := c.handOut(f)
		if !ok {
			continue // its generation ended: the next owner reads it again
		}
		var m message
		if err := json.Unmarshal(f.msg.Value, &m); err != nil || m.ImageID == "" {
			c.log.Error("undecodable image job skipped", zap.Int("partition", f.msg.Partition), zap.Int64("offset", f.msg.Offset), zap.Error(err))
			c.end(e)
			continue
		}
		claim, err := c.claim(ctx, m.ImageID)
		switch {
		case catalog.IsNotFound(err) || errors.Is(err, catalog.ErrJobBusy):
			// Finished, deleted, or running elsewhere: a duplicate.
			c.end(e)
			continue
		case err != nil:
			return nil, err // ctx ended: the message is read again later
		}
		job := catalog.Job{ImageID: m.ImageID, ProductID: m.ProductID, TraceParent: header(f.msg, traceparentHeader)}
		return &delivery{c: c, entry: e, job: job, claim: claim}, nil
	}
}

// claim claims a job, trying again with backoff while the store fails,
// until ctx ends.
func (c *Consumer) claim(ctx context.Context, imageID string) (catalog.JobClaim, error) {
	wait := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}
	logged := false
	return backoff.Retry(ctx, func() (catalog.JobClaim, error) {
		claim, err := c.outbox.ClaimJob(ctx, imageID, c.cfg.JobLease)
		switch {
		case err == nil:
			return claim, nil
		case catalog.IsNotFound(err) || errors.Is(err, catalog.ErrJobBusy):
			return claim, backoff.Permanent(err) // an answer, not a failure
		case !logged && ctx.Err() == nil:
			c.log.Warn("claim image job; trying again", zap.String("image_id", imageID), zap.Error(err))
			logged = true
		}
		return claim, err
	}, backoff.WithBackOff(wait), backoff.WithMaxElapsedTime(0))
}

// handOut records a message as handed out; false if its generation ended.
func (c *Consumer) handOut(f fetched) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := f.part
	if p.ended {
		return entry{}, false
	}
	p.open[f.msg.Offset] = true
	p.next = max(p.next, f.msg.Offset+1)
	return entry{part: p, offset: f.msg.Offset}, true
}

// end records that a delivery ended, whatever its outcome, and asks for a
// commit: the partition's committed offset may move on.
func (c *Consumer) end(e entry) {
	c.mu.Lock()
	delete(e.part.open, e.offset)
	ended := e.part.ended
	c.mu.Unlock()
	if ended {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default: // a commit is asked for already
	}
}

// commitLoop commits whenever a delivery ended, and retries a commit that
// failed every CommitRetry, until ctx ends.
func (c *Consumer) commitLoop(ctx context.Context) {
	ticker := time.NewTicker(c.cfg.CommitRetry)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-ticker.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.commit(cctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			c.log.Warn("commit image job offsets; trying again", zap.Error(err))
			failing = true
		case err == nil && failing:
			c.log.Info("committing image job offsets again")
			failing = false
		}
	}
}

// commit commits, through the current generation, the target of each of
// its partitions that moved past what was committed. Commits are made
// under commitMu, and a partition's target never decreases, so committed
// offsets only grow — but for a partition whose log started again (rewind).
func (c *Consumer) commit(ctx context.Context) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	var gen *kafkago.Generation
	offsets := map[int]int64{}
	c.mu.Lock()
	for id, p := range c.parts {
		if t := p.target(); !p.ended && t > p.committed {
			gen, offsets[id] = p.gen, t
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	err := retry(ctx, c.cfg.OutcomeAttempts, c.cfg.OutcomeBackoff, func(context.Context) error {
		return gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: offsets})
	})
	if err != nil {
		return catalog.Unavailable("kafka", fmt.Errorf("commit offsets %v of %s: %w", offsets, c.cfg.Topic, err))
	}
	c.mu.Lock()
	for id, off := range offsets {
		if p := c.parts[id]; p != nil && p.gen == gen {
			p.committed = max(p.committed, off)
		}
	}
	c.mu.Unlock()
	return nil
}

// inFlight counts, per partition of the current generation, the deliveries
// whose end is awaited: what the consumer keeps in memory.
func (c *Consumer) inFlight() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[int]int{}
	for id, p := range c.parts {
		n[id] = len(p.open)
	}
	return n
}

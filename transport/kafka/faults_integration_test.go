//go:build integration

package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vitrine-dev/vitrine/catalog"
)

// faultyOutbox fails storing outcomes (FinishJob, Reschedule, BuryJob)
// while failing is set, counting the failures.
type faultyOutbox struct {
	catalog.JobOutbox
	failing  atomic.Bool
	injected atomic.Int32
}

var errInjected = errors.New("injected outcome failure")

func (o *faultyOutbox) fail() error {
	if o.failing.Load() {
		o.injected.Add(1)
		return errInjected
	}
	return nil
}

func (o *faultyOutbox) FinishJob(ctx context.Context, id string, token int64) error {
	if err := o.fail(); err != nil {
		return err
	}
	return o.JobOutbox.FinishJob(ctx, id, token)
}

func (o *faultyOutbox) Reschedule(ctx context.Context, id string, token int64, delay time.Duration) error {
	if err := o.fail(); err != nil {
		return err
	}
	return o.JobOutbox.Reschedule(ctx, id, token, delay)
}

func (o *faultyOutbox) BuryJob(ctx context.Context, dl catalog.DeadLetter, token int64) error {
	if err := o.fail(); err != nil {
		return err
	}
	return o.JobOutbox.BuryJob(ctx, dl, token)
}

// committed reads the group's committed offsets of the topic's partitions
// back from the broker (-1: none yet).
func committed(t *testing.T, cfg Config, partitions int) map[int]int64 {
	t.Helper()
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	client := &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Timeout: 5 * time.Second}
	res, err := client.OffsetFetch(context.Background(), &kafkago.OffsetFetchRequest{GroupID: cfg.GroupID, Topics: map[string][]int{cfg.Topic: ids}})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Errorf("fetch committed offsets: %v", err)
		return nil
	}
	out := map[int]int64{}
	for _, p := range res.Topics[cfg.Topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// lastOffsets reads the end of each partition of topic.
func lastOffsets(t *testing.T, cfg Config, topic string, partitions int) map[int]int64 {
	t.Helper()
	out := map[int]int64{}
	for p := range partitions {
		conn, err := kafkago.DialLeader(context.Background(), "tcp", cfg.Brokers[0], topic, p)
		if err != nil {
			t.Fatalf("dial partition %d: %v", p, err)
		}
		out[p], err = conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatalf("last offset of partition %d: %v", p, err)
		}
	}
	return out
}

// TestOutcomeFailuresKeepCommitting: while storing outcomes fails (every
// Ack, Retry and DeadLetter), deliveries still end, partitions keep
// committing, the consumer keeps no more than the deliveries in flight,
// and each outcome not stored is surfaced on the dead-letter topic. The
// jobs run again once their claims run out, and finish once the store
// works. The committed offsets read back from the broker never go back.
func TestOutcomeFailuresKeepCommitting(t *testing.T) {
	const partitions, jobs, workers = 2, 40, 3
	r := newRig(t, partitions)
	faulty := &faultyOutbox{JobOutbox: r.db}
	faulty.failing.Store(true)
	cfg := r.cfg
	cfg.OutcomeAttempts, cfg.OutcomeBackoff = 2, time.Millisecond
	// The rig's consumer makes way for one that stores through the faulty
	// outbox.
	r.mu.Lock()
	r.consumer.Close()
	c := newConsumer(t, cfg, faulty, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel+1)))
	r.consumer = c
	r.mu.Unlock()

	// Sample the committed offsets and the entries kept while it runs.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var samples [][2]map[int]int64 // committed, in flight
	var maxInFlight atomic.Int32
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			inflight := map[int]int64{}
			for p, n := range c.inFlight() {
				inflight[p] = int64(n)
				if int32(n) > maxInFlight.Load() {
					maxInFlight.Store(int32(n))
				}
			}
			samples = append(samples, [2]map[int]int64{committed(t, cfg, partitions), inflight})
		}
	}()

	// Jobs of several products, keyed to both partitions.
	for i := range jobs {
		if i%4 == 0 {
			r.newProduct(t)
		}
		r.add(t)
	}
	var delivered, outcomes atomic.Int32
	finished := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-finished:
					return
				case <-ctx.Done():
					return
				default:
				}
				rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				d, err := c.Receive(rctx)
				rcancel()
				if err != nil {
					continue
				}
				delivered.Add(1)
				octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
				switch i % 3 {
				case 0:
					err = d.Ack(octx)
				case 1:
					err = d.Retry(octx, 0)
				default:
					err = d.DeadLetter(octx, catalog.FailInternal, "given up")
				}
				ocancel()
				if err == nil && faulty.failing.Load() {
					t.Errorf("an outcome was stored while storing fails")
				}
				if outcomes.Add(1) == jobs {
					faulty.failing.Store(false) // every job failed once: let them finish
				}
			}
		})
	}
	// Every job ends, and every delivery too, so the partitions commit up
	// to their ends.
	var end map[int]int64
	for {
		pending, err := r.db.PendingJobs(context.Background())
		if err != nil {
			t.Fatal(err)
		}

		if pending == 0 {
			end = lastOffsets(t, cfg, cfg.Topic, partitions)
			got := committed(t, cfg, partitions)
			done := true
			for p, want := range end {
				done = done && max(got[p], 0) == want // -1: nothing committed, nothing to
			}
			if done {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("after 2 minutes: %d jobs pending, %d deliveries; committed %v, ends %v",
				pending, delivered.Load(), committed(t, cfg, partitions), lastOffsets(t, cfg, cfg.Topic, partitions))
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(finished)
	wg.Wait()
	close(stopSampling)
	<-sampled

	last := map[int]int64{}
	for i, s := range samples {
		for p, off := range s[0] {
			if prev, seen := last[p]; seen && off < prev {
				t.Errorf("sample %d: partition %d committed %d after %d: offsets went back", i, p, off, prev)
			}
			last[p] = off
		}
	}
	if n := maxInFlight.Load(); n > workers {
		t.Errorf("a partition kept %d entries, more than the %d deliveries in flight", n, workers)
	}
	if faulty.injected.Load() < jobs {
		t.Errorf("%d failures injected, want at least one per job (%d)", faulty.injected.Load(), jobs)
	}
	surfaced := countDeadLetters(t, cfg, CodeOutcomeNotStored)
	if surfaced < jobs {
		t.Errorf("%d outcomes surfaced on the dead-letter topic, want at least %d", surfaced, jobs)
	}
	t.Logf("%d jobs, %d deliveries, %d failures injected, %d surfaced; %d offset samples, at most %d entries in flight per partition; ends %v",
		jobs, delivered.Load(), faulty.injected.Load(), surfaced, len(samples), maxInFlight.Load(), end)
}

// countDeadLetters counts the messages of the dead-letter topic with code.
func countDeadLetters(t *testing.T, cfg Config, code string) int {
	t.Helper()
	cfg.Defaults()
	end := lastOffsets(t, cfg, cfg.DeadLetterTopic, 1)[0]
	rd := kafkago.NewReader(kafkago.ReaderConfig{Brokers: cfg.Brokers, Topic: cfg.DeadLetterTopic, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for off := int64(0); off < end; off++ {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read the dead-letter topic at %d of %d: %v", off, end, err)
		}
		var dl catalog.DeadLetter
		if err := json.Unmarshal(m.Value, &dl); err != nil {
			t.Fatalf("dead letter %s: %v", m.Value, err)
		}
		if dl.Code == code {
			n++
		}
	}
	return n
}

// TestRelaysPublishOnce: three relays over one outbox publish every job
// once: the topic holds exactly one message per job.
func TestRelaysPublishOnce(t *testing.T) {
	const jobs = 200
	r := newRig(t, 3) // one relay runs already
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	for range 2 {
		relay := NewRelay(r.cfg, r.db, log)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { relay.Run(ctx); close(done) }()
		t.Cleanup(func() { stop(); <-done; relay.Close() })
	}
	for range jobs {
		r.add(t)
	}
	count := func() int {
		n := 0
		for _, off := range lastOffsets(t, r.cfg, r.cfg.Topic, 3) {
			n += int(off)
		}
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for count() < jobs {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs published after a minute", count(), jobs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would show by now
	if n := count(); n != jobs {
		t.Fatalf("three relays published %d messages for %d jobs", n, jobs)
	}
}

//go:build integration

package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/queuetest"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
)

func brokers(t *testing.T) []string {
	t.Helper()
	b := os.Getenv("VITRINE_KAFKA_BROKERS")
	if b == "" {
		t.Fatal(`VITRINE_KAFKA_BROKERS is not set: run eval "$(scripts/services up kafka)" first (make test does)`)
	}
	return strings.Split(b, ",")
}

// rig is a Kafka queue over a fresh topic, fed by a relay from a SQLite
// outbox.
type rig struct {
	t        *testing.T
	cfg      Config
	db       *sqlite.DB
	mu       sync.Mutex
	consumer *Consumer
	product  *catalog.Product
}

func newRig(t *testing.T, partitions int) *rig {
	t.Helper()
	ctx := context.Background()
	suffix := fmt.Sprintf("%x", rand.Uint64())
	// A short job lease: a crashed consumer's jobs are published again
	// soon after it.
	cfg := Config{Brokers: brokers(t), Topic: "test-jobs-" + suffix, GroupID: "test-group-" + suffix,
		Partitions: partitions, RelayInterval: 20 * time.Millisecond, JobLease: 3 * time.Second}
	if err := EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, cfg: cfg, db: db}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	relay := NewRelay(cfg, db, log)
	relayCtx, stopRelay := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { relay.Run(relayCtx); close(done) }()
	r.consumer = newConsumer(t, cfg, db, log)
	t.Cleanup(func() {
		stopRelay()
		<-done
		relay.Close()
		r.mu.Lock()
		r.consumer.Close()
		r.mu.Unlock()
		db.Close()
	})
	r.newProduct(t)
	return r
}

// newProduct makes the product that add adds images to.
func (r *rig) newProduct(t *testing.T) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &catalog.Product{ID: uuid.Must(uuid.NewV7()).String(), UserID: 1, Name: "p", Currency: "USD",
		CreatedAt: now, UpdatedAt: now, Version: 1, Images: []catalog.Image{}}
	if err := r.db.CreateProduct(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.product = p
	r.mu.Unlock()
}

func (r *rig) queue() catalog.JobQueue {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.consumer
}

// add commits an image and its job in the outbox, as an upload does.
func (r *rig) add(t *testing.T) catalog.Job {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	img := &catalog.Image{ID: uuid.Must(uuid.NewV7()).String(), ProductID: r.product.ID, Status: catalog.StatusPending,
		Variants: []catalog.Variant{}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	next := *r.product
	next.Version++
	if err := r.db.AddImage(context.Background(), &next, img); err != nil {
		t.Fatal(err)
	}
	*r.product = next
	return catalog.Job{ImageID: img.ID, ProductID: img.ProductID}
}

// crash drops the consumer without committing and joins again.
func (r *rig) crash(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consumer.Close()
	r.consumer = newConsumer(t, r.cfg, r.db, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

func newConsumer(t *testing.T, cfg Config, outbox catalog.JobOutbox, log *zap.Logger) *Consumer {
	t.Helper()
	c, err := NewConsumer(cfg, outbox, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestQueueConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		r := newRig(t, 3)
		return queuetest.Harness{
			Queue:       r.queue,
			Add:         r.add,
			Crash:       r.crash,
			DeadLetters: func() catalog.DeadLetters { return r.db },
		}
	})
}

func receive(t *testing.T, q catalog.JobQueue) catalog.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := q.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return d
}

// TestOrderPerProduct: one product's jobs arrive in the order they were
// committed, whatever the partition count.
func TestOrderPerProduct(t *testing.T) {
	r := newRig(t, 6)
	var want []string
	for i := 0; i < 12; i++ {
		want = append(want, r.add(t).ImageID)
	}
	for i, id := range want {
		d := receive(t, r.queue())
		if d.Job().ImageID != id {
			t.Fatalf("delivery %d is %s, want %s", i, d.Job().ImageID, id)
		}
		if err := d.Ack(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommitsInOrderWhenJobsFinishOutOfOrder: offsets are committed only
// up to the first unfinished job, so a crash redelivers it — and only it,
// since the later ones are finished in the outbox. The redelivered message
// finds the job still claimed by the dead consumer; the job runs again
// once that claim runs out.
func TestCommitsInOrderWhenJobsFinishOutOfOrder(t *testing.T) {
	r := newRig(t, 1)
	jobs := []catalog.Job{r.add(t), r.add(t), r.add(t)}
	var ds []catalog.Delivery
	for range jobs {
		ds = append(ds, receive(t, r.queue()))
	}
	ctx := context.Background()
	if err := ds[2].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ds[1].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	r.crash(t) // ds[0] never finished
	d := receive(t, r.queue())
	if d.Job().ImageID != jobs[0].ImageID || d.Attempt() != 2 {
		t.Fatalf("after the crash: %s attempt %d, want %s attempt 2", d.Job().ImageID, d.Attempt(), jobs[0].ImageID)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if extra, err := r.queue().Receive(ctx2); err == nil {
		t.Fatalf("finished job %s delivered again", extra.Job().ImageID)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive with nothing left: error = %v, want context.DeadlineExceeded", err)
	}
}

// TestDeadLetterTopic: a dead letter is also published to the dead-letter topic.
func TestDeadLetterTopic(t *testing.T) {
	r := newRig(t, 1)
	job := r.add(t)
	d := receive(t, r.queue())
	if err := d.DeadLetter(context.Background(), catalog.FailStorageUnavailable, "gave up"); err != nil {
		t.Fatal(err)
	}
	msg := readOne(t, r.cfg)
	if !strings.Contains(string(msg), job.ImageID) || !strings.Contains(string(msg), "gave up") {
		t.Fatalf("dead-letter message %s", msg)
	}
}

// readOne reads the first message of the dead-letter topic.
func readOne(t *testing.T, cfg Config) []byte {
	t.Helper()
	cfg.Defaults()
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: cfg.Brokers, Topic: cfg.DeadLetterTopic, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read dead-letter topic: %v", err)
	}
	return m.Value
}

// TestTopicsCarryTheirReplicationSettings: the topics vitrine creates get
// the configured min.insync.replicas (here 2 over the single test broker's
// replication factor of 1, a value no broker default gives).
func TestTopicsCarryTheirReplicationSettings(t *testing.T) {
	suffix := fmt.Sprintf("%x", rand.Uint64())
	cfg := Config{Brokers: brokers(t), Topic: "test-isr-" + suffix, Partitions: 1, ReplicationFactor: 1, MinInSyncReplicas: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Defaults()
	client := &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...)}
	for _, topic := range []string{cfg.Topic, cfg.DeadLetterTopic} {
		res, err := client.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{
			{ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"}}}})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, r := range res.Resources {
			if r.Error != nil {
				t.Fatalf("%s: %v", topic, r.Error)
			}
			for _, e := range r.ConfigEntries {
				if e.ConfigName == "min.insync.replicas" {
					got = e.ConfigValue
				}
			}
		}
		if got != "2" {
			t.Errorf("%s: min.insync.replicas %q, want 2", topic, got)
		}
	}
}

//go:build faults

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TestFaultsKafka runs uploads and product writes through faults that lose
// Kafka's data, on servers of its own with three Kafka brokers (each a
// KRaft controller too), two API nodes and two worker processes:
//   - LeaderKilled: topics replicated three times (min ISR 2, acks=all);
//     the leader of a partition is SIGKILLed mid-run and started again
//     later; leaders move and no message is lost; product reads and
//     writes meanwhile are checked by Porcupine (startRegister);
//   - WipedBroker: topics with one replica; the workers are stopped, jobs
//     are published, and the broker holding some of them is SIGKILLed and
//     its data directory deleted: its messages are gone, and the outbox
//     publishes those jobs again after VITRINE_KAFKA_REDELIVER;
//   - ShortRetention: the workers are stopped and the topic's retention
//     set to two seconds: the jobs' messages expire before any consumer
//     reads them, and the outbox publishes them again.
//
// Each ends with every accepted upload ready (none lost or stranded), no
// variant written twice and every acknowledged product write there. The
// fault times come from a printed seed (VITRINE_FAULTS_SEED replays it).
func TestFaultsKafka(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("VITRINE_FAULTS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 21))
	t.Logf("faults seed %d (VITRINE_FAULTS_SEED=%d replays it)", seed, seed)
	began := time.Now()
	svc := startOwnServicesWith(t, []string{"VITRINE_SERVICES_KAFKA_BROKERS=3",
		"VITRINE_SERVICES_KAFKA_PORTS=" + lowFreePorts(t, 3), "VITRINE_SERVICES_KAFKA_CONTROLLER_PORTS=" + lowFreePorts(t, 3)},
		"postgres", "redis", "kafka", "s3")
	if svc.vars["VITRINE_KAFKA_REPLICATION"] != "3" {
		t.Fatalf("scripts/services exported replication %q for three brokers, want 3", svc.vars["VITRINE_KAFKA_REPLICATION"])
	}
	t.Logf("own servers up in %v (Kafka brokers %s)", time.Since(began).Round(time.Second), svc.vars["VITRINE_KAFKA_BROKERS"])
	bin := buildBinary(t)

	t.Run("LeaderKilled", func(t *testing.T) {
		fr := startFaultRun(t, svc, bin, "leader")
		killAt := 5*time.Second + time.Duration(rng.Int64N(int64(10*time.Second)))
		restartAfter := 5*time.Second + time.Duration(rng.Int64N(int64(5*time.Second)))
		stop := fr.write()
		// Product reads and writes on both API nodes, checked by Porcupine:
		// reads at most a second stale across the nodes (Redis is up).
		reg := startRegister(t, []string{fr.w.apis[0].base, fr.w.apis[1].base}, 10, 6, seed)
		reg.Staleness = time.Second
		loaded := fr.uploadsPaced(150, 30*time.Second)
		time.Sleep(killAt)
		partition := rng.IntN(fr.partitions())
		killed := fr.leaderOf(partition)
		fault := time.Now()
		svc.run("kafka-fault", strconv.Itoa(killed), "kill")
		probe := fr.probe(fault)
		moved := fr.waitLeaderMoved(partition, killed)
		time.Sleep(restartAfter)
		svc.run("up", "kafka")
		<-loaded
		close(stop)
		t.Logf("%v", reg.Stop())
		fr.report(fault, 3*time.Minute, func() string {
			return fmt.Sprintf("SIGKILL of broker %d, leader of partition %d, at %v; leader moved to broker %d after %v; broker restarted %v later; a new upload ready %v after the kill",
				killed, partition, killAt.Round(time.Millisecond), moved.to, moved.after.Round(time.Millisecond), restartAfter.Round(time.Millisecond), (<-probe).Round(time.Millisecond))
		})
	})

	t.Run("WipedBroker", func(t *testing.T) {
		fr := startFaultRun(t, svc, bin, "wiped", "VITRINE_KAFKA_REPLICATION", "1", "VITRINE_KAFKA_MIN_ISR", "0")
		// The workers consume a first batch, so that the partitions have
		// committed offsets beyond what the wiped broker's logs hold after.
		<-fr.uploadsPaced(60, 3*time.Second)
		fr.w.drain(2 * time.Minute)
		fr.stopWorkers()
		<-fr.uploadsPaced(30, 2*time.Second)
		before := fr.waitPublished(90)
		wiped := fr.leaderOf(rng.IntN(fr.partitions()))
		var held []int // its partitions: their only replica is on it
		for p := range before {
			if fr.leaderOf(p) == wiped {
				held = append(held, p)
			}
		}
		sort.Ints(held)
		lost, unread := int64(0), int64(0)
		for _, p := range held {
			lost += before[p]
			unread += before[p] - fr.committed(p)
		}
		fault := time.Now()
		svc.run("kafka-fault", strconv.Itoa(wiped), "wipe")
		svc.run("up", "kafka")
		if after := fr.offsets(kafkago.LastOffset); after[held[0]] >= before[held[0]] {
			t.Fatalf("partition %d of the wiped broker ends at offset %d, %d before: its messages were not lost, the run proves nothing", held[0], after[held[0]], before[held[0]])
		}
		fr.startWorkers()
		probe := fr.probe(fault)
		fr.report(fault, lostJobsBound, func() string {
			return fmt.Sprintf("broker %d (partitions %v) SIGKILLed with the workers stopped, its data deleted, started again: %d job messages lost, %d of them not yet consumed; a new upload ready %v after the wipe",
				wiped, held, lost, unread, (<-probe).Round(time.Millisecond))
		})
	})

	t.Run("ShortRetention", func(t *testing.T) {
		fr := startFaultRun(t, svc, bin, "retention")
		<-fr.uploadsPaced(20, 2*time.Second)
		fr.w.drain(2 * time.Minute)
		fr.stopWorkers()
		fr.topicConfig("retention.ms", "2000")
		<-fr.uploadsPaced(60, 3*time.Second)
		before := fr.waitPublished(80)
		expired := fr.waitExpired(before, 90*time.Second)
		fr.topicConfig("retention.ms", "")
		fault := time.Now()
		fr.startWorkers()
		probe := fr.probe(fault)
		fr.report(fault, lostJobsBound, func() string {
			return fmt.Sprintf("retention 2 s with the workers stopped: %d job messages expired unread within %v; workers started; a new upload ready %v after",
				expired.n, expired.after.Round(time.Second), (<-probe).Round(time.Millisecond))
		})
	})
}

// lostJobsBound is how soon after the brokers lost their messages every
// job runs: once VITRINE_KAFKA_REDELIVER (20 s here) has passed, the relay
// publishes them again (it looks every second) and the workers run them.
const lostJobsBound = 20*time.Second + 25*time.Second

// lowFreePorts is n low free ports, comma-separated.
func lowFreePorts(t testing.TB, n int) string {
	var ports []string
	for range n {
		ports = append(ports, strconv.Itoa(lowFreePort(t)))
	}
	return strings.Join(ports, ",")
}

// faultRun is one fault scenario's vitrine: two API nodes and two worker
// processes on the test's servers, with a job topic of its own, and the
// workload driving them.
type faultRun struct {
	t       *testing.T
	svc     *ownServices
	topic   string
	brokers []string
	w       *workload
	workers []*proc
	next    int // the next upload's number
}

func startFaultRun(t *testing.T, svc *ownServices, bin, name string, kv ...string) *faultRun {
	var manage []string
	for range 4 {
		manage = append(manage, strconv.Itoa(lowFreePort(t)))
	}
	topic := "vitrine.faults." + name
	env := with(with(svc.appEnv(topic, "vitrine-faults-"+name, manage),
		// A job whose message the brokers lost is published again after
		// 20 s; a killed worker's jobs run again after 45 s.
		"VITRINE_KAFKA_REDELIVER", "20s", "VITRINE_JOB_TIMEOUT", "15s"), kv...)
	fr := &faultRun{t: t, svc: svc, topic: topic, brokers: strings.Split(env["VITRINE_KAFKA_BROKERS"], ",")}
	apis := []*testApp{
		startApp(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", manage[0])),
		startApp(t, t.TempDir(), with(env, "VITRINE_ROLE", "api", "VITRINE_CLUSTER_MANAGE_PORT", manage[1])),
	}
	logs := t.TempDir()
	for i := range 2 {
		fr.workers = append(fr.workers, startProc(t, bin, filepath.Join(logs, fmt.Sprintf("worker-%d.log", i)), with(env,
			"VITRINE_ROLE", "worker", "VITRINE_WORKERS", "2", "VITRINE_CLUSTER_MANAGE_PORT", manage[2+i],
			"VITRINE_DATA_DIR", t.TempDir(), "VITRINE_LOG_LEVEL", "debug", "VITRINE_LOG_FORMAT", "json")))
	}
	fr.w = &workload{t: t, apis: apis, http: &http.Client{Timeout: 30 * time.Second}}
	for i := range 20 {
		fr.w.createProduct(i)
	}
	if len(fr.w.products) != 20 {
		t.Fatalf("%d of 20 products created", len(fr.w.products))
	}
	return fr
}

// uploadsPaced sends n uploads evenly over d from four clients; the
// channel closes when they have all been answered.
func (fr *faultRun) uploadsPaced(n int, d time.Duration) <-chan struct{} {
	first := fr.next
	fr.next += n
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for k := c; k < n; k += 4 {
				time.Sleep(time.Until(start.Add(d * time.Duration(k) / time.Duration(n))))
				fr.w.upload(c, first+k)
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// write rewrites products' descriptions from four writers until the
// returned channel is closed.
func (fr *faultRun) write() chan<- struct{} {
	stop := make(chan struct{})
	for g := range 4 {
		go fr.w.patchLoop(g, 4, stop)
	}
	return stop
}

func (fr *faultRun) stopWorkers() {
	for _, p := range fr.workers {
		p.stop(syscall.SIGTERM)
	}
}

func (fr *faultRun) startWorkers() {
	for _, p := range fr.workers {
		p.start()
	}
}

// probe measures, from the fault, how long until an upload made after it
// is ready: a new upload every 200 ms until one is accepted, then its
// image polled every 100 ms (two minutes at most).
func (fr *faultRun) probe(fault time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		defer close(out)
		product := fr.w.products[0]
		deadline := fault.Add(2 * time.Minute)
		for k := 0; time.Now().Before(deadline); k++ {
			body, ct := multipartBody(fr.t, "file", "probe.png", distinctPNG(fr.t, 900000+k))
			r, err := fr.w.try(fr.w.apis[0], "POST", "/products/"+product+"/images", body, "Content-Type", ct)
			if err != nil || r.Status != http.StatusAccepted {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			var img struct{ ID string }
			if err := json.Unmarshal(r.Body, &img); err != nil {
				fr.t.Errorf("decode an accepted upload: %v", err)
				return
			}
			fr.w.mu.Lock()
			fr.w.images[img.ID] = product
			fr.w.mu.Unlock()
			for time.Now().Before(deadline) {
				r, err := fr.w.try(fr.w.apis[k%2], "GET", "/products/"+product+"/images/"+img.ID, nil)
				var doc struct{ Status string }
				if err == nil && r.Status == http.StatusOK && json.Unmarshal(r.Body, &doc) == nil && doc.Status == "ready" {
					out <- time.Since(fault)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		fr.t.Errorf("no upload made after the fault was ready within %v of it", time.Since(fault).Round(time.Second))
		out <- time.Since(fault)
	}()
	return out
}

// report waits for every accepted upload to end, within bound of the
// fault, checks what the fault runs promise and logs the figures.
// The fault's description is made once they have.
func (fr *faultRun) report(at time.Time, bound time.Duration, fault func() string) {
	t, w := fr.t, fr.w
	w.drain(max(time.Until(at.Add(bound)), 10*time.Second))
	if took := time.Since(at); took > bound {
		t.Errorf("the last accepted upload ended %v after the fault, past the bound of %v", took.Round(time.Second), bound)
	} else {
		t.Logf("every accepted upload ended within %v of the fault (the bound: %v; looked at every 2 s)", took.Round(time.Second), bound)
	}
	desc := fault()
	w.checkWrites()
	double, written := doubleWrites(t, fr.workers)
	accepted, ready, input, other := w.outcomes()
	stranded := 0
	for id := range w.images {
		if s := w.status[id]["status"]; s != "ready" && s != "failed" {
			stranded++
		}
	}
	runs, again, outcomes := jobRuns(t, fr.workers)
	t.Logf("%s", desc)
	t.Logf("%s: %d uploads tried, %d accepted (refused: %v), %d ready, %d failed for their input, %d failed otherwise %v, %d stranded, LOST %d; "+
		"%d variants written, %d twice; %d job runs (outcomes %v), %d after a first run; product writes: %d acknowledged, %d products verified; longest request %v",
		t.Name(), w.tried.Load(), accepted, w.refusals(), ready, input, len(other), other, stranded, accepted-ready-input,
		written, len(double), runs, outcomes, again, w.acked.Load(), w.verified, time.Duration(w.longest.Load()).Round(time.Millisecond))
	if lost := accepted - ready - input; lost != 0 {
		t.Errorf("%d accepted uploads lost (%d stranded, neither ready nor failed)", lost, stranded)
	}
	if len(double) > 0 {
		t.Errorf("%d variants written twice for one recipe version, e.g. %v", len(double), double[:min(3, len(double))])
	}
}

// kafka is an admin client of the test's brokers.
func (fr *faultRun) kafka() *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(fr.brokers...), Timeout: 10 * time.Second}
}

func (fr *faultRun) partitions() int {
	md, err := fr.kafka().Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{fr.topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		fr.t.Fatalf("metadata of %s: %v %+v", fr.topic, err, md)
	}
	return len(md.Topics[0].Partitions)
}

// leaderOf is the broker (its node id, 1 to 3) leading a partition.
func (fr *faultRun) leaderOf(partition int) int {
	md, err := fr.kafka().Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{fr.topic}})
	if err != nil || len(md.Topics) != 1 {
		fr.t.Fatalf("metadata of %s: %v", fr.topic, err)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.ID == partition {
			return p.Leader.ID
		}
	}
	fr.t.Fatalf("no partition %d in %s", partition, fr.topic)
	return 0
}

type leaderMove struct {
	to    int
	after time.Duration
}

// waitLeaderMoved waits until another broker leads the partition.
func (fr *faultRun) waitLeaderMoved(partition, from int) leaderMove {
	start := time.Now()
	for time.Since(start) < time.Minute {
		md, err := fr.kafka().Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{fr.topic}})
		if err == nil && len(md.Topics) == 1 {
			for _, p := range md.Topics[0].Partitions {
				if p.ID == partition && p.Leader.ID != from && p.Leader.ID > 0 {
					return leaderMove{to: p.Leader.ID, after: time.Since(start)}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	fr.t.Fatalf("partition %d still led by the killed broker %d a minute later", partition, from)
	return leaderMove{}
}

// offsets are the topic's partitions' first or last offsets.
func (fr *faultRun) offsets(which int64) map[int]int64 {
	n := fr.partitions()
	var reqs []kafkago.OffsetRequest
	for p := range n {
		reqs = append(reqs, kafkago.OffsetRequest{Partition: p, Timestamp: which})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		res, err := fr.kafka().ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{fr.topic: reqs}})
		out := map[int]int64{}
		if err == nil {
			for _, po := range res.Topics[fr.topic] {
				if po.Error == nil {
					out[po.Partition] = po.LastOffset
					if which == kafkago.FirstOffset {
						out[po.Partition] = po.FirstOffset
					}
				}
			}
		}
		if len(out) == n {
			return out
		}
		if ctx.Err() != nil {
			fr.t.Fatalf("offsets of %s: %v (%d of %d partitions)", fr.topic, err, len(out), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitPublished waits until the topic holds at least n messages, and
// returns its partitions' end offsets.
func (fr *faultRun) waitPublished(n int64) map[int]int64 {
	deadline := time.Now().Add(time.Minute)
	for {
		last, total := fr.offsets(kafkago.LastOffset), int64(0)
		for _, o := range last {
			total += o
		}
		if total >= n {
			return last
		}
		if time.Now().After(deadline) {
			fr.t.Fatalf("%d messages in %s a minute after the uploads, want %d", total, fr.topic, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type expiry struct {
	n     int64
	after time.Duration
}

// waitExpired waits until retention has deleted every message the
// partitions had at their end offsets last: none was read.
func (fr *faultRun) waitExpired(last map[int]int64, limit time.Duration) expiry {
	start := time.Now()
	for {
		first, gone := fr.offsets(kafkago.FirstOffset), true
		for p, o := range last {
			gone = gone && first[p] >= o
		}
		if gone {
			var unread int64
			for p, o := range last {
				unread += o - fr.committed(p)
			}
			return expiry{n: unread, after: time.Since(start)}
		}
		if time.Since(start) > limit {
			fr.t.Fatalf("retention deleted nothing in %v (first offsets %v, end offsets %v): the run proves nothing", limit, first, last)
		}
		time.Sleep(time.Second)
	}
}

// committed is the workers' group's committed offset of a partition.
func (fr *faultRun) committed(partition int) int64 {
	res, err := fr.kafka().OffsetFetch(context.Background(), &kafkago.OffsetFetchRequest{
		GroupID: fr.topic + ".workers", Topics: map[string][]int{fr.topic: {partition}}})
	if err != nil || len(res.Topics[fr.topic]) != 1 {
		fr.t.Fatalf("committed offset of %s/%d: %v", fr.topic, partition, err)
	}
	return max(res.Topics[fr.topic][0].CommittedOffset, 0)
}

// topicConfig sets a config of the job topic ("" deletes it: the
// broker's default again).
func (fr *faultRun) topicConfig(name, value string) {
	op := kafkago.ConfigOperationSet
	if value == "" {
		op = kafkago.ConfigOperationDelete
	}
	res, err := fr.kafka().IncrementalAlterConfigs(context.Background(), &kafkago.IncrementalAlterConfigsRequest{
		Resources: []kafkago.IncrementalAlterConfigsRequestResource{{ResourceType: kafkago.ResourceTypeTopic, ResourceName: fr.topic,
			Configs: []kafkago.IncrementalAlterConfigsRequestConfig{{Name: name, Value: value, ConfigOperation: op}}}}})
	if err == nil && len(res.Resources) == 1 {
		err = res.Resources[0].Error
	}
	if err != nil {
		fr.t.Fatalf("set %s=%q on %s: %v", name, value, fr.topic, err)
	}
}

//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vitrine-dev/vitrine/actors"
)

// The multi-process cluster harness: vitrine nodes as separate processes
// of one binary, on loopback, on the real servers, with etcd membership.

var (
	clusterBinOnce sync.Once
	clusterBin     string
	clusterBinErr  error
)

// sharedBinary builds the binary once per test run.
func sharedBinary(t *testing.T) string {
	t.Helper()
	clusterBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vitrine-cluster-test-")
		if err != nil {
			clusterBinErr = err
			return
		}
		atExit = append(atExit, func() { os.RemoveAll(dir) })
		clusterBin = filepath.Join(dir, "vitrine")
		out, err := exec.Command("go", "build", "-o", clusterBin, ".").CombinedOutput()
		if err != nil {
			clusterBinErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if clusterBinErr != nil {
		t.Fatal(clusterBinErr)
	}
	return clusterBin
}

// testCluster is a set of nodes sharing one environment: their own
// PostgreSQL schema, Kafka topic, S3 bucket and cluster name in etcd.
type testCluster struct {
	t     *testing.T
	bin   string
	env   map[string]string
	name  string
	mu    sync.Mutex
	nodes []*clusterNode
	etcd  *clientv3.Client
	// listMembers, when set, reads the membership instead of etcd (the
	// Kubernetes test reads the pods' labels); prepare, when set, adapts
	// a node's command before it starts (the Kubernetes test runs it as
	// in a pod).
	listMembers func() []*pcluster.Member
	prepare     func(n *clusterNode, cmd *exec.Cmd)
}

type clusterNode struct {
	idx  int
	url  string
	addr string
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	// up is the load balancer's view: the node answers its readiness.
	up atomic.Bool
}

func newTestCluster(t *testing.T, extra ...string) *testCluster {
	t.Helper()
	endpoints := requireEnv(t, "VITRINE_ETCD_ENDPOINTS")
	name := fmt.Sprintf("t-%x", rand.Uint64())
	c := newNodeSet(t, append([]string{"VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", endpoints,
		"VITRINE_CLUSTER_NAME", name}, extra...)...)
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.name, c.etcd = name, cli
	t.Cleanup(func() { cli.Close() })
	return c
}

// newNodeSet is a cluster of no node yet on the real servers, its
// membership set by extra (VITRINE_CLUSTER_PROVIDER and what it needs).
func newNodeSet(t *testing.T, extra ...string) *testCluster {
	t.Helper()
	env := backendEnv(t)
	env = with(env, append([]string{"VITRINE_WORKERS", "1", "VITRINE_LOG_FORMAT", "json",
		"VITRINE_SHUTDOWN_DRAIN", "1s", "VITRINE_SHUTDOWN_TIMEOUT", "30s",
		// Loopback nodes in development mode: the load writes without keys
		// and without rate or backlog limits (access has tests of its own).
		"VITRINE_ENV", "development", "VITRINE_RATE_ANONYMOUS", "0", "VITRINE_RATE_ANONYMOUS_WRITES", "0", "VITRINE_MAX_BACKLOG", "0", "VITRINE_MAX_OWNER_BACKLOG", "0",
		// The jobs of a node SIGKILLed mid-job run again once their claim
		// runs out: the time limit and 30 s.
		"VITRINE_JOB_TIMEOUT", "20s"}, extra...)...)
	c := &testCluster{t: t, bin: sharedBinary(t), env: env, name: env["VITRINE_CLUSTER_NAME"]}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.kill()
		}
	})
	return c
}

// add starts one more node and waits until it is ready.
func (c *testCluster) add() *clusterNode {
	c.t.Helper()
	c.mu.Lock()
	n := &clusterNode{idx: len(c.nodes) + 1, addr: freePort(c.t), dir: c.t.TempDir()}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	n.url = "http://" + n.addr
	n.log = filepath.Join(n.dir, "node.log")
	c.start(n)
	return n
}

// start (re)starts n's process on its address and waits for readiness.
func (c *testCluster) start(n *clusterNode) {
	c.t.Helper()
	c.launch(n)
	deadline := time.Now().Add(90 * time.Second)
	for !n.ready() {
		select {
		case <-n.done:
			c.t.Fatalf("node %d exited while starting:\n%s", n.idx, n.tail(30))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d not ready after 90 s:\n%s", n.idx, n.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.up.Store(true)
}

// launch (re)starts n's process without waiting for it.
func (c *testCluster) launch(n *clusterNode) {
	c.t.Helper()
	cmd := exec.Command(c.bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range with(c.env, "VITRINE_ADDR", n.addr, "VITRINE_DATA_DIR", n.dir) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if c.prepare != nil {
		c.prepare(n, cmd)
	}
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	f.Close()
	n.cmd, n.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(n.done)
}

func (n *clusterNode) ready() bool {
	client := http.Client{Timeout: time.Second}
	res, err := client.Get(n.url + "/readyz?deps=false")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func (n *clusterNode) pid() int { return n.cmd.Process.Pid }

// kill ends n at once (SIGKILL) and waits for it.
func (n *clusterNode) kill() {
	if n.cmd == nil {
		return
	}
	n.up.Store(false)
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// term asks n to leave (SIGTERM), waits up to a minute for it to exit and
// returns its exit code.
func (n *clusterNode) term(t *testing.T) int {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		n.up.Store(false)
		return n.cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
		t.Fatalf("node %d still runs a minute after SIGTERM:\n%s", n.idx, n.tail(30))
		return -1
	}
}

func (n *clusterNode) logs() string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

func (n *clusterNode) tail(lines int) string {
	l := strings.Split(strings.TrimRight(n.logs(), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// watchReadiness is the load balancer's health check: every 100 ms it
// marks each node up or down by its readiness, until ctx ends.
func (c *testCluster) watchReadiness(ctx context.Context) {
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c.mu.Lock()
			nodes := append([]*clusterNode(nil), c.nodes...)
			c.mu.Unlock()
			for _, n := range nodes {
				n.up.Store(n.ready())
			}
		}
	}()
}

// members reads the cluster's members from etcd, as protoactor's etcd
// provider writes them.
func (c *testCluster) members() []*pcluster.Member {
	c.t.Helper()
	if c.listMembers != nil {
		return c.listMembers()
	}
	res, err := c.etcd.Get(context.Background(), "/vitrine/"+c.name+"/", clientv3.WithPrefix())
	if err != nil {
		c.t.Fatalf("read members from etcd: %v", err)
	}
	var out []*pcluster.Member
	for _, kv := range res.Kvs {
		var m struct {
			ID    string   `json:"id"`
			Host  string   `json:"host"`
			Port  int32    `json:"port"`
			Kinds []string `json:"kinds"`
		}
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			c.t.Fatalf("member %s: %v", kv.Key, err)
		}
		out = append(out, &pcluster.Member{Id: m.ID, Host: m.Host, Port: m.Port, Kinds: m.Kinds})
	}
	return out
}

// actorAddr finds the actor endpoint address of node n in its log.
func (n *clusterNode) actorAddr() string {
	logs := n.logs()
	i := strings.LastIndex(logs, `"msg":"vitrine started"`)
	if i < 0 {
		return ""
	}
	line := logs[i:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	const key = `"actor_address":"`
	k := strings.Index(line, key)
	if k < 0 {
		return ""
	}
	rest := line[k+len(key):]
	return rest[:strings.IndexByte(rest, '"')]
}

// owners maps each product id to the address of the member its grain is
// placed on, by the same rendezvous hashing as the cluster.
func owners(members []*pcluster.Member, ids []string) map[string]string {
	rdv := pcluster.NewRendezvous()
	rdv.UpdateMembers(members)
	out := map[string]string{}
	for _, id := range ids {
		out[id] = rdv.GetByClusterIdentity(pcluster.NewClusterIdentity(id, actors.ProductKind))
	}
	return out
}

// hosted counts the products whose grains the member at addr hosts.
func hosted(members []*pcluster.Member, ids []string, addr string) int {
	n := 0
	for _, owner := range owners(members, ids) {
		if owner == addr {
			n++
		}
	}
	return n
}

// lb sends requests to the nodes round-robin, like a load balancer with
// health checks: it skips nodes that are not up, and sends a request that
// could not even connect to the next node (nothing reached the first).
type lb struct {
	c       *testCluster
	next    atomic.Uint64
	client  *http.Client
	retries atomic.Int64 // connections refused and sent elsewhere
	stats   *loadStats
}

func newLB(c *testCluster, stats *loadStats) *lb {
	return &lb{c: c, stats: stats, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 16, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext,
	}}}
}

// result is one request's outcome as the client saw it.
type result struct {
	status  int
	body    []byte
	header  http.Header
	node    int
	started time.Time
	took    time.Duration
	err     error
}

func (l *lb) do(method, path string, body []byte, header ...string) result {
	for attempt := 0; ; attempt++ {
		l.c.mu.Lock()
		nodes := append([]*clusterNode(nil), l.c.nodes...)
		l.c.mu.Unlock()
		var n *clusterNode
		for i := 0; i < len(nodes); i++ {
			cand := nodes[int(l.next.Add(1))%len(nodes)]
			if cand.up.Load() {
				n = cand
				break
			}
		}
		if n == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		req, _ := http.NewRequest(method, n.url+path, bytes.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		r := result{node: n.idx, started: time.Now()}
		res, err := l.client.Do(req)
		r.took = time.Since(r.started)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" && attempt < 10 {
				n.up.Store(false) // passive health check
				l.retries.Add(1)
				continue
			}
			r.err = err
			l.stats.record(method, r)
			return r
		}
		r.body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		r.status, r.header = res.StatusCode, res.Header
		l.stats.record(method, r)
		return r
	}
}

// loadStats counts what the clients saw.
type loadStats struct {
	mu       sync.Mutex
	requests int
	errors   map[string]int
	longest  time.Duration
	perNode  map[int]int
	results  []result // failed ones
	inDoubt  int      // writes answered 503 outcome_unknown
}

func newLoadStats() *loadStats {
	return &loadStats{errors: map[string]int{}, perNode: map[int]int{}}
}

func (s *loadStats) record(method string, r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.perNode[r.node]++
	s.longest = max(s.longest, r.took)
	switch {
	case r.err != nil:
		s.errors[method+" transport: "+r.err.Error()]++
		s.results = append(s.results, r)
	case r.status >= 500:
		s.errors[fmt.Sprintf("%s %d", method, r.status)]++
		s.results = append(s.results, r)
		if (method == "PUT" || method == "PATCH") && r.status == 503 && r.header.Get("Retry-After") != "" &&
			bytes.Contains(r.body, []byte(`"code":"outcome_unknown"`)) {
			s.inDoubt++
		}
	}
}

// failedOtherwise is how many requests failed, not counting the writes
// answered 503 outcome_unknown (their answer lost in a membership change:
// applied or not, the client is told so and is not re-sent blindly).
func (s *loadStats) failedOtherwise() (failed, inDoubt int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.errors {
		failed += v
	}
	return failed - s.inDoubt, s.inDoubt
}

func (s *loadStats) failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.errors {
		n += v
	}
	return n
}

func (s *loadStats) report(t *testing.T, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kinds := make([]string, 0, len(s.errors))
	for k, v := range s.errors {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(kinds)
	if len(kinds) == 0 {
		kinds = []string{"none"}
	}
	t.Logf("%s: %d requests, errors by kind: %s; longest request %s; requests per node %v",
		what, s.requests, strings.Join(kinds, ", "), s.longest.Round(time.Millisecond), s.perNode)
}

// percentile returns the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(p / 100 * float64(len(ds)-1))
	return ds[i]
}

// recoveryAfter is how long after killedAt every product of owned (those
// the dead node hosted) took an acknowledged write again: for each, its
// first write started after the kill and acknowledged.
func recoveryAfter(load *mixedLoad, owned map[string]bool, killedAt time.Time) time.Duration {
	var recovery time.Duration
	for id, wl := range load.logs {
		if !owned[id] {
			continue
		}
		for _, e := range wl.entries {
			if e.started.After(killedAt) && e.acked {
				recovery = max(recovery, e.done.Sub(killedAt))
				break
			}
		}
	}
	return recovery
}

// membersSeen is the cluster size a node at url reports in /metrics
// (vitrine_cluster_members), or -1 when it does not answer.
func membersSeen(url string) int {
	return int(metricSeen(url, "vitrine_cluster_members"))
}

// metricSeen is the value of one sample a node at url reports in /metrics
// (series: the name with its labels, as the exposition writes them), or
// -1 when it does not answer or has no such sample.
func metricSeen(url, series string) float64 {
	client := http.Client{Timeout: time.Second}
	res, err := client.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

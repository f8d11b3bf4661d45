//go:build integration && faults

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/internal/linearcheck"
)

// nsNode is a vitrine process in a network namespace of its own.
type nsNode struct {
	idx                 int
	ns                  *netns
	http, manage, actor int
	url                 string // through the host's forwarder into ns
	bin                 string
	env                 map[string]string
	log                 string
	cmd                 *exec.Cmd
	done                chan struct{}
}

// nsCluster is vitrine nodes in namespaces, joined by links the test can
// cut: the static provider (every node polls every peer's membership
// endpoint), so that a node cut from the others drops them from its view
// while they drop it from theirs: the membership disagrees.
type nsCluster struct {
	t     *testing.T
	nodes []*nsNode
	links map[[2]int]*gate // by node indexes, lower first
}

// startNSCluster starts n nodes on svc's servers, each in its own
// namespace, and waits until each is ready and sees all n members.
func startNSCluster(t *testing.T, svc *ownServices, n int) *nsCluster {
	t.Helper()
	bin := sharedBinary(t)
	run := netnsRunID()
	c := &nsCluster{t: t, links: map[[2]int]*gate{}}
	// The nodes' logs stay when the test fails.
	logs, err := os.MkdirTemp("", "vitrine-netsplit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the nodes' logs: %s", logs)
			return
		}
		os.RemoveAll(logs)
	})
	var manage []string
	for i := range n {
		nd := &nsNode{idx: i + 1, http: lowFreePort(t), manage: lowFreePort(t), actor: lowFreePort(t)}
		nd.ns = newNetns(t, i+1, run)
		nd.log = filepath.Join(logs, fmt.Sprintf("node-%d.log", i+1))
		c.nodes = append(c.nodes, nd)
		manage = append(manage, strconv.Itoa(nd.manage))
	}
	// The servers, as every node reaches them: 127.0.0.1 and their
	// ports, forwarded to the host's loopback.
	var servers []int
	for _, k := range []string{"VITRINE_POSTGRES_URL", "VITRINE_REDIS_URL", "VITRINE_S3_ENDPOINT"} {
		servers = append(servers, urlPort(t, svc.vars[k]))
	}
	for _, b := range strings.Split(svc.vars["VITRINE_KAFKA_BROKERS"], ",") {
		_, p, _ := strings.Cut(b, ":")
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("kafka broker %q", b)
		}
		servers = append(servers, port)
	}
	for _, a := range c.nodes {
		for _, port := range servers {
			forward(t, a.ns, nil, port, nil)
		}
		for _, b := range c.nodes {
			if a == b {
				continue
			}
			g := c.link(a.idx, b.idx)
			forward(t, a.ns, b.ns, b.manage, g)
			forward(t, a.ns, b.ns, b.actor, g)
		}
		forward(t, nil, a.ns, a.http, nil)
		a.url = fmt.Sprintf("http://127.0.0.1:%d", a.http)
	}
	env := with(svc.appEnv("vitrine.netsplit", "vitrine-netsplit", manage),
		"VITRINE_LOG_FORMAT", "json", "VITRINE_WORKERS", "1", "VITRINE_JOB_TIMEOUT", "20s",
		"VITRINE_SHUTDOWN_DRAIN", "1s", "VITRINE_MAX_BACKLOG", "0", "VITRINE_MAX_OWNER_BACKLOG", "0", "VITRINE_METRICS", "public")
	for _, nd := range c.nodes {
		nd.start(t, bin, with(env, "VITRINE_ADDR", fmt.Sprintf("127.0.0.1:%d", nd.http),
			"VITRINE_CLUSTER_MANAGE_PORT", strconv.Itoa(nd.manage), "VITRINE_CLUSTER_PORT", strconv.Itoa(nd.actor),
			"VITRINE_DATA_DIR", t.TempDir()))
	}
	for _, nd := range c.nodes {
		nd.waitReady(t, "starting")
	}
	if !c.waitViews(n, 30*time.Second) {
		t.Fatalf("the nodes do not all see %d members: %v", n, c.views())
	}
	return c
}

func urlPort(t testing.TB, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("no port in %q", raw)
	}
	return p
}

// link is the gate between nodes a and b (both directions).
func (c *nsCluster) link(a, b int) *gate {
	k := [2]int{min(a, b), max(a, b)}
	if c.links[k] == nil {
		c.links[k] = newGate()
	}
	return c.links[k]
}

// cut cuts every link between node a and each of others, silently.
func (c *nsCluster) cut(a int, others ...int) {
	for _, b := range others {
		c.link(a, b).set(true)
	}
}

// heal carries the bytes again between a and each of others.
func (c *nsCluster) heal(a int, others ...int) {
	for _, b := range others {
		c.link(a, b).set(false)
	}
}

func (nd *nsNode) start(t *testing.T, bin string, env map[string]string) {
	t.Helper()
	nd.bin, nd.env = bin, env
	f, err := os.OpenFile(nd.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := nd.ns.command(bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil { // ip netns exec execs the binary: same pid
		t.Fatal(err)
	}
	nd.cmd, nd.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(nd.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-nd.done
	})
}

// restart stops nd (SIGTERM, a graceful leave; SIGKILL after 30 s) and
// starts it again in its namespace, on its ports; it returns once nd is
// ready.
func (nd *nsNode) restart(t *testing.T) (stopped time.Duration) {
	t.Helper()
	began := time.Now()
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.done:
	case <-time.After(30 * time.Second):
		nd.cmd.Process.Signal(syscall.SIGKILL)
		<-nd.done
	}
	stopped = time.Since(began)
	nd.start(t, nd.bin, nd.env)
	nd.waitReady(t, "starting again")
	return stopped
}

// waitReady waits up to 90 s for nd to be ready, failing the test if it
// exits first (what it was doing: "starting", "starting again").
func (nd *nsNode) waitReady(t *testing.T, doing string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !nd.ready() {
		select {
		case <-nd.done:
			t.Fatalf("node %d exited while %s:\n%s", nd.idx, doing, tailFile(nd.log, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d not ready 90 s after %s:\n%s", nd.idx, doing, tailFile(nd.log, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (nd *nsNode) ready() bool { return nd.readyz("?deps=false") }

// member is readiness with its checks, the cluster's among them: this
// node is in the membership.
func (nd *nsNode) member() bool { return nd.readyz("") }

func (nd *nsNode) readyz(query string) bool {
	client := http.Client{Timeout: time.Second}
	res, err := client.Get(nd.url + "/readyz" + query)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// view is how many members node nd sees (vitrine_cluster_members), or
// -1 when it does not answer.
func (nd *nsNode) view() int { return membersSeen(nd.url) }

func (c *nsCluster) views() []int {
	var out []int
	for _, nd := range c.nodes {
		out = append(out, nd.view())
	}
	return out
}

// waitViews waits until every node sees n members.
func (c *nsCluster) waitViews(n int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		all := true
		for _, v := range c.views() {
			all = all && v == n
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// statusCounts counts answers by status, per phase.
type statusCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *statusCounts) add(phase string, status int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	k := fmt.Sprintf("%s %d", phase, status)
	if err != nil {
		k = phase + " transport error"
	}
	s.m[k]++
}

func (s *statusCounts) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, v := range s.m {
		out = append(out, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// TestPartitionNodes: three nodes, each in its own network namespace, on
// the test's own servers (PostgreSQL, Redis, Kafka, S3), with the static
// provider. A register workload (internal/linearcheck) and uploads run
// through all three nodes; node 1 is cut from nodes 2 and 3 for 20 s,
// silently (each still reaches every server and the test's clients), so
// that the membership disagrees: node 1 sees itself alone, nodes 2 and 3
// see each other. Then the links heal and the load runs on. Porcupine must
// find the product writes linearizable and the reads at most δ stale (δ
// is the README's cross-node bound while Redis answers: 3 s); no
// acknowledged write may be lost nor any applied twice (the register's
// check), and every accepted upload must end ready.
func TestPartitionNodes(t *testing.T) {
	requireNetns(t)
	removeStaleNetns(t)
	seed := rand.Uint64()
	if s := os.Getenv("VITRINE_REGISTER_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	began := time.Now()
	svc := startOwnServices(t, "postgres", "redis", "kafka", "s3")
	t.Logf("own servers up in %v", time.Since(began).Round(time.Millisecond))
	c := startNSCluster(t, svc, 3)
	t.Logf("3 nodes in namespaces up in %v, views %v", time.Since(began).Round(time.Millisecond), c.views())
	urls := []string{c.nodes[0].url, c.nodes[1].url, c.nodes[2].url}

	probe := newProductOn(t, urls[0])
	registerStart := time.Now()
	run := startRegister(t, urls, 20, 8, seed)
	run.Staleness = 3 * time.Second
	run.CheckTimeout = time.Minute

	// Uploads, a few a second, through every node in turn.
	product := newProductOn(t, urls[1])
	var (
		upMu      sync.Mutex
		locations []string
		phase     = "before"
		phaseMu   sync.Mutex
		statuses  statusCounts
		stopUp    = make(chan struct{})
		uploads   sync.WaitGroup
	)
	getPhase := func() string { phaseMu.Lock(); defer phaseMu.Unlock(); return phase }
	setPhase := func(p string) { phaseMu.Lock(); phase = p; phaseMu.Unlock() }
	client := &http.Client{Timeout: 30 * time.Second}
	uploads.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopUp:
				return
			case <-time.After(300 * time.Millisecond):
			}
			body, ct := multipartBody(t, "file", fmt.Sprintf("%d.png", i), distinctPNG(t, 7000+i))
			req, _ := http.NewRequest("POST", urls[i%3]+"/products/"+product+"/images", body)
			req.Header.Set("Content-Type", ct)
			p := getPhase()
			res, err := client.Do(req)
			if err != nil {
				statuses.add(p+" upload", 0, err)
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses.add(p+" upload", res.StatusCode, nil)
			if res.StatusCode == http.StatusAccepted {
				upMu.Lock()
				locations = append(locations, res.Header.Get("Location"))
				upMu.Unlock()
			}
		}
	})

	time.Sleep(5 * time.Second)
	setPhase("partition")
	cutAt := time.Now()
	c.cut(1, 2, 3)
	t.Logf("node 1 cut from nodes 2 and 3")
	// The membership disagrees once every node polled and found its
	// peers silent.
	var disagreed time.Duration
	for time.Since(cutAt) < 20*time.Second {
		if v := c.views(); disagreed == 0 && v[0] == 1 && v[1] == 2 && v[2] == 2 {
			disagreed = time.Since(cutAt)
			t.Logf("the membership disagrees %v after the cut: views %v", disagreed.Round(time.Millisecond), v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if disagreed == 0 {
		t.Errorf("the membership never disagreed during the cut: views %v", c.views())
	}
	setPhase("heal")
	c.heal(1, 2, 3)
	healAt := time.Now()
	partitionEnd := healAt.Sub(registerStart)
	t.Logf("healed after %v; views %v", healAt.Sub(cutAt).Round(time.Millisecond), c.views())
	// Each side dropped the other for good (protoactor never admits a
	// member again under the identity it left with): the smaller side,
	// node 1, finds the others answering again, fences itself off and
	// reports not ready; it rejoins when it restarts, as a supervisor
	// would restart it.
	for c.nodes[0].member() {
		if time.Since(healAt) > 15*time.Second {
			t.Fatalf("node 1 still ready 15 s after the heal: views %v", c.views())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fenced := time.Since(healAt)
	run.SetDown(urls[0], true) // the load balancer's health check
	t.Logf("node 1 fenced itself off %v after the heal; views %v; nodes 2 and 3 ready: %v %v",
		fenced.Round(time.Millisecond), c.views(), c.nodes[1].member(), c.nodes[2].member())
	if !c.nodes[1].member() || !c.nodes[2].member() {
		t.Errorf("the larger side is not ready after the heal")
	}
	setPhase("restart")
	stopped := c.nodes[0].restart(t)
	restarted := time.Since(healAt)
	run.SetDown(urls[0], false)
	// Full service: every node sees the three members, and a write
	// through each node is applied.
	for {
		ok := true
		for _, v := range c.views() {
			ok = ok && v == 3
		}
		for i := 0; ok && i < 3; i++ {
			req, _ := http.NewRequest("PATCH", urls[i]+"/products/"+probe, strings.NewReader(fmt.Sprintf(`{"description":"probe %d"}`, i)))
			req.Header.Set("Content-Type", "application/merge-patch+json")
			res, err := client.Do(req)
			if err != nil {
				ok = false
				break
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			ok = res.StatusCode == http.StatusOK
		}
		if ok {
			break
		}
		if time.Since(healAt) > time.Minute {
			t.Fatalf("no full service a minute after the heal: views %v", c.views())
		}
		time.Sleep(100 * time.Millisecond)
	}
	full := time.Since(healAt)
	t.Logf("full service %v after the heal (node 1 fenced at %v, stopped in %v, restarted and ready at %v); views %v",
		full.Round(time.Millisecond), fenced.Round(time.Millisecond), stopped.Round(time.Millisecond), restarted.Round(time.Millisecond), c.views())
	setPhase("after")
	time.Sleep(5 * time.Second)
	close(stopUp)
	uploads.Wait()
	rep := run.Stop()
	t.Log(rep)
	// The writes whose outcome the clients did not learn, by what they
	// were answered, during the cut and after it.
	unknown := map[string]int{}
	for _, op := range run.rec.Ops() {
		if op.Output.Outcome != linearcheck.Unknown || op.Input.Kind == linearcheck.Read {
			continue
		}
		why := "no answer"
		if _, after, ok := strings.Cut(op.Note, ": "); ok {
			why = after
			if !strings.HasPrefix(why, "5") {
				why = "transport error"
			}
		}
		when := "before the cut"
		switch {
		case op.Call >= partitionEnd:
			when = "after the heal"
		case op.Call >= cutAt.Sub(registerStart):
			when = "during the cut"
		}
		unknown[when+": "+why]++
	}
	t.Logf("writes of unknown outcome: %v", unknown)
	t.Logf("uploads by phase and status: %s", statuses.String())

	// Every accepted upload ends ready.
	upMu.Lock()
	defer upMu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	notReady := 0
	for _, loc := range locations {
		for {
			res, err := client.Get(urls[0] + loc)
			var doc struct{ Status string }
			if err == nil {
				_ = json.NewDecoder(res.Body).Decode(&doc) // a body that does not decode leaves Status empty: polled again
				res.Body.Close()
			}
			if doc.Status == "ready" {
				break
			}
			if doc.Status == "failed" || time.Now().After(deadline) {
				notReady++
				t.Errorf("upload %s: %q, not ready", loc, doc.Status)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("uploads: %d accepted, %d not ready; test took %v", len(locations), notReady, time.Since(began).Round(time.Second))
}

// newProductOn creates a product through node base and returns its id.
func newProductOn(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Post(base+"/products", "application/json", strings.NewReader(`{"name":"Uploads","price":"1","user_id":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("create product: %d %v", res.StatusCode, err)
	}
	return p.ID
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
	"github.com/vitrine-dev/vitrine/bench/internal/progress"
	"github.com/vitrine-dev/vitrine/bench/internal/report"
	"github.com/vitrine-dev/vitrine/bench/internal/scenario"
	"github.com/vitrine-dev/vitrine/bench/internal/target"
	"github.com/vitrine-dev/vitrine/bench/internal/zipf"
)

// The cluster mode (-cluster N): the read-hot, read-cold, mixed and upload
// scenarios against a cluster of one node, then of N nodes (started with
// scripts/cluster, as `make cluster` does, in a directory and on ports of
// their own), requests sent to the nodes round-robin. Every GET is
// labelled with the node it went to and where vitrine says it answered
// from (X-Vitrine-Source: cache, grain, remote-grain, store).

var clusterScenarios = []string{"read-hot", "mixed", "read-cold", "upload"}

type clusterBench struct {
	o      options
	getenv func(string) string
	stdout io.Writer
	bar    *progress.Bar
	root   string
	home   string // scripts/cluster's CLUSTER_HOME
	port   int    // its CLUSTER_HTTP_PORT
	ids    []string
	keys   *zipf.Keys[string]
	// uploaded is how many products already got uploads: each upload goes
	// to a product that has none of the same bytes (else it is a dedupe).
	uploaded int
	photos   []scenario.Photo
	rep      clusterReport
}

type clusterReport struct {
	StartedAt time.Time      `json:"started_at"`
	Machine   report.Machine `json:"machine"`
	Products  int            `json:"products"`
	Seconds   float64        `json:"phase_seconds"`
	Runs      []*clusterRun  `json:"runs"` // one node, then N
	Notes     []string       `json:"notes"`
	Model     map[string]any `json:"capacity_model,omitempty"`
	Config    map[string]any `json:"config"`
}

// clusterRun is one cluster size's figures.
type clusterRun struct {
	Nodes     int                         `json:"nodes"`
	Scenarios map[string]*clusterScenario `json:"scenarios"`
}

type clusterScenario struct {
	Unit       string             `json:"unit"`
	Throughput float64            `json:"throughput"`
	PerNode    map[string]float64 `json:"per_node_throughput"`
	Errors     uint64             `json:"errors"`
	ErrorKinds map[string]uint64  `json:"errors_by_kind,omitempty"`
	Latency    report.Latency     `json:"latency_ms"`
	// NoHop is the share of GETs answered from the cache of the node that
	// took them, without an actor hop.
	NoHop *float64 `json:"share_without_actor_hop,omitempty"`
	// BySource are the GET latencies by where they were answered.
	BySource map[string]sourceStats `json:"get_by_source,omitempty"`
}

type sourceStats struct {
	Count uint64  `json:"count"`
	Share float64 `json:"share"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

func runCluster(ctx context.Context, o options, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	c := &clusterBench{o: o, getenv: getenv, stdout: stdout, bar: progress.New(stderr, o.quiet)}
	c.rep = clusterReport{StartedAt: time.Now(), Products: o.products, Seconds: o.duration.Seconds(), Notes: []string{},
		Machine: report.Machine{CPUs: cpus(), LoadStart: loadavg()},
		Config:  map[string]any{"concurrency": o.concurrency, "zipf_s": o.zipfS, "uploads": o.uploads, "seed": o.seed}}
	if c.root, err = target.ModuleRoot("."); err != nil {
		return fmt.Errorf("-cluster runs scripts/cluster: run from the vitrine repository: %w", err)
	}
	if c.home, err = os.MkdirTemp("", "vitrine-bench-cluster-"); err != nil {
		return err
	}
	if c.port, err = freePortBlock(o.cluster); err != nil {
		return err
	}
	defer func() {
		if _, downErr := c.script(context.WithoutCancel(ctx), "down"); downErr != nil && err == nil {
			err = downErr
		}
		if !o.keep {
			if rmErr := os.RemoveAll(c.home); rmErr != nil {
				c.bar.Logf("cluster directory not removed: %v", rmErr)
			}
		} else {
			c.bar.Logf("cluster directory kept: %s", c.home)
		}
	}()
	if src, perr := findPhotos(c.root, o, getenv); perr == nil {
		c.bar.Logf("%s", src.note)
		c.photos, _ = scenario.LoadPhotos(src.upload)
	}
	sizes := []int{1}
	if o.cluster > 1 {
		sizes = append(sizes, o.cluster)
	}
	for _, n := range sizes {
		run, err := c.measure(ctx, n)
		if err != nil {
			return fmt.Errorf("%d node(s): %w", n, err)
		}
		c.rep.Runs = append(c.rep.Runs, run)
	}
	c.model()
	c.rep.Machine.LoadEnd = loadavg()
	out := o.out
	if out == "" {
		out = filepath.Join(c.root, "bench", "out")
	}
	if err := os.MkdirAll(out, 0o755); err != nil { // #nosec G301 -- bench/out holds reports meant to be read and published
		return err
	}
	data, _ := json.MarshalIndent(c.rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "cluster.json"), data, 0o644); err != nil { // #nosec G306 -- a bench report, meant to be read and published
		return err
	}
	c.text(stdout)
	fmt.Fprintf(stdout, "\nwrote %s\n", filepath.Join(out, "cluster.json"))
	return nil
}

// script runs scripts/cluster with this bench's directory and ports, and
// returns its stdout.
func (c *clusterBench) script(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "cluster"), args...) // #nosec G204 -- the repository's scripts/cluster, arguments from the bench itself
	cmd.Dir = c.root
	cmd.Env = append(append(os.Environ(), "CLUSTER_HOME="+c.home, "CLUSTER_HTTP_PORT="+strconv.Itoa(c.port),
		"VITRINE_CLUSTER_NAME="+filepath.Base(c.home), "VITRINE_LOG_LEVEL="+c.o.logLevel), benchEnv()...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/cluster %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// urls parses `node N pid PID url URL` lines.
func urls(lines string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(lines))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 6 && f[0] == "node" && f[4] == "url" {
			out = append(out, f[5])
		}
	}
	return out
}

func (c *clusterBench) measure(ctx context.Context, n int) (*clusterRun, error) {
	c.bar.Logf("cluster of %d node(s): starting (scripts/cluster up %d)", n, n)
	lines, err := c.script(ctx, "up", strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	nodes := urls(lines)
	if len(nodes) != n {
		return nil, fmt.Errorf("scripts/cluster up %d printed %d nodes:\n%s", n, len(nodes), lines)
	}
	clients := make([]*httpc.Client, 0, n)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for _, u := range nodes {
		cl, err := httpc.New(u, c.o.concurrency+c.o.uploadConc+8, c.o.timeout)
		if err != nil {
			return nil, err
		}
		clients = append(clients, cl)
	}
	if c.ids == nil {
		label := fmt.Sprintf("seed %d products", c.o.products)
		ids, ph, err := scenario.Seed(ctx, clients[0], c.o.products, c.o.concurrency, c.o.seed, c.bar.Tick(label))
		if err != nil {
			return nil, err
		}
		c.bar.Done(label, fmt.Sprintf("%d created, %.0f/s", len(ids), ph.Throughput()))
		c.ids = ids
		if c.keys, err = zipf.NewKeys(ids, c.o.zipfS, c.o.seed); err != nil {
			return nil, err
		}
	}
	run := &clusterRun{Nodes: n, Scenarios: map[string]*clusterScenario{}}
	for _, name := range clusterScenarios {
		if !c.has(name) || ctx.Err() != nil {
			continue
		}
		var s *clusterScenario
		switch name {
		case "read-hot":
			// Warm-up: every product once, through every node.
			c.closed(ctx, clients, fmt.Sprintf("%d nodes warm-up", n), uint64(len(c.ids)), c.cold(clients))
			s = c.closed(ctx, clients, fmt.Sprintf("%d nodes read-hot", n), 0, c.hot(clients))
		case "mixed":
			s = c.closed(ctx, clients, fmt.Sprintf("%d nodes mixed", n), 0, c.mixed(clients))
		case "read-cold":
			if err := c.chill(ctx, n); err != nil {
				return nil, err
			}
			// The restarted nodes closed every kept-alive connection.
			for _, cl := range clients {
				cl.Close()
			}
			s = c.closed(ctx, clients, fmt.Sprintf("%d nodes read-cold", n), uint64(len(c.ids)), c.cold(clients))
		case "upload":
			if s, err = c.upload(ctx, clients); err != nil {
				return nil, err
			}
		}
		run.Scenarios[name] = s
	}
	return run, ctx.Err()
}

func (c *clusterBench) has(s string) bool { return c.o.has(s) }

// chill makes the next reads cold: every node restarts (no grain alive,
// empty memory), and the products' Redis entries are deleted.
func (c *clusterBench) chill(ctx context.Context, n int) error {
	c.bar.Logf("read-cold: restarting %d node(s) and emptying the cache", n)
	for i := 1; i <= n; i++ {
		if _, err := c.script(ctx, "stop", strconv.Itoa(i)); err != nil {
			return err
		}
		if _, err := c.script(ctx, "start", strconv.Itoa(i)); err != nil {
			return err
		}
	}
	env, err := os.ReadFile(filepath.Join(c.home, "env"))
	if err != nil {
		return err
	}
	redisURL := ""
	for _, l := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(l, "export VITRINE_REDIS_URL="); ok {
			redisURL = strings.Trim(v, "'")
		}
	}
	if redisURL == "" {
		return nil
	}
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		return err
	}
	defer rc.Close()
	for i := 0; i < len(c.ids); i += 500 {
		keys := make([]string, 0, 500)
		for _, id := range c.ids[i:min(i+500, len(c.ids))] {
			keys = append(keys, "vitrine:product:"+id)
		}
		if err := rc.Do(ctx, rc.B().Del().Key(keys...).Build()).Error(); err != nil {
			return fmt.Errorf("empty the cache: %w", err)
		}
	}
	return nil
}

// pick returns the node for the next request: round-robin.
type picker struct{ next atomic.Uint64 }

func (p *picker) pick(n int) int { return int(p.next.Add(1)-1) % n } // #nosec G115 -- a count of this run's requests: never near 2^63

type clusterWorker struct{ x httpc.Exchange }

func setupCluster(w *load.Worker) { w.Data = &clusterWorker{} }

// get reads a product on node i, labelled "get SOURCE nI".
func get(clients []*httpc.Client, w *load.Worker, i int, id string) load.Outcome {
	x := &w.Data.(*clusterWorker).x
	st, err := clients[i].Do(x, "GET", "/products/"+id, "", nil)
	label := fmt.Sprintf("get %s n%d", orDefault(string(x.Resp.Header.Peek("X-Vitrine-Source")), "unknown"), i+1)
	if err != nil {
		return load.Outcome{Label: fmt.Sprintf("get n%d", i+1), Fail: httpc.Fail(err)}
	}
	if st != 200 {
		return load.Failed(label, st)
	}
	return load.Outcome{Label: label, Status: st}
}

func (c *clusterBench) hot(clients []*httpc.Client) load.Op {
	var p picker
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		return get(clients, w, p.pick(len(clients)), c.keys.Next(w.Rand))
	}
}

func (c *clusterBench) cold(clients []*httpc.Client) load.Op {
	order := append([]string(nil), c.ids...)
	rand.New(rand.NewPCG(c.o.seed, 78)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] }) // #nosec G404 -- a reproducible seeded shuffle, not security
	var p picker
	var next atomic.Int64
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		return get(clients, w, p.pick(len(clients)), order[int(next.Add(1)-1)%len(order)])
	}
}

// mixed is the single-node bench's mix: 90 % GET, 8 % PATCH, 2 % POST.
func (c *clusterBench) mixed(clients []*httpc.Client) load.Op {
	var p picker
	var created atomic.Int64
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		i := p.pick(len(clients))
		x := &w.Data.(*clusterWorker).x
		var st int
		var err error
		var label string
		switch r := w.Rand.IntN(100); {
		case r < 90:
			return get(clients, w, i, c.keys.Next(w.Rand))
		case r < 98:
			cents := 100 + w.Rand.IntN(99900)
			label = fmt.Sprintf("patch n%d", i+1)
			st, err = clients[i].Do(x, "PATCH", "/products/"+c.keys.Next(w.Rand), "application/merge-patch+json", fmt.Appendf(nil, `{"price":"%d.%02d"}`, cents/100, cents%100))
		default:
			label = fmt.Sprintf("post n%d", i+1)
			st, err = clients[i].Do(x, "POST", "/products", "application/json", scenario.ProductDoc(2_000_000+int(created.Add(1)), w.Rand))
		}
		switch {
		case err != nil:
			return load.Outcome{Label: label, Fail: httpc.Fail(err)}
		case st != 200 && st != 201:
			return load.Failed(label, st)
		}
		return load.Outcome{Label: label, Status: st}
	}
}

// closed runs a closed loop of op and summarises it by node and source.
func (c *clusterBench) closed(ctx context.Context, clients []*httpc.Client, label string, limit uint64, op load.Op) *clusterScenario {
	dur := c.o.duration
	if limit > 0 {
		dur = 10 * time.Minute // bounded by limit
	}
	ph := load.Closed(ctx, load.Config{Concurrency: c.o.concurrency, Duration: dur, Limit: limit, Seed: c.o.seed,
		Setup: setupCluster, Tick: c.bar.Tick(label)}, op)
	s := &clusterScenario{Unit: "req/s", Throughput: report.Round2(ph.Throughput()), PerNode: map[string]float64{},
		Errors: ph.FailCount(), ErrorKinds: ph.Fails, Latency: report.LatencyOf(ph.Hist), BySource: map[string]sourceStats{}}
	bySource := map[string]*hist.Histogram{}
	var gets, cached uint64
	for _, l := range ph.SortedLabels() {
		h := ph.ByLabel[l]
		f := strings.Fields(l)
		node := f[len(f)-1]
		s.PerNode[node] = report.Round2(s.PerNode[node] + float64(h.Count())/ph.Elapsed.Seconds())
		if f[0] != "get" || len(f) != 3 {
			continue
		}
		gets += h.Count()
		if f[1] == "cache" {
			cached += h.Count()
		}
		if bySource[f[1]] == nil {
			bySource[f[1]] = &hist.Histogram{}
		}
		bySource[f[1]].Merge(h)
	}
	for src, h := range bySource {
		s.BySource[src] = sourceStats{Count: h.Count(), Share: report.Round2(100 * float64(h.Count()) / float64(max(gets, 1))),
			P50: report.Ms(h.Quantile(0.5)), P99: report.Ms(h.Quantile(0.99))}
	}
	if gets > 0 {
		v := report.Round2(100 * float64(cached) / float64(gets))
		s.NoHop = &v
	}
	c.bar.Done(label, fmt.Sprintf("%s req/s, p50 %.3f p99 %.3f ms, errors %d", fmtNum(s.Throughput), s.Latency.P50, s.Latency.P99, s.Errors))
	return s
}

// upload sends the burst spread over the nodes, each node its share.
func (c *clusterBench) upload(ctx context.Context, clients []*httpc.Client) (*clusterScenario, error) {
	if len(c.photos) == 0 {
		return &clusterScenario{Unit: "images/s"}, fmt.Errorf("no photos to upload (-corpus)")
	}
	n := len(clients)
	results := make([]*scenario.UploadResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		count := c.o.uploads / n
		if i < c.o.uploads%n {
			count++
		}
		if c.uploaded+count > len(c.ids) {
			return nil, fmt.Errorf("not enough products for fresh uploads (-products)")
		}
		ids := c.ids[c.uploaded : c.uploaded+count]
		c.uploaded += count
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if count == 0 {
				results[i] = &scenario.UploadResult{ToReady: &hist.Histogram{}, Accept: &hist.Histogram{}}
				return
			}
			results[i], errs[i] = scenario.Upload(ctx, clients[i], ids, c.photos, count, max(c.o.uploadConc/n, 1),
				25*time.Millisecond, 5*time.Minute, nil)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := &clusterScenario{Unit: "images/s", PerNode: map[string]float64{}}
	all := &hist.Histogram{}
	ready := 0
	for i, r := range results {
		if errs[i] != nil {
			return nil, errs[i]
		}
		ready += r.Ready
		all.Merge(r.ToReady)
		s.PerNode[fmt.Sprintf("n%d", i+1)] = report.Round2(float64(r.Ready) / elapsed.Seconds())
		for k, v := range r.Fails {
			s.Errors += v
			if s.ErrorKinds == nil {
				s.ErrorKinds = map[string]uint64{}
			}
			s.ErrorKinds[k] += v
		}
	}
	s.Throughput = report.Round2(float64(ready) / elapsed.Seconds())
	s.Latency = report.LatencyOf(all)
	c.bar.Done(fmt.Sprintf("%d nodes upload", n), fmt.Sprintf("%d images ready, %.2f images/s, 202→ready p50 %.0f ms", ready, s.Throughput, s.Latency.P50))
	return s, nil
}

// model derives the capacity model's inputs from the measured figures.
func (c *clusterBench) model() {
	if len(c.rep.Runs) < 2 {
		return
	}
	one, many := c.rep.Runs[0], c.rep.Runs[len(c.rep.Runs)-1]
	m := map[string]any{"cpus_of_this_machine": cpus(),
		"note": "every node of the run shares this machine's CPUs: the N-node throughput shows the cost of the cluster (hops, membership), not the capacity of N machines; see bench/README.md"}
	for _, name := range clusterScenarios {
		a, b := one.Scenarios[name], many.Scenarios[name]
		if a == nil || b == nil || a.Throughput == 0 {
			continue
		}
		// CPU-seconds per request on one node, and the N-node efficiency
		// on the same CPUs (1.0: no cluster overhead).
		m[name] = map[string]float64{
			"one_node_throughput":   a.Throughput,
			"n_node_throughput":     b.Throughput,
			"cpu_ms_per_request":    report.Round2(1000 * float64(cpus()) / a.Throughput),
			"same_cpu_efficiency":   report.Round2(b.Throughput / a.Throughput),
			"n_node_no_hop_share":   deref(b.NoHop),
			"one_node_no_hop_share": deref(a.NoHop),
		}
	}
	c.rep.Model = m
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func (c *clusterBench) text(w io.Writer) {
	fmt.Fprintf(w, "\ncluster bench: %d products, %s phases, %d closed-loop workers, %d CPUs (load %s → %s)\n",
		c.rep.Products, c.o.duration, c.o.concurrency, c.rep.Machine.CPUs, c.rep.Machine.LoadStart, c.rep.Machine.LoadEnd)
	for _, name := range clusterScenarios {
		for _, run := range c.rep.Runs {
			s := run.Scenarios[name]
			if s == nil {
				continue
			}
			nodes := make([]string, 0, len(s.PerNode))
			for k := range s.PerNode {
				nodes = append(nodes, k)
			}
			sort.Strings(nodes)
			per := make([]string, 0, len(nodes))
			for _, k := range nodes {
				per = append(per, fmt.Sprintf("%s %s", k, fmtNum(s.PerNode[k])))
			}
			fmt.Fprintf(w, "%-9s %d node(s): %s %s (%s), p50 %.3f p99 %.3f ms, errors %d %v", name, run.Nodes, fmtNum(s.Throughput), s.Unit,
				strings.Join(per, ", "), s.Latency.P50, s.Latency.P99, s.Errors, s.ErrorKinds)
			if s.NoHop != nil {
				fmt.Fprintf(w, "; no actor hop %.1f %%", *s.NoHop)
			}
			fmt.Fprintln(w)
			srcs := make([]string, 0, len(s.BySource))
			for k := range s.BySource {
				srcs = append(srcs, k)
			}
			sort.Strings(srcs)
			for _, k := range srcs {
				v := s.BySource[k]
				fmt.Fprintf(w, "          GET from %-12s %6.2f %% p50 %.3f p99 %.3f ms\n", k, v.Share, v.P50, v.P99)
			}
		}
	}
}

// freePortBlock finds a base port b such that b+1..b+n are free.
func freePortBlock(n int) (int, error) {
	for try := 0; try < 50; try++ {
		base := 19000 + rand.IntN(3000) // #nosec G404 -- picks where to look for free ports, not security
		ok := true
		for i := 1; i <= n && ok; i++ {
			ok = portFree(base + i)
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no block of %d free ports between 19001 and 22000", n)
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = ln.Close() // only probed the port
	return true
}

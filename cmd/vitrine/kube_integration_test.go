//go:build integration && kube

package main

// The Kubernetes tests (make test-kube): deploy/k8s and protoactor's
// Kubernetes provider against a real kube-apiserver (scripts/services up
// kube: RBAC on, ServiceAccount tokens signed by its own key). There is no
// kubelet: the test creates the pods of the api Deployment's template and
// plays the kubelet's part: it sets their status (Running, the pod IP, the
// container ready once /readyz answers), and runs each vitrine process as
// a pod's container runs, in a UTS namespace whose hostname is the pod's
// name (what the provider takes as its pod's name) and a mount namespace
// with the ServiceAccount volume at /var/run/secrets/kubernetes.io/
// serviceaccount (a token from TokenRequest, the namespace, the CA), and
// KUBERNETES_SERVICE_HOST/PORT: protoactor's k8s.New() runs unchanged, on
// rest.InClusterConfig, as in a pod. Needs root (namespaces).

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/vitrine-dev/vitrine/actors"
)

const (
	kubeNS       = "vitrine"
	kubeSA       = "vitrine"
	kubeRole     = "vitrine-cluster-membership"
	kubeManifest = "../../deploy/k8s"
	// protoactor's labels (cluster/clusterproviders/k8s/labels.go).
	labelPrefix  = "cluster.proto.actor/"
	labelCluster = labelPrefix + "cluster"
)

// kubeAPI is the API server scripts/services started, as its admin.
type kubeAPI struct {
	cs     *kubernetes.Clientset
	server *url.URL
	ca     string
}

func newKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the Kubernetes tests run each node in namespaces of its own (a pod's hostname and ServiceAccount volume): root only")
	}
	requireEnv(t, "KUBECONFIG")
	server, err := url.Parse(requireEnv(t, "VITRINE_KUBE_SERVER"))
	if err != nil {
		t.Fatal(err)
	}
	ca := requireEnv(t, "VITRINE_KUBE_CA")
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: server.String(), BearerTokenFile: requireEnv(t, "VITRINE_KUBE_TOKEN_FILE"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: ca}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &kubeAPI{cs: cs, server: server, ca: ca}
}

// kubectl runs Debian's kubectl as the admin (KUBECONFIG) with stdin.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("kubectl", args...) // #nosec G204 -- the test's own arguments
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// applyManifests applies deploy/k8s for real (idempotent).
func applyManifests(t *testing.T) {
	t.Helper()
	if out, err := kubectl(t, "", "apply", "-k", kubeManifest); err != nil {
		t.Fatalf("kubectl apply -k %s: %v\n%s", kubeManifest, err, out)
	}
}

// TestKubeManifests: deploy/k8s judged by the API server's admission and
// validation, server-side dry run first, then for real, RBAC included.
func TestKubeManifests(t *testing.T) {
	newKubeAPI(t)
	built, err := kubectl(t, "", "kustomize", kubeManifest)
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, built)
	}
	objects := 0
	for _, doc := range strings.Split(built, "\n---\n") {
		if strings.Contains(doc, "\nkind: ") || strings.HasPrefix(doc, "kind: ") {
			objects++
		}
	}
	// The namespace first: a dry run does not create it, and every other
	// object's dry run needs it to exist (NamespaceLifecycle admission).
	if out, err := kubectl(t, "", "apply", "-f", kubeManifest+"/namespace.yaml"); err != nil {
		t.Fatalf("apply the namespace: %v\n%s", err, out)
	}
	out, err := kubectl(t, "", "apply", "--dry-run=server", "-k", kubeManifest)
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k: %v\n%s", err, out)
	}
	if n := strings.Count(out, "(server dry run)"); n != objects {
		t.Errorf("server dry run judged %d objects, the kustomization has %d:\n%s", n, objects, out)
	}
	t.Logf("server-side dry run: %d objects admitted", objects)
	// The same server refuses what only it can judge: a rolling update
	// that can make no progress (maxSurge and maxUnavailable both 0).
	api, err := os.ReadFile(filepath.Join(kubeManifest, "api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(api), "maxSurge: 1", "maxSurge: 0", 1)
	if out, err := kubectl(t, broken, "apply", "--dry-run=server", "-f", "-"); err == nil || !strings.Contains(out, "may not be 0 when `maxSurge` is 0") {
		t.Errorf("the server admitted a Deployment with maxSurge and maxUnavailable 0 (err %v):\n%s", err, out)
	}
	applyManifests(t)
	out, err = kubectl(t, "", "get", "-k", kubeManifest, "-o", "name")
	if err != nil {
		t.Fatalf("kubectl get -k: %v\n%s", err, out)
	}
	if n := len(strings.Fields(out)); n != objects {
		t.Errorf("%d objects stored, want %d:\n%s", n, objects, out)
	}
	t.Logf("applied: %d objects stored:\n%s", objects, out)
}

// kubePods plays the kubelet for vitrine processes: each node is a pod.
type kubePods struct {
	t    *testing.T
	api  *kubeAPI
	c    *testCluster
	base string // the pod IPs: base + node index
	mu   sync.Mutex
	pods map[*clusterNode]*kubePod
	last int // the last node index given
}

type kubePod struct {
	name, ip, saDir string
}

// newKubeCluster is a node set on protoactor's Kubernetes provider with
// the cluster settings of deploy/k8s's ConfigMap (as stored by the API
// server), each node a pod of the api Deployment's template.
func newKubeCluster(t *testing.T, api *kubeAPI) *kubePods {
	t.Helper()
	applyManifests(t)
	cm, err := api.cs.CoreV1().ConfigMaps(kubeNS).Get(context.Background(), "vitrine-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The manifests' cluster settings, but for the address: three pods
	// here share one network namespace, so each binds its own pod IP (a
	// loopback address) rather than 0.0.0.0, and on loopback the nodes
	// need no TLS (the Secret's certificate is a placeholder).
	var extra []string
	for _, k := range []string{"VITRINE_CLUSTER_PROVIDER", "VITRINE_CLUSTER_NAME", "VITRINE_CLUSTER_PORT"} {
		v, ok := cm.Data[k]
		if !ok {
			t.Fatalf("the ConfigMap has no %s", k)
		}
		extra = append(extra, k, v)
	}
	// Both roles in each process (the api Deployment's pods take
	// VITRINE_ROLE=api and leave image jobs to the worker Deployment's),
	// so that the uploads of the load are processed, as in the etcd tests.
	extra = append(extra, "VITRINE_METRICS", "public")
	kp := &kubePods{t: t, api: api, c: newNodeSet(t, extra...), pods: map[*clusterNode]*kubePod{},
		base: fmt.Sprintf("127.%d.%d.", 100+rand.IntN(100), rand.IntN(250))}
	kp.c.listMembers = kp.members
	kp.c.prepare = kp.prepare
	t.Cleanup(func() {
		for _, p := range kp.pods {
			kp.deletePod(p.name)
		}
		kp.keepLogs()
	})
	return kp
}

// keepLogs copies the nodes' logs to out/kube/TEST/ when the test failed
// (its temporary directories go).
func (kp *kubePods) keepLogs() {
	if !kp.t.Failed() {
		return
	}
	dir := filepath.Join("..", "..", "out", "kube", kp.t.Name())
	if err := os.MkdirAll(dir, 0o750); err != nil {
		kp.t.Log(err)
		return
	}
	for n, p := range kp.pods {
		b, err := os.ReadFile(n.log)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, p.name+".log"), b, 0o600)
		}
		if err != nil {
			kp.t.Log(err)
		}
	}
	kp.t.Logf("the nodes' logs are in out/kube/%s/", kp.t.Name())
}

// serviceAccountToken asks the API server for a token of the vitrine
// ServiceAccount (TokenRequest), as the kubelet does for a pod.
func serviceAccountToken(t *testing.T) string {
	t.Helper()
	out, err := kubectl(t, "", "create", "token", kubeSA, "-n", kubeNS, "--duration", "1h")
	if err != nil {
		t.Fatalf("kubectl create token: %v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// prepare runs n as its pod's container: hostname, ServiceAccount volume,
// the environment a kubelet gives.
func (kp *kubePods) prepare(n *clusterNode, cmd *exec.Cmd) {
	kp.mu.Lock()
	p := kp.pods[n]
	kp.mu.Unlock()
	// In new UTS and mount namespaces (gone with the process): the pod's
	// hostname, and a tmpfs over /run (= /var/run) holding the volume, so
	// that nothing is written to the host's /run.
	const script = `set -e
hostname "$1"
mount -n -t tmpfs -o size=1m,mode=0755 tmpfs /run
d=/run/secrets/kubernetes.io/serviceaccount
mkdir -p "$d"
cp "$2/token" "$2/namespace" "$2/ca.crt" "$d/"
shift 2
exec "$@"`
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		kp.t.Fatal(err)
	}
	cmd.Path = unshare
	cmd.Args = append([]string{"unshare", "--uts", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", p.name, p.saDir}, cmd.Args...)
	cmd.Env = append(cmd.Env, "KUBERNETES_SERVICE_HOST="+kp.api.server.Hostname(), "KUBERNETES_SERVICE_PORT="+kp.api.server.Port(),
		"VITRINE_CLUSTER_HOST="+p.ip, "VITRINE_CLUSTER_BIND="+p.ip)
}

// addPod creates a pod from the api Deployment's template, as its
// ReplicaSet would, Running with its IP but not ready, as the kubelet
// sets it when the container starts.
func (kp *kubePods) addPod(n *clusterNode, name string) *kubePod {
	t := kp.t
	t.Helper()
	ctx := context.Background()
	d, err := kp.api.cs.AppsV1().Deployments(kubeNS).Get(ctx, "vitrine-api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: *d.Spec.Template.ObjectMeta.DeepCopy(), Spec: *d.Spec.Template.Spec.DeepCopy()}
	pod.Name, pod.Namespace = name, kubeNS
	if _, err := kp.api.cs.CoreV1().Pods(kubeNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	p := &kubePod{name: name, ip: kp.base + strconv.Itoa(n.idx), saDir: t.TempDir()}
	ca, err := os.ReadFile(kp.api.ca)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{"token": []byte(serviceAccountToken(t)), "namespace": []byte(kubeNS), "ca.crt": ca} {
		if err := os.WriteFile(filepath.Join(p.saDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kp.mu.Lock()
	kp.pods[n] = p
	kp.mu.Unlock()
	kp.setStatus(p, false)
	return p
}

// setStatus writes the pod's status as the kubelet would: Running on its
// IP, the container and the pod ready or not.
func (kp *kubePods) setStatus(p *kubePod, ready bool) {
	kp.t.Helper()
	ctx := context.Background()
	pods := kp.api.cs.CoreV1().Pods(kubeNS)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, p.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cond := corev1.ConditionFalse
		if ready {
			cond = corev1.ConditionTrue
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.HostIP, pod.Status.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
		pod.Status.PodIP, pod.Status.PodIPs = p.ip, []corev1.PodIP{{IP: p.ip}}
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &now
		}
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: cond, LastTransitionTime: now},
		}
		c := pod.Spec.Containers[0]
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: c.Name, Image: c.Image, ImageID: "docker-pullable://" + c.Image,
			Ready: ready, Started: &ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *pod.Status.StartTime}}}}
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		kp.t.Fatalf("pod %s status: %v", p.name, err)
	}
}

func (kp *kubePods) deletePod(name string) {
	err := kp.api.cs.CoreV1().Pods(kubeNS).Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		kp.t.Errorf("delete pod %s: %v", name, err)
	}
}

// add starts a node as pod name: the pod, the process, and once it
// answers /readyz?deps=false (the readiness probe), ready.
func (kp *kubePods) add(name string) *clusterNode {
	c := kp.c
	c.t.Helper()
	n := kp.newNode()
	p := kp.addPod(n, name)
	c.start(n)
	kp.setStatus(p, true)
	return n
}

// newNode is one more node of the set, not started, with an index (and so
// a pod IP) none had before.
func (kp *kubePods) newNode() *clusterNode {
	c := kp.c
	c.mu.Lock()
	defer c.mu.Unlock()
	kp.last++
	n := &clusterNode{idx: kp.last, addr: freePort(c.t), dir: c.t.TempDir()}
	n.url = "http://" + n.addr
	n.log = filepath.Join(n.dir, "node.log")
	c.nodes = append(c.nodes, n)
	return n
}

// members reads the membership as protoactor's provider computes it from
// the pods (mapPodsToMembers): labelled for this cluster, Running with an
// IP, every container ready.
func (kp *kubePods) members() []*pcluster.Member {
	kp.t.Helper()
	list, err := kp.api.cs.CoreV1().Pods(kubeNS).List(context.Background(), metav1.ListOptions{LabelSelector: labelCluster + "=" + kp.c.name})
	if err != nil {
		kp.t.Fatalf("list pods: %v", err)
	}
	var out []*pcluster.Member
	for _, pod := range list.Items {
		if pod.Status.Phase != corev1.PodRunning || len(pod.Status.PodIPs) == 0 {
			continue
		}
		ready := true
		for _, s := range pod.Status.ContainerStatuses {
			ready = ready && s.Ready
		}
		port, err := strconv.Atoi(pod.Labels[labelPrefix+"port"])
		if !ready || err != nil {
			continue
		}
		var kinds []string
		for k, v := range pod.Labels {
			if kind, ok := strings.CutPrefix(k, labelPrefix+"kind-"); ok && v == "true" {
				kinds = append(kinds, kind)
			}
		}
		out = append(out, &pcluster.Member{Id: pod.Labels[labelPrefix+"member-id"], Host: pod.Status.PodIP, Port: int32(port), Kinds: kinds}) // #nosec G109 G115 -- a port
	}
	return out
}

// view is how many members node n sees (vitrine_cluster_members), -1
// when it does not answer.
func (n *clusterNode) view() int { return membersSeen(n.url) }

// waitViews waits until every node in nodes sees want members, and
// returns how long that took.
func waitViews(t *testing.T, nodes []*clusterNode, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		var views []int
		all := true
		for _, n := range nodes {
			v := n.view()
			views = append(views, v)
			all = all && v == want
		}
		if all {
			return time.Since(start)
		}
		if time.Since(start) > within {
			var tails []string
			for _, n := range nodes {
				tails = append(tails, fmt.Sprintf("node %d:\n%s", n.idx, n.tail(15)))
			}
			t.Fatalf("after %s the nodes see %v members, want %d each\n%s", within, views, want, strings.Join(tails, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKubeCluster: three vitrine processes find each other through the
// API server with the ServiceAccount's token and deploy/k8s's RBAC; a
// product written on one is read on the others; a pod lost (process
// SIGKILLed, pod deleted) leaves and its grains move; a new pod joins; a
// node leaves gracefully without a failed request.
func TestKubeCluster(t *testing.T) {
	api := newKubeAPI(t)
	kp := newKubeCluster(t, api)
	c := kp.c
	for i := 1; i <= 3; i++ {
		kp.add(fmt.Sprintf("vitrine-api-k8s-%d", i))
	}
	found := waitViews(t, c.nodes, 3, 30*time.Second)
	t.Logf("members found: every node sees the 3 members %s after the third pod turned ready", found.Round(time.Millisecond))
	if m := c.members(); len(m) != 3 {
		t.Fatalf("the API server lists %d member pods, want 3", len(m))
	}
	for _, p := range kp.pods {
		pod, err := api.cs.CoreV1().Pods(kubeNS).Get(context.Background(), p.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Labels[labelCluster] != c.name || pod.Labels[labelPrefix+"port"] != c.env["VITRINE_CLUSTER_PORT"] || pod.Labels[labelPrefix+"kind-"+actors.ProductKind] != "true" {
			t.Errorf("pod %s labels: %v", p.name, pod.Labels)
		}
	}
	crossNode(t, c)

	// A pod lost: its process SIGKILLed and its pod deleted (a node gone,
	// its pods removed) under load.
	run := loadOn(t, c, 48, 4)
	stats, load := run.stats, run.load
	time.Sleep(5 * time.Second)
	victim := c.nodes[1]
	deadAddr := victim.actorAddr()
	ownedByVictim := map[string]bool{}
	for id, owner := range owners(c.members(), load.patched) {
		ownedByVictim[id] = owner == deadAddr
	}
	killedAt := time.Now()
	victim.kill()
	kp.deletePod(kp.pods[victim].name)
	t.Logf("node %d (%s, %s) SIGKILLed and its pod deleted; it hosted %d of %d patched products", victim.idx, kp.pods[victim].name, deadAddr, count(ownedByVictim), len(load.patched))
	c.mu.Lock()
	c.nodes = slices.DeleteFunc(c.nodes, func(n *clusterNode) bool { return n == victim })
	live := append([]*clusterNode(nil), c.nodes...)
	c.mu.Unlock()
	waitViews(t, live, 2, 30*time.Second)
	t.Logf("the lost pod left every view %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	joined := kp.add("vitrine-api-k8s-4")
	joinedAt := time.Now()
	joinTook := waitViews(t, c.nodes, 3, 30*time.Second)
	t.Logf("a new pod joined: every node sees 3 members %s after it turned ready", joinTook.Round(time.Millisecond))
	time.Sleep(6 * time.Second)
	run.stop()
	recovery := recoveryAfter(load, ownedByVictim, killedAt)
	stats.report(t, "three pods, one lost and a new one joining")
	t.Logf("recovery: every product of the lost pod took an acknowledged write again within %s of the kill", recovery.Round(time.Millisecond))
	if recovery > actors.Failover {
		t.Errorf("the lost pod's products recovered after %s, want within actors.Failover (%s)", recovery, actors.Failover)
	}
	if stats.longest > failFastBound {
		t.Errorf("the longest request took %s, over the fail-fast bound %s", stats.longest, failFastBound)
	}
	for _, r := range stats.results {
		switch {
		case r.err != nil && r.node == victim.idx && r.started.Before(killedAt):
		case r.err != nil || r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "":
			t.Errorf("a failed request is not a 503 with Retry-After: node %d, %d %v %s", r.node, r.status, r.err, r.body)
		}
	}
	share := hosted(c.members(), load.patched, joined.actorAddr())
	t.Logf("the new pod hosts %d of %d patched products' grains (%s after it joined)", share, len(load.patched), time.Since(joinedAt).Round(time.Millisecond))
	if share == 0 {
		t.Error("the new pod hosts no grain")
	}
	run.imagesReady(t)

	// A graceful leave under load: SIGTERM (the kubelet's, after preStop).
	run = loadOn(t, c, 24, 3)
	time.Sleep(4 * time.Second)
	leaving := c.nodes[0]
	start := time.Now()
	if code := leaving.term(t); code != 0 {
		t.Errorf("node %d exited with %d after SIGTERM:\n%s", leaving.idx, code, leaving.tail(20))
	}
	t.Logf("node %d left in %s", leaving.idx, time.Since(start).Round(time.Millisecond))
	pod, err := api.cs.CoreV1().Pods(kubeNS).Get(context.Background(), kp.pods[leaving].name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range pod.Labels {
		if strings.HasPrefix(k, labelPrefix) {
			t.Errorf("the leaving pod still has label %s: the provider did not deregister it", k)
		}
	}
	kp.deletePod(kp.pods[leaving].name)
	time.Sleep(4 * time.Second)
	run.stop()
	run.stats.report(t, "three pods, one SIGTERMed")
	if n, inDoubt := run.stats.failedOtherwise(); n != 0 {
		t.Errorf("%d client requests failed during a graceful leave (besides %d writes answered outcome_unknown)", n, inDoubt)
	} else {
		t.Logf("graceful leave: 0 failed requests (%d writes answered 503 outcome_unknown)", inDoubt)
	}
	run.imagesReady(t)
}

// crossNode writes a product on each node and reads it on the others.
func crossNode(t *testing.T, c *testCluster) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, w := range c.nodes {
		res, err := client.Post(w.url+"/products", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"On node %d","price":"3","user_id":5}`, w.idx)))
		if err != nil || res.StatusCode != http.StatusCreated {
			t.Fatalf("create on node %d: %v %v", w.idx, err, res)
		}
		var p struct{ ID string }
		err = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if err != nil || p.ID == "" {
			t.Fatalf("create on node %d: %v", w.idx, err)
		}
		for _, r := range c.nodes {
			res, err := client.Get(r.url + "/products/" + p.ID)
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("product written on node %d not read on node %d: %v %v", w.idx, r.idx, err, res)
			}
			res.Body.Close()
		}
	}
	t.Logf("a product written on each node is read on every other")
}

// TestKubeRBAC: deploy/k8s's Role is what the provider needs, no more: a
// node registers and sees the members with it, and with each of its verbs
// removed in turn the provider fails with the API server's refusal in its
// log and the node is no member.
func TestKubeRBAC(t *testing.T) {
	api := newKubeAPI(t)
	kp := newKubeCluster(t, api)
	roles := api.cs.RbacV1().Roles(kubeNS)
	role, err := roles.Get(context.Background(), kubeRole, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"pods"}) || !slices.Equal(role.Rules[0].APIGroups, []string{""}) {
		t.Fatalf("the Role grants more than one rule on pods: %+v", role.Rules)
	}
	verbs := role.Rules[0].Verbs
	t.Cleanup(func() { applyManifests(t) }) // the Role as deploy/k8s has it
	// What a node says when the API server refuses it a verb (protoactor's
	// provider uses no other: cluster/providers.go, checkPodAccess).
	refusal := map[string]string{
		"get":   "may not get pods in namespace",
		"watch": "may not watch pods in namespace",
		"patch": "may not patch pods in namespace",
	}
	// The Role as it is: the node labels its pod and sees itself.
	n := kp.add("vitrine-rbac-all")
	took := waitViews(t, []*clusterNode{n}, 1, 30*time.Second)
	t.Logf("with the Role's verbs %v: a member, seeing itself %s after its pod turned ready", verbs, took.Round(time.Millisecond))
	n.kill()
	kp.deletePod("vitrine-rbac-all")

	for _, verb := range verbs {
		t.Run("without "+verb, func(t *testing.T) {
			want, known := refusal[verb]
			if !known {
				t.Fatalf("the Role grants %q, which protoactor's provider does not use", verb)
			}
			setVerbs(t, api, slices.DeleteFunc(slices.Clone(verbs), func(v string) bool { return v == verb }))
			waitCanI(t, verb, "no")
			name := "vitrine-rbac-no-" + verb
			n := kp.newNode()
			p := kp.addPod(n, name)
			kp.setStatus(p, true) // ready at once: only RBAC may keep it out
			kp.c.launch(n)
			defer func() { n.kill(); kp.deletePod(name) }()
			// It stops at once, saying why.
			select {
			case <-n.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("without %q the node still runs after 30 s:\n%s", verb, n.tail(20))
			}
			code := n.cmd.ProcessState.ExitCode()
			logs := n.logs()
			i := strings.Index(logs, want)
			if code == 0 || i < 0 {
				t.Fatalf("without %q the node exited with %d, its log saying %q: %v:\n%s", verb, code, want, i >= 0, n.tail(20))
			}
			line := logs[strings.LastIndexByte(logs[:i], '\n')+1:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			t.Logf("without %q the node exits with %d: %s", verb, code, line)
			pod, err := api.cs.CoreV1().Pods(kubeNS).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, labelled := pod.Labels[labelCluster]; labelled {
				t.Errorf("without %q the pod was labelled a member", verb)
			}
		})
		setVerbs(t, api, verbs)
		waitCanI(t, verb, "yes")
	}
}

// setVerbs sets the verbs of the Role's rule on pods.
func setVerbs(t *testing.T, api *kubeAPI, verbs []string) {
	t.Helper()
	roles := api.cs.RbacV1().Roles(kubeNS)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		role, err := roles.Get(context.Background(), kubeRole, metav1.GetOptions{})
		if err != nil {
			return err
		}
		role.Rules[0].Verbs = verbs
		_, err = roles.Update(context.Background(), role, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("set the Role's verbs to %v: %v", verbs, err)
	}
}

// waitCanI waits until the API server's authorizer answers want for the
// ServiceAccount and verb on pods (RBAC sees a Role change within moments).
func waitCanI(t *testing.T, verb, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := kubectl(t, "", "auth", "can-i", verb, "pods", "-n", kubeNS, "--as", "system:serviceaccount:"+kubeNS+":"+kubeSA)
		if strings.TrimSpace(out) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl auth can-i %s pods: %q, want %q", verb, out, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

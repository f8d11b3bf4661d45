package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The namespace file of a pod's ServiceAccount volume, where protoactor's
// Kubernetes provider reads its namespace (its pod's name is the hostname).
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// podVerbs are what protoactor's Kubernetes provider does with pods: get
// and patch (its labels) its own, watch those of its namespace. It lists
// none (deploy/k8s/rbac.yaml grants exactly these).
var podVerbs = []string{"get", "watch", "patch"}

// checkPodAccess asks the API server whether this pod's ServiceAccount
// may do what the provider does, and refuses to start when it may not:
// without it the provider retries for ever, registering in a tight loop
// (get, patch) or watching every 5 s with an error that does not say
// "forbidden" (watch), and the node is never a member. When the API server
// cannot be asked, the start goes on (the provider retries).
func checkPodAccess(rc *rest.Config, log *zap.Logger) error {
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return fmt.Errorf("kubernetes provider: the pod's namespace (is this a pod with a service account?): %w", err)
	}
	ns := strings.TrimSpace(string(b))
	pod, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("kubernetes provider: the pod's name (its hostname): %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes provider: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var denied []string
	for _, verb := range podVerbs {
		attrs := &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "pods"}
		if verb != "watch" {
			attrs.Name = pod
		}
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			log.Warn("kubernetes provider: cannot check the service account's access to pods; starting anyway", zap.Error(err))
			return nil
		}
		if !res.Status.Allowed {
			denied = append(denied, verb)
		}
	}
	if len(denied) > 0 {
		return fmt.Errorf("kubernetes provider: this pod's service account may not %s pods in namespace %q; cluster membership needs get, watch and patch on pods (deploy/k8s/rbac.yaml)",
			strings.Join(denied, ", "), ns)
	}
	return nil
}

// newProvider builds the membership provider cfg names, and a function
// that releases what the provider's own Shutdown leaves open.
func newProvider(cfg Config, system *actor.ActorSystem, log *zap.Logger) (pcluster.ClusterProvider, func(), error) {
	switch cfg.Provider {
	case ProviderStatic:
		return newStatic(cfg, system, log)
	case ProviderEtcd:
		p, err := etcd.NewWithConfig(strings.TrimRight(cfg.EtcdPrefix, "/"), clientv3.Config{
			Endpoints:   cfg.EtcdEndpoints,
			DialTimeout: 5 * time.Second,
			Logger:      log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("etcd client for %v: %w", cfg.EtcdEndpoints, err)
		}
		// protoactor's provider keeps its client private and never closes
		// it: its connection lives as long as the process.
		return p, func() {}, nil
	case ProviderKubernetes:
		// What k8s.New() does, with the permissions checked in between.
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes provider (is this a pod with a service account?): %w", err)
		}
		if err := checkPodAccess(rc, log); err != nil {
			return nil, nil, err
		}
		p, err := k8s.NewWithConfig(rc)
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes provider: %w", err)
		}
		return p, func() {}, nil
	default:
		return &single{}, func() {}, nil
	}
}

// single is the membership of a node alone: itself, from its start to its
// shutdown.
type single struct {
	mu      sync.Mutex
	members *pcluster.MemberList
}

// StartMember makes this node the only member.
func (s *single) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = c.MemberList
	s.members.UpdateClusterTopology([]*pcluster.Member{{Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds()}}) // #nosec G115 -- a TCP port fits
	return nil
}

// StartClient has no members to see.
func (s *single) StartClient(*pcluster.Cluster) error { return nil }

// Shutdown empties the membership; it may be called more than once.
func (s *single) Shutdown(bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members != nil {
		s.members.UpdateClusterTopology(nil)
		s.members = nil
	}
	return nil
}

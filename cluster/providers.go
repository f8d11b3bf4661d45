package cluster

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

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
		p, err := k8s.New()
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes provider (is this a pod with a service account?): %w", err)
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

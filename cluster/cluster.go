// Package cluster starts a node of vitrine's protoactor cluster: the actor
// system, its remote endpoint and cluster membership, so that product grains
// are placed by the identity lookup whether there is one node or many.
package cluster

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"go.uber.org/zap"
)

// Config says how a node joins its cluster.
type Config struct {
	// Name is the cluster's name; nodes with the same name form one cluster.
	Name string
	// Host and Port are where this node's remote endpoint listens.
	// Port 0 picks a free port.
	Host string
	Port int
	// RequestTimeout bounds one grain request.
	RequestTimeout time.Duration
	// Peers lists the membership endpoints (host:port) of every node,
	// this one included. Empty means a single-node cluster.
	Peers []string
	// ManagePort is where this node answers membership checks when Peers
	// is set.
	ManagePort int
	// JoinTimeout bounds the wait for this node to appear in the
	// membership when Peers is set.
	JoinTimeout time.Duration
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Name == "" {
		c.Name = "vitrine"
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 60 * time.Second
	}
}

// Node is a started cluster member.
type Node struct {
	System  *actor.ActorSystem
	Cluster *pcluster.Cluster
}

// Start starts the actor system and joins the cluster as a member hosting
// kinds. With no peers configured this is a single-node cluster (an
// in-process membership provider); with peers, nodes find each other
// through protoactor's automanaged provider.
func Start(cfg Config, log *zap.Logger, kinds ...*pcluster.Kind) (*Node, error) {
	cfg.Defaults()
	system := actor.NewActorSystem(actor.WithLoggerFactory(slogFactory(log.Named("actors"))))
	var provider pcluster.ClusterProvider = test.NewTestProvider(test.NewInMemAgent())
	if len(cfg.Peers) > 0 {
		// Each node polls the others' membership endpoints; grains are
		// placed on the members by consistent hashing of their identity.
		provider = automanaged.NewWithConfig(2*time.Second, cfg.ManagePort, cfg.Peers...)
	}
	conf := pcluster.Configure(cfg.Name, provider, disthash.New(), remote.Configure(cfg.Host, cfg.Port),
		pcluster.WithKinds(kinds...), pcluster.WithRequestTimeout(cfg.RequestTimeout))
	c := pcluster.New(system, conf)
	if err := startMember(c); err != nil {
		return nil, fmt.Errorf("start cluster member %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	n := &Node{System: system, Cluster: c}
	if len(cfg.Peers) > 0 {
		// Do not serve before this node sees itself in the membership:
		// until then no grain can be placed.
		deadline := time.Now().Add(cfg.JoinTimeout)
		for !c.MemberList.ContainsMemberID(system.ID) {
			if time.Now().After(deadline) {
				n.Stop()
				return nil, fmt.Errorf("join cluster %s: not a member after %s (peers %v)", cfg.Name, cfg.JoinTimeout, cfg.Peers)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return n, nil
}

func startMember(c *pcluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil { // protoactor panics when it cannot listen
			err = fmt.Errorf("%v", r)
		}
	}()
	c.StartMember()
	return nil
}

// Stop leaves the cluster gracefully; that stops the actor system too.
func (n *Node) Stop() {
	n.Cluster.Shutdown(true)
}

// Package cluster starts a node of vitrine's protoactor cluster: the actor
// system, its remote endpoint and cluster membership, so that product grains
// are placed by the identity lookup whether there is one node or many.
//
// Membership comes from a provider chosen by configuration: none (one
// node), a static list of peers (vitrine's own provider, polling each peer's membership endpoint), etcd
// or Kubernetes (protoactor's providers of the same names). Every endpoint
// the node opens binds to a configured address, and traffic between nodes
// can be protected with mutual TLS.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"go.uber.org/zap"
)

// Provider names, as VITRINE_CLUSTER_PROVIDER spells them.
const (
	// ProviderNone is a single node: an in-process membership.
	ProviderNone = "none"
	// ProviderStatic is a fixed list of peers, each polled on its
	// membership endpoint (see staticProvider).
	ProviderStatic = "static"
	// ProviderEtcd registers every node under a lease in etcd.
	ProviderEtcd = "etcd"
	// ProviderKubernetes labels this node's pod and watches the pods of
	// the cluster through the Kubernetes API.
	ProviderKubernetes = "kubernetes"
)

// Config says how a node joins its cluster.
type Config struct {
	// Name is the cluster's name; nodes with the same name form one cluster.
	Name string
	// Provider is one of the Provider names; empty picks none without
	// peers and static with them.
	Provider string
	// Host is the address other nodes reach this node's actor endpoint at
	// (advertised); Bind is the address that endpoint listens on (default:
	// Host). Port 0 picks a free port.
	Host string
	Bind string
	Port int
	// RequestTimeout bounds one grain request.
	RequestTimeout time.Duration
	// Peers lists the membership endpoints (host:port) of every node,
	// this one included, for the static provider.
	Peers []string
	// ManageAddr is where this node answers membership checks with the
	// static provider (host:port).
	ManageAddr string
	// EtcdEndpoints are the etcd servers of the etcd provider.
	EtcdEndpoints []string
	// EtcdPrefix starts every key this cluster writes in etcd; default
	// "/vitrine". Nodes register under PREFIX/NAME/.
	EtcdPrefix string
	// TLS, when set, protects every connection between nodes with mutual
	// TLS (see TLSFiles).
	TLS *TLSFiles
	// JoinTimeout bounds the wait for this node to appear in the
	// membership.
	JoinTimeout time.Duration
	// Settle is how long a leaving node keeps serving its grains after
	// it left the membership, so that every other node has seen it go
	// before they stop answering. Default: per provider.
	Settle time.Duration
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Name == "" {
		c.Name = "vitrine"
	}
	if c.Provider == "" {
		c.Provider = ProviderNone
		if len(c.Peers) > 0 {
			c.Provider = ProviderStatic
		}
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Bind == "" {
		c.Bind = c.Host
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 60 * time.Second
	}
	if c.EtcdPrefix == "" {
		c.EtcdPrefix = "/vitrine"
	}
	if c.Settle <= 0 {
		switch c.Provider {
		case ProviderStatic:
			c.Settle = staticRefresh + time.Second // every peer polls once more
		case ProviderNone:
			c.Settle = time.Millisecond
		default:
			c.Settle = time.Second // watches deliver in milliseconds
		}
	}
}

// Validate checks the provider's own settings.
func (c *Config) Validate() error {
	switch c.Provider {
	case ProviderNone:
		if len(c.Peers) > 0 {
			return errors.New("peers are set but the provider is none")
		}
	case ProviderStatic:
		if len(c.Peers) == 0 {
			return errors.New("the static provider needs the peers' membership endpoints")
		}
		if _, _, err := net.SplitHostPort(c.ManageAddr); err != nil {
			return fmt.Errorf("membership endpoint %q: %w", c.ManageAddr, err)
		}
	case ProviderEtcd:
		if len(c.EtcdEndpoints) == 0 {
			return errors.New("the etcd provider needs etcd endpoints")
		}
	case ProviderKubernetes:
		if c.Port == 0 {
			return errors.New("the kubernetes provider needs a fixed port: it is published in the pod's labels")
		}
	default:
		return fmt.Errorf("unknown provider %q (expected none, static, etcd or kubernetes)", c.Provider)
	}
	return nil
}

// Node is a started cluster member.
type Node struct {
	System  *actor.ActorSystem
	Cluster *pcluster.Cluster
	cfg     Config
	log     *zap.Logger
	// provider is what membership came from; closeProvider releases what
	// protoactor's provider does not (a listener, a client).
	provider      pcluster.ClusterProvider
	closeProvider func()
	peers         *peers
	left          atomic.Bool
	stopOnce      sync.Once
}

// Start starts the actor system and joins the cluster as a member hosting
// kinds. It returns once this node is a member (with the Kubernetes
// provider, which lists only ready pods, at once: the pod becomes ready
// after Start).
func Start(cfg Config, log *zap.Logger, kinds ...*pcluster.Kind) (*Node, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Name, err)
	}
	port, err := pickPort(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Port = port
	system := actor.NewActorSystem(actor.WithLoggerFactory(slogFactory(log.Named("actors"))))
	n := &Node{System: system, cfg: cfg, log: log}
	remoteOpts := []remote.ConfigOption{
		// A node that does not answer is declared gone after one failed
		// connection attempt, not five (2 s apart each in this version).
		func(rc *remote.Config) { rc.MaxRetryCount = 1 },
	}
	if cfg.Host != cfg.Bind {
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(net.JoinHostPort(cfg.Host, strconv.Itoa(port))))
	}
	if cfg.TLS != nil {
		creds, err := cfg.TLS.credentials()
		if err != nil {
			return nil, err
		}
		remoteOpts = append(remoteOpts, creds...)
	}
	n.provider, n.closeProvider, err = newProvider(cfg, system, log)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.Name, err)
	}
	conf := pcluster.Configure(cfg.Name, n.provider, disthash.New(), remote.Configure(cfg.Bind, port, remoteOpts...),
		pcluster.WithKinds(kinds...), pcluster.WithRequestTimeout(cfg.RequestTimeout))
	n.Cluster = pcluster.New(system, conf)
	n.peers = watchPeers(n.Cluster)
	if err := startMember(n.Cluster); err != nil {
		n.closeProvider()
		n.peers.stop()
		return nil, fmt.Errorf("start cluster member %s:%d: %w", cfg.Bind, port, err)
	}
	if cfg.Provider == ProviderKubernetes {
		return n, nil
	}
	// Do not serve before this node sees itself in the membership: until
	// then no grain can be placed.
	deadline := time.Now().Add(cfg.JoinTimeout)
	for !n.IsMember() {
		if time.Now().After(deadline) {
			n.Stop()
			return nil, fmt.Errorf("join cluster %s: not a member after %s (provider %s)", cfg.Name, cfg.JoinTimeout, cfg.Provider)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, nil
}

// pickPort returns the port of the actor endpoint. When the advertised
// address differs from the bound one, protoactor needs the port before it
// listens: a free one is picked on the bind address.
func pickPort(cfg Config) (int, error) {
	if cfg.Port != 0 || cfg.Host == cfg.Bind {
		return cfg.Port, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Bind, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a port on %s: %w", cfg.Bind, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("pick a port on %s: %w", cfg.Bind, err)
	}
	return port, nil
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

// Address is this node's actor endpoint as the other nodes reach it.
func (n *Node) Address() string { return n.System.Address() }

// IsMember reports whether this node is in its own view of the membership
// (members are matched by address: providers name members in their own
// ways).
func (n *Node) IsMember() bool {
	if n.fenced() {
		return false
	}
	addr := n.System.Address()
	for _, m := range n.Cluster.MemberList.Members().Members() {
		if m.Address() == addr {
			return true
		}
	}
	return false
}

// fenced reports whether the membership fenced this node off (see
// staticProvider.fenceIfSmaller).
func (n *Node) fenced() bool {
	sp, ok := n.provider.(*staticProvider)
	return ok && sp.fenced.Load()
}

// Members returns the addresses of the members hosting kind.
func (n *Node) Members(kind string) []string {
	var out []string
	for _, m := range n.Cluster.MemberList.Members().Members() {
		for _, k := range m.Kinds {
			if k == kind {
				out = append(out, m.Address())
				break
			}
		}
	}
	return out
}

// Leave takes this node out of the cluster gracefully: it leaves the
// membership first, keeps answering for Settle so that every other node
// has stopped sending to it, then passivates its grains (they activate
// again on another node at their next request) and stops. ctx bounds the
// wait.
func (n *Node) Leave(ctx context.Context) {
	if n.left.Swap(true) {
		return
	}
	n.log.Info("leaving the cluster", zap.String("provider", n.cfg.Provider), zap.Duration("settle", n.cfg.Settle))
	if err := n.provider.Shutdown(true); err != nil {
		n.log.Warn("leave the membership", zap.Error(err))
	}
	select {
	case <-time.After(n.cfg.Settle):
	case <-ctx.Done():
	}
	n.Stop()
}

// Stop passivates this node's grains and stops the actor system without
// waiting for the other nodes to see it go (Leave does).
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		n.left.Store(true)
		_ = n.provider.Shutdown(true) // idempotent in every provider
		// Poisons every grain and waits for them; then nothing local answers.
		n.Cluster.IdentityLookup.Shutdown()
		// Let the last replies leave before the connections close.
		time.Sleep(100 * time.Millisecond)
		n.peers.stop()
		n.Cluster.Shutdown(false)
		n.closeProvider()
	})
}

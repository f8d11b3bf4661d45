package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
)

// Errors of Request. Both mean the grain's node is gone or going; they
// differ in what the caller may do next.
var (
	// ErrUnreachable: the message was not delivered to any grain, so it
	// is safe to send again once the membership has changed.
	ErrUnreachable = errors.New("the node hosting the grain is unreachable")
	// ErrInDoubt: the node went away (or did not answer in time) while
	// the message was in flight; it may or may not have been applied.
	ErrInDoubt = errors.New("the node hosting the grain went away during the request")
	// ErrMoved is an ErrUnreachable whose node is alive: the grain had
	// stopped (passivated) or its product moved to another node, and a
	// second request activates it where it belongs now.
	ErrMoved = fmt.Errorf("%w: the grain had stopped or moved", ErrUnreachable)
)

const (
	// probeAfter is how long a request waits for an answer before it
	// checks that the grain's node still accepts connections, and then
	// how often it checks again.
	probeAfter = 300 * time.Millisecond
	// probeTimeout bounds one such check: a node that does not accept a
	// TCP connection within it is taken as gone.
	probeTimeout = 300 * time.Millisecond
	// probeFresh is how long a check's result is reused.
	probeFresh = 100 * time.Millisecond
)

// Request sends msg to the grain identity of kind and waits up to timeout
// for its answer. It never waits on a node known to be gone: a request
// whose grain lives on a node that died or left fails at once with
// ErrUnreachable (not delivered) or, when the node went during the
// request, with ErrInDoubt. A node is known gone when its connection
// breaks, when it leaves the membership, or when it refuses connections
// while a request waits on it.
func (n *Node) Request(ctx context.Context, identity, kind string, msg any, timeout time.Duration) (any, error) {
	if n.fenced() {
		return nil, fmt.Errorf("%w: this node is fenced off the membership until it restarts", ErrUnreachable)
	}
	owner := n.peers.owner(identity, kind)
	if owner == "" {
		return nil, fmt.Errorf("%w: no member hosts %s grains", ErrUnreachable, kind)
	}
	pid, _ := n.Cluster.PidCache.Get(identity, kind)
	if pid == nil {
		if err := n.reachable(owner); err != nil {
			return nil, err
		}
		// Activation asks the owner's placement actor, which protoactor
		// waits 5 s for: wait on it like on a request.
		res, err := n.await(ctx, owner, func() (any, error) {
			p := n.Cluster.Get(identity, kind)
			if p == nil {
				return nil, fmt.Errorf("%w: no activation of %s/%s from %s", ErrUnreachable, kind, identity, owner)
			}
			return p, nil
		})
		if err != nil {
			return nil, err
		}
		pid = res.(*actor.PID)
		n.Cluster.PidCache.Set(identity, kind, pid)
	} else if err := n.reachable(pid.Address); err != nil {
		n.Cluster.PidCache.Remove(identity, kind)
		return nil, err
	}
	connected, epoch := n.peers.connection(pid.Address)
	res, err := n.await(ctx, pid.Address, func() (any, error) {
		return n.System.Root.RequestFuture(pid, msg, timeout).Result()
	})
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, ErrInDoubt) && pid.Address != n.System.Address() && !connected && n.peers.sameConnection(pid.Address, epoch):
		// No connection to the node was up when the message was sent,
		// and none came up since: the message never left this node.
		n.Cluster.PidCache.Remove(identity, kind)
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	case errors.Is(err, actor.ErrDeadLetter) || errors.Is(err, remote.ErrDeadLetter):
		// The grain had stopped (passivated, or moved to another node):
		// nothing processed the message.
		n.Cluster.PidCache.Remove(identity, kind)
		return nil, fmt.Errorf("%w: %s/%s", ErrMoved, kind, identity)
	case errors.Is(err, actor.ErrTimeout) || errors.Is(err, remote.ErrTimeout):
		n.Cluster.PidCache.Remove(identity, kind)
		return nil, fmt.Errorf("%w: no answer from %s/%s within %s", ErrInDoubt, kind, identity, timeout)
	default:
		n.Cluster.PidCache.Remove(identity, kind)
		return nil, err
	}
}

// Owns reports whether this node is where the cluster places identity of
// kind now, in its own view of the membership.
func (n *Node) Owns(identity, kind string) bool {
	return !n.fenced() && n.peers.owner(identity, kind) == n.System.Address()
}

// reachable fails with ErrUnreachable when addr is known gone and still
// refuses connections.
func (n *Node) reachable(addr string) error {
	if addr == n.System.Address() || !n.peers.isSuspect(addr) {
		return nil
	}
	if n.peers.probe(addr) {
		return nil
	}
	return fmt.Errorf("%w: %s is down", ErrUnreachable, addr)
}

// await runs call and waits for its result, unless addr goes away first:
// then it returns ErrInDoubt at once (call's goroutine ends by itself
// within call's own timeout).
func (n *Node) await(ctx context.Context, addr string, call func() (any, error)) (any, error) {
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	gone := n.peers.watch(addr)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	local := addr == n.System.Address()
	probe := time.NewTimer(probeAfter)
	defer probe.Stop()
	for {
		select {
		case r := <-done:
			return r.v, r.err
		case <-gone:
			return nil, fmt.Errorf("%w: %s left or lost its connection", ErrInDoubt, addr)
		case <-probe.C:
			if !local && !n.peers.probe(addr) {
				n.peers.down(addr)
				return nil, fmt.Errorf("%w: %s refuses connections", ErrInDoubt, addr)
			}
			probe.Reset(probeAfter)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrInDoubt, ctx.Err())
		}
	}
}

// peers follows the membership and the connections to other nodes: which
// node owns an identity, and which nodes are known to be gone.
type peers struct {
	system *actor.ActorSystem
	subs   []*eventstream.Subscription

	mu      sync.Mutex
	rdv     *pcluster.Rendezvous
	members map[string]bool          // addresses of current members
	gone    map[string]chan struct{} // closed when the address goes down
	suspect map[string]bool          // members whose connection broke
	probed  map[string]probeResult
	// conns are this node's outgoing connections: up or not, and how many
	// times each came up.
	conns map[string]connState
}

type connState struct {
	up    bool
	epoch int
}

type probeResult struct {
	at time.Time
	ok bool
}

func watchPeers(c *pcluster.Cluster) *peers {
	p := &peers{
		system: c.ActorSystem, rdv: pcluster.NewRendezvous(), members: map[string]bool{},
		gone: map[string]chan struct{}{}, suspect: map[string]bool{}, probed: map[string]probeResult{},
		conns: map[string]connState{},
	}
	es := c.ActorSystem.EventStream
	p.subs = append(p.subs,
		es.Subscribe(func(evt any) {
			switch e := evt.(type) {
			case *pcluster.ClusterTopology:
				p.topology(e)
			case *remote.EndpointTerminatedEvent:
				p.down(e.Address)
			case *remote.EndpointConnectedEvent:
				p.mu.Lock()
				delete(p.suspect, e.Address)
				p.conns[e.Address] = connState{up: true, epoch: p.conns[e.Address].epoch + 1}
				p.mu.Unlock()
			}
		}))
	return p
}

func (p *peers) stop() {
	for _, s := range p.subs {
		p.system.EventStream.Unsubscribe(s)
	}
	p.subs = nil
}

func (p *peers) topology(t *pcluster.ClusterTopology) {
	rdv := pcluster.NewRendezvous()
	rdv.UpdateMembers(t.Members)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rdv = rdv
	p.members = map[string]bool{}
	for _, m := range t.Members {
		p.members[m.Address()] = true
	}
	for _, m := range t.Left {
		p.closeLocked(m.Address())
		delete(p.suspect, m.Address())
	}
	for _, m := range t.Joined {
		delete(p.suspect, m.Address())
		delete(p.probed, m.Address())
	}
}

// owner is the address of the member that places identity.
func (p *peers) owner(identity, kind string) string {
	p.mu.Lock()
	rdv := p.rdv
	p.mu.Unlock()
	return rdv.GetByClusterIdentity(pcluster.NewClusterIdentity(identity, kind))
}

// watch returns a channel closed when addr is next known to be down.
func (p *peers) watch(addr string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.gone[addr]
	if !ok {
		ch = make(chan struct{})
		p.gone[addr] = ch
	}
	return ch
}

// down records that addr's connection broke: requests waiting on it end,
// and new ones are not sent while it refuses connections.
func (p *peers) down(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked(addr)
	c := p.conns[addr]
	p.conns[addr] = connState{epoch: c.epoch}
	if p.members[addr] {
		p.suspect[addr] = true
	}
	p.probed[addr] = probeResult{at: time.Now(), ok: false}
}

func (p *peers) closeLocked(addr string) {
	if ch, ok := p.gone[addr]; ok {
		close(ch)
		delete(p.gone, addr)
	}
}

// connection returns whether this node's connection to addr is up, and
// how many times it came up.
func (p *peers) connection(addr string) (up bool, epoch int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conns[addr]
	return c.up, c.epoch
}

// sameConnection reports that no connection to addr came up since epoch.
func (p *peers) sameConnection(addr string, epoch int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[addr].epoch == epoch
}

func (p *peers) isSuspect(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.suspect[addr]
}

// probe reports whether addr accepts a TCP connection; a recent answer is
// reused. A node that accepts again is no longer suspect.
func (p *peers) probe(addr string) bool {
	p.mu.Lock()
	r, ok := p.probed[addr]
	p.mu.Unlock()
	if ok && time.Since(r.at) < probeFresh {
		return r.ok
	}
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err == nil {
		_ = conn.Close() // only probed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probed[addr] = probeResult{at: time.Now(), ok: err == nil}
	if err == nil {
		delete(p.suspect, addr)
	}
	return err == nil
}

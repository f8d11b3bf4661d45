package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"
)

// staticRefresh is how often the static provider polls every peer.
const staticRefresh = 2 * time.Second

// staticMember is what a node of the static provider answers at
// GET /_health: the member it is.
type staticMember struct {
	Cluster string   `json:"cluster"`
	ID      string   `json:"id"`
	Host    string   `json:"host"`
	Port    int32    `json:"port"`
	Kinds   []string `json:"kinds"`
	// Members is how many members the answering node sees (0 from a
	// node of an earlier release).
	Members int `json:"members,omitempty"`
}

// staticProvider is membership by a fixed list of peers, in the manner of
// protoactor's automanaged provider (which listens on every interface and
// brings in an old web framework): each node answers GET /_health on its
// membership endpoint with the member it is, and every staticRefresh asks
// every peer, publishing as the cluster's members those that answered
// with the cluster's name. A node that stops answering leaves the
// membership at the next poll. Each poll says who asks (memberHeader): a
// node asked by a member it does not know yet (one that just started, or
// restarted) polls at once, so the views agree within a round trip rather
// than a refresh period, and a product's grain has one place sooner.
type staticProvider struct {
	name     string
	peers    []string
	ln       net.Listener
	system   *actor.ActorSystem
	client   *http.Client
	srv      *http.Server
	stop     chan struct{}
	stopOnce sync.Once
	polling  sync.WaitGroup
	self     string        // this node's member id, sent with each poll
	kick     chan struct{} // a poll now, please (room for one)
	mu       sync.Mutex
	known    map[string]bool // the member ids of the last poll
	// last is each peer's last answer, and missed whether its last poll
	// went unanswered, by peer address (the poll loop's alone).
	last   map[string]*staticMember
	missed map[string]bool
	log    *zap.Logger
	// fenced: this node was dropped from the other members' views (or
	// dropped them) while cut off from them, and is the smaller side;
	// protoactor never admits a member again under the identity it left
	// with, so the views cannot agree until this process restarts.
	fenced atomic.Bool
}

// memberHeader names the member that polls.
const memberHeader = "X-Vitrine-Member"

// newStatic listens on cfg.ManageAddr for the membership checks.
func newStatic(cfg Config, system *actor.ActorSystem, log *zap.Logger) (*staticProvider, func(), error) {
	ln, err := net.Listen("tcp", cfg.ManageAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("membership endpoint: listen on %s: %w", cfg.ManageAddr, err)
	}
	p := &staticProvider{name: cfg.Name, peers: cfg.Peers, ln: ln, system: system, stop: make(chan struct{}),
		client: &http.Client{Timeout: staticRefresh}, self: system.ID, kick: make(chan struct{}, 1), known: map[string]bool{}, log: log,
		last: map[string]*staticMember{}, missed: map[string]bool{}}
	return p, func() { _ = p.Shutdown(false) }, nil
}

// StartMember serves this node's membership endpoint and starts polling.
func (p *staticProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := p.system.GetHostPort()
	if err != nil {
		return err
	}
	self := staticMember{Cluster: p.name, ID: p.system.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds()} // #nosec G115 -- a TCP port fits
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_health", func(w http.ResponseWriter, r *http.Request) {
		answer := self
		answer.Members = c.MemberList.Length()
		body, err := json.Marshal(answer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		if id := r.Header.Get(memberHeader); id != "" && !p.knows(id) {
			select {
			case p.kick <- struct{}{}:
			default: // a poll is due already
			}
		}
	})
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(p.ln) }()
	p.poll(c)
	return nil
}

// StartClient polls the peers without being a member.
func (p *staticProvider) StartClient(c *pcluster.Cluster) error {
	p.poll(c)
	return nil
}

// Shutdown stops answering (the peers drop this node at their next poll)
// and stops polling. It may be called more than once.
func (p *staticProvider) Shutdown(bool) error {
	p.stopOnce.Do(func() {
		close(p.stop)
		if p.srv != nil {
			_ = p.srv.Close()
		}
		_ = p.ln.Close()
	})
	p.polling.Wait()
	return nil
}

func (p *staticProvider) poll(c *pcluster.Cluster) {
	p.polling.Add(1)
	go func() {
		defer p.polling.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-p.stop
			cancel()
		}()
		for {
			if members, answers, ok := p.check(ctx); ok {
				p.remember(members)
				c.MemberList.UpdateClusterTopology(members)
				p.fenceIfSmaller(c, answers)
			}
			select {
			case <-p.stop:
				return
			case <-p.kick:
			case <-time.After(staticRefresh):
			}
		}
	}()
}

// knows reports whether id was a member at the last poll.
func (p *staticProvider) knows(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known[id]
}

func (p *staticProvider) remember(members []*pcluster.Member) {
	known := make(map[string]bool, len(members))
	for _, m := range members {
		known[m.Id] = true
	}
	p.mu.Lock()
	p.known = known
	p.mu.Unlock()
}

// check asks every peer at once; ok is false when none answered (the
// membership is then left as it was, as a partition of this node alone
// should not empty it). A member that leaves one poll unanswered (a slow
// answer, lost packets) stays for that poll: it is dropped at the second
// in a row, or at once when its port refuses the connection (its process
// is gone, or left), since protoactor never admits a dropped member again
// under its identity.
func (p *staticProvider) check(ctx context.Context) (members []*pcluster.Member, answers []*staticMember, ok bool) {
	type reply struct {
		m       *staticMember
		refused bool
	}
	found := make([]reply, len(p.peers))
	var wg sync.WaitGroup
	for i, peer := range p.peers {
		wg.Go(func() {
			m, refused := p.ask(ctx, peer)
			found[i] = reply{m, refused}
		})
	}
	wg.Wait()
	for i, r := range found {
		peer, m := p.peers[i], r.m
		switch {
		case m != nil:
			ok = true
			p.last[peer], p.missed[peer] = m, false
		case !r.refused && !p.missed[peer] && p.last[peer] != nil:
			p.missed[peer] = true
			m = p.last[peer]
		default:
			delete(p.last, peer)
			continue
		}
		if m.Cluster == p.name {
			members = append(members, &pcluster.Member{Id: m.ID, Host: m.Host, Port: m.Port, Kinds: m.Kinds})
			answers = append(answers, m)
		}
	}
	return members, answers, ok
}

// fenceIfSmaller fences this node when a peer it dropped answers again
// under the same identity (a partition between the nodes healed):
// protoactor blocks a member that left for good, on both sides, so the
// views would disagree from then on, each side placing every product of
// the other on itself. The side that sees fewer members (on a tie, the
// one with the smaller id) yields: it stops hosting and sending to grains
// and reports itself out of the membership (readiness 503) until it is
// restarted, when it joins under a new identity.
func (p *staticProvider) fenceIfSmaller(c *pcluster.Cluster, answers []*staticMember) {
	if p.fenced.Load() {
		return
	}
	blocked := c.GetBlockedMembers()
	view := c.MemberList.Length()
	for _, m := range answers {
		if m.ID == p.self || !blocked.Contains(m.ID) || m.Members == 0 {
			continue
		}
		if m.Members > view || m.Members == view && m.ID > p.self {
			p.fenced.Store(true)
			p.log.Error("this node was cut off from the other members and they dropped it (or it dropped them): it stops serving grains and reports not ready until it is restarted",
				zap.String("member", p.self), zap.Int("members_seen", view), zap.String("peer", m.ID), zap.Int("peer_members_seen", m.Members))
			return
		}
	}
}

// ask returns the member a peer says it is, or nil; refused when its
// port refused the connection.
func (p *staticProvider) ask(ctx context.Context, peer string) (m *staticMember, refused bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+peer+"/_health", http.NoBody)
	if err != nil {
		return nil, false
	}
	req.Header.Set(memberHeader, p.self)
	res, err := p.client.Do(req) // #nosec G704 -- the peers are the operator's VITRINE_CLUSTER_PEERS
	if err != nil {
		return nil, errors.Is(err, syscall.ECONNREFUSED)
	}
	defer res.Body.Close()
	var answer staticMember
	if res.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&answer) != nil || answer.ID == "" {
		return nil, false
	}
	return &answer, false
}

package cluster

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// echoGrain answers with its identity and the node it lives on.
type echoGrain struct{ identity, node string }

func (e *echoGrain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *pcluster.ClusterInit:
		e.identity = m.Identity.Identity
	case *actorspb.ProductCommand:
		c.Respond(&actorspb.ProductReply{Etag: e.identity + "@" + e.node})
	}
}

// TestGrainsAcrossNodes: a node that hosts no grains reaches one hosted by
// another node, the messages crossing over the remote endpoint.
func TestGrainsAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two cluster nodes (seconds)")
	}
	pa, pb := freePort(t), freePort(t)
	peers := []string{"127.0.0.1:" + strconv.Itoa(pa), "127.0.0.1:" + strconv.Itoa(pb)}
	kind := pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echoGrain{node: "a"} }))
	a, err := Start(Config{Peers: peers, ManageAddr: peers[0]}, zap.NewNop(), kind)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := Start(Config{Peers: peers, ManageAddr: peers[1]}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()

	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := b.Cluster.Request("p-1", "echo", &actorspb.ProductCommand{}, pcluster.WithTimeout(2*time.Second))
		if err == nil {
			if r, ok := res.(*actorspb.ProductReply); !ok || r.Etag != "p-1@a" {
				t.Fatalf("reply %v", res)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b never reached the grain on node a: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

//go:build integration

package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
)

// TestEtcdMembership: nodes find each other through etcd, with no list of
// peers; a node that leaves is gone from the others' membership at once.
func TestEtcdMembership(t *testing.T) {
	endpoints := os.Getenv("VITRINE_ETCD_ENDPOINTS")
	if endpoints == "" {
		t.Fatal(`VITRINE_ETCD_ENDPOINTS is not set: run eval "$(scripts/services up)" first (make test does)`)
	}
	cfg := Config{Name: fmt.Sprintf("t-%x", rand.Uint64()), Provider: ProviderEtcd, EtcdEndpoints: strings.Split(endpoints, ",")}
	kind := func(node string) *pcluster.Kind {
		return pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echoGrain{node: node} }))
	}
	a, err := Start(cfg, zap.NewNop(), kind("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := Start(cfg, zap.NewNop(), kind("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()

	waitMembers := func(n *Node, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(n.Members("echo")) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %v, want %d members", n.Address(), n.Members("echo"), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitMembers(a, 2)
	waitMembers(b, 2)
	// Grains of both nodes answer from either node.
	seen := map[string]bool{}
	for i := 0; i < 40; i++ {
		res, err := b.Request(context.Background(), fmt.Sprintf("p-%d", i), "echo", &actorspb.ProductCommand{}, 2*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		etag := res.(*actorspb.ProductReply).Etag
		seen[etag[strings.Index(etag, "@")+1:]] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("grains placed on %v, want both nodes", seen)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.Leave(ctx)
	waitMembers(b, 1)
	t.Logf("a left; b saw it %s after the leave began", time.Since(start))
	for i := 0; i < 40; i++ {
		res, err := b.Request(context.Background(), fmt.Sprintf("p-%d", i), "echo", &actorspb.ProductCommand{}, 2*time.Second)
		if err != nil {
			t.Fatalf("request %d after a left: %v", i, err)
		}
		if etag := res.(*actorspb.ProductReply).Etag; !strings.HasSuffix(etag, "@b") {
			t.Fatalf("request %d answered by %s after a left", i, etag)
		}
	}
}

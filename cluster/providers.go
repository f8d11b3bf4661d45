package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/labstack/echo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// staticRefresh is how often the static provider polls every peer.
const staticRefresh = 2 * time.Second

// newProvider builds the membership provider cfg names, and a function
// that releases what the provider's own Shutdown leaves open.
func newProvider(cfg Config, system *actor.ActorSystem, log *zap.Logger) (pcluster.ClusterProvider, func(), error) {
	switch cfg.Provider {
	case ProviderStatic:
		return newStatic(cfg, system)
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
		return test.NewTestProvider(test.NewInMemAgent()), func() {}, nil
	}
}

// newStatic is protoactor's automanaged provider with its membership
// endpoint on cfg.ManageAddr. The provider itself always listens on
// 0.0.0.0:PORT; its testing constructor takes a ready HTTP server
// instead, which is given a listener bound to the configured address and
// the same /_health answer the provider would serve.
func newStatic(cfg Config, system *actor.ActorSystem) (pcluster.ClusterProvider, func(), error) {
	_, portText, _ := net.SplitHostPort(cfg.ManageAddr)
	var port int
	if _, err := fmt.Sscan(portText, &port); err != nil {
		return nil, nil, fmt.Errorf("membership endpoint %q: bad port", cfg.ManageAddr)
	}
	ln, err := net.Listen("tcp", cfg.ManageAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("membership endpoint: listen on %s: %w", cfg.ManageAddr, err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Listener = ln
	e.Server.ReadHeaderTimeout = 5 * time.Second
	e.GET("/_health", func(ctx echo.Context) error {
		c := pcluster.GetCluster(system)
		host, memberPort, err := system.GetHostPort()
		if err != nil {
			return ctx.NoContent(http.StatusServiceUnavailable)
		}
		return ctx.JSON(http.StatusOK, automanaged.NewNode(cfg.Name, system.ID, host, memberPort, port, c.GetClusterKinds()))
	})
	p := automanaged.NewWithTesting(staticRefresh, port, e, cfg.Peers...)
	return p, func() {
		if err := e.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			_ = ln.Close()
		}
	}, nil
}

package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vitrine-dev/vitrine/cluster"
)

// provider is the membership provider the configuration picks.
func (c *Config) provider() string {
	if c.ClusterProvider != "" {
		return c.ClusterProvider
	}
	if c.ClusterPeers != "" {
		return cluster.ProviderStatic
	}
	return cluster.ProviderNone
}

// clustered reports whether this node may share its products with others.
func (c *Config) clustered() bool { return c.provider() != cluster.ProviderNone }

// clusterConfig is the cluster package's view of the configuration.
func (c *Config) clusterConfig() cluster.Config {
	cc := cluster.Config{
		Name: c.ClusterName, Provider: c.provider(), Host: c.ClusterHost, Bind: c.ClusterBind, Port: c.ClusterPort,
		Peers: splitList(c.ClusterPeers), ManageAddr: c.manageAddr(), EtcdEndpoints: splitList(c.EtcdEndpoints),
	}
	if c.ClusterTLSCert != "" {
		cc.TLS = &cluster.TLSFiles{Cert: c.ClusterTLSCert, Key: c.ClusterTLSKey, CA: c.ClusterTLSCA}
	}
	return cc
}

func (c *Config) bindHost() string {
	if c.ClusterBind != "" {
		return c.ClusterBind
	}
	return c.ClusterHost
}

func (c *Config) manageAddr() string {
	if c.ClusterManageAddr != "" {
		return c.ClusterManageAddr
	}
	return net.JoinHostPort(c.bindHost(), strconv.Itoa(c.ManagePort))
}

// validateCluster checks the cluster settings and refuses a split brain: a
// node that shares its products with others must keep them, their files
// and their jobs where every node sees them.
func (c *Config) validateCluster() error {
	if c.ClusterPort > 65535 {
		return fmt.Errorf("VITRINE_CLUSTER_PORT (--cluster-port) must be at most 65535, got %d", c.ClusterPort)
	}
	p := c.provider()
	switch {
	case c.Role == "worker" && p == cluster.ProviderNone:
		return errors.New("VITRINE_ROLE=worker needs a cluster (VITRINE_CLUSTER_PROVIDER, or VITRINE_CLUSTER_PEERS): a worker joins the cluster of the API nodes, whose product actors record its results")
	case p == cluster.ProviderStatic && c.ClusterPeers == "":
		return errors.New("VITRINE_CLUSTER_PROVIDER=static needs VITRINE_CLUSTER_PEERS: the membership endpoints host:port of every node")
	case p == cluster.ProviderEtcd && c.EtcdEndpoints == "":
		return errors.New("VITRINE_CLUSTER_PROVIDER=etcd needs VITRINE_ETCD_ENDPOINTS: the etcd servers host:port")
	case p == cluster.ProviderKubernetes && c.ClusterPort == 0:
		return errors.New("VITRINE_CLUSTER_PROVIDER=kubernetes needs a fixed VITRINE_CLUSTER_PORT: the port is published in the pod's labels")
	case p != cluster.ProviderStatic && p != cluster.ProviderNone && c.ClusterPeers != "":
		return fmt.Errorf("VITRINE_CLUSTER_PEERS is set but VITRINE_CLUSTER_PROVIDER=%s finds the members; unset one of them", p)
	}
	if p == cluster.ProviderStatic {
		if _, port, err := net.SplitHostPort(c.manageAddr()); err != nil || port == "" {
			return fmt.Errorf("VITRINE_CLUSTER_MANAGE_ADDR (--cluster-manage-addr) must be host:port, got %q", c.manageAddr())
		}
	}
	tlsSet := 0
	for _, v := range []string{c.ClusterTLSCert, c.ClusterTLSKey, c.ClusterTLSCA} {
		if v != "" {
			tlsSet++
		}
	}
	if tlsSet != 0 && tlsSet != 3 {
		return errors.New("VITRINE_CLUSTER_TLS_CERT, VITRINE_CLUSTER_TLS_KEY and VITRINE_CLUSTER_TLS_CA must be set together")
	}
	if p == cluster.ProviderNone {
		return nil
	}
	if tlsSet == 0 && c.ClusterInsecure != "true" {
		open := []string{}
		if !loopback(c.bindHost()) {
			open = append(open, fmt.Sprintf("the actor endpoint binds %q (VITRINE_CLUSTER_BIND, or VITRINE_CLUSTER_HOST)", c.bindHost()))
		}
		if p == cluster.ProviderStatic {
			if host, _, _ := net.SplitHostPort(c.manageAddr()); !loopback(host) {
				open = append(open, fmt.Sprintf("the membership endpoint binds %q (VITRINE_CLUSTER_MANAGE_ADDR)", host))
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("refusing unencrypted traffic between nodes on a non-loopback address: %s; set VITRINE_CLUSTER_TLS_CERT, VITRINE_CLUSTER_TLS_KEY and VITRINE_CLUSTER_TLS_CA for mutual TLS, or VITRINE_CLUSTER_INSECURE=true on a network you trust",
				strings.Join(open, " and "))
		}
	}
	// A split brain: nodes that each keep products, files or jobs where
	// the others cannot see them.
	var local []string
	if c.PostgresURL == "" {
		local = append(local, fmt.Sprintf("products and jobs are in this node's SQLite file under %s: set VITRINE_POSTGRES_URL (the job queue is then PostgreSQL's, or Kafka's with VITRINE_KAFKA_BROKERS)", c.DataDir))
	}
	if c.S3Bucket == "" {
		local = append(local, fmt.Sprintf("image files are in this node's directory %s/files: set VITRINE_S3_ENDPOINT and VITRINE_S3_BUCKET", c.DataDir))
	}
	if len(local) > 0 {
		return fmt.Errorf("refusing to start a cluster node (VITRINE_CLUSTER_PROVIDER=%s) on node-local storage, which would split the cluster's data: %s",
			p, strings.Join(local, "; "))
	}
	return nil
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

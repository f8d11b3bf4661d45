package main

import (
	"io"
	"strings"
	"testing"
)

func TestClusterConfig(t *testing.T) {
	shared := map[string]string{
		"VITRINE_POSTGRES_URL": "postgres://u:p@127.0.0.1:1/db",
		"VITRINE_S3_ENDPOINT":  "http://127.0.0.1:2",
	}
	parse := func(env map[string]string) (Config, error) {
		return parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		// want lists what the error names; empty: the configuration is valid.
		want []string
	}{
		{"one node on the embedded default", nil, nil},
		{"etcd cluster on shared backends", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "127.0.0.1:22379"), nil},
		{"static peers on shared backends", with(shared, "VITRINE_CLUSTER_PEERS", "127.0.0.1:1,127.0.0.1:2"), nil},
		{"split brain: peers on SQLite and local files", map[string]string{"VITRINE_CLUSTER_PEERS": "127.0.0.1:1"},
			[]string{"VITRINE_POSTGRES_URL", "VITRINE_S3_ENDPOINT", "VITRINE_S3_BUCKET", "SQLite"}},
		{"split brain: etcd on local files", with(shared, "VITRINE_S3_ENDPOINT", "", "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "127.0.0.1:22379"),
			[]string{"VITRINE_S3_ENDPOINT"}},
		{"etcd without endpoints", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd"), []string{"VITRINE_ETCD_ENDPOINTS"}},
		{"kubernetes without a fixed port", with(shared, "VITRINE_CLUSTER_PROVIDER", "kubernetes", "VITRINE_CLUSTER_BIND", "0.0.0.0", "VITRINE_CLUSTER_INSECURE", "true"),
			[]string{"VITRINE_CLUSTER_PORT"}},
		{"a public bind without TLS", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "e:2379", "VITRINE_CLUSTER_BIND", "0.0.0.0"),
			[]string{"VITRINE_CLUSTER_TLS_CERT", "VITRINE_CLUSTER_INSECURE=true"}},
		{"the static membership endpoint on a public address without TLS", with(shared, "VITRINE_CLUSTER_PEERS", "10.0.0.1:6330", "VITRINE_CLUSTER_MANAGE_ADDR", "0.0.0.0:6330"),
			[]string{"VITRINE_CLUSTER_MANAGE_ADDR"}},
		{"a public bind, explicitly insecure", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "e:2379", "VITRINE_CLUSTER_BIND", "0.0.0.0", "VITRINE_CLUSTER_INSECURE", "true"), nil},
		{"a public bind with TLS", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "e:2379", "VITRINE_CLUSTER_BIND", "0.0.0.0",
			"VITRINE_CLUSTER_TLS_CERT", "c.pem", "VITRINE_CLUSTER_TLS_KEY", "k.pem", "VITRINE_CLUSTER_TLS_CA", "ca.pem"), nil},
		{"half of TLS", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "e:2379", "VITRINE_CLUSTER_TLS_CERT", "c.pem"),
			[]string{"VITRINE_CLUSTER_TLS_KEY"}},
		{"a worker without a cluster", with(shared, "VITRINE_ROLE", "worker"), []string{"VITRINE_CLUSTER_PROVIDER"}},
		{"peers with another provider", with(shared, "VITRINE_CLUSTER_PROVIDER", "etcd", "VITRINE_ETCD_ENDPOINTS", "e:2379", "VITRINE_CLUSTER_PEERS", "a:1"),
			[]string{"VITRINE_CLUSTER_PEERS"}},
		{"an unknown provider", with(shared, "VITRINE_CLUSTER_PROVIDER", "consul"), []string{"VITRINE_CLUSTER_PROVIDER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.env)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %s: %v", w, err)
				}
			}
		})
	}
}

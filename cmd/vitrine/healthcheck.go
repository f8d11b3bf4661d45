package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// healthcheck is the container image's HEALTHCHECK (the image has no curl):
// it asks the process in the same container whether it is healthy, and
// exits 0 if so, 1 with the reason if not.
//
// An API node (VITRINE_ROLE api or all) must answer GET /readyz with 200 on
// VITRINE_ADDR: it takes requests (not draining, its backends reachable).
// A worker node serves no API: it must serve /metrics on
// VITRINE_METRICS_ADDR and see at least one member hosting product grains
// (vitrine_cluster_members >= 1), since a worker records every result
// through the grains of the API nodes; a worker cut from the cluster is
// unhealthy.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("healthcheck takes no arguments, got %q", args)
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	role := getenv("VITRINE_ROLE")
	if role == "worker" {
		addr := getenv("VITRINE_METRICS_ADDR")
		if addr == "" {
			return errors.New("a worker (VITRINE_ROLE=worker) serves no API: set VITRINE_METRICS_ADDR (e.g. :9464) so that its health can be checked")
		}
		url := "http://" + localAddr(addr) + "/metrics"
		status, body, err := healthGet(ctx, url)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET %s: status %d", url, status)
		}
		members, ok := gaugeValue(body, "vitrine_cluster_members")
		if !ok {
			return fmt.Errorf("GET %s: no vitrine_cluster_members gauge", url)
		}
		if members < 1 {
			return fmt.Errorf("worker sees no API node in the cluster (vitrine_cluster_members %g)", members)
		}
		fmt.Fprintf(stdout, "healthy: worker, %g API node(s) in its view of the cluster\n", members)
		return nil
	}
	addr := getenv("VITRINE_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	url := "http://" + localAddr(addr) + "/readyz"
	status, body, err := healthGet(ctx, url)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", url, status, strings.SplitN(strings.TrimSpace(body), "\n", 2)[0])
	}
	fmt.Fprintf(stdout, "healthy: %s answers 200\n", url)
	return nil
}

// localAddr turns a listen address into one to dial in the same network
// namespace: an empty or unspecified host becomes 127.0.0.1.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func healthGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}

// gaugeValue finds an unlabelled sample of name in Prometheus text format.
func gaugeValue(text, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck: vitrine healthcheck, the image's HEALTHCHECK, passes on
// an API node whose /readyz answers 200 and on a worker that sees an API
// node, and fails with the reason otherwise.
func TestHealthcheck(t *testing.T) {
	ready, members := http.StatusOK, "1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(ready)
			_, _ = w.Write([]byte("draining\n"))
		case "/metrics":
			_, _ = w.Write([]byte("# HELP vitrine_cluster_members Members.\n# TYPE vitrine_cluster_members gauge\nvitrine_cluster_members " + members + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().String()[strings.LastIndex(srv.Listener.Addr().String(), ":"):]
	api := map[string]string{"VITRINE_ADDR": "0.0.0.0" + port}
	worker := map[string]string{"VITRINE_ROLE": "worker", "VITRINE_METRICS_ADDR": port}

	if out, _, err := runCLI(t, api, "healthcheck"); err != nil || !strings.HasPrefix(out, "healthy") {
		t.Errorf("api, /readyz 200: %v, %q", err, out)
	}
	if out, _, err := runCLI(t, worker, "healthcheck"); err != nil || !strings.Contains(out, "1 API node") {
		t.Errorf("worker, 1 member: %v, %q", err, out)
	}
	ready, members = http.StatusServiceUnavailable, "0"
	if _, _, err := runCLI(t, api, "healthcheck"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("api, /readyz 503: %v, want a failure naming 503", err)
	}
	if _, _, err := runCLI(t, worker, "healthcheck"); err == nil || !strings.Contains(err.Error(), "no API node") {
		t.Errorf("worker, 0 members: %v, want a failure", err)
	}
	if _, _, err := runCLI(t, map[string]string{"VITRINE_ROLE": "worker"}, "healthcheck"); err == nil || !strings.Contains(err.Error(), "VITRINE_METRICS_ADDR") {
		t.Errorf("worker without VITRINE_METRICS_ADDR: %v, want a failure naming it", err)
	}
	srv.Close()
	if _, _, err := runCLI(t, api, "healthcheck"); err == nil {
		t.Error("api, nothing listening: no failure")
	}
	if _, _, err := runCLI(t, nil, "healthcheck", "extra"); err == nil {
		t.Error("an argument: no failure")
	}
}

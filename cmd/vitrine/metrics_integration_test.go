//go:build integration

package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDashboardMetricsExist: every metric the Grafana dashboard
// (deploy/grafana/vitrine.json) queries is exported by a live vitrine on
// the real backends (Kafka included), once it has done some work.
func TestDashboardMetricsExist(t *testing.T) {
	app := startApp(t, t.TempDir(), with(backendEnv(t), "VITRINE_ENV", "production", "VITRINE_ADMIN_TOKEN", adminToken))
	_, key := app.makeKey("write", 0)
	p := app.doJSON("POST", "/products", `{"name":"Dashboard","price":"1","user_id":1}`, bearer(key)...).json(t)
	id, _ := p["id"].(string)
	app.do("GET", "/products/"+id, nil)
	jpeg, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	r := app.do("POST", "/products/"+id+"/images", bytes.NewReader(jpeg), append([]string{"Content-Type", "image/jpeg"}, bearer(key)...)...)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	app.waitImage(r.Header.Get("Location"), 2*time.Minute)
	fams := app.scrape()
	for _, name := range dashboardMetrics(t) {
		if _, ok := fams[name]; !ok {
			t.Errorf("the dashboard queries %s, which a live vitrine does not export", name)
		}
	}
}

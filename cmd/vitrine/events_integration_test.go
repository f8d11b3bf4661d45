//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEventsAcrossNodes: a subscriber on node A sees an upload to a product
// whose grain lives on node B reach ready (the events go through the
// PostgreSQL event log and its notifications, with no Redis), and resumes
// on A with Last-Event-ID after a disconnect.
func TestEventsAcrossNodes(t *testing.T) {
	c := newTestCluster(t, "VITRINE_REDIS_URL", "", "VITRINE_ENV", "development", "VITRINE_RATE_ANONYMOUS", "0", "VITRINE_RATE_ANONYMOUS_WRITES", "0")
	a, b := c.add(), c.add()
	deadline := time.Now().Add(30 * time.Second)
	for len(c.members()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster has %d members, want 2", len(c.members()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	post := func(url, contentType string, body []byte) map[string]any {
		t.Helper()
		res, err := http.Post(url, contentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
			t.Fatalf("POST %s: %d, the body does not decode: %v", url, res.StatusCode, err)
		}
		if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d %v", url, res.StatusCode, v)
		}
		return v
	}
	// A product whose grain is on B, made through A.
	var id string
	for i := 0; i < 50 && id == ""; i++ {
		p := post(a.url+"/products", "application/json", []byte(`{"name":"Across","price":"1","user_id":1}`))
		pid := p["id"].(string)
		if owners(c.members(), []string{pid})[pid] == b.actorAddr() {
			id = pid
		}
	}
	if id == "" {
		t.Fatal("no product of 50 has its grain on node B")
	}

	s := openSSE(t, a.url, id, "")
	photo, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	img := post(b.url+"/products/"+id+"/images", "image/jpeg", photo)
	ready, seen := s.expect("image.ready")
	if strings.Join(seen, ",") != "image.pending,image.processing,image.ready" {
		t.Errorf("node A saw %v, want pending, processing, ready", seen)
	}
	if ready.Data["image_id"] != img["id"] {
		t.Errorf("image.ready of %v, want %v", ready.Data["image_id"], img["id"])
	}
	last := ready.ID
	s.res.Body.Close()

	// While A's subscriber is away, B changes the product twice.
	for _, name := range []string{"Across 2", "Across 3"} {
		req, _ := http.NewRequest("PATCH", b.url+"/products/"+id, strings.NewReader(`{"name":"`+name+`"}`))
		req.Header.Set("Content-Type", "application/merge-patch+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("patch through B: %v %v", err, res)
		}
		res.Body.Close()
	}
	s = openSSE(t, a.url, id, last)
	for _, want := range []string{"Across 2", "Across 3"} {
		e := s.next()
		if d, _ := e.Data["data"].(map[string]any); e.Type != "product.updated" || d["name"] != want {
			t.Fatalf("resumed on A: %+v, want product.updated to %q", e, want)
		}
	}
}

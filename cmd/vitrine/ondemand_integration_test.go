//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// TestClusterRendersOnce: three nodes on PostgreSQL, Redis, Kafka, S3 and
// etcd; requests for one new width, sent at once to every node, make it
// once for the whole cluster (one libvips run, counted by the nodes'
// vitrine_renders_total), and all get the same file, streamed from S3
// with ETag, 304, ranges and 416; the image's delete removes them.
func TestClusterRendersOnce(t *testing.T) {
	c := newTestCluster(t, "VITRINE_METRICS", "public")
	for range 3 {
		c.add()
	}
	client := &http.Client{Timeout: time.Minute}
	do := func(method, url string, body []byte, header ...string) (int, http.Header, []byte) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			return 0, nil, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}
	n0 := c.nodes[0].url
	status, _, body := do("POST", n0+"/products", []byte(`{"name":"Rendered once","price":"1","user_id":1}`), "Content-Type", "application/json")
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	productID := jsonField(t, body, "id")
	photo, err := os.ReadFile(lampPhoto)
	if err != nil {
		t.Fatal(err)
	}
	status, header, body := do("POST", n0+"/products/"+productID+"/images", photo, "Content-Type", "image/jpeg")
	if status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", status, body)
	}
	location := header.Get("Location")
	imageID := jsonField(t, body, "id")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, _, body = do("GET", n0+location, nil)
		if jsonField(t, body, "status") == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("image not ready: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	made := func() int {
		sum := 0
		for _, n := range c.nodes {
			v := metricSeen(n.url, `vitrine_renders_total{outcome="made"}`)
			if v < 0 {
				t.Fatalf("node %d reports no vitrine_renders_total", n.idx)
			}
			sum += int(v)
		}
		return sum
	}
	for round, width := range []int{480, 800} {
		before := made()
		path := fmt.Sprintf("/media/products/%s/%s/w%d.webp", productID, imageID, width)
		var mu sync.Mutex
		var files [][]byte
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				status, header, body := do("GET", c.nodes[i%3].url+path, nil)
				mu.Lock()
				defer mu.Unlock()
				if status != http.StatusOK || header.Get("Content-Type") != "image/webp" {
					t.Errorf("round %d, node %d: %d %s", round, i%3, status, body)
					return
				}
				files = append(files, body)
			})
		}
		wg.Wait()
		for _, f := range files[1:] {
			if !bytes.Equal(f, files[0]) {
				t.Errorf("width %d: the nodes served different files", width)
				break
			}
		}
		if n := made() - before; n != 1 {
			t.Errorf("width %d asked 30 times at once on 3 nodes: %d libvips runs; want 1", width, n)
		}
		t.Logf("width %d: 30 requests on 3 nodes, %d files served, %d render made", width, len(files), made()-before)
	}
	// Streamed from S3 with the semantics of /media: ETag, 304, ranges, 416.
	path := fmt.Sprintf("%s/media/products/%s/%s/w480.webp", c.nodes[1].url, productID, imageID)
	status, header, full := do("GET", path, nil)
	if etag := header.Get("ETag"); status != http.StatusOK || etag == "" || header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("w480.webp from S3: %d %v", status, header)
	} else if status, _, _ := do("GET", path, nil, "If-None-Match", etag); status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", status)
	}
	if status, _, part := do("GET", path, nil, "Range", "bytes=0-9"); status != http.StatusPartialContent || !bytes.Equal(part, full[:min(10, len(full))]) {
		t.Errorf("Range: %d, %d bytes; want 206 and 10", status, len(part))
	}
	if status, _, _ := do("GET", path, nil, "Range", fmt.Sprintf("bytes=%d-", len(full)+10)); status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d, want 416", status)
	}
	// Deleted: the renders go with the image, from S3 too.
	if status, _, body := do("DELETE", n0+location, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	for _, n := range c.nodes {
		if status, _, _ := do("GET", n.url+fmt.Sprintf("/media/products/%s/%s/w480.webp", productID, imageID), nil); status != http.StatusNotFound {
			t.Errorf("node %d: a render of the deleted image answers %d, want 404", n.idx, status)
		}
	}
}

// jsonField is a string field of a JSON object.
func jsonField(t *testing.T, body []byte, name string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, body)
	}
	s, _ := v[name].(string)
	return s
}

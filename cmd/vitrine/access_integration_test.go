//go:build integration

package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// twoNodes starts two vitrine nodes of one cluster on the real backends.
func twoNodes(t *testing.T, env map[string]string) (a, b *testApp) {
	t.Helper()
	p1, p2 := freePort(t), freePort(t)
	_, m1, _ := strings.Cut(p1, ":")
	_, m2, _ := strings.Cut(p2, ":")
	peers := "127.0.0.1:" + m1 + ",127.0.0.1:" + m2
	a = startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_PEERS", peers, "VITRINE_CLUSTER_MANAGE_PORT", m1))
	b = startApp(t, t.TempDir(), with(env, "VITRINE_CLUSTER_PEERS", peers, "VITRINE_CLUSTER_MANAGE_PORT", m2))
	return a, b
}

// TestRevocationReachesEveryNode: a key revoked on one node is refused by
// the other within VITRINE_KEY_CACHE_TTL.
func TestRevocationReachesEveryNode(t *testing.T) {
	const ttl = 2 * time.Second
	env := with(backendEnv(t), "VITRINE_ENV", "production", "VITRINE_ADMIN_TOKEN", adminToken,
		"VITRINE_RATE_ANONYMOUS", "0", "VITRINE_RATE_ANONYMOUS_WRITES", "0", "VITRINE_RATE_KEY", "0", "VITRINE_KEY_CACHE_TTL", ttl.String())
	a, b := twoNodes(t, env)
	id, key := a.makeKey("write", 0)
	// b learns the key (and caches it).
	r := b.doJSON("POST", "/products", `{"name":"Before","price":"1","user_id":1}`, bearer(key)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("write on b with a new key: %d %s", r.Status, r.Body)
	}
	if r := a.do("DELETE", "/admin/keys/"+id, nil, bearer(adminToken)...); r.Status != http.StatusNoContent {
		t.Fatalf("revoke on a: %d %s", r.Status, r.Body)
	}
	revoked := time.Now()
	if r := a.doJSON("POST", "/products", `{"name":"After","price":"1","user_id":1}`, bearer(key)...); r.Status != http.StatusCreated && r.Status != http.StatusUnauthorized {
		t.Fatalf("write on a after revoking: %d", r.Status)
	}
	var refusedAfter time.Duration
	for {
		r := b.doJSON("POST", "/products", `{"name":"After","price":"1","user_id":1}`, bearer(key)...)
		if r.Status == http.StatusUnauthorized {
			refusedAfter = time.Since(revoked)
			break
		}
		if r.Status != http.StatusCreated {
			t.Fatalf("write on b: %d %s", r.Status, r.Body)
		}
		if time.Since(revoked) > ttl+2*time.Second {
			t.Fatalf("b still accepts the key %s after it was revoked (TTL %s)", time.Since(revoked), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("b refused the revoked key %s after the revocation (VITRINE_KEY_CACHE_TTL %s)", refusedAfter.Round(time.Millisecond), ttl)
}

// TestRateLimitSharedByNodes: two nodes count one client against one limit
// kept in Redis: what both allow together over a window stays within 10 %
// of the configured rate (its burst included).
func TestRateLimitSharedByNodes(t *testing.T) {
	const rate, window = 20, 4 * time.Second // 20/s with a burst of 20
	env := with(backendEnv(t), "VITRINE_ENV", "production", "VITRINE_ADMIN_TOKEN", adminToken,
		"VITRINE_RATE_ANONYMOUS", fmt.Sprintf("%d/s", rate), "VITRINE_RATE_KEY", "0")
	a, b := twoNodes(t, env)
	var allowed, refused atomic.Int64
	var badHeaders atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, node := range []*testApp{a, b} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < window {
					res, err := http.Get(node.base + "/healthz?x") // open: not limited
					if err == nil {
						res.Body.Close()
					}
					res, err = http.Get(node.base + "/products?limit=1")
					if err != nil {
						t.Error(err)
						return
					}
					res.Body.Close()
					switch res.StatusCode {
					case http.StatusOK:
						allowed.Add(1)
					case http.StatusTooManyRequests:
						refused.Add(1)
						if res.Header.Get("Retry-After") == "" {
							badHeaders.Add(1)
						}
					default:
						t.Errorf("status %d", res.StatusCode)
						return
					}
					if !rateHeader.MatchString(res.Header.Get("RateLimit")) || res.Header.Get("RateLimit-Policy") != fmt.Sprintf(`"anonymous";q=%d;w=1`, rate) {
						badHeaders.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	want := float64(rate) + float64(rate)*elapsed.Seconds() // the burst, then the rate
	got := float64(allowed.Load())
	t.Logf("two nodes, %s: %d allowed, %d refused; the shared limit allows %.0f", elapsed.Round(time.Millisecond), allowed.Load(), refused.Load(), want)
	if got < want*0.9 || got > want*1.1 {
		t.Fatalf("%d allowed over %s, want %.0f ± 10%% (two nodes counting apart would allow twice that)", allowed.Load(), elapsed, want)
	}
	if refused.Load() == 0 {
		t.Fatal("nothing was refused: the load did not reach the limit")
	}
	if n := badHeaders.Load(); n > 0 {
		t.Fatalf("%d answers lacked or garbled RateLimit, RateLimit-Policy or Retry-After", n)
	}
}

// TestIdempotencyAcrossNodes: a create retried on the other node replays
// the first answer; another body under the key is 422; concurrent retries
// on both nodes make one product.
func TestIdempotencyAcrossNodes(t *testing.T) {
	env := with(backendEnv(t), "VITRINE_ENV", "production", "VITRINE_ADMIN_TOKEN", adminToken,
		"VITRINE_RATE_ANONYMOUS", "0", "VITRINE_RATE_ANONYMOUS_WRITES", "0", "VITRINE_RATE_KEY", "0")
	a, b := twoNodes(t, env)
	_, key := a.makeKey("write", 0)
	h := func(idem string) []string { return append(bearer(key), "Idempotency-Key", idem) }
	body := `{"name":"Lamp","price":"10","user_id":3}`
	first := a.doJSON("POST", "/products", body, h("k-1")...)
	again := b.doJSON("POST", "/products", body, h("k-1")...)
	if first.Status != http.StatusCreated || again.Status != http.StatusCreated || string(first.Body) != string(again.Body) ||
		again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay on the other node: %d %s / %d %s", first.Status, first.Body, again.Status, again.Body)
	}
	expectProblem(t, b.doJSON("POST", "/products", `{"name":"Desk","price":"10","user_id":3}`, h("k-1")...), http.StatusUnprocessableEntity, "other body on b")

	// Both nodes at once: one creation, the rest replays or 409.
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	ids := map[string]bool{}
	for i := range 16 {
		node := a
		if i%2 == 1 {
			node = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := node.doJSON("POST", "/products", `{"name":"Race","price":"1","user_id":3}`, h("k-race")...)
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			if r.Status == http.StatusCreated {
				id, _ := r.json(t)["id"].(string)
				ids[id] = true
			}
		}()
	}
	wg.Wait()
	if len(ids) != 1 || statuses[http.StatusCreated]+statuses[http.StatusConflict] != 16 {
		t.Fatalf("16 concurrent creates with one key on two nodes: %v, ids %v; want one product", statuses, ids)
	}
	list := a.do("GET", "/products?user_id=3&q=race", nil).json(t)
	if items, _ := list["items"].([]any); len(items) != 1 {
		t.Fatalf("%d products named Race, want 1", len(items))
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog/access"
)

// adminToken is the bootstrap credential of the access tests.
const adminToken = "access-tests-admin-token"

// productionEnv is a production vitrine (writes need keys) with the admin
// token set and rate limits off (the rate tests turn them on).
func productionEnv(kv ...string) map[string]string {
	return with(map[string]string{"VITRINE_ENV": "production", "VITRINE_ADMIN_TOKEN": adminToken,
		"VITRINE_RATE_ANONYMOUS": "0", "VITRINE_RATE_ANONYMOUS_WRITES": "0", "VITRINE_RATE_KEY": "0", "VITRINE_RATE_AUTH_FAILURES": "0"}, kv...)
}

func bearer(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

// makeKey makes a key through the admin API; owner 0 means none.
func (a *testApp) makeKey(scope string, owner int64) (id, secret string) {
	a.t.Helper()
	body := fmt.Sprintf(`{"scopes":[%q],"name":"test %s"}`, scope, scope)
	if owner != 0 {
		body = fmt.Sprintf(`{"scopes":[%q],"owner":%d}`, scope, owner)
	}
	r := a.doJSON("POST", "/admin/keys", body, bearer(adminToken)...)
	if r.Status != http.StatusCreated {
		a.t.Fatalf("create %s key: %d %s", scope, r.Status, r.Body)
	}
	k := r.json(a.t)
	id, _ = k["id"].(string)
	secret, _ = k["key"].(string)
	if id == "" || !strings.HasPrefix(secret, "vtr_") {
		a.t.Fatalf("created key without id or secret: %s", r.Body)
	}
	return id, secret
}

// TestAccessMatrix sends every route as every kind of caller and checks the
// status each gets; then it checks that no key or token reached the logs.
func TestAccessMatrix(t *testing.T) {
	app, logs := startAppLogged(t, t.TempDir(), productionEnv())
	_, readKey := app.makeKey("read", 0)
	_, ownKey := app.makeKey("write", 7)
	_, otherKey := app.makeKey("write", 8)
	_, anyKey := app.makeKey("write", 0)
	_, adminKey := app.makeKey("admin", 0)
	revokedID, revokedKey := app.makeKey("admin", 0)
	if r := app.do("DELETE", "/admin/keys/"+revokedID, nil, bearer(adminToken)...); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	callers := []struct {
		name   string
		header []string
	}{
		{"no key", nil},
		{"read", bearer(readKey)},
		{"write, owner", bearer(ownKey)},
		{"write, other owner", bearer(otherKey)},
		{"write, any owner", bearer(anyKey)},
		{"admin", bearer(adminKey)},
		{"admin token", bearer(adminToken)},
		{"revoked", bearer(revokedKey)},
		{"garbage", bearer("not-a-key")},
	}
	jpeg, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	// fixture makes a product of user 7 with one image, as the admin.
	fixture := func() (productID, imageID string) {
		r := app.doJSON("POST", "/products", `{"name":"Lamp","price":"10","user_id":7}`, bearer(adminKey)...)
		if r.Status != http.StatusCreated {
			t.Fatalf("fixture product: %d %s", r.Status, r.Body)
		}
		productID, _ = r.json(t)["id"].(string)
		r = app.do("POST", "/products/"+productID+"/images", bytes.NewReader(jpeg), "Content-Type", "image/jpeg", "Authorization", "Bearer "+adminKey)
		if r.Status != http.StatusAccepted {
			t.Fatalf("fixture image: %d %s", r.Status, r.Body)
		}
		imageID, _ = r.json(t)["id"].(string)
		app.waitImage("/products/"+productID+"/images/"+imageID, time.Minute)
		return productID, imageID
	}
	pid, iid := fixture()
	img := app.do("GET", "/products/"+pid+"/images/"+iid, nil).json(t)
	variants, _ := img["variants"].([]any)
	if len(variants) == 0 {
		t.Fatalf("fixture image has no variants: %v", img)
	}
	mediaURL, _ := variants[0].(map[string]any)["url"].(string)

	// Statuses by caller, in the order of callers.
	type route struct {
		name   string
		send   func(header []string) response
		status [9]int
	}
	const (
		ok, created, accepted, gone = 200, 201, 202, 204
		unauth, forbidden, missing  = 401, 403, 404
	)
	unknown := "01937a4e-7b8c-7def-8a12-3456789abcde"
	routes := []route{
		{"GET /products", func(h []string) response { return app.do("GET", "/products", nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET /products/{id}", func(h []string) response { return app.do("GET", "/products/"+pid, nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, unauth, unauth}},
		{"HEAD /products/{id}", func(h []string) response { return app.do("HEAD", "/products/"+pid, nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET image", func(h []string) response { return app.do("GET", "/products/"+pid+"/images/"+iid, nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET /media", func(h []string) response { return app.do("GET", mediaURL, nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, ok, ok}},
		{"GET /healthz", func(h []string) response { return app.do("GET", "/healthz", nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, ok, ok}},
		{"POST /products (user 7)", func(h []string) response {
			return app.doJSON("POST", "/products", `{"name":"New","price":"1","user_id":7}`, h...)
		}, [9]int{unauth, forbidden, created, forbidden, created, created, created, unauth, unauth}},
		{"PATCH /products/{id}", func(h []string) response {
			return app.do("PATCH", "/products/"+pid, strings.NewReader(`{"description":"changed"}`), append([]string{"Content-Type", "application/merge-patch+json"}, h...)...)
		}, [9]int{unauth, forbidden, ok, forbidden, ok, ok, ok, unauth, unauth}},
		{"PUT /products/{id}", func(h []string) response {
			return app.do("PUT", "/products/"+pid, strings.NewReader(`{"name":"Lamp","price":"11","user_id":7}`), append([]string{"Content-Type", "application/json"}, h...)...)
		}, [9]int{unauth, forbidden, ok, forbidden, ok, ok, ok, unauth, unauth}},
		{"PUT giving the product to user 8", func(h []string) response {
			return app.do("PUT", "/products/"+pid, strings.NewReader(`{"name":"Lamp","price":"11","user_id":8}`), append([]string{"Content-Type", "application/json"}, h...)...)
		}, [9]int{unauth, forbidden, forbidden, forbidden, ok, ok, ok, unauth, unauth}},
		{"POST reprocess", func(h []string) response {
			return app.do("POST", "/products/"+pid+"/images/"+iid+"/reprocess", nil, h...)
		}, [9]int{unauth, forbidden, accepted, forbidden, accepted, accepted, accepted, unauth, unauth}},
		{"GET /products/{id}/images", func(h []string) response { return app.do("GET", "/products/"+pid+"/images", nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, unauth, unauth}},
		{"PATCH image", func(h []string) response {
			return app.do("PATCH", "/products/"+pid+"/images/"+iid, strings.NewReader(`{"alt":"A lamp"}`), append([]string{"Content-Type", "application/merge-patch+json"}, h...)...)
		}, [9]int{unauth, forbidden, ok, forbidden, ok, ok, ok, unauth, unauth}},
		{"PUT image order", func(h []string) response {
			return app.do("PUT", "/products/"+pid+"/images/order", strings.NewReader(`{"image_ids":["`+iid+`"]}`), append([]string{"Content-Type", "application/json"}, h...)...)
		}, [9]int{unauth, forbidden, ok, forbidden, ok, ok, ok, unauth, unauth}},
		{"DELETE an unknown image", func(h []string) response {
			return app.do("DELETE", "/products/"+pid+"/images/"+unknown, nil, h...)
		}, [9]int{unauth, forbidden, missing, forbidden, missing, missing, missing, unauth, unauth}},
		{"GET /readyz", func(h []string) response { return app.do("GET", "/readyz", nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, ok, ok}},
		{"GET /products/{id}/events", func(h []string) response { return app.do("GET", "/products/"+pid+"/events", nil, h...) },
			[9]int{ok, ok, ok, ok, ok, ok, ok, unauth, unauth}},
		{"POST image by URL (JSON)", func(h []string) response {
			return app.doJSON("POST", "/products/"+pid+"/images", `{"url":"https://images.example/lamp.jpg"}`, h...)
		}, [9]int{unauth, forbidden, accepted, forbidden, accepted, accepted, accepted, unauth, unauth}},
		{"POST /imports (NDJSON)", func(h []string) response {
			return app.do("POST", "/imports", strings.NewReader(`{"sku":"ACC-1","name":"Imported","price":"1","user_id":7}`+"\n"), append([]string{"Content-Type", "application/x-ndjson"}, h...)...)
		}, [9]int{unauth, forbidden, accepted, accepted, accepted, accepted, accepted, unauth, unauth}},
		{"GET /admin/webhooks/deliveries", func(h []string) response { return app.do("GET", "/admin/webhooks/deliveries", nil, h...) },
			[9]int{unauth, forbidden, forbidden, forbidden, forbidden, ok, ok, unauth, unauth}},
		{"GET /admin/dead-letters", func(h []string) response { return app.do("GET", "/admin/dead-letters", nil, h...) },
			[9]int{unauth, forbidden, forbidden, forbidden, forbidden, ok, ok, unauth, unauth}},
		{"POST replay", func(h []string) response {
			return app.do("POST", "/admin/dead-letters/"+unknown+"/replay", nil, h...)
		}, [9]int{unauth, forbidden, forbidden, forbidden, forbidden, missing, missing, unauth, unauth}},
		{"GET /admin/keys", func(h []string) response { return app.do("GET", "/admin/keys", nil, h...) },
			[9]int{unauth, forbidden, forbidden, forbidden, forbidden, ok, ok, unauth, unauth}},
		{"POST /admin/keys", func(h []string) response { return app.doJSON("POST", "/admin/keys", `{"scopes":["read"]}`, h...) },
			[9]int{unauth, forbidden, forbidden, forbidden, forbidden, created, created, unauth, unauth}},
		{"DELETE /admin/keys/{id}", func(h []string) response { return app.do("DELETE", "/admin/keys/"+unknown, nil, h...) },
			[9]int{unauth, forbidden, forbidden, forbidden, forbidden, missing, missing, unauth, unauth}},
	}
	for _, rt := range routes {
		for i, c := range callers {
			want := rt.status[i]
			r := rt.send(c.header)
			if r.Status != want {
				t.Errorf("%s as %s: %d, want %d\n%s", rt.name, c.name, r.Status, want, r.Body)
				continue
			}
			if r.Status == unauth && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Bearer realm="vitrine"`) {
				t.Errorf("%s as %s: 401 without a Bearer challenge: %q", rt.name, c.name, r.Header.Get("WWW-Authenticate"))
			}
			if r.Status >= 400 && rt.name != "HEAD /products/{id}" {
				expectProblem(t, r, want, rt.name+" as "+c.name)
			}
		}
		if rt.name == "PUT giving the product to user 8" {
			// Give it back to user 7 for the routes after this one.
			r := app.doJSON("PUT", "/products/"+pid, `{"name":"Lamp","price":"11","user_id":7}`, bearer(adminKey)...)
			if r.Status != ok {
				t.Fatalf("reset owner: %d %s", r.Status, r.Body)
			}
		}
	}

	// A key bound to an owner gives new products that owner by default,
	// and refuses another one.
	r := app.doJSON("POST", "/products", `{"name":"Defaulted","price":"2"}`, bearer(ownKey)...)
	if r.Status != http.StatusCreated || r.json(t)["user_id"] != float64(7) {
		t.Errorf("create without user_id by an owner's key: %d %s, want user_id 7", r.Status, r.Body)
	}
	expectProblem(t, app.doJSON("POST", "/products", `{"name":"Defaulted","price":"2"}`, bearer(anyKey)...), 400, "no user_id, key without owner")

	// Uploads follow the same rules (a fresh product of user 7).
	p2, _ := fixture()
	for _, c := range []struct {
		header []string
		want   int
	}{{nil, unauth}, {bearer(readKey), forbidden}, {bearer(otherKey), forbidden}, {bearer(revokedKey), unauth}} {
		r := app.do("POST", "/products/"+p2+"/images", bytes.NewReader(jpeg), append([]string{"Content-Type", "image/jpeg"}, c.header...)...)
		expectProblem(t, r, c.want, "upload")
	}
	// (The same bytes again are the existing image: 200 for the owner.)
	if r := app.do("POST", "/products/"+p2+"/images", bytes.NewReader(jpeg), append([]string{"Content-Type", "image/jpeg"}, bearer(ownKey)...)...); r.Status != http.StatusOK {
		t.Errorf("upload by the owner: %d %s", r.Status, r.Body)
	}
	if r := app.do("DELETE", "/products/"+p2, nil, bearer(otherKey)...); r.Status != forbidden {
		t.Errorf("delete by another owner: %d", r.Status)
	}
	if r := app.do("DELETE", "/products/"+p2, nil, bearer(ownKey)...); r.Status != gone {
		t.Errorf("delete by the owner: %d %s", r.Status, r.Body)
	}

	// Keys are listed without their secrets.
	list := app.do("GET", "/admin/keys", nil, bearer(adminKey)...)
	for _, secret := range []string{readKey, ownKey, otherKey, anyKey, adminKey, revokedKey} {
		if strings.Contains(string(list.Body), secret) {
			t.Fatalf("GET /admin/keys shows a secret")
		}
	}
	items, _ := list.json(t)["items"].([]any)
	if len(items) < 6 {
		t.Errorf("GET /admin/keys lists %d keys, want at least 6", len(items))
	}

	// Nothing secret reached the logs, though every request was logged.
	text := logs.String()
	if !strings.Contains(text, `"key_id"`) || strings.Count(text, `"msg":"request"`) < 100 {
		t.Fatalf("the log lacks the request lines this test needs: %d lines", strings.Count(text, "\n"))
	}
	for _, secret := range []string{readKey, ownKey, otherKey, anyKey, adminKey, revokedKey, adminToken, "not-a-key"} {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds a credential (%s…)", secret[:8])
		}
	}
}

// TestPrivateReads: with VITRINE_PUBLIC_READS=false reads need the read
// scope too.
func TestPrivateReads(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv("VITRINE_PUBLIC_READS", "false"))
	_, readKey := app.makeKey("read", 0)
	expectProblem(t, app.do("GET", "/products", nil), http.StatusUnauthorized, "anonymous read")
	if r := app.do("GET", "/products", nil, bearer(readKey)...); r.Status != http.StatusOK {
		t.Errorf("read with a read key: %d %s", r.Status, r.Body)
	}
	if r := app.do("GET", "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("health without a key: %d", r.Status)
	}
}

// TestDevelopmentOnlyOnLoopback: development mode's anonymous writes are
// refused on an address others can reach, unless asked for by name.
func TestDevelopmentOnlyOnLoopback(t *testing.T) {
	get := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	_, err := parseConfig(nil, get(map[string]string{"VITRINE_ENV": "development", "VITRINE_ADDR": ":8080"}), nilWriter{})
	if err == nil || !strings.Contains(err.Error(), "VITRINE_ANONYMOUS_WRITES") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("development on :8080: %v, want a refusal naming the fix", err)
	}
	cfg, err := parseConfig(nil, get(map[string]string{"VITRINE_ENV": "development"}), nilWriter{})
	if err != nil || cfg.Addr != "127.0.0.1:8080" || !cfg.Access.openWrites {
		t.Fatalf("development by default: %v %s open=%v, want 127.0.0.1:8080 with open writes", err, cfg.Addr, cfg.Access.openWrites)
	}
	cfg, err = parseConfig(nil, get(map[string]string{"VITRINE_ENV": "development", "VITRINE_ADDR": "0.0.0.0:9000", "VITRINE_ANONYMOUS_WRITES": "true"}), nilWriter{})
	if err != nil || !cfg.Access.openWrites {
		t.Fatalf("explicit open writes: %v", err)
	}
	cfg, err = parseConfig(nil, get(map[string]string{}), nilWriter{})
	if err != nil || cfg.Addr != ":8080" || cfg.Access.openWrites {
		t.Fatalf("production by default: %v %s open=%v, want :8080 and no anonymous writes", err, cfg.Addr, cfg.Access.openWrites)
	}
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestHTTPSemantics: HEAD, conditional requests, Vary, CORS and arrays.
func TestHTTPSemantics(t *testing.T) {
	app := startApp(t, t.TempDir(), with(productionEnv("VITRINE_CORS_ORIGINS", "https://shop.example")))
	_, key := app.makeKey("write", 0)
	created := app.doJSON("POST", "/products", `{"name":"Lamp","price":"10","user_id":1}`, bearer(key)...)
	p := created.json(t)
	id, _ := p["id"].(string)
	if imgs, ok := p["images"].([]any); !ok || len(imgs) != 0 {
		t.Errorf("a new product's images = %v, want []", p["images"])
	}
	etag := created.Header.Get("ETag")

	// HEAD answers the GET's headers without its body.
	for _, path := range []string{"/products/" + id, "/products", "/healthz", "/openapi.json"} {
		get, head := app.do("GET", path, nil), app.do("HEAD", path, nil)
		if head.Status != get.Status || len(head.Body) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes, GET %d", path, head.Status, len(head.Body), get.Status)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "ETag", "Cache-Control"} {
			if head.Header.Get(h) != get.Header.Get(h) {
				t.Errorf("HEAD %s: %s %q, GET %q", path, h, head.Header.Get(h), get.Header.Get(h))
			}
		}
	}
	// A 304 says what the 200 says about caching.
	r200 := app.do("GET", "/products/"+id, nil)
	r304 := app.do("GET", "/products/"+id, nil, "If-None-Match", etag)
	if r304.Status != http.StatusNotModified || r304.Header.Get("ETag") != etag ||
		r304.Header.Get("Cache-Control") == "" || r304.Header.Get("Cache-Control") != r200.Header.Get("Cache-Control") {
		t.Errorf("304: %d ETag %q Cache-Control %q; 200 Cache-Control %q", r304.Status, r304.Header.Get("ETag"),
			r304.Header.Get("Cache-Control"), r200.Header.Get("Cache-Control"))
	}
	// A 412 names the current version.
	changed := app.doJSON("PATCH", "/products/"+id, `{"price":"12"}`, bearer(key)...)
	stale := app.doJSON("PATCH", "/products/"+id, `{"price":"13"}`, append(bearer(key), "If-Match", etag)...)
	expectProblem(t, stale, http.StatusPreconditionFailed, "stale If-Match")
	if got := stale.Header.Get("ETag"); got == "" || got != changed.Header.Get("ETag") {
		t.Errorf("412 ETag %q, want the current %q", got, changed.Header.Get("ETag"))
	}
	if imgs, ok := changed.json(t)["images"].([]any); !ok || imgs == nil {
		t.Errorf("patched product's images = %v, want []", changed.json(t)["images"])
	}
	page := app.do("GET", "/products", nil).json(t)
	items, _ := page["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("list: %v", page)
	}
	if imgs, ok := items[0].(map[string]any)["images"].([]any); !ok || imgs == nil {
		t.Errorf("listed product's images = %v, want []", items[0])
	}
	// CORS: an allowed origin gets the headers, with Vary: Origin; another
	// origin gets none; a preflight answers the path's methods.
	r := app.do("GET", "/products/"+id, nil, "Origin", "https://shop.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" || !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Errorf("CORS for an allowed origin: %v", r.Header)
	}
	if r := app.do("GET", "/products/"+id, nil, "Origin", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS answered another origin: %v", r.Header)
	}
	pre := app.do("OPTIONS", "/products/"+id, nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "PATCH")
	if pre.Status != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "PATCH") ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "If-Match") {
		t.Errorf("preflight: %d %v", pre.Status, pre.Header)
	}
	// Without CORS configured, OPTIONS is a method like any other: 405.
	plain := startApp(t, t.TempDir(), productionEnv())
	r = plain.do("OPTIONS", "/products", nil)
	expectProblem(t, r, http.StatusMethodNotAllowed, "OPTIONS without CORS")
	if r.Header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

// TestIdempotency: a retried create or upload with the same key makes one
// product or image, and is told so; another request under the key is 422;
// a retry while the first runs is 409.
func TestIdempotency(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv())
	_, key := app.makeKey("write", 0)
	_, otherKey := app.makeKey("write", 0)
	h := func(k, idem string) []string { return append(bearer(k), "Idempotency-Key", idem) }

	first := app.doJSON("POST", "/products", `{"name":"Lamp","price":"10","user_id":1}`, h(key, "create-1")...)
	again := app.doJSON("POST", "/products", `{"name":"Lamp","price":"10","user_id":1}`, h(key, "create-1")...)
	if first.Status != http.StatusCreated || again.Status != http.StatusCreated || !bytes.Equal(first.Body, again.Body) ||
		again.Header.Get("Location") != first.Header.Get("Location") || again.Header.Get("ETag") != first.Header.Get("ETag") {
		t.Fatalf("replay: %d %s / %d %s", first.Status, first.Body, again.Status, again.Body)
	}
	if again.Header.Get("Idempotent-Replayed") != "true" || first.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("Idempotent-Replayed: first %q, replay %q", first.Header.Get("Idempotent-Replayed"), again.Header.Get("Idempotent-Replayed"))
	}
	expectProblem(t, app.doJSON("POST", "/products", `{"name":"Desk","price":"10","user_id":1}`, h(key, "create-1")...),
		http.StatusUnprocessableEntity, "same key, another body")
	// Keys are per API key: another key's "create-1" is its own.
	if r := app.doJSON("POST", "/products", `{"name":"Desk","price":"10","user_id":1}`, h(otherKey, "create-1")...); r.Status != http.StatusCreated {
		t.Errorf("another API key's same Idempotency-Key: %d %s", r.Status, r.Body)
	}
	// A failed request does not hold its key: fixed, it runs.
	expectProblem(t, app.doJSON("POST", "/products", `{"name":"","price":"10","user_id":1}`, h(key, "create-2")...), 400, "invalid")
	if r := app.doJSON("POST", "/products", `{"name":"Fixed","price":"10","user_id":1}`, h(key, "create-2")...); r.Status != http.StatusCreated {
		t.Errorf("retry after a 400 with the same key: %d %s", r.Status, r.Body)
	}
	expectProblem(t, app.doJSON("POST", "/products", `{"name":"x","price":"1","user_id":1}`, h(key, strings.Repeat("k", 256))...), 400, "key too long")

	// While the first request runs, a retry is 409: the run is held by
	// reserving its key as a running request of another node would.
	app.reserveRunning(key, "held-1", `{"name":"Lamp","price":"10","user_id":1}`)
	r := app.doJSON("POST", "/products", `{"name":"Lamp","price":"10","user_id":1}`, h(key, "held-1")...)
	expectProblem(t, r, http.StatusConflict, "retry while running")
	if r.Header.Get("Retry-After") == "" {
		t.Error("409 without Retry-After")
	}

	// Concurrent retries of one upload: one image, one job, every answer
	// 202 (the first or its replay) or 409.
	pid, _ := app.doJSON("POST", "/products", `{"name":"Photo","price":"1","user_id":1}`, bearer(key)...).json(t)["id"].(string)
	jpeg, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	ids := map[string]bool{}
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// multipart, each with its own boundary: the key names the file.
			body, ct := multipartBody(t, "file", fmt.Sprintf("try-%d.jpg", i), jpeg)
			r := app.do("POST", "/products/"+pid+"/images", body, append([]string{"Content-Type", ct}, h(key, "upload-1")...)...)
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			if r.Status == http.StatusAccepted {
				var img map[string]any
				if err := json.Unmarshal(r.Body, &img); err != nil {
					t.Errorf("decode the accepted upload: %v", err)
				}
				id, _ := img["id"].(string)
				ids[id] = true
			}
		}()
	}
	wg.Wait()
	if statuses[http.StatusAccepted] == 0 || statuses[http.StatusAccepted]+statuses[http.StatusConflict] != 12 || len(ids) != 1 {
		t.Fatalf("12 concurrent uploads with one key: statuses %v, image ids %v; want 202s (one image) and 409s", statuses, ids)
	}
	product := app.do("GET", "/products/"+pid, nil).json(t)
	if imgs, _ := product["images"].([]any); len(imgs) != 1 {
		t.Fatalf("the product holds %d images after 12 tries of one upload, want 1", len(imgs))
	}
}

// reserveRunning records, as a request of another node would while it
// runs, that POST /products with body under (the API key secret, idem) is
// running.
func (a *testApp) reserveRunning(secret, idem, body string) {
	a.t.Helper()
	ctx := context.Background()
	k, err := a.App.db.KeyByHash(ctx, access.HashKey(secret))
	if err != nil {
		a.t.Fatal(err)
	}
	sum := sha256.New()
	sum.Write([]byte("POST\x00/products\x00"))
	sum.Write([]byte(body))
	now := time.Now()
	_, ok, err := a.App.db.ReserveIdempotencyKey(ctx, access.IdempotencyRecord{Scope: "key:" + k.ID, Key: idem,
		Fingerprint: hex.EncodeToString(sum.Sum(nil)), LockedUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}, now)
	if err != nil || !ok {
		a.t.Fatalf("reserve: %v %v", ok, err)
	}
}

// TestOwnerBoundAdmin: the admin scope cannot be bound to an owner; a key
// made so before (straight in the store) may write its owner's products
// and reaches no admin route.
func TestOwnerBoundAdmin(t *testing.T) {
	app := startApp(t, t.TempDir(), productionEnv())
	pr := expectProblem(t, app.doJSON("POST", "/admin/keys", `{"scopes":["admin"],"owner":7}`, bearer(adminToken)...), 400, "an owner-bound admin key")
	if errs, _ := pr["errors"].([]any); len(errs) == 0 || errs[0].(map[string]any)["field"] != "owner" {
		t.Errorf("the refusal does not name owner: %v", pr)
	}
	if _, _, err := runCLI(t, map[string]string{"VITRINE_DATA_DIR": app.cfg.DataDir}, "keys", "create", "--scopes", "admin", "--owner", "7"); err == nil {
		t.Error("vitrine keys create made an owner-bound admin key")
	}
	key, secret, err := access.NewAPIKey("legacy-admin", "made before", []access.Scope{access.ScopeAdmin}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	owner := int64(7)
	key.Owner = &owner
	if err := app.db.CreateKey(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/admin/keys", ""}, {"POST", "/admin/keys", `{"scopes":["admin"]}`}, {"GET", "/admin/dead-letters", ""},
		{"GET", "/admin/webhooks/deliveries", ""}, {"GET", "/metrics", ""},
	} {
		res := app.do(r.method, r.path, strings.NewReader(r.body), append([]string{"Content-Type", "application/json"}, bearer(secret)...)...)
		expectProblem(t, res, 403, r.method+" "+r.path+" with a legacy owner-bound admin key")
	}
	if r := app.doJSON("POST", "/products", `{"name":"Mine","price":"1","user_id":7}`, bearer(secret)...); r.Status != 201 {
		t.Errorf("its owner's product: %d %s", r.Status, r.Body)
	}
	expectProblem(t, app.doJSON("POST", "/products", `{"name":"Theirs","price":"1","user_id":8}`, bearer(secret)...), 403, "another owner's product")
}

// TestDoctorWarnsOfSharedAnonymousLimit: on an address others can reach,
// with anonymous reads limited per client address and no trusted proxy,
// vitrine doctor warns that a CDN or load balancer in front would make
// every reader share one limit; not on loopback, not once proxies are
// trusted, not when reads need a key.
func TestDoctorWarnsOfSharedAnonymousLimit(t *testing.T) {
	get := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		env  map[string]string
		warn bool
	}{
		{map[string]string{"VITRINE_ADDR": ":8080"}, true},
		{map[string]string{"VITRINE_ADDR": "127.0.0.1:8080"}, false},
		{map[string]string{"VITRINE_ADDR": ":8080", "VITRINE_TRUSTED_PROXIES": "10.0.0.0/8"}, false},
		{map[string]string{"VITRINE_ADDR": ":8080", "VITRINE_PUBLIC_READS": "false"}, false},
		{map[string]string{"VITRINE_ADDR": ":8080", "VITRINE_RATE_ANONYMOUS": "0"}, false},
	} {
		cfg, err := parseConfig(nil, get(tc.env), nilWriter{})
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		f, warned := checkProxies(cfg)
		if warned != tc.warn || (warned && (f.status != statusWarn || !strings.Contains(f.fix, "VITRINE_TRUSTED_PROXIES"))) {
			t.Errorf("%v: warned %v (%+v), want %v", tc.env, warned, f, tc.warn)
		}
	}
}

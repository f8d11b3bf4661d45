package rest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
	"github.com/vitrine-dev/vitrine/persistence/memory"
)

// countingKeys is a key store of one key that counts its lookups.
type countingKeys struct {
	access.KeyStore // only KeyByHash is called
	key             *access.APIKey
	lookups         atomic.Int32
}

func (k *countingKeys) KeyByHash(_ context.Context, hash string) (*access.APIKey, error) {
	k.lookups.Add(1)
	if hash == k.key.Hash {
		return k.key, nil
	}
	return nil, catalog.NotFound("no such key")
}

// fakeKey is a well-formed key that nobody issued.
func fakeKey(t *testing.T) string {
	t.Helper()
	_, secret, err := access.NewAPIKey("x", "", []access.Scope{access.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestAuthFailuresLimited: a flood of distinct well-formed fake keys from
// one address costs a store lookup each only until the address's failures
// are used up; then 429 without a lookup. A valid key keeps working, from
// the cache.
func TestAuthFailuresLimited(t *testing.T) {
	key, secret, err := access.NewAPIKey("good", "good", []access.Scope{access.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{key: key}
	s := New(Config{PrivateReads: true, RateAuthFailures: access.Rate{Limit: 10, Period: time.Minute, Burst: 10}},
		Deps{Products: &stubProducts{}, Keys: keys, Limiter: memory.NewLimiter(nil)}, zap.NewNop())
	c := serve(t, s)
	status := func(key string) (int, string) {
		res, _ := get(t, c, "/products", "Authorization", "Bearer "+key)
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	if st, _ := status(secret); st != http.StatusOK {
		t.Fatalf("the valid key: %d", st)
	}
	counts := map[int]int{}
	for range 1000 {
		st, retry := status(fakeKey(t))
		counts[st]++
		if st == http.StatusTooManyRequests && retry == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if counts[http.StatusUnauthorized] != 10 || counts[http.StatusTooManyRequests] != 990 {
		t.Errorf("1,000 fake keys: %v, want 10 × 401 then 990 × 429", counts)
	}
	if n := keys.lookups.Load(); n != 11 {
		t.Errorf("%d store lookups, want 11 (the valid key once, the 10 failures the budget allows; the address is blocked as its last failure is spent)", n)
	}
	if st, _ := status(secret); st != http.StatusOK {
		t.Errorf("the valid key after the flood: %d", st)
	}
	if st, _ := status("garbage"); st != http.StatusTooManyRequests {
		t.Errorf("a malformed key from the blocked address: %d, want 429", st)
	}
}

// TestUnknownKeysCannotEvictKnownOnes: unknown keys are remembered apart
// from found ones, so a flood of them (here with no failure limit) never
// makes a valid key be looked up again within its TTL.
func TestUnknownKeysCannotEvictKnownOnes(t *testing.T) {
	key, secret, err := access.NewAPIKey("good", "good", []access.Scope{access.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{key: key}
	a := newAuthenticator(keys, "", time.Hour, "", time.Now)
	look := func(secret string) error {
		_, err := a.lookup(&fasthttp.RequestCtx{}, secret)
		return err
	}
	if err := look(secret); err != nil {
		t.Fatal(err)
	}
	for i := range 2*maxCachedKeys + 1 {
		if err := look(fmt.Sprintf("vtr_%040d", i)); err == nil {
			t.Fatal("a fake key was accepted")
		}
	}
	if err := look(secret); err != nil {
		t.Fatal(err)
	}
	if n := keys.lookups.Load(); n != 2*maxCachedKeys+2 {
		t.Errorf("%d lookups, want %d: the valid key was looked up again", n, 2*maxCachedKeys+2)
	}
	if len(a.unknown) > maxCachedKeys || len(a.entries) != 1 {
		t.Errorf("caches hold %d unknown and %d found keys", len(a.unknown), len(a.entries))
	}
}

// wellFormedFake is the i-th of distinct keys in the issued format (prefix,
// length, alphabet) that nobody issued: each costs a store lookup unless
// something stops it first.
func wellFormedFake(i int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := []byte(access.KeyPrefix + strings.Repeat("a", access.KeyLength-len(access.KeyPrefix)))
	for j := len(b) - 1; i > 0; j-- {
		b[j] = alphabet[i%32]
		i /= 32
	}
	return string(b)
}

// TestAuthFloodFromManyAddresses: 100,000 distinct well-formed fake keys
// from 1,000 client addresses (X-Forwarded-For from a trusted proxy), in
// three rounds, each on a fresh server, alternating with quiet rounds.
// What it holds: every request of a valid caller during the flood
// succeeds; the store sees at most each address's failure budget (burst,
// plus what refills while the round runs); the caches stay within their
// bound. What it measures, and logs: the valid caller's median latency
// during the flood against the quiet rounds (a ratio, median of rounds
// with its spread), and the heap the flood leaves behind.
func TestAuthFloodFromManyAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("300,000 requests (seconds)")
	}
	const (
		fakes     = 100_000
		addresses = 1_000
		valid     = 2_000 // valid requests per round
		rounds    = 3
		flooders  = 4
	)
	rate := access.Rate{Limit: 30, Period: time.Minute, Burst: 30} // the default, 30/min
	key, secret, err := access.NewAPIKey("good", "good", []access.Scope{access.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := ParseTrustedProxies([]string{"0.0.0.0/0", "::/0"})
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() (*Server, *countingKeys, *http.Client) {
		keys := &countingKeys{key: key}
		s := New(Config{PrivateReads: true, RateAuthFailures: rate, TrustedProxies: trusted},
			Deps{Products: &stubProducts{}, Keys: keys, Limiter: memory.NewLimiter(nil)}, zap.NewNop())
		return s, keys, serve(t, s)
	}
	// callValid sends n valid requests one after another and returns the
	// median latency; any answer but 200 fails the test.
	callValid := func(c *http.Client, n int) time.Duration {
		lat := make([]time.Duration, 0, n)
		for range n {
			req, _ := http.NewRequest("GET", "http://x/products", http.NoBody)
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("X-Forwarded-For", "198.51.100.1")
			start := time.Now()
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			lat = append(lat, time.Since(start))
			if res.StatusCode != http.StatusOK {
				t.Fatalf("a valid caller got %d", res.StatusCode)
			}
		}
		slices.Sort(lat)
		return lat[len(lat)/2]
	}
	if !access.WellFormedKey(wellFormedFake(fakes - 1)) {
		t.Fatal("the fake keys are not well-formed: they would be refused before any lookup")
	}
	flood := func(c *http.Client) map[int]int {
		var mu sync.Mutex
		counts := map[int]int{}
		var wg sync.WaitGroup
		for f := range flooders {
			wg.Go(func() {
				local := map[int]int{}
				for i := f; i < fakes; i += flooders {
					req, _ := http.NewRequest("GET", "http://x/products", http.NoBody)
					req.Header.Set("Authorization", "Bearer "+wellFormedFake(i))
					a := i % addresses
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.%d.%d", a/256, a%256))
					res, err := c.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					local[res.StatusCode]++
				}
				mu.Lock()
				for k, v := range local {
					counts[k] += v
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		return counts
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}

	var ratios []float64
	for r := range rounds {
		_, _, qc := fresh()
		quiet := callValid(qc, valid)

		s, keys, c := fresh()
		callValid(c, 1) // the valid key is cached before the flood
		before := heap()
		start := time.Now()
		done := make(chan map[int]int)
		go func() { done <- flood(c) }()
		during := callValid(c, valid)
		counts := <-done
		elapsed := time.Since(start)
		grown := int64(heap()) - int64(before)

		refill := int64(math.Ceil(elapsed.Seconds() / rate.Period.Seconds() * float64(rate.Limit)))
		// Per address: its burst of failures and what refills meanwhile
		// (the address is blocked as its last failure is spent, until the
		// next refill), one more for a block that ends a moment before the
		// limiter's refill; plus the valid key.
		bound := int64(addresses)*(int64(rate.Burst)+1+refill) + 1
		if n := int64(keys.lookups.Load()); n > bound {
			t.Errorf("round %d: %d store lookups, more than %d (each address's failure budget)", r+1, n, bound)
		}
		if counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != fakes {
			t.Errorf("round %d: the fake keys got %v, want only 401 and 429", r+1, counts)
		}
		s.auth.mu.Lock()
		unknown, found := len(s.auth.unknown), len(s.auth.entries)
		s.auth.mu.Unlock()
		s.auth.failures.mu.Lock()
		blocked := len(s.auth.failures.blocked)
		s.auth.failures.mu.Unlock()
		if unknown > maxCachedKeys || found != 1 || blocked > maxCachedKeys {
			t.Errorf("round %d: caches hold %d unknown keys, %d found, %d blocked addresses; the bound is %d each", r+1, unknown, found, blocked, maxCachedKeys)
		}
		ratio := float64(during) / float64(quiet)
		ratios = append(ratios, ratio)
		t.Logf("flood round %d: %d fake keys from %d addresses in %s (%v); %d store lookups; caches: %d unknown, %d blocked; heap +%.1f MiB; valid caller median %s quiet, %s during the flood (%.2f×)",
			r+1, fakes, addresses, elapsed.Round(time.Millisecond), counts, keys.lookups.Load(), unknown, blocked,
			float64(grown)/(1<<20), quiet.Round(time.Microsecond), during.Round(time.Microsecond), ratio)
	}
	slices.Sort(ratios)
	t.Logf("flood figures: valid caller's median latency during a flood of %d fake keys from %d addresses is %.2f× the quiet one (median of %d rounds; %.2f–%.2f)",
		fakes, addresses, ratios[len(ratios)/2], rounds, ratios[0], ratios[len(ratios)-1])
}

// TestAuthorizationBadInput: malformed Authorization headers sent byte for
// byte get a clean refusal (a problem document, never a 5xx, and a
// challenge with each 401); the forms the specifications allow — a
// lower-case scheme, spaces around the token — work with a valid key.
func TestAuthorizationBadInput(t *testing.T) {
	key, secret, err := access.NewAPIKey("good", "good", []access.Scope{access.ScopeRead}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{PrivateReads: true}, Deps{Products: &stubProducts{}, Keys: &countingKeys{key: key}, Limiter: memory.NewLimiter(nil)}, zap.NewNop())
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	send := func(auth string) (answer, string) {
		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "GET /products HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nConnection: close\r\n\r\n", auth); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", auth, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return answer{StatusCode: res.StatusCode, Header: res.Header}, string(body)
	}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"valid", "Bearer " + secret, http.StatusOK},
		{"lower-case scheme", "bearer " + secret, http.StatusOK},
		{"spaces around the token", "Bearer   " + secret + "   ", http.StatusOK},
		{"too short", "Bearer " + secret[:len(secret)-1], http.StatusUnauthorized},
		{"too long", "Bearer " + secret + "a", http.StatusUnauthorized},
		{"NUL inside", "Bearer " + secret[:10] + "\x00" + secret[11:], http.StatusBadRequest},
		{"64 KiB", "Bearer " + strings.Repeat("a", 64<<10), http.StatusRequestHeaderFieldsTooLarge},
		{"two schemes", "Bearer " + secret + ", Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"Basic", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"scheme only", "Bearer", http.StatusUnauthorized},
		{"empty token", "Bearer    ", http.StatusUnauthorized},
	} {
		res, body := send(tc.auth)
		if res.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, body, tc.want)
			continue
		}
		if tc.want == http.StatusOK {
			continue
		}
		if res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"request_id"`) {
			t.Errorf("%s: %d with %q %s, want a problem document", tc.name, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without a Bearer challenge", tc.name)
		}
	}
}

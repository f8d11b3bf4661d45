package rest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

// principal is who a request comes from.
type principal struct {
	// keyID names the API key; "" for an anonymous client, "admin-token"
	// for the bootstrap VITRINE_ADMIN_TOKEN.
	keyID string
	// scope is the widest scope held (scopes nest); "" for none.
	scope access.Scope
	// owner restricts writes to one user_id's products; 0: any.
	owner int64
}

func (p principal) anonymous() bool { return p.keyID == "" }

// allows reports whether p holds scope need.
func (p principal) allows(need access.Scope) bool {
	return p.scope.Includes(need)
}

// adminTokenID is the key id the bootstrap admin token acts as.
const adminTokenID = "admin-token"

// keyLookup is what authentication needs of the key store.
type keyLookup interface {
	KeyByHash(ctx context.Context, hash string) (*access.APIKey, error)
}

// authenticator turns an Authorization header into a principal. Keys are
// looked up in the store and remembered for ttl, so a revocation reaches
// every node within ttl; unknown keys are remembered too, so that garbage
// does not cost a store read each time.
type authenticator struct {
	keys       keyLookup
	adminToken []byte
	ttl        time.Duration
	now        func() time.Time
	// anonymous is what a request without credentials may do.
	anonymous principal
	// failures limits failed authentications per client address.
	failures failureLimit

	mu      sync.Mutex
	entries map[string]keyEntry  // keys found, by hash
	unknown map[string]time.Time // hashes of no key, until when: apart, so that they cannot evict found keys
}

// failureLimit is the budget of failed authentications of a client
// address (a GCRA rate, shared through the limiter): past it, a request
// with a credential that is not already known good is refused with 429
// before any store lookup, until the address's budget refills.
type failureLimit struct {
	limiter access.RateLimiter // nil: no limit
	rate    access.Rate
	trusted []netip.Prefix

	mu      sync.Mutex
	blocked map[netip.Addr]time.Time // until when
}

type keyEntry struct {
	key     *access.APIKey // nil: unknown
	expires time.Time
}

// maxCachedKeys bounds each cache (keys found, hashes of none, blocked
// addresses); past it, expired entries are dropped and, if that is not
// enough, that cache starts over.
const maxCachedKeys = 10_000

func newAuthenticator(keys keyLookup, adminToken string, ttl time.Duration, anonymous access.Scope, now func() time.Time) *authenticator {
	a := &authenticator{keys: keys, ttl: ttl, now: now, entries: map[string]keyEntry{}, unknown: map[string]time.Time{},
		anonymous: principal{scope: anonymous}, failures: failureLimit{blocked: map[netip.Addr]time.Time{}}}
	if adminToken != "" {
		a.adminToken = []byte(adminToken)
	}
	return a
}

// errBadCredentials is a credential that no one issued (or that was revoked).
var errBadCredentials = errors.New("bad credentials")

// authenticate returns the request's principal, or an error to answer.
func (a *authenticator) authenticate(ctx *fasthttp.RequestCtx) (principal, error) {
	h := ctx.Request.Header.Peek("Authorization")
	if len(h) == 0 {
		return a.anonymous, nil
	}
	token, ok := bearerToken(h)
	if !ok {
		return principal{}, a.failed(ctx, unauthorized("invalid_request", "the Authorization header must be \"Bearer <key>\""))
	}
	if a.adminToken != nil && subtle.ConstantTimeCompare([]byte(token), a.adminToken) == 1 {
		return principal{keyID: adminTokenID, scope: access.ScopeAdmin}, nil
	}
	if !access.WellFormedKey(token) {
		return principal{}, a.failed(ctx, unauthorized("invalid_token", "the API key is not one this server issued"))
	}
	key, err := a.lookup(ctx, token)
	if errors.Is(err, errBadCredentials) {
		return principal{}, a.failed(ctx, unauthorized("invalid_token", "the API key is unknown or revoked"))
	}
	if err != nil {
		return principal{}, err
	}
	p := principal{keyID: key.ID}
	for _, s := range []access.Scope{access.ScopeAdmin, access.ScopeWrite, access.ScopeRead} {
		if key.Allows(s) {
			p.scope = s
			break
		}
	}
	if key.Owner != nil {
		p.owner = *key.Owner
		if p.scope == access.ScopeAdmin {
			// Made before such keys were refused: bound to an owner, it
			// may write that owner's products, never administer.
			p.scope = access.ScopeWrite
		}
	}
	return p, nil
}

// lookup finds a key by its secret, through the caches. A secret of no
// key that is not remembered is looked up only while its client address
// has failures left.
func (a *authenticator) lookup(ctx *fasthttp.RequestCtx, secret string) (*access.APIKey, error) {
	hash := access.HashKey(secret)
	now := a.now()
	a.mu.Lock()
	e, found := a.entries[hash]
	until, unknown := a.unknown[hash]
	a.mu.Unlock()
	switch {
	case found && !now.After(e.expires):
	case unknown && !now.After(until):
		return nil, errBadCredentials
	default:
		if err := a.failures.blockedNow(ctx, now); err != nil {
			return nil, err
		}
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		key, err := a.keys.KeyByHash(c, hash)
		switch {
		case catalog.IsNotFound(err):
			a.mu.Lock()
			remember(a.unknown, hash, now.Add(a.ttl), now, itself)
			a.mu.Unlock()
			return nil, errBadCredentials
		case err != nil:
			return nil, fmt.Errorf("look up API key: %w", err)
		}
		e = keyEntry{key: key, expires: now.Add(a.ttl)}
		a.mu.Lock()
		remember(a.entries, hash, e, now, func(e keyEntry) time.Time { return e.expires })
		a.mu.Unlock()
	}
	if e.key == nil || e.key.Revoked() {
		return nil, errBadCredentials
	}
	return e.key, nil
}

// remember puts v in m, which holds at most maxCachedKeys entries: past
// that, the expired ones go, and if that is not enough, all of them.
func remember[K comparable, V any](m map[K]V, k K, v V, now time.Time, expires func(V) time.Time) {
	if len(m) >= maxCachedKeys {
		for k, old := range m {
			if now.After(expires(old)) {
				delete(m, k)
			}
		}
		if len(m) >= maxCachedKeys {
			clear(m)
		}
	}
	m[k] = v
}

// itself is the expiry of an entry that is its expiry.
func itself(t time.Time) time.Time { return t }

// failed counts a failed authentication against its client address and
// returns err, or a 429 when the address has used its failures.
func (a *authenticator) failed(ctx *fasthttp.RequestCtx, err error) error {
	f := &a.failures
	if f.limiter == nil || f.rate.Off() {
		return err
	}
	addr := clientAddr(ctx, f.trusted)
	c, cancel := context.WithTimeout(context.Background(), time.Second)
	d, lerr := f.limiter.Allow(c, "f:"+addr.String(), f.rate)
	cancel()
	if lerr != nil || (d.Allowed && d.Remaining > 0) {
		return err
	}
	// The address has no failure left: it is blocked until the next one
	// comes, so that its next fake key is refused without a store lookup
	// (waiting for that key's lookup to be refused would cost a lookup
	// per refill more).
	now := a.now()
	retry := d.RetryAfter
	if d.Allowed {
		retry = f.rate.Interval()
	}
	f.mu.Lock()
	remember(f.blocked, addr, now.Add(retry), now, itself)
	f.mu.Unlock()
	if d.Allowed {
		return err
	}
	return tooManyFailures(retry)
}

// blockedNow is the 429 of a client address that has used its failures,
// nil otherwise.
func (f *failureLimit) blockedNow(ctx *fasthttp.RequestCtx, now time.Time) error {
	if f.limiter == nil || f.rate.Off() {
		return nil
	}
	addr := clientAddr(ctx, f.trusted)
	f.mu.Lock()
	until, ok := f.blocked[addr]
	f.mu.Unlock()
	if !ok || !now.Before(until) {
		return nil
	}
	return tooManyFailures(until.Sub(now))
}

func tooManyFailures(retry time.Duration) error {
	return &catalog.Error{Kind: catalog.KindTooManyRequests, Code: "too_many_failed_authentications", RetryAfter: max(retry, time.Second),
		Detail: "too many failed authentications from this address; retry later with a valid key"}
}

// bearerToken parses "Bearer <token>" (RFC 6750: the scheme is
// case-insensitive, the token is token68).
func bearerToken(h []byte) (string, bool) {
	scheme, token, ok := strings.Cut(string(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > 512 {
		return "", false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~+/", c) >= 0:
		case c == '=' && strings.Trim(token[i:], "=") == "":
		default:
			return "", false
		}
	}
	return token, true
}

// authError is a refusal that carries its WWW-Authenticate challenge.
type authError struct {
	status int
	code   string // RFC 6750 error code
	detail string
	scope  access.Scope
}

func (e *authError) Error() string { return e.detail }

func unauthorized(code, detail string) *authError {
	return &authError{status: http.StatusUnauthorized, code: code, detail: detail}
}

// writeAuthError answers a refused request with its challenge (RFC 6750).
func writeAuthError(ctx *fasthttp.RequestCtx, e *authError) {
	challenge := `Bearer realm="vitrine"`
	if e.code != "" {
		challenge += `, error="` + e.code + `"`
	}
	if e.scope != "" {
		challenge += `, scope="` + string(e.scope) + `"`
	}
	ctx.Response.Header.Set("WWW-Authenticate", challenge)
	code := "unauthorized"
	if e.status == http.StatusForbidden {
		code = "forbidden"
	}
	writeProblem(ctx, e.status, code, e.detail, nil)
}

// authorize checks that p may do what need asks, or says why not.
func (a *authenticator) authorize(p principal, need access.Scope) *authError {
	if p.allows(need) {
		return nil
	}
	if p.anonymous() {
		return &authError{status: http.StatusUnauthorized, detail: fmt.Sprintf("this needs an API key with the %s scope: send Authorization: Bearer <key>", need), scope: need}
	}
	return &authError{status: http.StatusForbidden, code: "insufficient_scope", scope: need,
		detail: fmt.Sprintf("this API key lacks the %s scope", need)}
}

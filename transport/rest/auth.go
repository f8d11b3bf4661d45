package rest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// principal is who a request comes from.
type principal struct {
	// keyID names the API key; "" for an anonymous client, "admin-token"
	// for the bootstrap VITRINE_ADMIN_TOKEN.
	keyID string
	// scope is the widest scope held (scopes nest); "" for none.
	scope catalog.Scope
	// owner restricts writes to one user_id's products; 0: any.
	owner int64
}

func (p principal) anonymous() bool { return p.keyID == "" }

// allows reports whether p holds scope need.
func (p principal) allows(need catalog.Scope) bool {
	return p.scope.Includes(need)
}

// adminTokenID is the key id the bootstrap admin token acts as.
const adminTokenID = "admin-token"

// keyLookup is what authentication needs of the key store.
type keyLookup interface {
	KeyByHash(ctx context.Context, hash string) (*catalog.APIKey, error)
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

	mu      sync.Mutex
	entries map[string]keyEntry // by hash
}

type keyEntry struct {
	key     *catalog.APIKey // nil: unknown
	expires time.Time
}

// maxCachedKeys bounds the cache; past it, expired entries are dropped and,
// if that is not enough, the cache starts over.
const maxCachedKeys = 10_000

func newAuthenticator(keys keyLookup, adminToken string, ttl time.Duration, anonymous catalog.Scope, now func() time.Time) *authenticator {
	a := &authenticator{keys: keys, ttl: ttl, now: now, entries: map[string]keyEntry{}, anonymous: principal{scope: anonymous}}
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
		return principal{}, unauthorized("invalid_request", "the Authorization header must be \"Bearer <key>\"")
	}
	if a.adminToken != nil && subtle.ConstantTimeCompare([]byte(token), a.adminToken) == 1 {
		return principal{keyID: adminTokenID, scope: catalog.ScopeAdmin}, nil
	}
	if !catalog.WellFormedKey(token) {
		return principal{}, unauthorized("invalid_token", "the API key is not one this server issued")
	}
	key, err := a.lookup(token)
	if errors.Is(err, errBadCredentials) {
		return principal{}, unauthorized("invalid_token", "the API key is unknown or revoked")
	}
	if err != nil {
		return principal{}, err
	}
	p := principal{keyID: key.ID}
	for _, s := range []catalog.Scope{catalog.ScopeAdmin, catalog.ScopeWrite, catalog.ScopeRead} {
		if key.Allows(s) {
			p.scope = s
			break
		}
	}
	if key.Owner != nil {
		p.owner = *key.Owner
		if p.scope == catalog.ScopeAdmin {
			// Made before such keys were refused: bound to an owner, it
			// may write that owner's products, never administer.
			p.scope = catalog.ScopeWrite
		}
	}
	return p, nil
}

// lookup finds a key by its secret, through the cache.
func (a *authenticator) lookup(secret string) (*catalog.APIKey, error) {
	hash := catalog.HashKey(secret)
	now := a.now()
	a.mu.Lock()
	e, ok := a.entries[hash]
	a.mu.Unlock()
	if !ok || now.After(e.expires) {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		key, err := a.keys.KeyByHash(c, hash)
		switch {
		case catalog.IsNotFound(err):
			key = nil
		case err != nil:
			return nil, fmt.Errorf("look up API key: %w", err)
		}
		e = keyEntry{key: key, expires: now.Add(a.ttl)}
		a.remember(hash, e, now)
	}
	if e.key == nil || e.key.Revoked() {
		return nil, errBadCredentials
	}
	return e.key, nil
}

func (a *authenticator) remember(hash string, e keyEntry, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) >= maxCachedKeys {
		for h, old := range a.entries {
			if now.After(old.expires) {
				delete(a.entries, h)
			}
		}
		if len(a.entries) >= maxCachedKeys {
			clear(a.entries)
		}
	}
	a.entries[hash] = e
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
	scope  catalog.Scope
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
func (a *authenticator) authorize(p principal, need catalog.Scope) *authError {
	if p.allows(need) {
		return nil
	}
	if p.anonymous() {
		return &authError{status: http.StatusUnauthorized, detail: fmt.Sprintf("this needs an API key with the %s scope: send Authorization: Bearer <key>", need), scope: need}
	}
	return &authError{status: http.StatusForbidden, code: "insufficient_scope", scope: need,
		detail: fmt.Sprintf("this API key lacks the %s scope", need)}
}

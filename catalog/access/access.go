// Package access is who may call vitrine and what each caller may cost:
// API keys and their scopes, rate limits (GCRA) and idempotency records.
// The product domain, which it builds on, is package catalog.
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Scope is what an API key may do. Scopes nest: admin includes write, and
// write includes read.
type Scope string

// The scopes of API keys.
const (
	ScopeRead  Scope = "read"  // read products and images (when reads need a key)
	ScopeWrite Scope = "write" // create, change and delete products, upload images
	ScopeAdmin Scope = "admin" // manage keys, dead letters and everything else
)

// ParseScope returns the scope named s.
func ParseScope(s string) (Scope, error) {
	switch sc := Scope(s); sc {
	case ScopeRead, ScopeWrite, ScopeAdmin:
		return sc, nil
	}
	return "", fmt.Errorf("unknown scope %q; scopes are read, write and admin", s)
}

func (s Scope) rank() int {
	switch s {
	case ScopeRead:
		return 1
	case ScopeWrite:
		return 2
	case ScopeAdmin:
		return 3
	}
	return 0
}

// KeyPrefix starts every API key, so that a leaked key is recognisable
// (secret scanners) and a key is never mistaken for an id.
const KeyPrefix = "vtr_"

// keyRandomBytes is the entropy of a key: 160 bits.
const keyRandomBytes = 20

// keyEncoding writes keys in lower-case base32 without padding: no
// characters that need escaping anywhere.
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// KeyLength is the length of every key vitrine issues: the prefix and
// keyRandomBytes in base32 without padding (TestKeyLength holds the two
// together).
const KeyLength = len(KeyPrefix) + (keyRandomBytes*8+4)/5

// APIKey is a credential: who may do what. Only the SHA-256 of the secret
// is kept; the secret itself is shown once, when the key is made.
type APIKey struct {
	ID     string  `json:"id"`
	Name   string  `json:"name,omitempty"`
	Scopes []Scope `json:"scopes"`
	// Owner restricts writes to the products of one user_id; nil means any.
	Owner *int64 `json:"owner"`
	// Hint is the key's first characters, to tell keys apart in lists.
	Hint      string     `json:"hint"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Hash is the SHA-256 of the secret, hex.
	Hash string `json:"-"`
}

// Includes reports whether holding s grants need (scopes nest).
func (s Scope) Includes(need Scope) bool {
	return need.rank() > 0 && s.rank() >= need.rank()
}

// Allows reports whether the key holds scope s (directly or by nesting).
func (k *APIKey) Allows(s Scope) bool {
	for _, have := range k.Scopes {
		if have.Includes(s) {
			return true
		}
	}
	return false
}

// Revoked reports whether the key has been revoked.
func (k *APIKey) Revoked() bool { return k.RevokedAt != nil }

// MaxKeyNameLength bounds a key's name.
const MaxKeyNameLength = 100

// NewAPIKey makes a key with a fresh secret and returns it with the secret,
// which the caller shows once and never stores.
func NewAPIKey(id, name string, scopes []Scope, owner *int64, now time.Time) (*APIKey, string, error) {
	var errs []catalog.FieldError
	if len(scopes) == 0 {
		errs = append(errs, catalog.FieldError{Field: "scopes", Detail: "must name at least one of read, write, admin"})
	}
	for _, s := range scopes {
		if s.rank() == 0 {
			errs = append(errs, catalog.FieldError{Field: "scopes", Detail: fmt.Sprintf("unknown scope %q; scopes are read, write and admin", s)})
		}
	}
	if owner != nil && *owner <= 0 {
		errs = append(errs, catalog.FieldError{Field: "owner", Detail: fmt.Sprintf("must be a positive integer, got %d", *owner)})
	}
	if owner != nil && slices.Contains(scopes, ScopeAdmin) {
		// The admin scope acts on the whole service (keys, dead letters,
		// the webhook log): an owner could not bound it.
		errs = append(errs, catalog.FieldError{Field: "owner", Detail: "a key with the admin scope acts on the whole service and cannot be bound to an owner"})
	}
	if len([]rune(name)) > MaxKeyNameLength || strings.ContainsFunc(name, isControl) {
		errs = append(errs, catalog.FieldError{Field: "name", Detail: fmt.Sprintf("must be at most %d characters without control characters", MaxKeyNameLength)})
	}
	if len(errs) > 0 {
		return nil, "", catalog.Invalid(errs)
	}
	var raw [keyRandomBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", fmt.Errorf("make key: %w", err)
	}
	secret := KeyPrefix + keyEncoding.EncodeToString(raw[:])
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	k := &APIKey{ID: id, Name: name, Scopes: scopes, Owner: owner, Hint: secret[:len(KeyPrefix)+6],
		CreatedAt: now.UTC().Truncate(time.Microsecond), Hash: HashKey(secret)}
	return k, secret, nil
}

// IssueKey makes a key and stores it; it returns the key and its secret,
// to be shown once.
func IssueKey(ctx context.Context, store KeyStore, id, name string, scopes []Scope, owner *int64, now time.Time) (*APIKey, string, error) {
	k, secret, err := NewAPIKey(id, name, scopes, owner, now)
	if err != nil {
		return nil, "", err
	}
	if err := store.CreateKey(ctx, k); err != nil {
		return nil, "", fmt.Errorf("store key %s: %w", id, err)
	}
	return k, secret, nil
}

// HashKey is the stored form of a key's secret. Keys carry 160 random bits,
// so a fast hash is enough: nothing can be guessed from it.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// WellFormedKey reports whether s has the shape of a key vitrine issues, so
// that garbage is refused without a store lookup.
func WellFormedKey(s string) bool {
	if len(s) != KeyLength || !strings.HasPrefix(s, KeyPrefix) {
		return false
	}
	for i := len(KeyPrefix); i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// KeyStore keeps API keys, so that every node knows them.
type KeyStore interface {
	CreateKey(ctx context.Context, k *APIKey) error
	// KeyByHash returns the key whose secret hashes to hash, revoked or
	// not; catalog.NotFound when there is none.
	KeyByHash(ctx context.Context, hash string) (*APIKey, error)
	// ListKeys returns every key, newest first.
	ListKeys(ctx context.Context) ([]APIKey, error)
	// RevokeKey marks the key revoked; catalog.NotFound when there is none.
	// Revoking twice keeps the first time.
	RevokeKey(ctx context.Context, id string, at time.Time) (*APIKey, error)
}

// IdempotencyRecord is what is kept of a request made with an
// Idempotency-Key: while it runs, a lock; once done, its response.
type IdempotencyRecord struct {
	// Scope is whose key it is (an API key id, or a client address).
	Scope string
	Key   string
	// Fingerprint is a hash of the request (method, path, body).
	Fingerprint string
	// Token names the reservation that made the record: only the holder
	// of the same token may complete or release it, so a request whose
	// lock lapsed and was taken over by a retry cannot store its answer
	// over the retry's, nor drop the retry's lock. Stores never return
	// another holder's token.
	Token string
	// Done is set once the response is stored.
	Done bool
	// LockedUntil is when an unfinished request's lock lapses (its node
	// died): a retry may then run it again.
	LockedUntil time.Time
	ExpiresAt   time.Time
	Status      int
	Header      []byte // the replayed headers, JSON
	Body        []byte
}

// ErrReservationLost is returned by CompleteIdempotencyKey when the
// reservation it names no longer holds the key.
var ErrReservationLost = errors.New("the idempotency key is no longer held by this reservation")

// IdempotencyStore keeps idempotency records for every node.
type IdempotencyStore interface {
	// ReserveIdempotencyKey records rec as running when there is no record
	// for (Scope, Key), or only an expired one, or an unfinished one whose
	// lock lapsed, and returns (rec, true). Otherwise it returns the
	// record that is there and false.
	ReserveIdempotencyKey(ctx context.Context, rec IdempotencyRecord, now time.Time) (*IdempotencyRecord, bool, error)
	// CompleteIdempotencyKey stores the response of the unfinished record
	// reserved with rec.Token, even after its lock lapsed (nobody took it
	// over, so the answer is still the one to replay). When no such record
	// is left (another reservation took the key over, or it was released
	// or purged) it stores nothing and returns ErrReservationLost.
	CompleteIdempotencyKey(ctx context.Context, rec IdempotencyRecord) error
	// ReleaseIdempotencyKey drops the unfinished record reserved with
	// token, so that a retry runs the request again; a record reserved
	// with another token is left alone.
	ReleaseIdempotencyKey(ctx context.Context, scope, key, token string) error
	// PurgeIdempotencyKeys removes records that expired before now and
	// returns how many.
	PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int, error)
}

// Rate is a limit of Limit requests per Period, with bursts of up to Burst.
type Rate struct {
	Limit  int
	Period time.Duration
	Burst  int
}

// Off reports whether the rate limits nothing.
func (r Rate) Off() bool { return r.Limit <= 0 || r.Period <= 0 }

// Interval is the time one request uses up.
func (r Rate) Interval() time.Duration { return r.Period / time.Duration(r.Limit) }

// RateDecision is the answer to one request against a Rate.
type RateDecision struct {
	Allowed bool
	// Remaining is how many more requests would be allowed at once.
	Remaining int
	// RetryAfter is how long to wait before a refused request would pass.
	RetryAfter time.Duration
	// Reset is how long until the full burst is available again.
	Reset time.Duration
}

// RateLimiter counts requests per key against a rate (GCRA).
type RateLimiter interface {
	Allow(ctx context.Context, key string, r Rate) (RateDecision, error)
}

// GCRA decides a request at now for a key whose theoretical arrival time
// is tat (zero for a new key), and returns the decision and the new tat.
// It is the generic cell rate algorithm: each request moves tat by one
// interval; a request is allowed when tat stays within the burst tolerance
// of now. Adapters keep tat: the in-process limiter calls this, and the
// Redis one runs the same arithmetic as a Lua script (Redis must decide
// atomically, on its own clock); persistence/limitertest holds both to the
// same decisions.
func GCRA(now, tat time.Time, r Rate) (RateDecision, time.Time) {
	interval := r.Interval()
	burst := max(r.Burst, 1)
	tolerance := interval * time.Duration(burst)
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	allowAt := next.Add(-tolerance)
	if now.Before(allowAt) {
		return RateDecision{Allowed: false, Remaining: 0, RetryAfter: allowAt.Sub(now), Reset: tat.Sub(now)}, tat
	}
	remaining := int((tolerance - next.Sub(now)) / interval)
	return RateDecision{Allowed: true, Remaining: max(remaining, 0), Reset: next.Sub(now)}, next
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

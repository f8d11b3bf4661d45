// Package accesstest is the conformance suite of access.KeyStore and
// access.IdempotencyStore: every adapter runs the very same tests from its
// own _test.go with Run.
package accesstest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

// Store is what the suite needs of an adapter.
type Store interface {
	access.KeyStore
	access.IdempotencyStore
}

// Run runs the suite. open must return a new, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"KeyRoundTrip", testKeyRoundTrip},
		{"KeyUnknown", testKeyUnknown},
		{"KeysListedNewestFirst", testKeysListed},
		{"RevokeKey", testRevokeKey},
		{"RevokeUnknownKey", testRevokeUnknown},
		{"IdempotencyReserveOnce", testReserveOnce},
		{"IdempotencyCompleteAndReplay", testCompleteReplay},
		{"IdempotencyRelease", testRelease},
		{"IdempotencyLapsedLock", testLapsedLock},
		{"IdempotencyExpiry", testExpiry},
		{"IdempotencyScopes", testScopes},
		{"IdempotencyConcurrentReserve", testConcurrentReserve},
		{"IdempotencyTokenBinding", testTokenBinding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)

func newKey(t *testing.T, scopes []access.Scope, owner *int64, at time.Time) (*access.APIKey, string) {
	t.Helper()
	k, secret, err := access.NewAPIKey(uuid.Must(uuid.NewV7()).String(), "test key", scopes, owner, at)
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

func ptr(n int64) *int64 { return &n }

func testKeyRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	k, secret := newKey(t, []access.Scope{access.ScopeWrite, access.ScopeRead}, ptr(42), t0)
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	got, err := s.KeyByHash(ctx, access.HashKey(secret))
	if err != nil {
		t.Fatalf("KeyByHash: %v", err)
	}
	if got.ID != k.ID || got.Name != k.Name || got.Hint != k.Hint || got.Hash != k.Hash {
		t.Errorf("got %+v, want %+v", got, k)
	}
	if !slices.Equal(got.Scopes, k.Scopes) {
		t.Errorf("scopes %v, want %v", got.Scopes, k.Scopes)
	}
	if got.Owner == nil || *got.Owner != 42 {
		t.Errorf("owner %v, want 42", got.Owner)
	}
	if !got.CreatedAt.Equal(k.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at %v, want %v in UTC", got.CreatedAt, k.CreatedAt)
	}
	if got.Revoked() {
		t.Error("a new key is revoked")
	}
	anyOwner, secret2 := newKey(t, []access.Scope{access.ScopeAdmin}, nil, t0)
	if err := s.CreateKey(ctx, anyOwner); err != nil {
		t.Fatal(err)
	}
	got, err = s.KeyByHash(ctx, access.HashKey(secret2))
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != nil {
		t.Errorf("owner %v, want none", *got.Owner)
	}
}

func testKeyUnknown(t *testing.T, s Store) {
	_, err := s.KeyByHash(context.Background(), access.HashKey("vtr_nope"))
	if !catalog.IsNotFound(err) {
		t.Fatalf("KeyByHash(unknown) = %v, want NotFound", err)
	}
}

func testKeysListed(t *testing.T, s Store) {
	ctx := context.Background()
	var want []string
	for i := range 3 {
		k, _ := newKey(t, []access.Scope{access.ScopeRead}, nil, t0.Add(time.Duration(i)*time.Second))
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		want = append([]string{k.ID}, want...)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.ID)
		if k.Hash == "" {
			t.Errorf("key %s listed without its hash (the adapter must return it; the API hides it)", k.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListKeys = %v, want newest first %v", got, want)
	}
}

func testRevokeKey(t *testing.T, s Store) {
	ctx := context.Background()
	k, secret := newKey(t, []access.Scope{access.ScopeWrite}, nil, t0)
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	got, err := s.RevokeKey(ctx, k.ID, at)
	if err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
		t.Errorf("revoked_at %v, want %v", got.RevokedAt, at)
	}
	again, err := s.RevokeKey(ctx, k.ID, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.RevokedAt == nil || !again.RevokedAt.Equal(at) {
		t.Errorf("revoking twice moved revoked_at to %v, want the first %v", again.RevokedAt, at)
	}
	looked, err := s.KeyByHash(ctx, access.HashKey(secret))
	if err != nil {
		t.Fatal(err)
	}
	if !looked.Revoked() {
		t.Error("KeyByHash returns a revoked key as valid")
	}
}

func testRevokeUnknown(t *testing.T, s Store) {
	_, err := s.RevokeKey(context.Background(), uuid.Must(uuid.NewV7()).String(), t0)
	if !catalog.IsNotFound(err) {
		t.Fatalf("RevokeKey(unknown) = %v, want NotFound", err)
	}
}

func record(scope, key, fp string, now time.Time) access.IdempotencyRecord {
	return access.IdempotencyRecord{Scope: scope, Key: key, Fingerprint: fp, Token: uuid.NewString(),
		LockedUntil: now.Add(time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
}

func testReserveOnce(t *testing.T, s Store) {
	ctx := context.Background()
	got, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", t0), t0)
	if err != nil || !ok {
		t.Fatalf("first Reserve = %v, %v; want reserved", ok, err)
	}
	if got.Fingerprint != "fp1" {
		t.Errorf("reserved record %+v", got)
	}
	got, ok, err = s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp2", t0.Add(time.Second)), t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatal("a second Reserve of a running key succeeded")
	}
	if got.Done || got.Fingerprint != "fp1" {
		t.Errorf("second Reserve returned %+v, want the first, unfinished", got)
	}
	if !got.LockedUntil.Equal(t0.Add(time.Minute)) {
		t.Errorf("locked_until %v, want %v", got.LockedUntil, t0.Add(time.Minute))
	}
}

func testCompleteReplay(t *testing.T, s Store) {
	ctx := context.Background()
	rec := record("k1", "abc", "fp1", t0)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, rec, t0); err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	rec.Status, rec.Header, rec.Body = 201, []byte(`{"Location":["/products/x"]}`), []byte(`{"id":"x"}`)
	if err := s.CompleteIdempotencyKey(ctx, rec); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	got, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", t0.Add(time.Hour)), t0.Add(time.Hour))
	if err != nil || ok {
		t.Fatalf("Reserve after Complete = %v, %v; want the stored record", ok, err)
	}
	if !got.Done || got.Status != 201 || string(got.Header) != string(rec.Header) || string(got.Body) != string(rec.Body) {
		t.Errorf("stored record %+v, want done 201 with header and body", got)
	}
	// A finished record keeps its response even after its lock time.
	got, ok, err = s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", t0.Add(2*time.Hour)), t0.Add(2*time.Hour))
	if err != nil || ok || !got.Done {
		t.Fatalf("finished record was taken over after its lock lapsed: %v %v %+v", ok, err, got)
	}
}

func testRelease(t *testing.T, s Store) {
	ctx := context.Background()
	held := record("k1", "abc", "fp1", t0)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, held, t0); err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	rec := record("k1", "abc", "fp1", t0)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, rec, t0); err != nil || ok {
		t.Fatalf("Reserve of a held key = %v, %v; want the holder's record", ok, err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, "k1", "abc", held.Token); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp2", t0), t0); err != nil || !ok {
		t.Fatalf("Reserve after Release = %v, %v; want reserved", ok, err)
	}
}

func testLapsedLock(t *testing.T, s Store) {
	ctx := context.Background()
	if _, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", t0), t0); err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	later := t0.Add(time.Minute + time.Second)
	got, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", later), later)
	if err != nil || !ok {
		t.Fatalf("Reserve after the lock lapsed = %v, %v; want reserved", ok, err)
	}
	if !got.LockedUntil.Equal(later.Add(time.Minute)) {
		t.Errorf("new lock until %v, want %v", got.LockedUntil, later.Add(time.Minute))
	}
}

func testExpiry(t *testing.T, s Store) {
	ctx := context.Background()
	rec := record("k1", "abc", "fp1", t0)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, rec, t0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	rec.Status, rec.Body = 201, []byte("x")
	if err := s.CompleteIdempotencyKey(ctx, rec); err != nil {
		t.Fatal(err)
	}
	other := record("k2", "abc", "fp", t0)
	other.ExpiresAt, other.LockedUntil = t0.Add(48*time.Hour), t0.Add(48*time.Hour)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, other, t0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	after := t0.Add(25 * time.Hour)
	n, err := s.PurgeIdempotencyKeys(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("Purge removed %d records, want 1 (the expired one)", n)
	}
	if _, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp9", after), after); err != nil || !ok {
		t.Fatalf("Reserve of an expired key = %v, %v; want reserved", ok, err)
	}
	got, ok, err := s.ReserveIdempotencyKey(ctx, record("k2", "abc", "fp", after), after)
	if err != nil || ok || got.Fingerprint != "fp" {
		t.Fatalf("a live record was purged or taken: %v %v %+v", ok, err, got)
	}
	// An expired record that was never purged is replaced too.
	rec3 := record("k3", "abc", "fp1", t0)
	rec3.ExpiresAt = t0.Add(time.Second)
	rec3.LockedUntil = t0.Add(time.Second)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, rec3, t0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, ok, err := s.ReserveIdempotencyKey(ctx, record("k3", "abc", "fp2", after), after); err != nil || !ok {
		t.Fatalf("Reserve over an expired record = %v, %v", ok, err)
	}
}

func testScopes(t *testing.T, s Store) {
	ctx := context.Background()
	if _, ok, err := s.ReserveIdempotencyKey(ctx, record("alice", "same", "fp1", t0), t0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, ok, err := s.ReserveIdempotencyKey(ctx, record("bob", "same", "fp2", t0), t0); err != nil || !ok {
		t.Fatalf("the same key under another scope = %v, %v; want reserved", ok, err)
	}
}

func testConcurrentReserve(t *testing.T, s Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.ReserveIdempotencyKey(ctx, record("k", "race", "fp", t0), t0)
			if err != nil {
				t.Errorf("Reserve %d: %v", i, err)
				return
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d of %d concurrent Reserves won, want exactly 1", won, n)
	}
}

// testTokenBinding: a request whose lock lapsed and was taken over by a
// retry (same request, same fingerprint) must neither complete nor release
// the retry's reservation, and the store must not hand out the holder's
// token.
func testTokenBinding(t *testing.T, s Store) {
	ctx := context.Background()
	stale := record("k1", "abc", "fp1", t0)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, stale, t0); err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	later := t0.Add(time.Minute + time.Second)
	fresh := record("k1", "abc", "fp1", later)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, fresh, later); err != nil || !ok {
		t.Fatalf("Reserve after the lock lapsed = %v, %v; want reserved", ok, err)
	}

	if err := s.ReleaseIdempotencyKey(ctx, "k1", "abc", stale.Token); err != nil {
		t.Fatalf("Release by the stale holder: %v", err)
	}
	got, ok, err := s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", later), later)
	if err != nil || ok || got.Done {
		t.Fatalf("the stale holder's Release dropped the retry's reservation: %v %v %+v", ok, err, got)
	}
	if got.Token != "" {
		t.Errorf("Reserve returned the holder's token %q; only the holder may know it", got.Token)
	}

	stale.Status, stale.Body = 201, []byte(`{"id":"first"}`)
	if err := s.CompleteIdempotencyKey(ctx, stale); !errors.Is(err, access.ErrReservationLost) {
		t.Errorf("Complete by the stale holder = %v, want ErrReservationLost", err)
	}
	got, ok, err = s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", later), later)
	if err != nil || ok || got.Done {
		t.Fatalf("the stale holder completed the retry's reservation: %v %v %+v", ok, err, got)
	}

	fresh.Status, fresh.Body = 201, []byte(`{"id":"second"}`)
	if err := s.CompleteIdempotencyKey(ctx, fresh); err != nil {
		t.Fatalf("Complete by the holder: %v", err)
	}
	got, ok, err = s.ReserveIdempotencyKey(ctx, record("k1", "abc", "fp1", later), later)
	if err != nil || ok || !got.Done || string(got.Body) != `{"id":"second"}` {
		t.Fatalf("after the holder's Complete: %v %v %+v, want its answer", ok, err, got)
	}
	if err := s.ReleaseIdempotencyKey(ctx, "k1", "abc", fresh.Token); err != nil {
		t.Fatal(err)
	}

	// The holder may still complete after its lock lapsed, as long as no
	// one took the key over: its answer is the one to replay.
	slow := record("k2", "abc", "fp1", t0)
	if _, ok, err := s.ReserveIdempotencyKey(ctx, slow, t0); err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	slow.Status, slow.Body = 201, []byte(`{"id":"slow"}`)
	if err := s.CompleteIdempotencyKey(ctx, slow); err != nil {
		t.Fatalf("Complete after the lock lapsed, untaken: %v", err)
	}
}

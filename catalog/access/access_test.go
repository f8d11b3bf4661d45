package access

import (
	"testing"
	"time"
)

// TestKeyLength: the constant is the length of the keys NewAPIKey makes.
func TestKeyLength(t *testing.T) {
	if want := len(KeyPrefix) + keyEncoding.EncodedLen(keyRandomBytes); KeyLength != want {
		t.Fatalf("KeyLength = %d, the encoding makes %d", KeyLength, want)
	}
	_, secret, err := NewAPIKey("k", "", []Scope{ScopeRead}, nil, time.Now())
	if err != nil || len(secret) != KeyLength || !WellFormedKey(secret) {
		t.Fatalf("a new key %q (%v): length %d, want %d", secret, err, len(secret), KeyLength)
	}
}

package sqlrows

import "github.com/vitrine-dev/vitrine/catalog/access"

// ScopeNames is the names of an API key's scopes, as its scopes column
// stores them (an array, or a list of words).
func ScopeNames(scopes []access.Scope) []string {
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return names
}

// Scopes is the scopes of an API key named by names (never nil).
func Scopes(names []string) []access.Scope {
	scopes := make([]access.Scope, len(names))
	for i, n := range names {
		scopes[i] = access.Scope(n)
	}
	return scopes
}

// Completed is the outcome of an UPDATE that completes an idempotency
// record matched by its reservation's token: none updated means the
// reservation no longer holds the key.
func Completed(rowsAffected int64) error {
	if rowsAffected == 0 {
		return access.ErrReservationLost
	}
	return nil
}

// Package catalog is vitrine's vocabulary: products, images and their
// variants, the rules that make them valid, the errors callers branch on, and
// the ports that adapters implement. It imports nothing else of vitrine's.
package catalog

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error so that transports can map it to a status once.
type Kind string

// The kinds of error callers branch on.
const (
	KindInvalid            Kind = "invalid"             // the request is malformed or a field is wrong
	KindNotFound           Kind = "not_found"           // the resource does not exist
	KindPrecondition       Kind = "precondition_failed" // If-Match did not match
	KindConflict           Kind = "conflict"            // a concurrent write won
	KindTooLarge           Kind = "too_large"           // the body or file is over a byte limit
	KindUnsupportedMedia   Kind = "unsupported_media"   // not an accepted format
	KindUnprocessableImage Kind = "unprocessable_image" // an accepted format, but over a limit or corrupt
	KindUnavailable        Kind = "unavailable"         // a dependency is down or the service is full; retry later
	KindUnauthorized       Kind = "unauthorized"        // no credential, or one nobody issued
	KindForbidden          Kind = "forbidden"           // the credential may not do this
	KindTooManyRequests    Kind = "too_many_requests"   // this client is over a limit; retry later
	KindUnprocessable      Kind = "unprocessable"       // well-formed, but cannot be done as asked
	KindNotAcceptable      Kind = "not_acceptable"      // no representation the client accepts
	KindInternal           Kind = "internal"
)

// FieldError says what is wrong with one input field.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error is a domain error with a kind, a stable machine code and a human detail.
type Error struct {
	Kind   Kind
	Code   string // stable slug, e.g. "validation", "too_many_pixels"
	Detail string
	Fields []FieldError
	// RetryAfter, when set, says when a refused request may be tried again.
	RetryAfter time.Duration
	Err        error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of the given kind and code.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// VersionConflict is what stores return when an optimistic update lost:
// the product changed since it was read. Each call makes a new value, so
// no caller can change another's.
func VersionConflict() *Error {
	return &Error{Kind: KindConflict, Code: "version_conflict", Detail: "the product was changed concurrently", Err: errVersionConflict}
}

var errVersionConflict = errors.New("version conflict")

// IsVersionConflict reports whether err is (or wraps) a VersionConflict.
func IsVersionConflict(err error) bool {
	return errors.Is(err, errVersionConflict)
}

// NotFound builds a not-found error naming what was missing.
func NotFound(format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Code: "not_found", Detail: fmt.Sprintf(format, args...), Err: errNotFoundSentinel}
}

var errNotFoundSentinel = errors.New("not found")

// IsNotFound reports whether err is (or wraps) a not-found error.
func IsNotFound(err error) bool {
	return ErrorKind(err) == KindNotFound
}

// ErrorKind returns the Kind of the first *Error in err's chain, or KindInternal.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Forbidden builds an error for a credential that may not do what it asks.
func Forbidden(format string, args ...any) *Error {
	return &Error{Kind: KindForbidden, Code: "forbidden", Detail: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a dependency failure so that callers answer 503.
func Unavailable(what string, err error) *Error {
	return &Error{Kind: KindUnavailable, Code: "unavailable", Detail: what + " is unavailable, retry later", Err: err}
}

// SKUTaken is the conflict of a product given a SKU that another product
// of its owner has.
func SKUTaken(owner int64, sku string, cause error) *Error {
	return &Error{Kind: KindConflict, Code: "sku_taken", Detail: fmt.Sprintf("another product of user_id %d has SKU %q", owner, sku),
		Fields: []FieldError{{Field: "sku", Detail: "is taken by another product of the same owner"}}, Err: cause}
}

// Invalid is the validation error of a request's fields.
func Invalid(errs []FieldError) *Error {
	return &Error{Kind: KindInvalid, Code: "validation", Detail: summarize(errs), Fields: errs}
}

// Package webhook delivers products' events to HTTP endpoints: signed as the
// Standard Webhooks specification says (HMAC-SHA256 over id, timestamp and
// body), retried with exponential backoff, each attempt recorded in a log
// that operators read through the admin API.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed message.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts a secret in its text form.
const secretPrefix = "whsec_"

// Secret is the key messages are signed with.
type Secret []byte

// ParseSecret reads a secret: "whsec_" and base64, or the base64 alone.
func ParseSecret(s string) (Secret, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook secret: must be whsec_ and base64 (vitrine webhook-secret makes one): %w", err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("webhook secret: must hold 24 to 64 bytes, holds %d", len(key))
	}
	return key, nil
}

// NewSecret makes a random secret (32 bytes) in its text form.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Sign returns the signature header's value for a message: "v1," and the
// base64 HMAC-SHA256 of "id.timestamp.payload".
func (k Secret) Sign(msgID string, at time.Time, payload []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(k.mac(msgID, at.Unix(), payload))
}

func (k Secret) mac(msgID string, unix int64, payload []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte{'.'})
	m.Write(payload)
	return m.Sum(nil)
}

// ErrSignature is a message whose signature, timestamp or headers are wrong.
var ErrSignature = errors.New("webhook signature")

// Verify checks a received message as a receiver does: its headers are
// present, its timestamp within tolerance of now, and one of the
// space-separated signatures a v1 signature of the message.
func (k Secret) Verify(h http.Header, payload []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("%w: missing %s, %s or %s", ErrSignature, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrSignature, ts)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %s is too far from now", ErrSignature, ts)
	}
	want := k.mac(id, unix, payload)
	for _, sig := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrSignature)
}

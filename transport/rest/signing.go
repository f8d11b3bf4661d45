package rest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// SignMedia signs an on-demand URL's path (from /media/ on, as
// "/media/products/{id}/{image}/w320.webp") with key: the query to append,
// "exp={unix}&sig={signature}" when expires is set, else "sig={signature}".
// The signature is the HMAC-SHA256 of the path, followed by "?exp={unix}"
// when it expires, in unpadded base64url.
func SignMedia(key []byte, path string, expires time.Time) string {
	signed, query := path, ""
	if !expires.IsZero() {
		exp := strconv.FormatInt(expires.Unix(), 10)
		signed += "?exp=" + exp
		query = "exp=" + exp + "&"
	}
	return query + "sig=" + base64.RawURLEncoding.EncodeToString(mac(key, signed))
}

func mac(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s)) // a hash's Write never fails
	return m.Sum(nil)
}

// verifySignature checks an on-demand URL's signature (SignMedia) against
// each key (several during a rotation), and its expiry against now.
// Errors are KindForbidden, saying what is wrong.
func verifySignature(keys [][]byte, path string, args *fasthttp.Args, now time.Time) error {
	sig := args.Peek("sig")
	if len(sig) == 0 {
		return catalog.Errorf(catalog.KindForbidden, "signature_required",
			"files made on demand need a signed URL on this server (a sig parameter: see the README's on-demand section)")
	}
	got, err := base64.RawURLEncoding.DecodeString(string(sig))
	if err != nil || len(got) != sha256.Size {
		return catalog.Errorf(catalog.KindForbidden, "invalid_signature", "the sig parameter is not a signature (32 bytes in unpadded base64url)")
	}
	signed := path
	if exp := args.Peek("exp"); len(exp) > 0 {
		at, err := smallUnix(string(exp))
		if err != nil {
			return catalog.Errorf(catalog.KindForbidden, "invalid_signature", "the exp parameter must be a time in Unix seconds")
		}
		if !now.Before(time.Unix(at, 0)) {
			return catalog.Errorf(catalog.KindForbidden, "signature_expired", "this signed URL expired at %s", time.Unix(at, 0).UTC().Format(time.RFC3339))
		}
		signed += "?exp=" + string(exp)
	}
	for _, k := range keys {
		if hmac.Equal(got, mac(k, signed)) {
			return nil
		}
	}
	return catalog.Errorf(catalog.KindForbidden, "invalid_signature", "the signature does not match this URL")
}

// smallUnix parses a Unix time of 1 to 12 digits.
func smallUnix(s string) (int64, error) {
	if s == "" || len(s) > 12 {
		return 0, strconv.ErrSyntax
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

package catalog

import (
	"fmt"
	"strings"
)

// Limits on blob keys.
const (
	MaxBlobKeyLength  = 1024
	MaxBlobKeySegment = 255
)

// ValidBlobKey checks that key is a relative slash-separated path whose segments
// are made of A-Z a-z 0-9 . _ - and are neither empty, "." nor "..". Such a
// key names a file inside a local store's directory and an object in a
// bucket alike; every BlobStore refuses any other.
func ValidBlobKey(key string) error {
	if key == "" {
		return invalidBlobKey(key, "is empty")
	}
	if len(key) > MaxBlobKeyLength {
		return invalidBlobKey(key, fmt.Sprintf("is longer than %d bytes", MaxBlobKeyLength))
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return invalidBlobKey(key, "has an empty segment")
		case seg == "." || seg == "..":
			return invalidBlobKey(key, "has a . or .. segment")
		case len(seg) > MaxBlobKeySegment:
			return invalidBlobKey(key, fmt.Sprintf("has a segment longer than %d bytes", MaxBlobKeySegment))
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return invalidBlobKey(key, fmt.Sprintf("has the character %q; allowed are A-Z a-z 0-9 . _ - and / between segments", c))
			}
		}
	}
	return nil
}

func invalidBlobKey(key, why string) error {
	return Errorf(KindInvalid, "invalid_key", "blob key %q %s", key, why)
}

package s3

import (
	"net/url"
	"strings"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Limits on Config.PartSize: S3 refuses parts under 5 MiB (but the last)
// and over 5 GiB.
const (
	DefaultPartSize int64 = 8 << 20
	MinPartSize     int64 = 5 << 20
	MaxPartSize     int64 = 5 << 30
)

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the base URL of an S3-compatible server, such as
	// "http://127.0.0.1:57070"; empty means AWS S3 itself.
	Endpoint string
	// Region signs the requests; S3-compatible servers mostly accept
	// "us-east-1".
	Region string
	// Bucket holds the blobs; New creates it when it does not exist.
	Bucket string
	// AccessKeyID and SecretAccessKey (and SessionToken, for temporary
	// credentials) are static credentials. When both are empty the SDK's
	// default chain is used: environment, shared files, web identity, ECS
	// or EC2 roles.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// PathStyle addresses the bucket as endpoint/bucket/key rather than
	// bucket.endpoint/key; most S3-compatible servers need it.
	PathStyle bool
	// PublicBaseURL, when set, is where clients fetch blobs (a CDN in front
	// of the bucket): URL(key) is PublicBaseURL + "/" + key. An http(s) URL
	// or an absolute path.
	PublicBaseURL string
	// PartSize is the size of the parts of multipart uploads, and the size
	// above which any blob goes through one; 0 means DefaultPartSize.
	PartSize int64
}

// Validate reports the first thing wrong with the configuration, as an
// error of kind KindInvalid.
func (c Config) Validate() error {
	invalid := func(format string, args ...any) error {
		return catalog.Errorf(catalog.KindInvalid, "invalid_s3_config", format, args...)
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return invalid("endpoint must be an http(s) URL such as http://127.0.0.1:9000, got %q", c.Endpoint)
		}
	}
	if c.Region == "" {
		return invalid("region is required (S3-compatible servers mostly accept us-east-1)")
	}
	if !validBucket(c.Bucket) {
		return invalid("bucket %q must be 3-63 characters of a-z, 0-9, . and -, starting and ending with a letter or digit", c.Bucket)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return invalid("access key id and secret access key go together: give both or neither")
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		return invalid("a session token needs an access key id and a secret access key")
	}
	if c.PublicBaseURL != "" && !strings.HasPrefix(c.PublicBaseURL, "/") {
		if u, err := url.Parse(c.PublicBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("public base URL must be an http(s) URL or an absolute path, got %q", c.PublicBaseURL)
		}
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		return invalid("part size must be between %d and %d bytes, got %d", MinPartSize, MaxPartSize, c.PartSize)
	}
	return nil
}

// validBucket checks the common S3 bucket naming rules.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && c != '.' && c != '-' {
			return false
		}
		if (i == 0 || i == len(b)-1) && !alnum {
			return false
		}
	}
	return !strings.Contains(b, "..")
}

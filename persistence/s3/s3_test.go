package s3

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// These tests need no server; the ones against a real one are in
// integration_test.go.

func validConfig() Config {
	return Config{
		Endpoint:        "http://127.0.0.1:9000",
		Region:          "us-east-1",
		Bucket:          "vitrine",
		AccessKeyID:     "key",
		SecretAccessKey: "secret",
		PathStyle:       true,
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		ok     bool
	}{
		{"valid", func(c *Config) {}, true},
		{"aws, default credentials", func(c *Config) { c.Endpoint, c.AccessKeyID, c.SecretAccessKey = "", "", "" }, true},
		{"https endpoint with path", func(c *Config) { c.Endpoint = "https://storage.example/s3" }, true},
		{"public base URL", func(c *Config) { c.PublicBaseURL = "https://cdn.example/media" }, true},
		{"public base path", func(c *Config) { c.PublicBaseURL = "/media" }, true},
		{"session token", func(c *Config) { c.SessionToken = "token" }, true},
		{"part size", func(c *Config) { c.PartSize = MinPartSize }, true},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = "127.0.0.1:9000" }, false},
		{"endpoint ftp", func(c *Config) { c.Endpoint = "ftp://host" }, false},
		{"endpoint with query", func(c *Config) { c.Endpoint = "http://host?x=1" }, false},
		{"no region", func(c *Config) { c.Region = "" }, false},
		{"no bucket", func(c *Config) { c.Bucket = "" }, false},
		{"short bucket", func(c *Config) { c.Bucket = "ab" }, false},
		{"upper-case bucket", func(c *Config) { c.Bucket = "Vitrine" }, false},
		{"bucket with slash", func(c *Config) { c.Bucket = "a/b" }, false},
		{"bucket ending in dash", func(c *Config) { c.Bucket = "vitrine-" }, false},
		{"bucket with double dot", func(c *Config) { c.Bucket = "a..b" }, false},
		{"key id alone", func(c *Config) { c.SecretAccessKey = "" }, false},
		{"secret alone", func(c *Config) { c.AccessKeyID = "" }, false},
		{"token alone", func(c *Config) { c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "", "", "t" }, false},
		{"relative public URL", func(c *Config) { c.PublicBaseURL = "cdn.example" }, false},
		{"part size too small", func(c *Config) { c.PartSize = MinPartSize - 1 }, false},
		{"part size too large", func(c *Config) { c.PartSize = MaxPartSize + 1 }, false},
		{"negative part size", func(c *Config) { c.PartSize = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && catalog.ErrorKind(err) != catalog.KindInvalid {
				t.Fatalf("Validate = %v, want an invalid config error", err)
			}
		})
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	c := validConfig()
	c.Bucket = ""
	if _, err := New(t.Context(), c); catalog.ErrorKind(err) != catalog.KindInvalid {
		t.Fatalf("New = %v, want an invalid config error", err)
	}
}

func TestURL(t *testing.T) {
	const key = "products/p/i/thumb.webp"
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"path style", func(c *Config) {}, "http://127.0.0.1:9000/vitrine/" + key},
		{"path style, trailing slash", func(c *Config) { c.Endpoint += "/" }, "http://127.0.0.1:9000/vitrine/" + key},
		{"virtual hosted", func(c *Config) { c.Endpoint, c.PathStyle = "https://storage.example", false }, "https://vitrine.storage.example/" + key},
		{"virtual hosted with port", func(c *Config) { c.Endpoint, c.PathStyle = "http://minio.local:9000", false }, "http://vitrine.minio.local:9000/" + key},
		{"aws", func(c *Config) { c.Endpoint, c.Region, c.PathStyle = "", "eu-west-3", false }, "https://vitrine.s3.eu-west-3.amazonaws.com/" + key},
		{"aws path style", func(c *Config) { c.Endpoint, c.Region = "", "eu-west-3" }, "https://s3.eu-west-3.amazonaws.com/vitrine/" + key},
		{"cdn", func(c *Config) { c.PublicBaseURL = "https://cdn.example/media/" }, "https://cdn.example/media/" + key},
		{"cdn path", func(c *Config) { c.PublicBaseURL = "/media" }, "/media/" + key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			s, err := open(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.URL(key); got != tt.want {
				t.Errorf("URL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsOriginal(t *testing.T) {
	for key, want := range map[string]bool{
		catalog.OriginalKey("p", "i"):  true,
		"original":                     true,
		"products/p/i/r1/thumb.webp":   false,
		"products/p/i/original.webp":   false,
		"products/p/i/not-original":    false,
		"products/p/i/r1/original.jpg": false,
	} {
		if got := isOriginal(key); got != want {
			t.Errorf("isOriginal(%q) = %v, want %v", key, got, want)
		}
	}
}

// closedPort returns the address of a local TCP port that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Refused connections are retried a few times with short back-offs, then
// reported as Unavailable: well within a request's budget.
func TestUnreachableIsUnavailable(t *testing.T) {
	c := validConfig()
	c.Endpoint = "http://" + closedPort(t)
	const budget = 5 * time.Second

	start := time.Now()
	_, err := New(t.Context(), c)
	if catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Fatalf("New = %v, want unavailable", err)
	}
	if d := time.Since(start); d > budget {
		t.Errorf("New took %v, want under %v", d, budget)
	}

	s, err := open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) error{
		"Put": func(ctx context.Context) error {
			return s.Put(ctx, "products/p/i/thumb.webp", []byte("x"), "image/webp")
		},
		"Put original": func(ctx context.Context) error {
			return s.Put(ctx, catalog.OriginalKey("p", "i"), []byte("x"), "image/jpeg")
		},
		"Get":          func(ctx context.Context) error { _, err := s.Get(ctx, "products/p/i/thumb.webp"); return err },
		"DeletePrefix": func(ctx context.Context) error { return s.DeletePrefix(ctx, "products/p/") },
		"Ping":         func(ctx context.Context) error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call(t.Context())
			if catalog.ErrorKind(err) != catalog.KindUnavailable {
				t.Fatalf("%s = %v, want unavailable", name, err)
			}
			if d := time.Since(start); d > budget {
				t.Errorf("%s took %v, want under %v", name, d, budget)
			}
		})
	}
}

// A server that accepts connections and never answers holds a call only as
// long as the caller's context allows, and the context's error comes back.
func TestCallsHonourContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // read nothing, answer nothing
		}
	}()
	c := validConfig()
	c.Endpoint = "http://" + l.Addr().String()
	s, err := open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	const wait = 300 * time.Millisecond
	calls := map[string]func(ctx context.Context) error{
		"New": func(ctx context.Context) error { _, err := New(ctx, c); return err },
		"Put": func(ctx context.Context) error {
			return s.Put(ctx, "products/p/i/thumb.webp", []byte("x"), "image/webp")
		},
		"Get":          func(ctx context.Context) error { _, err := s.Get(ctx, "products/p/i/thumb.webp"); return err },
		"DeletePrefix": func(ctx context.Context) error { return s.DeletePrefix(ctx, "products/p/") },
		"Ping":         func(ctx context.Context) error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			start := time.Now()
			err := call(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s = %v, want the context's deadline", name, err)
			}
			if d := time.Since(start); d > wait+2*time.Second {
				t.Errorf("%s took %v with a %v deadline", name, d, wait)
			}
		})
	}
}

// Invalid keys are refused before any call to the server.
func TestInvalidKeysNeedNoServer(t *testing.T) {
	c := validConfig()
	c.Endpoint = "http://" + closedPort(t)
	s, err := open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "../x", "a//b", "/abs", "a b", strings.Repeat("a", 2000)} {
		if err := s.Put(t.Context(), key, []byte("x"), ""); catalog.ErrorKind(err) != catalog.KindInvalid {
			t.Errorf("Put(%.20q) = %v, want invalid", key, err)
		}
		if _, err := s.Get(t.Context(), key); catalog.ErrorKind(err) != catalog.KindInvalid {
			t.Errorf("Get(%.20q) = %v, want invalid", key, err)
		}
	}
	for _, prefix := range []string{"", "/", "a//", "../"} {
		if err := s.DeletePrefix(t.Context(), prefix); catalog.ErrorKind(err) != catalog.KindInvalid {
			t.Errorf("DeletePrefix(%q) = %v, want invalid", prefix, err)
		}
	}
}

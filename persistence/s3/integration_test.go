//go:build integration

package s3

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/blobtest"
)

// serverConfig is the S3-compatible server of the environment, with a
// fresh bucket name.
func serverConfig(t *testing.T) Config {
	t.Helper()
	endpoint := os.Getenv("VITRINE_S3_ENDPOINT")
	if endpoint == "" {
		t.Fatal(`VITRINE_S3_ENDPOINT is not set: the S3 integration tests need a server; run eval "$(scripts/services up s3)" first`)
	}
	pathStyle, err := strconv.ParseBool(cmp.Or(os.Getenv("VITRINE_S3_PATH_STYLE"), "true"))
	if err != nil {
		t.Fatalf("VITRINE_S3_PATH_STYLE: %v", err)
	}
	return Config{
		Endpoint:        endpoint,
		Region:          cmp.Or(os.Getenv("VITRINE_S3_REGION"), "us-east-1"),
		Bucket:          "vitrine-test-" + randomHex(t, 6),
		AccessKeyID:     os.Getenv("VITRINE_S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("VITRINE_S3_SECRET_ACCESS_KEY"),
		PathStyle:       pathStyle,
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// calls counts the S3 operations a client makes, keeps the last error of
// each, and can fail some.
type calls struct {
	mu     sync.Mutex
	counts map[string]int
	errs   map[string]error
	fail   func(op string, in any) error // nil, or an error to fail the call with
}

func (c *calls) option(o *s3api.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("vitrine-count",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				op := awsmiddleware.GetOperationName(ctx)
				c.mu.Lock()
				if c.counts == nil {
					c.counts = map[string]int{}
				}
				c.counts[op]++
				fail := c.fail
				c.mu.Unlock()
				if fail != nil {
					if err := fail(op, in.Parameters); err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
				}
				out, md, err := next.HandleInitialize(ctx, in)
				c.mu.Lock()
				if c.errs == nil {
					c.errs = map[string]error{}
				}
				c.errs[op] = err
				c.mu.Unlock()
				return out, md, err
			}), middleware.Before)
	})
}

func (c *calls) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
}

func (c *calls) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[op]
}

// lastErr is what the server answered the last op sent to it.
func (c *calls) lastErr(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs[op]
}

// newStore creates a store over a fresh bucket, which is emptied and
// removed when the test ends.
func newStore(t *testing.T, cfg Config, c *calls) *Store {
	t.Helper()
	var opts []func(*s3api.Options)
	if c != nil {
		opts = append(opts, c.option)
	}
	s, err := open(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ensureBucket(t.Context()); err != nil {
		t.Fatalf("ensure bucket: %v", err)
	}
	t.Cleanup(func() {
		if c != nil {
			c.mu.Lock()
			c.fail = nil
			c.mu.Unlock()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeBucket(ctx, s); err != nil {
			t.Errorf("remove bucket %s: %v", s.bucket, err)
		}
	})
	return s
}

// removeBucket aborts the bucket's uploads, deletes its objects and then
// the bucket.
func removeBucket(ctx context.Context, s *Store) error {
	uploads, err := s.client.ListMultipartUploads(ctx, &s3api.ListMultipartUploadsInput{Bucket: &s.bucket})
	if err != nil {
		return err
	}
	for _, u := range uploads.Uploads {
		if _, err := s.client.AbortMultipartUpload(ctx, &s3api.AbortMultipartUploadInput{Bucket: &s.bucket, Key: u.Key, UploadId: u.UploadId}); err != nil {
			return err
		}
	}
	keys, err := listKeys(ctx, s, "")
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(keys, 1000) {
		ids := make([]types.ObjectIdentifier, len(chunk))
		for i, k := range chunk {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		if err := s.deleteObjects(ctx, ids); err != nil {
			return err
		}
	}
	_, err = s.client.DeleteBucket(ctx, &s3api.DeleteBucketInput{Bucket: &s.bucket})
	return err
}

func listKeys(ctx context.Context, s *Store, prefix string) ([]string, error) {
	var keys []string
	pages := s3api.NewListObjectsV2Paginator(s.client, &s3api.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

func TestBlobStore(t *testing.T) {
	cfg := serverConfig(t)
	blobtest.Run(t, func(t *testing.T) catalog.BlobStore {
		c := cfg
		c.Bucket = "vitrine-test-" + randomHex(t, 6)
		return newStore(t, c, nil)
	})
}

func TestNewCreatesBucketOnce(t *testing.T) {
	cfg := serverConfig(t)
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := removeBucket(context.Background(), s); err != nil {
			t.Errorf("remove bucket: %v", err)
		}
	})
	if err := s.Put(t.Context(), "x", []byte("kept"), "text/plain"); err != nil {
		t.Fatal(err)
	}
	// A second store over the existing bucket finds it and its content.
	s2, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New over an existing bucket: %v", err)
	}
	if got, err := s2.Get(t.Context(), "x"); err != nil || string(got) != "kept" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// Two processes starting together both find no bucket and both create
	// it: the second CreateBucket finds the bucket made, and that is fine.
	// The race is played by a store whose HeadBucket is told the bucket is
	// missing, so that its CreateBucket reaches the server.
	c := &calls{fail: func(op string, _ any) error {
		if op == "HeadBucket" {
			return &types.NotFound{Message: aws.String("missing, as the test says")}
		}
		return nil
	}}
	racer, err := open(t.Context(), cfg, c.option)
	if err != nil {
		t.Fatal(err)
	}
	if err := racer.ensureBucket(t.Context()); err != nil {
		t.Fatalf("ensureBucket losing the race to create the bucket: %v", err)
	}
	if n := c.get("CreateBucket"); n != 1 {
		t.Fatalf("CreateBucket sent %d times, want 1: the race was not played", n)
	}
	// Only a refusal exercises the tolerance: the server must have said so.
	var owned *types.BucketAlreadyOwnedByYou
	if err := c.lastErr("CreateBucket"); !errors.As(err, &owned) {
		t.Fatalf("the server answered CreateBucket on our existing bucket with %v, want BucketAlreadyOwnedByYou", err)
	}
	if got, err := racer.Get(t.Context(), "x"); err != nil || string(got) != "kept" {
		t.Fatalf("Get after the race = %q, %v", got, err)
	}
}

func TestHeaders(t *testing.T) {
	s := newStore(t, serverConfig(t), nil)
	tests := []struct {
		name, key, contentType, wantType, wantCache string
		size                                        int
	}{
		{"variant", "products/p/i/r1/thumb.webp", "image/webp", "image/webp", CacheVariant, 100},
		{"original", catalog.OriginalKey("p", "i"), "image/jpeg", "image/jpeg", CacheOriginal, 100},
		{"large variant", "products/p/i/r1/large.avif", "image/avif", "image/avif", CacheVariant, int(DefaultPartSize) + 1},
		{"no content type", "products/p/i/r1/blob", "", "application/octet-stream", CacheVariant, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(t.Context(), tt.key, bytes.Repeat([]byte{'x'}, tt.size), tt.contentType); err != nil {
				t.Fatal(err)
			}
			head, err := s.client.HeadObject(t.Context(), &s3api.HeadObjectInput{Bucket: &s.bucket, Key: &tt.key})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(head.ContentType); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := aws.ToString(head.CacheControl); got != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.wantCache)
			}
			if got := aws.ToInt64(head.ContentLength); got != int64(tt.size) {
				t.Errorf("Content-Length = %d, want %d", got, tt.size)
			}
		})
	}
}

func TestMultipart(t *testing.T) {
	var c calls
	s := newStore(t, serverConfig(t), &c)
	data := make([]byte, 20<<20)
	rng := mathrand.NewChaCha8([32]byte{7})
	_, _ = rng.Read(data) // ChaCha8's Read never fails

	tests := []struct {
		name, key string
		data      []byte
		parts     int // 0: a single PutObject
	}{
		{"20 MiB original", catalog.OriginalKey("p", "big"), data, 3},
		{"20 MiB variant", "products/p/big/r1/huge.png", data, 3},
		{"small original", catalog.OriginalKey("p", "small"), data[:1000], 1},
		{"part-size variant", "products/p/big/r1/edge.png", data[:DefaultPartSize], 0},
		{"small variant", "products/p/big/r1/thumb.webp", data[:1000], 0},
		{"empty original", catalog.OriginalKey("p", "empty"), []byte{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.reset()
			if err := s.Put(t.Context(), tt.key, tt.data, "image/png"); err != nil {
				t.Fatal(err)
			}
			multipart := 0
			if tt.parts > 0 {
				multipart = 1
			}
			for op, want := range map[string]int{
				"PutObject":               1 - multipart,
				"CreateMultipartUpload":   multipart,
				"UploadPart":              tt.parts,
				"CompleteMultipartUpload": multipart,
				"AbortMultipartUpload":    0,
			} {
				if got := c.get(op); got != want {
					t.Errorf("%s calls = %d, want %d", op, got, want)
				}
			}
			head, err := s.client.HeadObject(t.Context(), &s3api.HeadObjectInput{Bucket: &s.bucket, Key: &tt.key})
			if err != nil {
				t.Fatal(err)
			}
			etag := strings.Trim(aws.ToString(head.ETag), `"`)
			if tt.parts > 0 && !strings.HasSuffix(etag, fmt.Sprintf("-%d", tt.parts)) {
				t.Errorf("ETag %s, want the multipart suffix -%d", etag, tt.parts)
			}
			if tt.parts == 0 && strings.Contains(etag, "-") {
				t.Errorf("ETag %s of a single put has a multipart suffix", etag)
			}
			got, err := s.Get(t.Context(), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(tt.data))
			}
		})
	}
}

// A part that fails makes Put fail, and the upload is aborted: no parts
// stay behind, and the key keeps its previous content.
func TestMultipartFailureAborts(t *testing.T) {
	var c calls
	s := newStore(t, serverConfig(t), &c)
	key := catalog.OriginalKey("p", "i")
	if err := s.Put(t.Context(), key, []byte("before"), "image/png"); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected part failure")
	c.mu.Lock()
	c.fail = func(op string, in any) error {
		if p, ok := in.(*s3api.UploadPartInput); ok && aws.ToInt32(p.PartNumber) == 2 {
			return injected
		}
		return nil
	}
	c.mu.Unlock()
	c.reset()
	err := s.Put(t.Context(), key, make([]byte, 20<<20), "image/png")
	if !errors.Is(err, injected) || catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Fatalf("Put = %v, want the injected failure as unavailable", err)
	}
	if got := c.get("AbortMultipartUpload"); got != 1 {
		t.Errorf("AbortMultipartUpload calls = %d, want 1", got)
	}
	if got := c.get("CompleteMultipartUpload"); got != 0 {
		t.Errorf("CompleteMultipartUpload calls = %d, want 0", got)
	}
	uploads, err := s.client.ListMultipartUploads(t.Context(), &s3api.ListMultipartUploadsInput{Bucket: &s.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after the failure", len(uploads.Uploads))
	}
	if got, err := s.Get(t.Context(), key); err != nil || string(got) != "before" {
		t.Errorf("Get after the failed Put = %.20q, %v; want the previous content", got, err)
	}
}

// putMany puts one small blob per key, a few at a time.
func putMany(t *testing.T, s *Store, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if err := s.Put(t.Context(), k, []byte(k), "text/plain"); err != nil {
					t.Errorf("Put(%s): %v", k, err)
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func TestDeletePrefixBatches(t *testing.T) {
	tests := []struct {
		name          string
		objects       int
		batch         int
		wantDeleteOps int
	}{
		{"over 1000", 1100, maxDeleteBatch, 2},
		{"small batches", 30, 7, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c calls
			s := newStore(t, serverConfig(t), &c)
			s.deleteBatch = tt.batch
			var gone []string
			for i := range tt.objects {
				gone = append(gone, fmt.Sprintf("products/big/i%04d/r1/thumb.webp", i))
			}
			kept := []string{"products/big2/i/original", "products/bi/i/original", "other/products/big/i/original", "products/big-x"}
			putMany(t, s, slices.Concat(gone, kept))
			c.reset()
			if err := s.DeletePrefix(t.Context(), catalog.ProductPrefix("big")); err != nil {
				t.Fatalf("DeletePrefix: %v", err)
			}
			if got := c.get("DeleteObjects"); got != tt.wantDeleteOps {
				t.Errorf("DeleteObjects calls = %d, want %d", got, tt.wantDeleteOps)
			}
			left, err := listKeys(t.Context(), s, "")
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(left)
			slices.Sort(kept)
			if !slices.Equal(left, kept) {
				t.Errorf("keys left = %.10q (%d), want exactly %q", left, len(left), kept)
			}
		})
	}
}

// The server checks signatures: a wrong secret for a real key id, or an
// unknown key id, is refused, and reads with them are Unavailable, never
// NotFound.
func TestWrongCredentialsAreRefused(t *testing.T) {
	cfg := serverConfig(t)
	good := newStore(t, cfg, nil)
	key := "products/p/i/r1/thumb.webp"
	if err := good.Put(t.Context(), key, []byte("x"), "image/webp"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		change    func(c *Config)
		wantCodes []string
	}{
		{"wrong secret", func(c *Config) { c.SecretAccessKey += "x" }, []string{"SignatureDoesNotMatch"}},
		// versitygw names the unknown user rather than the key, with a
		// 404 (which must not read as a missing blob).
		{"unknown key id", func(c *Config) { c.AccessKeyID = "nobody" + randomHex(t, 4) }, []string{"InvalidAccessKeyId", "XAdminUserNotFound"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			tt.change(&c)
			_, err := New(t.Context(), c)
			if catalog.ErrorKind(err) != catalog.KindUnavailable {
				t.Fatalf("New = %v, want unavailable", err)
			}
			bad, err := open(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			checks := map[string]error{
				"Ping":         bad.Ping(t.Context()),
				"Put":          bad.Put(t.Context(), key, []byte("evil"), "image/webp"),
				"DeletePrefix": bad.DeletePrefix(t.Context(), "products/"),
			}
			_, checks["Get"] = bad.Get(t.Context(), key)
			_, checks["Get missing"] = bad.Get(t.Context(), "products/p/i/r1/none.webp")
			for name, err := range checks {
				if catalog.ErrorKind(err) != catalog.KindUnavailable {
					t.Errorf("%s = %v, want unavailable", name, err)
				}
			}
			// Get and Put carry a body, so the server says why.
			if code := apiCode(checks["Put"]); !slices.Contains(tt.wantCodes, code) {
				t.Errorf("Put refused with code %q, want one of %q", code, tt.wantCodes)
			}
			if status := httpStatus(checks["Put"]); tt.name == "wrong secret" && status != http.StatusForbidden {
				t.Errorf("Put refused with status %d, want 403", status)
			}
			if got, err := good.Get(t.Context(), key); err != nil || string(got) != "x" {
				t.Errorf("the blob after refused writes = %q, %v", got, err)
			}
		})
	}
}

func TestMissingBucketIsUnavailable(t *testing.T) {
	s := newStore(t, serverConfig(t), nil)
	other := *s
	other.bucket = "vitrine-test-missing-" + randomHex(t, 4)
	if err := other.Ping(t.Context()); catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Errorf("Ping = %v, want unavailable", err)
	}
	if _, err := other.Get(t.Context(), "x"); catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Errorf("Get from a missing bucket = %v, want unavailable (not not-found)", err)
	}
}

// Package s3 is vitrine's object-store blob store: one object per blob in a
// bucket of AWS S3 or of an S3-compatible server (MinIO, versitygw, Ceph,
// R2...), through aws-sdk-go-v2.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Cache-Control of the objects. Variants are written under keys that change
// whenever their content does, so they are cached for good; originals are
// the sellers' uploads, kept for reprocessing and never meant to sit in a
// shared cache.
const (
	CacheVariant  = "public, max-age=31536000, immutable"
	CacheOriginal = "private, no-store"
)

// Bounds on calls: an unreachable server fails within a few seconds instead
// of hanging on the kernel's connect timeout, and failed calls are retried a
// bounded number of times with short back-offs. Everything else is bounded
// by the caller's context.
const (
	dialTimeout           = 2 * time.Second
	tlsHandshakeTimeout   = 5 * time.Second
	responseHeaderTimeout = time.Minute
	maxAttempts           = 3
	maxBackoff            = time.Second
	// partConcurrency is how many parts of one multipart upload are in
	// flight at once.
	partConcurrency = 4
	// abortTimeout bounds the abort of a failed multipart upload, which runs
	// even when the caller's context has ended.
	abortTimeout = 10 * time.Second
	// maxDeleteBatch is the most keys one DeleteObjects call takes.
	maxDeleteBatch = 1000
)

// Store keeps blobs as objects of one bucket: the blob with key
// "products/p/i/original" is the object of that key. Objects keep their
// content type and get a Cache-Control header (CacheVariant or
// CacheOriginal) for whatever serves them.
type Store struct {
	client      *s3api.Client
	bucket      string
	region      string
	baseURL     string
	partSize    int64
	deleteBatch int // keys per DeleteObjects call; maxDeleteBatch but in tests
}

var _ catalog.BlobStore = (*Store)(nil)

// New connects to the bucket of cfg, creating it if it does not exist. An
// unreachable server or refused credentials are Unavailable.
func New(ctx context.Context, cfg Config) (*Store, error) {
	s, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Open builds a store over cfg without calling the server, nor creating the
// bucket (vitrine doctor uses it to look, and changes nothing).
func Open(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg) }

// open builds a store over cfg without calling the server; opts adjust the
// client (tests count calls with them).
func open(ctx context.Context, cfg Config, opts ...func(*s3api.Options)) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = tlsHandshakeTimeout
			t.ResponseHeaderTimeout = responseHeaderTimeout
		})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = maxBackoff
			})
		}),
	}
	if cfg.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 client config: %w", err)
	}
	client := s3api.NewFromConfig(awsCfg, append([]func(*s3api.Options){func(o *s3api.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Multipart objects have a checksum of their parts' checksums,
		// which GetObject cannot check against the body; the SDK would log
		// a warning on every such read.
		o.DisableLogOutputChecksumValidationSkipped = true
	}}, opts...)...)
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	return &Store{
		client:      client,
		bucket:      cfg.Bucket,
		region:      cfg.Region,
		baseURL:     baseURL(cfg),
		partSize:    partSize,
		deleteBatch: maxDeleteBatch,
	}, nil
}

// baseURL is what URL puts before "/" + key.
func baseURL(cfg Config) string {
	if cfg.PublicBaseURL != "" {
		return strings.TrimRight(cfg.PublicBaseURL, "/")
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "https://s3." + cfg.Region + ".amazonaws.com"
	}
	endpoint = strings.TrimRight(endpoint, "/")
	if cfg.PathStyle {
		return endpoint + "/" + cfg.Bucket
	}
	u, err := url.Parse(endpoint)
	if err != nil { // Validate checked it
		return endpoint + "/" + cfg.Bucket
	}
	u.Host = cfg.Bucket + "." + u.Host
	return strings.TrimRight(u.String(), "/")
}

// ensureBucket creates the bucket unless it exists and is ours.
func (s *Store) ensureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	if !isMissingBucket(err) {
		return fmt.Errorf("check bucket %s: %w", s.bucket, translate(ctx, err))
	}
	in := &s3api.CreateBucketInput{Bucket: &s.bucket}
	if s.region != "us-east-1" { // the one region that refuses to be named
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.region),
		}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	var taken *types.BucketAlreadyExists
	switch {
	case err == nil, errors.As(err, &owned):
		return nil
	case errors.As(err, &taken):
		return fmt.Errorf("create bucket %s: %w", s.bucket, &catalog.Error{
			Kind: catalog.KindInvalid, Code: "invalid_s3_config",
			Detail: "bucket " + s.bucket + " belongs to another account", Err: err,
		})
	default:
		return fmt.Errorf("create bucket %s: %w", s.bucket, translate(ctx, err))
	}
}

// URL is where clients fetch the blob: under the public base URL when one
// is configured, else the object's own address at the endpoint (the bucket
// or a policy must then allow anonymous reads).
func (s *Store) URL(key string) string {
	return s.baseURL + "/" + key
}

// isOriginal reports whether key names an original upload.
func isOriginal(key string) bool {
	return key == "original" || strings.HasSuffix(key, "/original")
}

// Put stores data under key atomically: readers see the old object or the
// new one, never a part. Originals, and blobs over the part size, go
// through a multipart upload that is aborted when it fails.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) error {
	if _, err := s.put(ctx, key, data, contentType, false); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	return nil
}

// Create stores data under key unless an object is there already, and
// reports whether it wrote: the write carries If-None-Match: *, which the
// server refuses (412) when the key exists, atomically.
func (s *Store) Create(ctx context.Context, key string, data []byte, contentType string) (bool, error) {
	written, err := s.put(ctx, key, data, contentType, true)
	if err != nil {
		return false, fmt.Errorf("create blob %s: %w", key, err)
	}
	return written, nil
}

// put writes an object, only if it does not exist when ifAbsent, and
// reports whether it wrote.
func (s *Store) put(ctx context.Context, key string, data []byte, contentType string, ifAbsent bool) (bool, error) {
	if err := catalog.ValidBlobKey(key); err != nil {
		return false, err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	cacheControl := CacheVariant
	if isOriginal(key) {
		cacheControl = CacheOriginal
	}
	var ifNoneMatch *string
	if ifAbsent {
		ifNoneMatch = aws.String("*")
	}
	var err error
	if len(data) > 0 && (isOriginal(key) || int64(len(data)) > s.partSize) {
		err = s.putMultipart(ctx, key, data, contentType, cacheControl, ifNoneMatch)
	} else {
		_, err = s.client.PutObject(ctx, &s3api.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &key,
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			ContentType:   &contentType,
			CacheControl:  &cacheControl,
			IfNoneMatch:   ifNoneMatch,
		})
	}
	if ifAbsent && httpStatus(err) == http.StatusPreconditionFailed {
		return false, nil // there already
	}
	if err != nil {
		return false, translate(ctx, err)
	}
	return true, nil
}

// putMultipart uploads data in parts of s.partSize, partConcurrency at a
// time, each with a CRC32 checksum that the server checks. A failed upload
// is aborted so that its parts do not linger (and cost) in the bucket.
func (s *Store) putMultipart(ctx context.Context, key string, data []byte, contentType, cacheControl string, ifNoneMatch *string) error {
	created, err := s.client.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &key,
		ContentType:       &contentType,
		CacheControl:      &cacheControl,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	uploadID := created.UploadId
	parts, err := s.uploadParts(ctx, key, uploadID, data)
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{
			Bucket:          &s.bucket,
			Key:             &key,
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			IfNoneMatch:     ifNoneMatch,
		})
		if err != nil {
			err = fmt.Errorf("complete multipart upload: %w", err)
		}
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3api.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &key, UploadId: uploadID,
		}); aerr != nil && !isMissingUpload(aerr) {
			err = errors.Join(err, fmt.Errorf("abort multipart upload %s: %w", aws.ToString(uploadID), aerr))
		}
		return err
	}
	return nil
}

// uploadParts uploads the parts of data; the first failure cancels the
// others.
func (s *Store) uploadParts(ctx context.Context, key string, uploadID *string, data []byte) ([]types.CompletedPart, error) {
	n := int((int64(len(data)) + s.partSize - 1) / s.partSize)
	parts := make([]types.CompletedPart, n)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		slots = make(chan struct{}, partConcurrency)
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
loop:
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-pctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-slots }()
			start := int64(i) * s.partSize
			chunk := data[start:min(start+s.partSize, int64(len(data)))]
			number := int32(i + 1) // #nosec G115 -- i < n = len(data)/partSize + 1, partSize ≥ 5 MiB (Config.Validate): far below 2^31 parts
			out, err := s.client.UploadPart(pctx, &s3api.UploadPartInput{
				Bucket:            &s.bucket,
				Key:               &key,
				UploadId:          uploadID,
				PartNumber:        &number,
				Body:              bytes.NewReader(chunk),
				ContentLength:     aws.Int64(int64(len(chunk))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				fail(fmt.Errorf("upload part %d of %d: %w", number, n, err))
				return
			}
			parts[i] = types.CompletedPart{PartNumber: &number, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return parts, nil
}

// Get returns the content of the blob with key; a missing blob is NotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := catalog.ValidBlobKey(key); err != nil {
		return nil, fmt.Errorf("get blob: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isMissingKey(err) {
			return nil, fmt.Errorf("get blob %s: %w", key, catalog.NotFound("blob %s", key))
		}
		return nil, fmt.Errorf("get blob %s: %w", key, translate(ctx, err))
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, translate(ctx, err))
	}
	return buf.Bytes(), nil
}

// DeletePrefix removes every blob whose key starts with prefix, listing
// them and deleting them in batches of up to 1000. A prefix must be a valid
// key, or one followed by "/"; the empty prefix, which would empty the
// bucket, is refused. Deleting what does not exist is not an error.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := catalog.ValidBlobKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("delete blobs: %w", err)
	}
	pages := s3api.NewListObjectsV2Paginator(s.client, &s3api.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	batch := make([]types.ObjectIdentifier, 0, s.deleteBatch)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("delete blobs %s: list: %w", prefix, translate(ctx, err))
		}
		for _, obj := range page.Contents {
			batch = append(batch, types.ObjectIdentifier{Key: obj.Key})
			if len(batch) == s.deleteBatch {
				if err := s.deleteObjects(ctx, batch); err != nil {
					return fmt.Errorf("delete blobs %s: %w", prefix, err)
				}
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		if err := s.deleteObjects(ctx, batch); err != nil {
			return fmt.Errorf("delete blobs %s: %w", prefix, err)
		}
	}
	return nil
}

// deleteObjects deletes one batch of keys; keys the server could not delete
// make it fail.
func (s *Store) deleteObjects(ctx context.Context, batch []types.ObjectIdentifier) error {
	out, err := s.client.DeleteObjects(ctx, &s3api.DeleteObjectsInput{
		Bucket: &s.bucket,
		Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return translate(ctx, err)
	}
	var failed []types.Error
	for _, e := range out.Errors {
		if aws.ToString(e.Code) != "NoSuchKey" { // gone already: that is what we want
			failed = append(failed, e)
		}
	}
	if len(failed) > 0 {
		e := failed[0]
		return catalog.Unavailable("blob storage", fmt.Errorf("%d of %d objects not deleted, first %s: %s: %s",
			len(failed), len(batch), aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
	}
	return nil
}

// Delete removes the objects of keys, in batches; missing ones are no
// error.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	batch := make([]types.ObjectIdentifier, 0, min(len(keys), s.deleteBatch))
	for i, key := range keys {
		if err := catalog.ValidBlobKey(key); err != nil {
			return fmt.Errorf("delete blobs: %w", err)
		}
		batch = append(batch, types.ObjectIdentifier{Key: aws.String(key)})
		if len(batch) == s.deleteBatch || i == len(keys)-1 {
			if err := s.deleteObjects(ctx, batch); err != nil {
				return fmt.Errorf("delete %d blobs: %w", len(batch), err)
			}
			batch = batch[:0]
		}
	}
	return nil
}

// List calls fn with each object whose key starts with prefix, in key
// order, a page of up to 1000 at a time.
func (s *Store) List(ctx context.Context, prefix string, fn func(catalog.BlobInfo) error) error {
	in := &s3api.ListObjectsV2Input{Bucket: &s.bucket}
	if prefix != "" {
		in.Prefix = &prefix
	}
	pages := s3api.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list blobs %s: %w", prefix, translate(ctx, err))
		}
		for _, obj := range page.Contents {
			info := catalog.BlobInfo{Key: aws.ToString(obj.Key), Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified).UTC()}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ping checks that the bucket is reachable with the credentials.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return fmt.Errorf("ping bucket %s: %w", s.bucket, translate(ctx, err))
	}
	return nil
}

// translate turns SDK errors into catalog errors: whatever fails at the
// server or on the way to it (unreachable, refused credentials, missing
// bucket, throttling, a broken connection) is Unavailable. Catalog errors,
// and the caller's own cancellation or deadline, pass unchanged.
func translate(ctx context.Context, err error) error {
	var ce *catalog.Error
	if errors.As(err, &ce) {
		return err
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return catalog.Unavailable("blob storage", err)
}

// isMissingKey reports whether err says that the object does not exist (as
// opposed to the bucket).
func isMissingKey(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	if code := apiCode(err); code != "" {
		return code == "NoSuchKey" || code == "NotFound"
	}
	return httpStatus(err) == http.StatusNotFound
}

// isMissingBucket reports whether err, from HeadBucket, says that the
// bucket does not exist.
func isMissingBucket(err error) bool {
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	if errors.As(err, &nf) || errors.As(err, &nsb) {
		return true
	}
	if code := apiCode(err); code != "" {
		return code == "NoSuchBucket" || code == "NotFound"
	}
	return httpStatus(err) == http.StatusNotFound
}

// isMissingUpload reports whether err says that a multipart upload is gone
// (completed, or aborted already).
func isMissingUpload(err error) bool {
	var nsu *types.NoSuchUpload
	return errors.As(err, &nsu) || apiCode(err) == "NoSuchUpload"
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

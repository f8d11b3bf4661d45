package s3

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vitrine-dev/vitrine/catalog"
)

// OpenBlob streams the object of key as req asks: whole or a range, or
// nothing when the client's entity tag is current. The body is read from the
// server as the caller reads it, never buffered whole; ctx must last until
// the caller has read and closed it. A missing object is NotFound.
func (s *Store) OpenBlob(ctx context.Context, key string, req catalog.BlobRequest) (*catalog.BlobStream, error) {
	if err := catalog.ValidBlobKey(key); err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	inm := optional(req.IfNoneMatch)
	if req.HeadOnly {
		out, err := s.client.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &s.bucket, Key: &key, IfNoneMatch: inm})
		if err != nil {
			return s.openFailed(ctx, key, err)
		}
		size := aws.ToInt64(out.ContentLength)
		return &catalog.BlobStream{Size: size, Total: size, ContentType: aws.ToString(out.ContentType),
			ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified).UTC()}, nil
	}
	out, err := s.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: optional(req.Range),
		IfNoneMatch: inm})
	if err != nil {
		return s.openFailed(ctx, key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	st := &catalog.BlobStream{Body: out.Body, Size: size, Total: size, ContentRange: aws.ToString(out.ContentRange),
		ContentType: aws.ToString(out.ContentType), ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified).UTC()}
	if st.ContentRange != "" {
		var first, last int64
		if _, err := fmt.Sscanf(st.ContentRange, "bytes %d-%d/%d", &first, &last, &st.Total); err != nil {
			_ = out.Body.Close()
			return nil, fmt.Errorf("open blob %s: Content-Range %q: %w", key, st.ContentRange, err)
		}
	}
	return st, nil
}

// openFailed turns what the server said instead of an object into a
// stream's answer, or an error.
func (s *Store) openFailed(ctx context.Context, key string, err error) (*catalog.BlobStream, error) {
	switch {
	case httpStatus(err) == http.StatusNotModified:
		return &catalog.BlobStream{NotModified: true}, nil
	case httpStatus(err) == http.StatusRequestedRangeNotSatisfiable:
		// A 416 carries no usable size: ask for it, for Content-Range.
		head, herr := s.client.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &s.bucket, Key: &key})
		if herr != nil {
			return s.openFailed(ctx, key, herr)
		}
		return &catalog.BlobStream{Unsatisfiable: true, Total: aws.ToInt64(head.ContentLength)}, nil
	case isMissingKey(err):
		return nil, fmt.Errorf("open blob %s: %w", key, catalog.NotFound("blob %s", key))
	default:
		return nil, fmt.Errorf("open blob %s: %w", key, translate(ctx, err))
	}
}

func optional(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

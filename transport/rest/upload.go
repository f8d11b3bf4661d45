package rest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/media"
)

// An upload's body is read from the connection as it streams in, never by
// fasthttp ahead of the handler: its bytes are admitted against a budget
// of bytes in flight (all uploads together), so that memory does not grow
// with the number of uploads at once. An upload that is no image is
// refused from its first bytes, before the rest is read.

// multipartSlack is what multipart framing may add to a file's size.
const multipartSlack = 64 << 10

// headBytes is how much of a file identifies its format.
const headBytes = 512

// uploadBudget admits bytes in flight up to a total, waiting in line
// (first come, first served) until ctx ends.
type uploadBudget struct {
	mu      sync.Mutex
	free    int64
	total   int64
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newUploadBudget(total int64) *uploadBudget {
	return &uploadBudget{free: total, total: total}
}

// acquire takes n bytes (at most the whole budget) or fails when ctx ends.
func (b *uploadBudget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.total)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.free += n
			b.grant()
		default:
			for i, x := range b.waiters {
				if x == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			b.grant()
		}
		return 0, ctx.Err()
	}
}

func (b *uploadBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.grant()
}

// grant wakes waiters in order while the budget has room. b.mu is held.
func (b *uploadBudget) grant() {
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}

// bufPool recycles upload buffers in classes of 1 MiB of capacity: the
// bytes in flight are reused rather than left to the collector, so the heap
// stays near the upload budget instead of twice it.
type bufPool struct {
	classes []sync.Pool
}

const bufClass = 1 << 20

func newBufPool(maxBytes int) *bufPool {
	return &bufPool{classes: make([]sync.Pool, maxBytes/bufClass+2)}
}

// get returns an empty buffer with room for at least n bytes.
func (p *bufPool) get(n int) []byte {
	c := (n + bufClass - 1) / bufClass
	if c >= len(p.classes) {
		return make([]byte, 0, n)
	}
	if v, ok := p.classes[c].Get().(*[]byte); ok {
		return (*v)[:0]
	}
	return make([]byte, 0, c*bufClass)
}

// put gives back a buffer from get (one grown elsewhere is dropped).
func (p *bufPool) put(b []byte) {
	c := cap(b) / bufClass
	if cap(b)%bufClass != 0 || c == 0 || c >= len(p.classes) {
		return
	}
	p.classes[c].Put(&b)
}

// upload is an upload's image bytes, admitted against the budget until
// release.
type upload struct {
	data    []byte
	release func()
}

// readUpload reads the image of an upload request: the raw body (an image/*
// or application/octet-stream Content-Type) or the one file of the
// multipart/form-data field "file". When it fails before reading the whole
// body, the connection is closed after the answer.
func (s *Server) readUpload(ctx *fasthttp.RequestCtx) (*upload, error) {
	ct := string(ctx.Request.Header.ContentType())
	mt, params, err := mime.ParseMediaType(ct)
	isMultipart := err == nil && mt == "multipart/form-data"
	if ct == "" || err != nil || (!isMultipart && !strings.HasPrefix(mt, "image/") && mt != "application/octet-stream") {
		return nil, catalog.Errorf(catalog.KindUnsupportedMedia, "unsupported_content_type",
			"send the image as multipart/form-data (field \"file\") or as the raw body with an image/* or application/octet-stream Content-Type; got %q", ct)
	}
	limit := int64(s.cfg.MaxUploadBytes)
	bodyLimit := limit
	if isMultipart {
		if params["boundary"] == "" {
			return nil, catalog.Errorf(catalog.KindInvalid, "malformed_multipart", "the multipart Content-Type has no boundary")
		}
		bodyLimit += multipartSlack
	}
	n := int64(ctx.Request.Header.ContentLength())
	if n > bodyLimit {
		s.lingerClose(ctx)
		return nil, tooLarge(n, s.cfg.MaxUploadBytes)
	}
	want := bodyLimit
	if n >= 0 {
		want = n
	}
	c, cancel := context.WithTimeout(context.Background(), s.cfg.AdmissionWait)
	got, err := s.budget.acquire(c, want)
	cancel()
	if err != nil {
		s.lingerClose(ctx)
		return nil, &catalog.Error{Kind: catalog.KindUnavailable, Code: "uploads_busy", RetryAfter: 2 * time.Second,
			Detail: fmt.Sprintf("too many uploads are in flight (%d bytes at most); retry shortly", s.budget.total)}
	}
	buf := s.bufs.get(int(min(want, limit)) + 1)
	u := &upload{release: func() {
		s.bufs.put(buf)
		s.budget.release(got)
	}}
	body := ctx.RequestBodyStream()
	if isMultipart {
		u.data, err = readMultipartFile(body, params["boundary"], limit, buf)
	} else {
		u.data, err = readImage(body, limit, buf)
	}
	if err != nil {
		u.release()
		s.lingerClose(ctx)
		return nil, err
	}
	return u, nil
}

// readImage reads an image from r into buf: refused from its first bytes
// when it is no image, then read whole up to limit.
func readImage(r io.Reader, limit int64, buf []byte) ([]byte, error) {
	br := bufio.NewReaderSize(r, headBytes)
	head, err := br.Peek(headBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, readError(err)
	}
	if len(head) == 0 {
		return nil, catalog.Errorf(catalog.KindInvalid, "empty_upload", "the uploaded file is empty")
	}
	if _, err := media.Identify(head); err != nil {
		return nil, err
	}
	buf = buf[:0]
	for {
		if int64(len(buf)) > limit {
			return nil, tooLarge(int64(len(buf)), int(limit))
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := br.Read(buf[len(buf):min(cap(buf), int(limit)+1)])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, readError(err)
		}
	}
	if int64(len(buf)) > limit {
		return nil, tooLarge(int64(len(buf)), int(limit))
	}
	return buf, nil
}

// readMultipartFile reads the one file of the field "file" from a
// multipart/form-data body; any other part, or a second file, is refused.
func readMultipartFile(r io.Reader, boundary string, limit int64, buf []byte) ([]byte, error) {
	mr := multipart.NewReader(r, boundary)
	var data []byte
	files := 0
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, catalog.Errorf(catalog.KindInvalid, "malformed_multipart", "the multipart body could not be parsed: %v", err)
		}
		if name := part.FormName(); name != "file" {
			return nil, &catalog.Error{Kind: catalog.KindInvalid, Code: "unknown_field",
				Detail: fmt.Sprintf("the multipart body may carry only the field \"file\", not %q", name),
				Fields: []catalog.FieldError{{Field: name, Detail: "unknown field; the only field is file"}}}
		}
		files++
		if files > 1 {
			return nil, catalog.Errorf(catalog.KindInvalid, "missing_file", "the multipart body must carry exactly one file in the field \"file\", got more")
		}
		data, err = readImage(part, limit, buf)
		if err != nil {
			return nil, err
		}
	}
	if files == 0 {
		return nil, catalog.Errorf(catalog.KindInvalid, "missing_file", "the multipart body must carry exactly one file in the field \"file\", got 0")
	}
	return data, nil
}

// lingerFor and lingerBytes bound how long, and how much of an unread
// body, a refused request's connection is drained before it is closed.
const (
	lingerFor   = 5 * time.Second
	lingerBytes = 64 << 20
)

// lingerClose asks that a request refused before its whole body was read
// be answered with "Connection: close", then its connection drained (what
// the client goes on sending is read and dropped) for a while before it is
// closed: closing a socket with unread bytes resets it, and a client still
// writing its upload would lose the answer (a lingering close, as nginx
// does). A body that fasthttp read whole up front (within the JSON limit)
// needs none of this: the connection stays open.
func (s *Server) lingerClose(ctx *fasthttp.RequestCtx) {
	if n := ctx.Request.Header.ContentLength(); n > s.cfg.MaxJSONBytes || n == -1 {
		exchangeOf(ctx).linger = true
	}
}

// linger writes the answer itself, with Connection: close, and drains the
// connection: fasthttp skips its own answer and hands the connection over.
func linger(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetConnectionClose()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(lingerFor))
		bw := bufio.NewWriter(c)
		if ctx.Response.Write(bw) != nil || bw.Flush() != nil {
			return
		}
		if cw, ok := unwrapConn(c).(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, lingerBytes))
	})
}

// unwrapConn finds the TCP connection under fasthttp's and our wrappers.
func unwrapConn(c net.Conn) net.Conn {
	for {
		switch w := c.(type) {
		case interface{ UnsafeConn() net.Conn }:
			c = w.UnsafeConn()
		case *countedConn:
			c = w.Conn
		default:
			return c
		}
	}
}

// readError describes a body that could not be read: the client went away
// or took too long, or the multipart framing broke.
func readError(err error) error {
	var ce *catalog.Error
	if errors.As(err, &ce) {
		return err
	}
	if strings.Contains(err.Error(), "multipart") {
		return catalog.Errorf(catalog.KindInvalid, "malformed_multipart", "the multipart body could not be parsed: %v", err)
	}
	return &catalog.Error{Kind: catalog.KindInvalid, Code: "incomplete_body", Detail: "the request body could not be read whole: " + err.Error(), Err: err}
}

func tooLarge(size int64, limit int) error {
	return catalog.Errorf(catalog.KindTooLarge, "file_too_large", "the file is at least %d bytes, over the limit of %d bytes", size, limit)
}

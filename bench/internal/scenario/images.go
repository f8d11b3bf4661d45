package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
)

// UploadRaw POSTs an image as the raw request body (image/jpeg) to a
// product and returns the image's location (a path).
func UploadRaw(c *httpc.Client, x *httpc.Exchange, productID string, body []byte) (string, error) {
	st, err := c.Do(x, "POST", "/products/"+productID+"/images", "image/jpeg", body)
	if err != nil {
		return "", fmt.Errorf("upload: %s", httpc.Fail(err))
	}
	if st != 202 {
		return "", fmt.Errorf("upload: status %d: %.200s", st, x.Resp.Body())
	}
	loc := string(x.Resp.Header.Peek("Location"))
	if u, err := url.Parse(loc); err == nil && u.IsAbs() {
		loc = u.RequestURI()
	}
	if loc == "" {
		return "", fmt.Errorf("upload: no Location")
	}
	return loc, nil
}

// WaitReady polls the image at location every poll until it is ready; an
// image that failed, or still unfinished at deadline, is an error.
func WaitReady(ctx context.Context, c *httpc.Client, location string, poll time.Duration, deadline time.Time) error {
	return wait(ctx, c, location, poll, deadline, false)
}

// WaitComplete is WaitReady until the image is ready with every file made
// (none pending: its slow formats too).
func WaitComplete(ctx context.Context, c *httpc.Client, location string, poll time.Duration, deadline time.Time) error {
	return wait(ctx, c, location, poll, deadline, true)
}

func wait(ctx context.Context, c *httpc.Client, location string, poll time.Duration, deadline time.Time, complete bool) error {
	status, code := pollImage(ctx, c, location, poll, deadline, complete)
	if status == "ready" {
		return nil
	}
	if code != "" {
		status += ":" + code
	}
	return fmt.Errorf("image %s: %s", location, status)
}

// BurstResult is a burst of uploads of one photo.
type BurstResult struct {
	Images  int
	Elapsed time.Duration   // first POST sent → last image seen complete
	ToReady *hist.Histogram // POST sent → image seen complete, ns
}

// ImagesPerSec is the burst's throughput.
func (r *BurstResult) ImagesPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Images) / r.Elapsed.Seconds()
}

// Burst uploads body once to each product of ids (so that no upload is a
// duplicate), concurrency POSTs at a time, and waits until every image is
// complete (ready with every file made: the whole work of each, which its
// CPU time pays for). One poller follows the images in upload order, polling only the
// oldest unfinished one every poll: the queue hands jobs out in that order,
// so the last image is seen ready within a poll of its readiness, and the
// polling costs vitrine almost nothing. An image's time to ready is thus
// an upper bound: it is seen only once those before it are ready.
func Burst(ctx context.Context, c *httpc.Client, ids []string, body []byte, concurrency int, poll, timeout time.Duration) (*BurstResult, error) {
	n := len(ids)
	res := &BurstResult{Images: n, ToReady: &hist.Histogram{}}
	type sent struct {
		loc string
		at  time.Time
		err error
	}
	slots := make([]chan sent, n)
	for i := range slots {
		slots[i] = make(chan sent, 1)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var x httpc.Exchange
			for k := range next {
				at := time.Now()
				loc, err := UploadRaw(c, &x, ids[k], body)
				slots[k] <- sent{loc, at, err}
			}
		}()
	}
	go func() {
		defer close(next)
		for k := range n {
			select {
			case next <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	var last time.Time
	for k := range n {
		var s sent
		select {
		case s = <-slots[k]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.err != nil {
			return nil, s.err
		}
		if err := WaitComplete(ctx, c, s.loc, poll, deadline); err != nil {
			return nil, err
		}
		last = time.Now()
		res.ToReady.Record(int64(last.Sub(s.at)))
	}
	res.Elapsed = last.Sub(start)
	return res, nil
}

// IdleResult is single uploads on an otherwise idle vitrine.
type IdleResult struct {
	UploadToReady *hist.Histogram // POST sent → ready seen, ns
	AcceptToReady *hist.Histogram // 202 received → ready seen, ns
	// POST sent, 202 received → complete seen (every file made), ns.
	UploadToComplete, AcceptToComplete *hist.Histogram
	Accept                             *hist.Histogram // POST sent → 202, ns
}

// NewIdleResult is an empty IdleResult.
func NewIdleResult() *IdleResult {
	return &IdleResult{UploadToReady: &hist.Histogram{}, AcceptToReady: &hist.Histogram{},
		UploadToComplete: &hist.Histogram{}, AcceptToComplete: &hist.Histogram{}, Accept: &hist.Histogram{}}
}

// Idle uploads body to each product of ids, one at a time with a pause
// before each, and polls each image every poll until it is ready. Polling
// starts quiet of the 202 (3/4 of the time the image is expected to take),
// so that the polls do not compete with the processing they wait for.
func Idle(ctx context.Context, c *httpc.Client, ids []string, body []byte, pause, quiet, poll, timeout time.Duration) (*IdleResult, error) {
	res := NewIdleResult()
	var x httpc.Exchange
	for _, id := range ids {
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		t0 := time.Now()
		loc, err := UploadRaw(c, &x, id, body)
		if err != nil {
			return nil, err
		}
		t1 := time.Now()
		select {
		case <-time.After(quiet):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := WaitReady(ctx, c, loc, poll, t1.Add(timeout)); err != nil {
			return nil, err
		}
		t2 := time.Now()
		if err := WaitComplete(ctx, c, loc, poll, t1.Add(timeout)); err != nil {
			return nil, err
		}
		t3 := time.Now()
		res.Accept.Record(int64(t1.Sub(t0)))
		res.AcceptToReady.Record(int64(t2.Sub(t1)))
		res.UploadToReady.Record(int64(t2.Sub(t0)))
		res.AcceptToComplete.Record(int64(t3.Sub(t1)))
		res.UploadToComplete.Record(int64(t3.Sub(t0)))
	}
	return res, nil
}

// Merge adds o's samples to r.
func (r *IdleResult) Merge(o *IdleResult) {
	r.UploadToReady.Merge(o.UploadToReady)
	r.AcceptToReady.Merge(o.AcceptToReady)
	r.UploadToComplete.Merge(o.UploadToComplete)
	r.AcceptToComplete.Merge(o.AcceptToComplete)
	r.Accept.Merge(o.Accept)
}

// Bytes are the sizes of an image's files, by format, and per variant
// the bytes of each format.
type Bytes struct {
	ByFormat map[string]int64
	// ByVariant[name][format] is one file's bytes.
	ByVariant map[string]map[string]int64
}

// ImageBytes reads the image at location and sums its files' bytes.
func ImageBytes(c *httpc.Client, location string) (Bytes, error) {
	if u, err := url.Parse(location); err == nil && u.IsAbs() {
		location = u.RequestURI()
	}
	var x httpc.Exchange
	st, err := c.Do(&x, "GET", location, "", nil)
	if err != nil {
		return Bytes{}, fmt.Errorf("read image %s: %w", location, err)
	}
	if st != 200 {
		return Bytes{}, fmt.Errorf("read image %s: status %d", location, st)
	}
	var img struct {
		Variants []struct {
			Name   string `json:"name"`
			Format string `json:"format"`
			Bytes  int64  `json:"bytes"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(x.Resp.Body(), &img); err != nil {
		return Bytes{}, fmt.Errorf("read image %s: %w", location, err)
	}
	b := Bytes{ByFormat: map[string]int64{}, ByVariant: map[string]map[string]int64{}}
	for _, v := range img.Variants {
		b.ByFormat[v.Format] += v.Bytes
		if b.ByVariant[v.Name] == nil {
			b.ByVariant[v.Name] = map[string]int64{}
		}
		b.ByVariant[v.Name][v.Format] = v.Bytes
	}
	return b, nil
}

// Total is every file's bytes.
func (b Bytes) Total() int64 {
	var n int64
	for _, v := range b.ByFormat {
		n += v
	}
	return n
}

// Served is what a client that accepts the formats in order of preference
// downloads to get each variant once: per variant, the first of prefer it
// has.
func (b Bytes) Served(prefer ...string) int64 {
	var n int64
	for _, files := range b.ByVariant {
		for _, f := range prefer {
			if v, ok := files[f]; ok {
				n += v
				break
			}
		}
	}
	return n
}

package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/hist"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
)

// Photo is an upload body made once from a corpus file.
type Photo struct {
	Path  string
	Body  []byte // multipart/form-data with the file in field "file"
	CType string
	Bytes int // the file's size
}

// LoadPhotos reads files into multipart bodies.
func LoadPhotos(paths []string) ([]Photo, error) {
	var out []Photo
	for _, p := range paths {
		data, err := os.ReadFile(p) // #nosec G304 -- photos of the operator's -corpus
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile("file", filepath.Base(p))
		if err != nil {
			return nil, err
		}
		_, _ = fw.Write(data)
		_ = mw.Close()
		out = append(out, Photo{Path: p, Body: buf.Bytes(), CType: mw.FormDataContentType(), Bytes: len(data)})
	}
	return out, nil
}

// UploadResult is an upload burst.
type UploadResult struct {
	Images       int             // uploads sent
	Ready        int             // images that became ready
	Accept       *hist.Histogram // POST → 202, ns
	ToReady      *hist.Histogram // 202 → ready, ns (as seen by polling)
	Fails        map[string]uint64
	Status       map[int]uint64
	Elapsed      time.Duration // first POST sent → last image ready
	ImagesPerSec float64
	Timeline     []load.Bucket // 202→ready latencies by the time the image was seen ready
	Bytes        int64         // uploaded file bytes
}

// Upload sends count uploads (photos in turn, each to a product of ids in
// turn), at most concurrency POSTs at once, then polls each image every
// poll until it is ready or failed (or timeout), and measures the time
// from its 202 to its readiness and the images made per second.
func Upload(ctx context.Context, c *httpc.Client, ids []string, photos []Photo, count, concurrency int, poll, timeout time.Duration, tick func(load.Progress)) (*UploadResult, error) {
	if len(photos) == 0 || len(ids) == 0 || count < 1 {
		return nil, fmt.Errorf("upload: no photos or products")
	}
	res := &UploadResult{Images: count, Accept: &hist.Histogram{}, ToReady: &hist.Histogram{}, Fails: map[string]uint64{}, Status: map[int]uint64{}}
	var mu sync.Mutex
	fail := func(why string) {
		mu.Lock()
		res.Fails[why]++
		mu.Unlock()
	}
	var lastReady time.Time
	type point struct {
		at  time.Duration
		lat time.Duration
	}
	var points []point
	start := time.Now()
	deadline := start.Add(timeout)
	sem := make(chan struct{}, max(concurrency, 1))
	var done int
	stopTick := make(chan struct{})
	var tickWG sync.WaitGroup
	if tick != nil {
		tickWG.Add(1)
		go func() {
			defer tickWG.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopTick:
					return
				case <-t.C:
					mu.Lock()
					nf := uint64(0)
					for _, v := range res.Fails {
						nf += v
					}
					p := load.Progress{Elapsed: time.Since(start), Planned: 0, Done: uint64(done), Fails: nf} // #nosec G115 -- done counts finished uploads: ≥ 0
					mu.Unlock()
					tick(p)
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for k := range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph := photos[k%len(photos)]
			id := ids[k%len(ids)]
			var x httpc.Exchange
			t0 := time.Now()
			st, err := c.Do(&x, "POST", "/products/"+id+"/images", ph.CType, ph.Body)
			accepted := time.Now()
			<-sem
			if err != nil {
				fail(httpc.Fail(err))
				return
			}
			mu.Lock()
			res.Status[st]++
			res.Accept.Record(int64(accepted.Sub(t0)))
			res.Bytes += int64(ph.Bytes)
			mu.Unlock()
			if st != 202 {
				fail(fmt.Sprint(st))
				return
			}
			location := string(x.Resp.Header.Peek("Location"))
			if location == "" {
				fail("no-location")
				return
			}
			status, code := pollImage(ctx, c, location, poll, deadline, false)
			readyAt := time.Now()
			mu.Lock()
			defer mu.Unlock()
			done++
			switch status {
			case "ready":
				res.Ready++
				res.ToReady.Record(int64(readyAt.Sub(accepted)))
				points = append(points, point{accepted.Sub(start), readyAt.Sub(accepted)})
				if readyAt.After(lastReady) {
					lastReady = readyAt
				}
			case "failed":
				res.Fails["image-failed:"+code]++
			default:
				res.Fails["image-"+status]++
			}
		}()
	}
	wg.Wait()
	close(stopTick)
	tickWG.Wait()
	if !lastReady.IsZero() {
		res.Elapsed = lastReady.Sub(start)
		res.ImagesPerSec = float64(res.Ready) / res.Elapsed.Seconds()
	}
	width := max((res.Elapsed / 30).Truncate(100*time.Millisecond), 100*time.Millisecond)
	for _, p := range points {
		i := int((p.at + p.lat) / width) // by readiness
		for len(res.Timeline) <= i {
			res.Timeline = append(res.Timeline, load.Bucket{Offset: time.Duration(len(res.Timeline)) * width, Width: width, Hist: &hist.Histogram{}})
		}
		res.Timeline[i].Hist.Record(int64(p.lat))
	}
	if tick != nil {
		tick(load.Progress{Elapsed: time.Since(start), Done: uint64(done)}) // #nosec G115 -- done counts finished uploads: ≥ 0
	}
	return res, nil
}

// pollImage GETs the image at location until its status is ready or
// failed; "timeout" after deadline.
//
// With complete, a ready image counts only once none of its variant files
// is pending (its slow formats, AVIF, made too).
func pollImage(ctx context.Context, c *httpc.Client, location string, every time.Duration, deadline time.Time, complete bool) (status, code string) {
	if u, err := url.Parse(location); err == nil && u.IsAbs() {
		location = u.RequestURI()
	}
	var x httpc.Exchange
	for {
		st, err := c.Do(&x, "GET", location, "", nil)
		if err == nil && st == 200 {
			var img struct {
				Status string `json:"status"`
				Error  *struct {
					Code string `json:"code"`
				} `json:"error"`
				Variants []struct {
					Status string `json:"status"`
				} `json:"variants"`
			}
			if json.Unmarshal(x.Resp.Body(), &img) == nil {
				pending := false
				for _, v := range img.Variants {
					pending = pending || v.Status == "pending"
				}
				switch {
				case img.Status == "ready" && (!complete || !pending):
					return "ready", ""
				case img.Status == "failed":
					if img.Error != nil {
						return "failed", img.Error.Code
					}
					return "failed", ""
				}
			}
		} else if err == nil && st != 200 && st != 503 {
			return fmt.Sprintf("status-%d", st), ""
		}
		if time.Now().After(deadline) {
			return "timeout", ""
		}
		select {
		case <-ctx.Done():
			return "cancelled", ""
		case <-time.After(every):
		}
	}
}

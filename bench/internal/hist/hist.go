// Package hist records the bench's latencies in an HdrHistogram
// (github.com/HdrHistogram/hdrhistogram-go) behind the small API the bench
// uses: the zero value is ready, and the minimum, maximum and mean are
// exact. Values (nanoseconds, usually) are known to within 1/128 (two
// significant digits) from 0 to an hour; larger ones count as an hour.
// Quantiles report the highest value equivalent to the bucket they fall
// in, as HdrHistogram does, clamped to the exact minimum and maximum, so a
// histogram of small integers gives exact answers.
package hist

import (
	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

const (
	// highest is the largest value told apart: an hour in nanoseconds.
	highest = int64(3_600_000_000_000)
	// digits are the significant digits kept (HdrHistogram's precision).
	digits = 2
)

// Histogram counts non-negative int64 values. The zero value is empty and
// ready to use. It is not safe for concurrent use.
type Histogram struct {
	h   *hdr.Histogram // nil until the first value
	min int64
	max int64
	sum float64
}

func (h *Histogram) counts() *hdr.Histogram {
	if h.h == nil {
		h.h = hdr.New(1, highest, digits)
	}
	return h.h
}

// Record counts one value; negative values count as 0.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordN counts n occurrences of v.
func (h *Histogram) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	v = max(v, 0)
	if h.Count() == 0 || v < h.min {
		h.min = v
	}
	if h.Count() == 0 || v > h.max {
		h.max = v
	}
	_ = h.counts().RecordValues(min(v, highest), int64(n)) // #nosec G115 -- counts of one run fit; in range by the min
	h.sum += float64(v) * float64(n)
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.Count() == 0 {
		return
	}
	if h.Count() == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.Count() == 0 || o.max > h.max {
		h.max = o.max
	}
	h.counts().Merge(o.h)
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 {
	if h.h == nil {
		return 0
	}
	return uint64(h.h.TotalCount()) // #nosec G115 -- a count is never negative
}

// Min is the smallest value recorded, 0 when empty.
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest value recorded, 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean of the values recorded, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.Count() == 0 {
		return 0
	}
	return h.sum / float64(h.Count())
}

// Quantile is the value at quantile q in [0, 1] (HdrHistogram's: the
// value at rank q·n rounded to the nearest, to within its bucket), the
// minimum for q ≤ 0 and the maximum for q ≥ 1. 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	switch {
	case h.Count() == 0:
		return 0
	case q <= 0:
		return h.min
	case q >= 1:
		return h.max
	}
	return min(max(h.h.ValueAtPercentile(q*100), h.min), h.max)
}

// Percentile is Quantile(p/100).
func (h *Histogram) Percentile(p float64) int64 { return h.Quantile(p / 100) }

// Reset empties the histogram, keeping its memory.
func (h *Histogram) Reset() {
	if h.h != nil {
		h.h.Reset()
	}
	h.min, h.max, h.sum = 0, 0, 0
}

// Clone is a deep copy.
func (h *Histogram) Clone() *Histogram {
	c := *h
	if h.h != nil {
		c.h = hdr.Import(h.h.Export())
	}
	return &c
}

// Package hist is a small log-linear histogram in the style of HdrHistogram:
// values (nanoseconds, usually) are counted in buckets whose width grows
// with the value, so that any recorded value is known to within 1/128
// (0.8 %) of itself, from 1 ns to hours, in a few tens of kilobytes.
//
// Values below 128 are counted exactly. Above, each power of two [2^k,
// 2^(k+1)) is split into 128 equal sub-buckets. Quantiles report the
// highest value equivalent to the bucket they fall in (as HdrHistogram
// does), clamped to the exact minimum and maximum recorded, so a
// histogram of small integers gives exact answers.
package hist

import (
	"math"
	"math/bits"
)

const (
	subBits = 7
	sub     = 1 << subBits // sub-buckets per power of two, and the exact range
)

// Histogram counts non-negative int64 values. The zero value is empty and
// ready to use. It is not safe for concurrent use.
type Histogram struct {
	counts []uint64 // grown on demand up to the highest index recorded
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// index is the bucket of v ≥ 0.
func index(v int64) int {
	if v < sub {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // ≥ 0
	m := int(uint64(v) >> uint(e))           // #nosec G115 -- in [sub, 2*sub): v ≥ sub makes e ≥ 0
	return (e+1)*sub + (m - sub)
}

// bounds is the lowest and highest value of bucket i.
func bounds(i int) (lo, hi int64) {
	if i < sub {
		return int64(i), int64(i)
	}
	e := i/sub - 1
	m := int64(i%sub + sub)
	lo = m << uint(e)
	return lo, lo + (int64(1) << uint(e)) - 1
}

// Record counts one value; negative values count as 0.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordN counts n occurrences of v.
func (h *Histogram) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	if v < 0 {
		v = 0
	}
	i := index(v)
	if i >= len(h.counts) {
		grow := make([]uint64, i+1+sub)
		copy(grow, h.counts)
		h.counts = grow
	}
	h.counts[i] += n
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if h.total == 0 || v > h.max {
		h.max = v
	}
	h.total += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		grow := make([]uint64, len(o.counts))
		copy(grow, h.counts)
		h.counts = grow
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.total == 0 || o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the smallest value recorded, 0 when empty.
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest value recorded, 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean of the values recorded, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile is the value at quantile q in [0, 1]: the smallest recorded
// value v such that at least ⌈q·n⌉ values are ≤ v (the minimum for q = 0),
// to within the bucket's resolution. 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bounds(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

// Percentile is Quantile(p/100).
func (h *Histogram) Percentile(p float64) int64 { return h.Quantile(p / 100) }

// Reset empties the histogram, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.min, h.max, h.sum = 0, 0, 0, 0
}

// Clone is a deep copy.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

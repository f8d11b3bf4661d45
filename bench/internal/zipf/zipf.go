// Package zipf draws ranks from a Zipf distribution: rank k in [0, n) has
// probability proportional to 1/(k+1)^s, so with s ≈ 1 a few ranks get most
// of the draws, as a few products of a catalog get most of the traffic.
//
// Unlike math/rand's Zipf it accepts any s > 0 (s = 1 included): it draws
// by inverting a precomputed cumulative table (8 bytes a rank).
package zipf

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf is an immutable sampler, safe for concurrent use with one *rand.Rand
// per goroutine.
type Zipf struct {
	cdf []float64 // cdf[k] = P(rank ≤ k), cdf[n-1] = 1
	s   float64
}

// New is a sampler of n ranks with exponent s > 0.
func New(n int, s float64) (*Zipf, error) {
	if n < 1 {
		return nil, fmt.Errorf("zipf: need at least one rank, got %d", n)
	}
	if !(s > 0) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("zipf: exponent must be > 0, got %v", s)
	}
	cdf := make([]float64, n)
	sum := 0.0
	for k := range cdf {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	cdf[n-1] = 1
	return &Zipf{cdf: cdf, s: s}, nil
}

// N is the number of ranks.
func (z *Zipf) N() int { return len(z.cdf) }

// Rank draws a rank in [0, N()); rank 0 is the most frequent.
func (z *Zipf) Rank(r *rand.Rand) int {
	u := r.Float64()
	return sort.SearchFloat64s(z.cdf, u) // first k with cdf[k] ≥ u
}

// P is the probability of rank k.
func (z *Zipf) P(k int) float64 {
	if k < 0 || k >= len(z.cdf) {
		return 0
	}
	if k == 0 {
		return z.cdf[0]
	}
	return z.cdf[k] - z.cdf[k-1]
}

// TopShare is the probability that a draw is one of the top k ranks.
func (z *Zipf) TopShare(k int) float64 {
	if k <= 0 {
		return 0
	}
	return z.cdf[min(k, len(z.cdf))-1]
}

// Keys maps ranks onto a fixed random permutation of n keys, so that the
// hot keys are not simply the first ones created.
type Keys[T any] struct {
	z    *Zipf
	keys []T
}

// NewKeys shuffles keys with seed and samples them by Zipf rank.
func NewKeys[T any](keys []T, s float64, seed uint64) (*Keys[T], error) {
	z, err := New(len(keys), s)
	if err != nil {
		return nil, err
	}
	shuffled := append([]T(nil), keys...)
	rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Shuffle(len(shuffled), func(i, j int) { // #nosec G404 -- a reproducible seeded shuffle, not security
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	return &Keys[T]{z: z, keys: shuffled}, nil
}

// Next draws a key.
func (k *Keys[T]) Next(r *rand.Rand) T { return k.keys[k.z.Rank(r)] }

// Zipf is the rank distribution.
func (k *Keys[T]) Zipf() *Zipf { return k.z }

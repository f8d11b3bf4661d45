package zipf

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestRejectsBadParameters(t *testing.T) {
	for _, c := range []struct {
		n int
		s float64
	}{{0, 1}, {10, 0}, {10, -1}, {10, math.NaN()}, {10, math.Inf(1)}} {
		if _, err := New(c.n, c.s); err == nil {
			t.Errorf("New(%d, %v) accepted", c.n, c.s)
		}
	}
}

func TestInRangeAndSkewed(t *testing.T) {
	const n, draws = 10000, 400000
	z, err := New(n, 1.0)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	counts := make([]int, n)
	for range draws {
		k := z.Rank(r)
		if k < 0 || k >= n {
			t.Fatalf("rank %d out of [0, %d)", k, n)
		}
		counts[k]++
	}
	// Harmonic number H(10000) ≈ 9.7876: rank 0 has 1/H ≈ 10.2 %, rank 1 half that.
	h := 0.0
	for k := 1; k <= n; k++ {
		h += 1 / float64(k)
	}
	for _, k := range []int{0, 1, 9, 99} {
		want := 1 / float64(k+1) / h
		got := float64(counts[k]) / draws
		if math.Abs(got-want) > 0.1*want+0.0005 {
			t.Errorf("rank %d drawn %.4f of the time, want %.4f", k, got, want)
		}
		if math.Abs(z.P(k)-want) > 1e-9 {
			t.Errorf("P(%d) = %v, want %v", k, z.P(k), want)
		}
	}
	// A few products get most of the traffic: the top 1 % get over half.
	top := 0
	for k := range n / 100 {
		top += counts[k]
	}
	if share := float64(top) / draws; share < 0.5 || math.Abs(share-z.TopShare(n/100)) > 0.01 {
		t.Errorf("top 1 %% of ranks got %.3f of the draws (expected %.3f, > 0.5)", share, z.TopShare(n/100))
	}
	// Counts fall with rank: compare decades.
	sum := func(lo, hi int) (s int) {
		for k := lo; k < hi; k++ {
			s += counts[k]
		}
		return s
	}
	if !(sum(0, 10) > sum(10, 20) && sum(10, 20) > sum(100, 110) && sum(100, 110) > sum(1000, 1010)) {
		t.Errorf("draws do not fall with rank")
	}
	// Every rank is reachable: the last ranks are drawn sometimes.
	if sum(n-1000, n) == 0 {
		t.Errorf("the last 1000 ranks were never drawn")
	}
	// A steeper exponent is more skewed.
	steep, _ := New(n, 1.5)
	if steep.TopShare(10) <= z.TopShare(10) {
		t.Errorf("s=1.5 top-10 share %.3f not above s=1 share %.3f", steep.TopShare(10), z.TopShare(10))
	}
	one, _ := New(1, 1.2)
	if one.Rank(r) != 0 || one.P(0) != 1 {
		t.Errorf("one rank: %d %v", one.Rank(r), one.P(0))
	}
}

func TestDeterministic(t *testing.T) {
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = string(rune('a'+i%26)) + string(rune('0'+i/26%10)) + string(rune('A'+i/260))
	}
	draw := func(seed uint64) []string {
		k, err := NewKeys(keys, 1.1, seed)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(seed, 2))
		out := make([]string, 1000)
		for i := range out {
			out[i] = k.Next(r)
		}
		return out
	}
	a, b, c := draw(42), draw(42), draw(43)
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d differs with the same seed: %q vs %q", i, a[i], b[i])
		}
		same = same && a[i] == c[i]
	}
	if same {
		t.Errorf("another seed gave the same draws")
	}
	// The hottest key is not simply the first one.
	k1, _ := NewKeys(keys, 1.1, 42)
	k2, _ := NewKeys(keys, 1.1, 43)
	if k1.keys[0] == k2.keys[0] && k1.keys[1] == k2.keys[1] {
		t.Errorf("the permutation does not depend on the seed")
	}
}

package hist

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestEmpty(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatalf("empty histogram: count %d p50 %d max %d mean %f", h.Count(), h.Quantile(.5), h.Max(), h.Mean())
	}
}

func TestExactSmallValues(t *testing.T) {
	var h Histogram
	for v := int64(100); v >= 1; v-- { // order does not matter
		h.Record(v)
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Errorf("count %d min %d max %d mean %v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
	var one Histogram
	one.Record(123456789)
	for _, q := range []float64{0, 0.5, 0.999, 1} {
		if got := one.Quantile(q); got != 123456789 {
			t.Errorf("single value: Quantile(%v) = %d", q, got)
		}
	}
	var two Histogram
	two.RecordN(10, 3)
	two.Record(20)
	if two.Quantile(0.75) != 10 || two.Quantile(0.9) != 20 || two.Percentile(50) != 10 {
		t.Errorf("3×10 + 20: p75 %d p90 %d p50 %d", two.Quantile(.75), two.Quantile(.9), two.Percentile(50))
	}
	var neg Histogram
	neg.Record(-5)
	if neg.Max() != 0 || neg.Count() != 1 {
		t.Errorf("negative value: max %d count %d", neg.Max(), neg.Count())
	}
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*want {
		t.Errorf("%s = %.1f, want %.1f ± %.1f %%", what, got, want, tol*100)
	}
}

func TestKnownDistributions(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const n = 200000
	// Uniform over [0, 1e6): quantile q is q·1e6.
	var u Histogram
	for range n {
		u.Record(r.Int64N(1_000_000))
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		within(t, "uniform quantile", float64(u.Quantile(q)), q*1e6, 0.015)
	}
	within(t, "uniform mean", u.Mean(), 500000, 0.01)
	// Exponential with mean 1 ms: quantile q is -ln(1-q) ms.
	var e Histogram
	values := make([]int64, n)
	for i := range values {
		values[i] = int64(r.ExpFloat64() * 1e6)
		e.Record(values[i])
	}
	slices.Sort(values)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		within(t, "exponential quantile", float64(e.Quantile(q)), -math.Log(1-q)*1e6, 0.03)
		// Against the exact sample quantile, only the bucket resolution counts.
		exact := values[int(math.Ceil(q*n))-1]
		within(t, "exponential sample quantile", float64(e.Quantile(q)), float64(exact), 1.0/128)
	}
	if e.Max() != values[n-1] || e.Min() != values[0] {
		t.Errorf("max %d min %d, want exact %d %d", e.Max(), e.Min(), values[n-1], values[0])
	}
}

func TestMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 50000 {
		v := int64(r.NormFloat64()*1e5 + 1e6)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		all.Record(v)
	}
	b.Record(5e9) // a wider range than a's
	all.Record(5e9)
	b.Record(2 * highest) // past the range: an hour, with the exact maximum kept
	all.Record(2 * highest)
	m := a.Clone()
	m.Merge(&b)
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || math.Abs(m.Mean()-all.Mean()) > 1e-6*all.Mean() {
		t.Fatalf("merged count %d min %d max %d mean %f; want %d %d %d %f", m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.9999, 1} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged Quantile(%v) = %d, want %d", q, m.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count()+b.Count() != m.Count() {
		t.Errorf("merge changed its argument")
	}
	var empty Histogram
	m.Merge(&empty)
	m.Merge(nil)
	empty.Merge(&a)
	if empty.Quantile(0.5) != a.Quantile(0.5) || empty.Min() != a.Min() {
		t.Errorf("merge into empty: p50 %d min %d, want %d %d", empty.Quantile(.5), empty.Min(), a.Quantile(.5), a.Min())
	}
	m.Reset()
	if m.Count() != 0 || m.Quantile(0.5) != 0 {
		t.Errorf("reset histogram not empty")
	}
}

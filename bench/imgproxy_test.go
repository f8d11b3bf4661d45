package main

import (
	"reflect"
	"testing"
)

func TestRatioSpread(t *testing.T) {
	got := ratioSpread([]float64{2, 3, 1}, []float64{4, 2, 0.5})
	want := map[string]float64{"median": 1.5, "min": 0.5, "max": 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ratioSpread = %v, want %v", got, want)
	}
	// A round without a baseline figure is left out, not divided by zero.
	if r := ratios([]float64{1, 2}, []float64{0, 4}); !reflect.DeepEqual(r, []float64{0.5}) {
		t.Errorf("ratios = %v", r)
	}
	if m, lo, hi := spread(nil); m != 0 || lo != 0 || hi != 0 {
		t.Errorf("spread(nil) = %v %v %v", m, lo, hi)
	}
	if m, lo, hi := spread([]float64{4, 1, 3, 2}); m != 2.5 || lo != 1 || hi != 4 {
		t.Errorf("spread = %v %v %v", m, lo, hi)
	}
}

func TestFitHeight(t *testing.T) {
	for _, c := range []struct{ w, h, width, want int }{
		{5100, 3840, 800, 602}, {2040, 1536, 800, 602}, {5100, 3840, 1600, 1205}, {100, 100, 50, 50}, {0, 10, 5, 0},
	} {
		if got := fitHeight(c.w, c.h, c.width); got != c.want {
			t.Errorf("fitHeight(%d, %d, %d) = %d, want %d", c.w, c.h, c.width, got, c.want)
		}
	}
}

func TestOndemandWidths(t *testing.T) {
	ws := ondemandWidths(100, 2040, 1600, 1)
	if len(ws) != 80 { // 320, 336, … 1584: 81 multiples of 16 less the probe
		t.Fatalf("%d widths, want 80", len(ws))
	}
	seen := map[int]bool{}
	for _, w := range ws {
		if w%16 != 0 || w < 320 || w > 1600 || w == 1600 || seen[w] {
			t.Errorf("width %d: want distinct multiples of 16 in 320..1584", w)
		}
		seen[w] = true
	}
	if got := ondemandWidths(5, 2040, 1600, 1); !reflect.DeepEqual(got, ws[:5]) {
		t.Errorf("the same seed gives %v, then %v", ws[:5], got)
	}
	for _, w := range ondemandWidths(100, 500, 496, 2) {
		if w > 500 || w == 496 {
			t.Errorf("width %d over a 500 px original, or the probe", w)
		}
	}
}

func TestOndemandPaths(t *testing.T) {
	if p := ondemandPath("p1", "i2", 320); p != "/media/products/p1/i2/w320.webp" {
		t.Errorf("ondemandPath = %s", p)
	}
	id, err := imageIDOf("/products/p1/images/i2")
	if err != nil || id != "i2" {
		t.Errorf("imageIDOf = %q, %v", id, err)
	}
	for _, bad := range []string{"", "/products/p1", "/products/p1/images/", "/x/p1/images/i2"} {
		if _, err := imageIDOf(bad); err == nil {
			t.Errorf("imageIDOf(%q): no error", bad)
		}
	}
}

func TestGetsFigures(t *testing.T) {
	f := getsResult{Requests: 4, Elapsed: 2e9, CPU: 3e9}.figures()
	if f.ImagesPerSec != 2 || f.CPUMs != 750 || f.Seconds != 2 {
		t.Errorf("figures = %+v", f)
	}
	if f := (getsResult{}).figures(); f.ImagesPerSec != 0 || f.CPUMs != 0 {
		t.Errorf("empty figures = %+v", f)
	}
}

package media_test

import (
	"strings"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
)

// synthetic makes packed RGB pixels.
func synthetic(w, h int, f func(x, y int) (uint8, uint8, uint8)) []byte {
	rgb := make([]byte, 0, w*h*3)
	for y := range h {
		for x := range w {
			r, g, b := f(x, y)
			rgb = append(rgb, r, g, b)
		}
	}
	return rgb
}

// The expected hashes were computed by github.com/buckket/go-blurhash
// v1.1.0, an independent implementation, from the same pixels.
var blurHashVectors = []struct {
	name   string
	w, h   int
	xc, yc int
	f      func(x, y int) (uint8, uint8, uint8)
	hash   string
	mean   string
}{
	{"gradient", 32, 24, 4, 3, func(x, y int) (uint8, uint8, uint8) { return uint8(x * 8), uint8(y * 10), uint8(255 - x*4) },
		"LxH28X2zw$XAmIWYjuf8gJfjfQfj", "#948ac6"},
	{"checker", 24, 32, 3, 4, func(x, y int) (uint8, uint8, uint8) {
		if (x/4+y/4)%2 == 0 {
			return 250, 30, 40
		}
		return 10, 20, 200
	}, "T6L8Ui|%fQ]Y,mfQfQfQfQ]Y;^fQ", "#b81995"},
	{"flat", 7, 5, 1, 1, func(x, y int) (uint8, uint8, uint8) { return 120, 200, 33 }, "00D:19", "#78c821"},
	{"noise", 32, 32, 9, 9, func(x, y int) (uint8, uint8, uint8) {
		v := uint32(x*7919+y*104729) * 2654435761
		return uint8(v >> 24), uint8(v >> 16), uint8(v >> 8)
	}, "|BHV9wxmV_xhk6x_ahx.W+x@k9avb:Waj0X2jXjeaxS4eoR.oxWBaeW?a$x]XNW.TWShnjW;jsWXXNR-aLS4bsS3n$SzkBtSWUODXzNdWCODW.NdV]oei|oxXQr[WosoSe%MovbaX}bae:WWn+ahV{oda2SxXkjIfhk9X8", "#979797"},
}

func TestBlurHash(t *testing.T) {
	for _, v := range blurHashVectors {
		rgb := synthetic(v.w, v.h, v.f)
		got, err := media.BlurHash(rgb, v.w, v.h, v.xc, v.yc)
		if err != nil || got != v.hash {
			t.Errorf("%s: %q, %v; want %q", v.name, got, err, v.hash)
		}
		if len(got) != 4+2*v.xc*v.yc {
			t.Errorf("%s: length %d", v.name, len(got))
		}
		if m := media.MeanColor(rgb, v.w, v.h); m != v.mean {
			t.Errorf("%s: mean colour %s, want %s", v.name, m, v.mean)
		}
		// The DC term, characters 2-5, is the mean colour.
		dc := decode83(got[2:6])
		if hex := "#" + strings.ToLower(hex6(dc)); hex != v.mean {
			t.Errorf("%s: DC colour %s, mean colour %s", v.name, hex, v.mean)
		}
	}
	for _, bad := range []struct{ w, h, xc, yc, n int }{{4, 4, 0, 3, 48}, {4, 4, 10, 3, 48}, {4, 4, 3, 3, 47}, {0, 4, 3, 3, 0}} {
		if _, err := media.BlurHash(make([]byte, bad.n), bad.w, bad.h, bad.xc, bad.yc); err == nil {
			t.Errorf("BlurHash accepted %+v", bad)
		}
	}
}

func TestPlaceholderOf(t *testing.T) {
	land := synthetic(32, 20, func(x, y int) (uint8, uint8, uint8) { return 200, uint8(x * 8), 50 })
	p, dom, err := media.PlaceholderOf(land, 32, 20)
	if err != nil || len(p) != 28 || p[0] != 'L' || dom != media.MeanColor(land, 32, 20) { // 4×3: (4-1)+(3-1)·9 = 21 = "L"
		t.Errorf("landscape: %q %s %v", p, dom, err)
	}
	port := synthetic(20, 32, func(x, y int) (uint8, uint8, uint8) { return 10, 20, uint8(y * 8) })
	p, _, err = media.PlaceholderOf(port, 20, 32)
	if err != nil || len(p) != 28 || p[0] != 'T' { // 3×4: 2+3·9 = 29 = "T"
		t.Errorf("portrait: %q %v", p, err)
	}
}

func decode83(s string) int {
	const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
	n := 0
	for _, c := range s {
		n = n*83 + strings.IndexRune(chars, c)
	}
	return n
}

func hex6(n int) string {
	const digits = "0123456789abcdef"
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = digits[n&15]
		n >>= 4
	}
	return string(b[:])
}

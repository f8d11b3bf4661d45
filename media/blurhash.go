package media

import (
	"fmt"
	"math"
	"strings"
)

// BlurHash encodes an image as a BlurHash string, after the published
// algorithm and reference encoder (github.com/woltapp/blurhash, MIT): the
// image in linear light is projected onto xComponents×yComponents cosine
// basis functions; the mean colour (DC) is stored as 24-bit sRGB, the
// others (AC) quantised to 19 levels a channel relative to their largest
// magnitude, all in base 83. rgb holds height rows of width packed RGB
// bytes; components are 1-9 each. The string is 4 + 2·xComponents·yComponents
// characters long.
func BlurHash(rgb []byte, width, height, xComponents, yComponents int) (string, error) {
	if xComponents < 1 || xComponents > 9 || yComponents < 1 || yComponents > 9 {
		return "", fmt.Errorf("blurhash: components %d×%d must be 1-9 each", xComponents, yComponents)
	}
	if width < 1 || height < 1 || len(rgb) != width*height*3 {
		return "", fmt.Errorf("blurhash: %d bytes are not a %d×%d RGB image", len(rgb), width, height)
	}
	lin := linearPixels(rgb)
	// Cosines, computed once per column and per row.
	cosX := make([]float64, xComponents*width)
	for i := range xComponents {
		for x := range width {
			cosX[i*width+x] = math.Cos(math.Pi * float64(i) * float64(x) / float64(width))
		}
	}
	cosY := make([]float64, yComponents*height)
	for j := range yComponents {
		for y := range height {
			cosY[j*height+y] = math.Cos(math.Pi * float64(j) * float64(y) / float64(height))
		}
	}
	factors := make([][3]float64, 0, xComponents*yComponents)
	for j := range yComponents {
		for i := range xComponents {
			norm := 2.0
			if i == 0 && j == 0 {
				norm = 1
			}
			var f [3]float64
			for y := range height {
				cy := cosY[j*height+y]
				for x := range width {
					basis := cosX[i*width+x] * cy
					p := lin[(y*width+x)*3:]
					f[0] += basis * p[0]
					f[1] += basis * p[1]
					f[2] += basis * p[2]
				}
			}
			scale := norm / float64(width*height)
			factors = append(factors, [3]float64{f[0] * scale, f[1] * scale, f[2] * scale})
		}
	}

	var b strings.Builder
	b.Grow(4 + 2*len(factors))
	encode83(&b, (xComponents-1)+(yComponents-1)*9, 1)
	dc, ac := factors[0], factors[1:]
	maxValue := 1.0
	if len(ac) > 0 {
		actualMax := 0.0
		for _, f := range ac {
			actualMax = max(actualMax, math.Abs(f[0]), math.Abs(f[1]), math.Abs(f[2]))
		}
		quantisedMax := int(max(0, min(82, math.Floor(actualMax*166-0.5))))
		maxValue = float64(quantisedMax+1) / 166
		encode83(&b, quantisedMax, 1)
	} else {
		encode83(&b, 0, 1)
	}
	encode83(&b, int(linearToSRGB(dc[0]))<<16|int(linearToSRGB(dc[1]))<<8|int(linearToSRGB(dc[2])), 4)
	for _, f := range ac {
		q := func(v float64) int {
			return int(max(0, min(18, math.Floor(signPow(v/maxValue, 0.5)*9+9.5))))
		}
		encode83(&b, q(f[0])*19*19+q(f[1])*19+q(f[2]), 2)
	}
	return b.String(), nil
}

// MeanColor is the mean of an image's pixels in linear light, encoded as
// sRGB "#rrggbb"; rgb holds packed RGB bytes. It is the BlurHash's DC
// colour.
func MeanColor(rgb []byte, width, height int) string {
	n := width * height
	if n <= 0 || len(rgb) < n*3 {
		return "#000000"
	}
	var sum [3]float64
	for i := range n {
		for c := range 3 {
			sum[c] += srgbToLinearTable[rgb[i*3+c]]
		}
	}
	return fmt.Sprintf("#%02x%02x%02x",
		linearToSRGB(sum[0]/float64(n)), linearToSRGB(sum[1]/float64(n)), linearToSRGB(sum[2]/float64(n)))
}

const base83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"

// encode83 appends n as length base-83 digits, most significant first.
func encode83(b *strings.Builder, n, length int) {
	div := 1
	for range length - 1 {
		div *= 83
	}
	for range length {
		b.WriteByte(base83[(n/div)%83])
		div /= 83
	}
}

// srgbToLinearTable maps an 8-bit sRGB value to linear light, 0-1.
var srgbToLinearTable = func() (t [256]float64) {
	for i := range t {
		v := float64(i) / 255
		if v <= 0.04045 {
			t[i] = v / 12.92
		} else {
			t[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return t
}()

func linearPixels(rgb []byte) []float64 {
	out := make([]float64, len(rgb))
	for i, v := range rgb {
		out[i] = srgbToLinearTable[v]
	}
	return out
}

// linearToSRGB maps linear light, clamped to 0-1, to 8-bit sRGB, rounding
// as the reference encoder does.
func linearToSRGB(v float64) uint8 {
	v = max(0, min(1, v))
	if v <= 0.0031308 {
		return uint8(math.Trunc(v*12.92*255 + 0.5))
	}
	return uint8(math.Trunc((1.055*math.Pow(v, 1/2.4)-0.055)*255 + 0.5))
}

func signPow(v, exp float64) float64 {
	return math.Copysign(math.Pow(math.Abs(v), exp), v)
}

package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// Price is a non-negative amount in minor units (hundredths). It is parsed
// from and rendered to decimal text, never through a float, so "19.99" stays
// exactly 19.99.
type Price int64

// MaxPrice bounds prices to 13 integer digits, well inside int64 minor units.
const MaxPrice Price = 9_999_999_999_999_99

// ParsePrice parses a plain decimal with at most two fraction digits:
// "0", "19.9", "19.99". Signs, exponents, spaces and empty fractions are refused.
func ParsePrice(s string) (Price, error) {
	if s == "" {
		return 0, fmt.Errorf("must be a decimal number such as \"19.99\"")
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("must be zero or more, got %s", s)
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || (hasDot && (frac == "" || !allDigits(frac))) {
		if strings.ContainsAny(s, "eE") {
			return 0, fmt.Errorf("must be written without an exponent, got %s", s)
		}
		return 0, fmt.Errorf("must be a decimal number such as \"19.99\", got %q", s)
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("must have at most 2 decimal places, got %s", s)
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 13 {
		return 0, fmt.Errorf("must be at most %s, got %s", MaxPrice, s)
	}
	var units int64
	if intPart != "" {
		n, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("must be at most %s, got %s", MaxPrice, s)
		}
		units = n * 100
	}
	switch len(frac) {
	case 1:
		units += int64(frac[0]-'0') * 10
	case 2:
		units += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	return Price(units), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// String renders the price with exactly two decimals: "19.90".
func (p Price) String() string {
	return fmt.Sprintf("%d.%02d", int64(p)/100, int64(p)%100)
}

// MarshalJSON renders the price as a JSON string, so no client parses it as a float.
func (p Price) MarshalJSON() ([]byte, error) {
	return []byte(`"` + p.String() + `"`), nil
}

// UnmarshalJSON reads a price written as a JSON string or number.
func (p *Price) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParsePrice(s)
	if err != nil {
		return fmt.Errorf("price %w", err)
	}
	*p = v
	return nil
}

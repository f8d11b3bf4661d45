package rest

import "testing"

func TestByteRange(t *testing.T) {
	tests := []struct {
		header        string
		size          int64
		start, length int64
		ok            bool
	}{
		{"bytes=0-9", 100, 0, 10, true},
		{"bytes=90-", 100, 90, 10, true},
		{"bytes=90-200", 100, 90, 10, true},
		{"bytes=-5", 100, 95, 5, true},
		{"bytes=-500", 100, 0, 100, true},
		{"bytes=100-", 100, 0, 0, true},     // outside: 416
		{"bytes=-0", 100, 0, 0, true},       // nothing: 416
		{"bytes=0-", 0, 0, 0, true},         // an empty file has no byte: 416
		{"bytes=5-2", 100, 0, 0, false},     // invalid: the whole file
		{"bytes=0-1,5-6", 100, 0, 0, false}, // several: the whole file
		{"bytes=x-1", 100, 0, 0, false},
		{"items=0-1", 100, 0, 0, false},
		{"bytes=-", 100, 0, 0, false},
		{"bytes=-1-2", 100, 0, 0, false},
	}
	for _, tt := range tests {
		start, length, ok := byteRange(tt.header, tt.size)
		if start != tt.start || length != tt.length || ok != tt.ok {
			t.Errorf("byteRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.header, tt.size, start, length, ok, tt.start, tt.length, tt.ok)
		}
	}
}

func TestETagMatches(t *testing.T) {
	const etag = `"1a-2b"`
	for list, want := range map[string]bool{
		`"1a-2b"`:      true,
		`W/"1a-2b"`:    true,
		`"x", "1a-2b"`: true,
		`*`:            true,
		`"1a-2c"`:      false,
		`1a-2b`:        false,
		`"x" , W/"y"`:  false,
	} {
		if got := etagMatches(list, etag); got != want {
			t.Errorf("etagMatches(%q) = %v, want %v", list, got, want)
		}
	}
}

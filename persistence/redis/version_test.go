package redis

import "testing"

func TestOrderEncode(t *testing.T) {
	tests := []struct {
		at   order
		want string
	}{
		{order{7, kindValue}, "7="},
		{order{12, kindDeleted}, "12!"},
		{order{3, kindStale}, "3~"},
		{order{0, kindDeleted}, "0!"},
		{order{-4, kindDeleted}, "0!"}, // versions are never negative
		{order{9223372036854775807, kindValue}, "9223372036854775807="},
	}
	for _, tt := range tests {
		if got := tt.at.encode(); got != tt.want {
			t.Errorf("%v.encode() = %q, want %q", tt.at, got, tt.want)
		}
	}
}

func TestOrder(t *testing.T) {
	// Each supersedes all before it.
	seq := []order{{1, kindStale}, {1, kindValue}, {1, kindDeleted}, {2, kindStale}, {2, kindValue}, {10, kindStale}}
	for i, o := range seq {
		for j, p := range seq {
			if got, want := o.after(p), i > j; got != want {
				t.Errorf("%v.after(%v) = %v, want %v", o, p, got, want)
			}
		}
	}
}

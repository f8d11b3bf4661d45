package scenario

import "testing"

func TestBytesServed(t *testing.T) {
	b := Bytes{ByFormat: map[string]int64{"webp": 30, "jpeg": 50, "avif": 12},
		ByVariant: map[string]map[string]int64{
			"small":  {"webp": 10, "jpeg": 20, "avif": 4},
			"medium": {"webp": 20, "jpeg": 30, "avif": 8},
		}}
	if got := b.Total(); got != 92 {
		t.Errorf("Total = %d, want 92", got)
	}
	if got := b.Served("avif", "webp", "jpeg"); got != 12 {
		t.Errorf("served to an AVIF browser = %d, want 12", got)
	}
	if got := b.Served("webp", "jpeg"); got != 30 {
		t.Errorf("served to a WebP browser = %d, want 30", got)
	}
	b.ByVariant["thumb"] = map[string]int64{"jpeg": 5}
	if got := b.Served("avif", "webp", "jpeg"); got != 17 {
		t.Errorf("with a JPEG-only variant = %d, want 17", got)
	}
}

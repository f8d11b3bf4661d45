package media_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
)

// riff assembles a WebP file from chunks given as fourcc and payload.
func riff(chunks ...string) []byte {
	var body []byte
	for i := 0; i < len(chunks); i += 2 {
		body = append(body, chunks[i]...)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(chunks[i+1])))
		body = append(body, chunks[i+1]...)
		if len(chunks[i+1])%2 == 1 {
			body = append(body, 0)
		}
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)))...)
	return append(append(out, "WEBP"...), body...)
}

func TestStripWebPMetadata(t *testing.T) {
	flags := func(f byte) string { return string([]byte{f, 0, 0, 0, 9, 0, 0, 9, 0, 0}) }
	tests := []struct {
		name string
		in   []byte
		want []byte // nil: an error
	}{
		{"simple lossy is unchanged", riff("VP8 ", "abc"), riff("VP8 ", "abc")},
		{"EXIF dropped, flag cleared",
			riff("VP8X", flags(0x08|0x10), "ALPH", "al", "VP8 ", "abcd", "EXIF", "Exif\x00\x00II*"),
			riff("VP8X", flags(0x10), "ALPH", "al", "VP8 ", "abcd")},
		{"ICC, XMP and EXIF dropped",
			riff("VP8X", flags(0x20|0x08|0x04), "ICCP", "profile", "VP8L", "x", "EXIF", "e", "XMP ", "<x:xmpmeta/>"),
			riff("VP8X", flags(0), "VP8L", "x")},
		{"animation chunks kept",
			riff("VP8X", flags(0x02|0x08), "ANIM", "123456", "ANMF", "frame", "EXIF", "e"),
			riff("VP8X", flags(0x02), "ANIM", "123456", "ANMF", "frame")},
		{"not webp", []byte("RIFF\x04\x00\x00\x00AVI "), nil},
		{"RIFF size past end", []byte("RIFF\xff\x00\x00\x00WEBPVP8 "), nil},
		{"chunk past end", []byte("RIFF\x10\x00\x00\x00WEBPVP8 \xff\x00\x00\x00abcd"), nil},
		{"cut chunk header", []byte("RIFF\x08\x00\x00\x00WEBPVP8 "), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := media.StripWebPMetadata(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("no error; got %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

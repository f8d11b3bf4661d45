package media

import (
	"encoding/binary"
	"fmt"
)

// VP8X flags naming metadata chunks.
const (
	vp8xICC  = 0x20
	vp8xEXIF = 0x08
	vp8xXMP  = 0x04
)

// StripWebPMetadata returns a WebP file without its EXIF, XMP and ICCP
// chunks, with the VP8X flags and the RIFF size updated; image chunks are
// copied unchanged. A file without such chunks is returned as is.
//
// It exists because Debian's libvips 8.14 WebP saver ignores its strip
// option and always writes an EXIF chunk, rebuilt from the image's
// resolution and size even when the image carries no metadata at all.
func StripWebPMetadata(data []byte) ([]byte, error) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil, fmt.Errorf("strip webp metadata: not a WebP file")
	}
	size := binary.LittleEndian.Uint32(data[4:])
	if uint64(size)+8 > uint64(len(data)) || size < 4 {
		return nil, fmt.Errorf("strip webp metadata: RIFF size %d does not fit the %d bytes", size, len(data))
	}
	body := data[12 : 8+size]
	type chunk struct {
		fourcc string
		raw    []byte // header, payload and padding
	}
	var chunks []chunk
	drop := false
	for pos := 0; pos < len(body); {
		if len(body)-pos < 8 {
			return nil, fmt.Errorf("strip webp metadata: chunk header at byte %d is cut short", 12+pos)
		}
		n := uint64(binary.LittleEndian.Uint32(body[pos+4:]))
		padded := n + n&1
		if padded > uint64(len(body)-pos-8) { // #nosec G115 -- len(body)-pos ≥ 8, checked above
			return nil, fmt.Errorf("strip webp metadata: chunk at byte %d declares %d bytes past the end", 12+pos, n)
		}
		c := chunk{fourcc: string(body[pos : pos+4]), raw: body[pos : pos+8+int(padded)]} // #nosec G115 -- padded ≤ len(body)-pos-8, checked above
		switch c.fourcc {
		case "EXIF", "XMP ", "ICCP":
			drop = true
		default:
			chunks = append(chunks, c)
		}
		pos += 8 + int(padded) // #nosec G115 -- padded ≤ len(body)-pos-8, checked above
	}
	if !drop {
		return data, nil
	}
	out := make([]byte, 12, len(data))
	copy(out, "RIFF\x00\x00\x00\x00WEBP")
	for _, c := range chunks {
		start := len(out)
		out = append(out, c.raw...)
		if c.fourcc == "VP8X" && len(c.raw) > 8 {
			out[start+8] &^= vp8xICC | vp8xEXIF | vp8xXMP
		}
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8)) // #nosec G115 -- out holds at most the 8+size bytes of data, size a uint32
	return out, nil
}

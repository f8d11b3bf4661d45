// Package media knows image files without decoding them: it identifies the
// real format of an upload from its magic bytes, refuses files whose
// structure is cheaply seen to be broken, and describes what image
// processing must make of an upload (recipes, limits, headers, outputs). It
// is pure Go; the decoder that does the work lives in media/vips.
package media

import "fmt"

// Format is an image file format, identified by content rather than by name
// or declared type.
type Format uint8

// The formats Sniff recognises. FormatUnknown is the zero value.
const (
	FormatUnknown Format = iota
	FormatJPEG
	FormatPNG
	FormatWebP
	FormatGIF
	FormatTIFF
	// FormatHEIC is HEIF carrying HEVC images (brands heic, heix, hevc, …).
	FormatHEIC
	// FormatAVIF is HEIF carrying AV1 images (brands avif, avis).
	FormatAVIF
	// FormatHEIF is HEIF whose brands name no codec (only mif1 or msf1).
	FormatHEIF

	lastFormat = FormatHEIF
)

// info returns the format's name and MIME type.
func (f Format) info() (name, contentType string) {
	switch f {
	case FormatJPEG:
		return "jpeg", "image/jpeg"
	case FormatPNG:
		return "png", "image/png"
	case FormatWebP:
		return "webp", "image/webp"
	case FormatGIF:
		return "gif", "image/gif"
	case FormatTIFF:
		return "tiff", "image/tiff"
	case FormatHEIC:
		return "heic", "image/heic"
	case FormatAVIF:
		return "avif", "image/avif"
	case FormatHEIF:
		return "heif", "image/heif"
	}
	return "unknown", "application/octet-stream"
}

// Name is the short lower-case name of the format, e.g. "jpeg"; it is also
// the file extension used for variants.
func (f Format) Name() string {
	name, _ := f.info()
	return name
}

// ContentType is the MIME type of the format, e.g. "image/jpeg".
func (f Format) ContentType() string {
	_, ct := f.info()
	return ct
}

// String returns the format's name.
func (f Format) String() string { return f.Name() }

// IsHEIF reports whether f is one of the HEIF family (HEIC, AVIF, HEIF),
// which share a container and a decoder.
func (f Format) IsHEIF() bool {
	return f == FormatHEIC || f == FormatAVIF || f == FormatHEIF
}

// ParseFormat returns the format with the given name ("jpeg", "webp", …);
// "jpg" is accepted for "jpeg".
func ParseFormat(name string) (Format, error) {
	if name == "jpg" {
		return FormatJPEG, nil
	}
	for f := FormatJPEG; f <= lastFormat; f++ {
		if f.Name() == name {
			return f, nil
		}
	}
	return FormatUnknown, fmt.Errorf("unknown image format %q", name)
}

// MarshalText renders the format as its name, so that recipes read well in
// JSON and configuration files.
func (f Format) MarshalText() ([]byte, error) {
	if f == FormatUnknown || f > lastFormat {
		return nil, fmt.Errorf("cannot marshal unknown image format %d", uint8(f))
	}
	return []byte(f.Name()), nil
}

// UnmarshalText parses a format name.
func (f *Format) UnmarshalText(text []byte) error {
	v, err := ParseFormat(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

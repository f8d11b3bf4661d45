package vips

import (
	"context"
	"testing"

	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/internal/corpustest"
)

// BenchmarkProcessDefaultRecipe makes the six default outputs of a
// 2560×1920 JPEG photo.
func BenchmarkProcessDefaultRecipe(b *testing.B) {
	data := corpustest.Read(b, "photo_mate_wood.jpg")
	recipe := media.DefaultRecipe()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := testRuntime.Process(context.Background(), data, recipe); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVariantSource compares Process, which decodes the largest
// variant once and shrinks the others from it in memory, with decoding
// every variant from the file (shrink-on-load helping the small ones).
func BenchmarkVariantSource(b *testing.B) {
	data := corpustest.Read(b, "photo_mate_wood.jpg")
	recipe := media.DefaultRecipe()
	b.Run("shrink-from-previous", func(b *testing.B) {
		for b.Loop() {
			if _, err := testRuntime.Process(context.Background(), data, recipe); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-each-from-file", func(b *testing.B) {
		h, err := testRuntime.Probe(data, media.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			blob := newBlob(data)
			for _, v := range recipe.Variants {
				w, ht := decodeBox(h, v)
				img, err := decode(context.Background(), blob, h, w, ht, false)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := encode(context.Background(), img, v, false); err != nil {
					b.Fatal(err)
				}
				img.close()
			}
			blob.close()
		}
	})
}

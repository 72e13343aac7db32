package media_test

import (
	"bytes"
	"context"
	"image"
	"testing"

	"github.com/parley-im/parley/gateway/media"
)

// BenchmarkThumbnail12MP probes a 4000x3000 photo-like JPEG (gradients
// and noise, about 3.5 MB): decoding, box filter, Catmull-Rom to 320 px,
// JPEG encoding of the thumbnail.
func BenchmarkThumbnail12MP(b *testing.B) {
	m := image.NewYCbCr(image.Rect(0, 0, 4000, 3000), image.YCbCrSubsampleRatio420)
	seed := uint32(1)
	for y := range 3000 {
		for x := range 4000 {
			seed = seed*1664525 + 1013904223
			m.Y[m.YOffset(x, y)] = uint8((x/16+y/12)%200) + uint8(seed>>28)
		}
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(96+i%64), uint8(160-i%48)
	}
	file := encodeJPEG(b, m)
	b.Logf("JPEG of %d bytes", len(file))
	ctx := context.Background()
	for b.Loop() {
		info, err := media.Probe(ctx, bytes.NewReader(file), int64(len(file)), media.Options{})
		if err != nil || info.Image.ThumbnailWidth != 320 || info.Image.ThumbnailHeight != 240 {
			b.Fatalf("%+v, %v", info.Image, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/thumbnail")
}

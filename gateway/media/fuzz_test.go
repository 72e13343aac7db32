package media_test

import (
	"bytes"
	"context"
	"image/color"
	"testing"

	"github.com/parley-im/parley/gateway/media"
)

// fuzzSeeds is one small file of each format the parsers read.
func fuzzSeeds(t testing.TB) [][]byte {
	j := insertAfterSOI(encodeJPEG(t, quadrants(16, 8)), exifSegment(buildTIFF(6, true)),
		segment(0xE1, append([]byte("http://ns.adobe.com/xap/1.0/\x00"), xmpPacket(true)...)))
	ihdr := append(append(u32(3), u32(2)...), 8, 2, 0, 0, 0)
	p := append(append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...), pngChunk("eXIf", buildTIFF(8, true))...)
	p = append(p, pngChunk("IEND", nil)...)
	return [][]byte{
		j,
		p,
		webpFile(4, 2, 0x08, riffChunk("VP8L", vp8lSolid(4, 2, color.NRGBA{1, 2, 3, 255})), riffChunk("EXIF", buildTIFF(3, true))),
		oggOpus(312, []int{3, 40, 7, 300}),
		m4a([]uint32{5, 50, 500}),
		movie("isom"),
		webmFile(100, webmVideoTrack("V_VP9", 8, 8), webmAudioTrack("A_OPUS", 48000, 2)),
		append(mp4Box("ftyp", []byte("heic"), u32(0), []byte("mif1")),
			fullBox("meta", 0, mp4Box("iprp", mp4Box("ipco", fullBox("ispe", 0, u32(64), u32(48)))))...),
		[]byte("PK\x05\x06" + string(make([]byte, 18))),
		[]byte("plain text\n"),
		{0xFF, 0xFB, 0x90, 0x64},
	}
}

// FuzzProbe: no input makes Probe (sniffing and every parser behind it)
// panic, and what it returns is within its bounds.
func FuzzProbe(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	opts := media.Options{MaxPixels: 1 << 20, ThumbnailSize: 32, Placeholder: true, WaveformBars: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := media.Probe(context.Background(), bytes.NewReader(data), int64(len(data)), opts)
		if info.Mime == "" || info.Kind == "" {
			t.Fatalf("no type: %+v, %v", info, err)
		}
		if err != nil {
			return
		}
		if a := info.Audio; a != nil && a.Waveform != nil && len(a.Waveform) != 16 {
			t.Fatalf("%d bars", len(a.Waveform))
		}
		if im := info.Image; im != nil {
			if im.ThumbnailWidth > 32 || im.ThumbnailHeight > 32 || len(im.Placeholder) > 49 {
				t.Fatalf("thumbnail %dx%d, placeholder %d bytes", im.ThumbnailWidth, im.ThumbnailHeight, len(im.Placeholder))
			}
		}
	})
}

// FuzzStripLocation: no input makes StripLocation panic, and whatever it
// writes without error has no location left that Probe would see.
func FuzzStripLocation(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := media.StripLocation(&out, bytes.NewReader(data)); err != nil {
			return
		}
		info, _ := media.Probe(context.Background(), bytes.NewReader(out.Bytes()), int64(out.Len()),
			media.Options{MaxPixels: 1 << 20, NoThumbnail: true})
		if info.Image != nil && info.Image.HasLocation {
			t.Fatalf("location left in %q", out.Bytes())
		}
	})
}

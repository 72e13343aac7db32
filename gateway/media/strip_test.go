package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"testing"

	"github.com/parley-im/parley/gateway/media"
	"golang.org/x/image/webp"
)

func strip(t *testing.T, in []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := media.StripLocation(&out, bytes.NewReader(in)); err != nil {
		t.Fatalf("StripLocation: %v", err)
	}
	return out.Bytes()
}

// jpegSegments lists the markers and bodies before the first scan.
func jpegSegments(t *testing.T, j []byte) (markers []byte, bodies [][]byte) {
	t.Helper()
	if !bytes.HasPrefix(j, []byte{0xFF, 0xD8}) {
		t.Fatal("no SOI")
	}
	for i := 2; i+4 <= len(j); {
		if j[i] != 0xFF {
			t.Fatalf("no marker at %d", i)
		}
		m := j[i+1]
		n := int(binary.BigEndian.Uint16(j[i+2:]))
		markers = append(markers, m)
		bodies = append(bodies, j[i+4:i+2+n])
		if m == 0xDA {
			break
		}
		i += 2 + n
	}
	return markers, bodies
}

// tiffIFD0 lists the tags of IFD0 and their first short value.
func tiffIFD0(t *testing.T, b []byte) map[uint16]uint16 {
	t.Helper()
	var bo binary.ByteOrder = binary.LittleEndian
	if string(b[:2]) == "MM" {
		bo = binary.BigEndian
	}
	off := int(bo.Uint32(b[4:]))
	n := int(bo.Uint16(b[off:]))
	tags := map[uint16]uint16{}
	for i := range n {
		e := b[off+2+12*i:]
		tags[bo.Uint16(e)] = bo.Uint16(e[8:])
	}
	return tags
}

// TestStripJPEG: GPS in EXIF and XMP, IPTC, a comment and an image
// appended after EOI (as MPF does) are gone; the orientation stays in a
// minimal EXIF; the pixels decode exactly as before (no re-encoding).
func TestStripJPEG(t *testing.T) {
	base := encodeJPEG(t, quadrants(400, 100))
	in := insertAfterSOI(base,
		segment(0xE0, []byte("JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00")),
		exifSegment(buildTIFF(6, true)),
		segment(0xE1, append([]byte("http://ns.adobe.com/xap/1.0/\x00"), xmpPacket(true)...)),
		segment(0xE2, []byte("MPF\x00II*\x00whatever")),
		segment(0xE2, []byte("ICC_PROFILE\x00\x01\x01fake-profile")),
		segment(0xED, []byte("Photoshop 3.0\x008BIM\x04\x04city=Paris")),
		segment(0xFE, []byte("taken at 48.8583 N 2.2945 E")),
	)
	in = append(in, insertAfterSOI(encodeJPEG(t, quadrants(40, 10)), exifSegment(buildTIFF(1, true)))...)
	if info := mustProbe(t, in, media.Options{NoThumbnail: true}); !info.Image.HasLocation || info.Image.Orientation != 6 {
		t.Fatalf("input: %+v", info.Image)
	}
	out := strip(t, in)

	for _, secret := range [][]byte{gpsBytes(), []byte("GPSLatitude"), []byte("Paris"), []byte("48.8583"), []byte("TestCam"), []byte("MPF")} {
		if bytes.Contains(out, secret) {
			t.Errorf("output still holds %q", secret)
		}
	}
	markers, bodies := jpegSegments(t, out)
	exifs := 0
	for i, m := range markers {
		switch {
		case m == 0xE1:
			exifs++
			if !bytes.HasPrefix(bodies[i], []byte("Exif\x00\x00")) {
				t.Errorf("APP1 that is not EXIF: %q", bodies[i][:min(30, len(bodies[i]))])
				continue
			}
			tags := tiffIFD0(t, bodies[i][6:])
			if _, ok := tags[0x8825]; ok || len(tags) != 1 || tags[0x0112] != 6 {
				t.Errorf("EXIF IFD0 %v, want only orientation 6", tags)
			}
		case m == 0xED || m == 0xFE:
			t.Errorf("segment %X kept", m)
		}
	}
	if exifs != 1 {
		t.Errorf("%d EXIF segments", exifs)
	}
	if !bytes.Contains(out, []byte("ICC_PROFILE")) || !bytes.Contains(out, []byte("JFIF")) {
		t.Error("ICC profile or JFIF dropped")
	}
	if !bytes.HasSuffix(out, []byte{0xFF, 0xD9}) || bytes.Count(out, []byte{0xFF, 0xD8}) != 1 {
		t.Error("output does not end at the first image's EOI")
	}
	if !samePixels(decodeJPEG(t, base), decodeJPEG(t, out)) {
		t.Error("pixels changed")
	}
	info := mustProbe(t, out, media.Options{})
	if info.Image.HasLocation || info.Image.Orientation != 6 || info.Image.Width != 100 || info.Image.Height != 400 {
		t.Errorf("output: %+v", info.Image)
	}
	if again := strip(t, out); !bytes.Equal(again, out) {
		t.Error("stripping twice changes the file")
	}
}

// TestStripJPEGNoOrientation: an upright picture keeps no EXIF at all.
func TestStripJPEGNoOrientation(t *testing.T) {
	for _, o := range []int{0, 1} {
		out := strip(t, insertAfterSOI(encodeJPEG(t, quadrants(64, 64)), exifSegment(buildTIFF(o, true))))
		if bytes.Contains(out, []byte("Exif")) {
			t.Errorf("orientation %d: EXIF kept", o)
		}
		decodeJPEG(t, out)
	}
}

func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				return false
			}
		}
	}
	return true
}

// TestStripPNG: eXIf keeps only the orientation, XMP and raw profiles go,
// other text stays, every CRC is right (png.Decode checks them).
func TestStripPNG(t *testing.T) {
	var b bytes.Buffer
	if err := png.Encode(&b, quadrants(80, 40)); err != nil {
		t.Fatal(err)
	}
	in := insertPNGChunks(b.Bytes(),
		pngChunk("eXIf", buildTIFF(8, true)),
		pngChunk("iTXt", append([]byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), xmpPacket(true)...)),
		pngChunk("zTXt", []byte("Raw profile type exif\x00\x00compressed")),
		pngChunk("tEXt", []byte("Title\x00holiday")),
	)
	in = append(in, "trailing"...)
	out := strip(t, in)
	for _, secret := range [][]byte{gpsBytes(), []byte("GPSLatitude"), []byte("Raw profile"), []byte("trailing")} {
		if bytes.Contains(out, secret) {
			t.Errorf("output still holds %q", secret)
		}
	}
	if !bytes.Contains(out, []byte("holiday")) {
		t.Error("title dropped")
	}
	m, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if !samePixels(m, quadrants(80, 40)) {
		t.Error("pixels changed")
	}
	i := bytes.Index(out, []byte("eXIf"))
	if i < 0 {
		t.Fatal("no eXIf")
	}
	n := binary.BigEndian.Uint32(out[i-4:])
	if tags := tiffIFD0(t, out[i+4:i+4+int(n)]); len(tags) != 1 || tags[0x0112] != 8 {
		t.Errorf("eXIf %v", tags)
	}
	info := mustProbe(t, out, media.Options{})
	if info.Image.HasLocation || info.Image.Orientation != 8 || info.Image.Width != 40 {
		t.Errorf("output: %+v", info.Image)
	}
}

// TestStripWebP: the EXIF and XMP chunks are overwritten in place.
func TestStripWebP(t *testing.T) {
	in := webpFile(30, 20, 0x08|0x04, riffChunk("VP8L", vp8lSolid(30, 20, color.NRGBA{0, 255, 0, 255})),
		riffChunk("EXIF", buildTIFF(3, true)), riffChunk("XMP ", xmpPacket(true)))
	out := strip(t, in)
	if len(out) != len(in) {
		t.Errorf("size %d, was %d", len(out), len(in))
	}
	if bytes.Contains(out, gpsBytes()) || bytes.Contains(out, []byte("GPS")) {
		t.Error("GPS kept")
	}
	if _, err := webp.Decode(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	info := mustProbe(t, out, media.Options{})
	if info.Image.HasLocation || info.Image.Orientation != 3 {
		t.Errorf("output: %+v", info.Image)
	}
}

// TestStripGIF: the XMP application extension goes, the pictures stay.
func TestStripGIF(t *testing.T) {
	var b bytes.Buffer
	pal := image.NewPaletted(image.Rect(0, 0, 20, 20), []color.Color{color.White, color.Black})
	if err := gif.Encode(&b, pal, nil); err != nil {
		t.Fatal(err)
	}
	g := b.Bytes()
	// XMP goes in raw, followed by the "magic trailer" that lets a
	// sub-block reader skip it.
	xmp := append([]byte{0x21, 0xFF, 0x0B}, "XMP DataXMP"...)
	xmp = append(xmp, xmpPacket(true)...)
	xmp = append(xmp, 0x01)
	for i := 255; i >= 0; i-- {
		xmp = append(xmp, byte(i))
	}
	xmp = append(xmp, 0x00) // the block terminator
	at := 13 + 6            // header, screen descriptor, two-colour table
	in := append(append(append([]byte{}, g[:at]...), xmp...), g[at:]...)
	if _, err := gif.Decode(bytes.NewReader(in)); err != nil {
		t.Fatalf("test GIF: %v", err)
	}
	if info := mustProbe(t, in, media.Options{}); !info.Image.HasLocation {
		t.Error("XMP GPS not seen")
	}
	out := strip(t, in)
	if bytes.Contains(out, []byte("GPS")) || !bytes.Equal(out, g) {
		t.Errorf("output differs from the GIF without XMP (%d vs %d bytes)", len(out), len(g))
	}
}

func TestStripUnsupported(t *testing.T) {
	var out bytes.Buffer
	err := media.StripLocation(&out, bytes.NewReader([]byte("%PDF-1.7\n")))
	if !errors.Is(err, media.ErrUnsupported) || out.Len() != 0 {
		t.Errorf("%v, %d bytes written", err, out.Len())
	}
	if err := media.StripLocation(&out, bytes.NewReader([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00})); !errors.Is(err, media.ErrMalformed) {
		t.Errorf("truncated JPEG: %v", err)
	}
}

package media_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/parley-im/parley/gateway/media"
)

func probe(t testing.TB, b []byte, opts media.Options) (media.Info, error) {
	t.Helper()
	return media.Probe(context.Background(), bytes.NewReader(b), int64(len(b)), opts)
}

func mustProbe(t testing.TB, b []byte, opts media.Options) media.Info {
	t.Helper()
	info, err := probe(t, b, opts)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	return info
}

// colourName names the nearest of the quadrant colours.
func colourName(c color.Color) string {
	r, g, b, _ := c.RGBA()
	names := map[string][3]uint32{"R": {255, 0, 0}, "G": {0, 255, 0}, "B": {0, 0, 255}, "W": {255, 255, 255}}
	best, bestD := "", uint32(1<<31)
	for n, v := range names {
		d := sq(r>>8, v[0]) + sq(g>>8, v[1]) + sq(b>>8, v[2])
		if d < bestD {
			best, bestD = n, d
		}
	}
	if bestD > 3*60*60 {
		return "?"
	}
	return best
}

func sq(a, b uint32) uint32 {
	d := int(a) - int(b)
	return uint32(d * d)
}

// corners names the colours near the four corners: TL, TR, BL, BR.
func corners(m image.Image) string {
	b := m.Bounds()
	in := 6
	return colourName(m.At(b.Min.X+in, b.Min.Y+in)) + colourName(m.At(b.Max.X-1-in, b.Min.Y+in)) +
		colourName(m.At(b.Min.X+in, b.Max.Y-1-in)) + colourName(m.At(b.Max.X-1-in, b.Max.Y-1-in))
}

// TestImageOrientation: a 400x100 JPEG (red, green / blue, white
// quarters) under each EXIF orientation is reported and thumbnailed as
// displayed.
func TestImageOrientation(t *testing.T) {
	src := encodeJPEG(t, quadrants(400, 100))
	if got := corners(decodeJPEG(t, src)); got != "RGBW" {
		t.Fatalf("source corners %s", got)
	}
	want := map[int]string{1: "RGBW", 2: "GRWB", 3: "WBGR", 4: "BWRG", 5: "RBGW", 6: "BRWG", 7: "WGBR", 8: "GWRB"}
	for o := 1; o <= 8; o++ {
		file := insertAfterSOI(src, exifSegment(buildTIFF(o, false)))
		info := mustProbe(t, file, media.Options{})
		if info.Mime != "image/jpeg" || info.Kind != media.KindImage || info.Image == nil {
			t.Fatalf("orientation %d: %+v", o, info)
		}
		im := info.Image
		w, h, tw, th := 400, 100, 320, 80
		if o >= 5 {
			w, h, tw, th = h, w, th, tw
		}
		if im.Orientation != o || im.Width != w || im.Height != h {
			t.Errorf("orientation %d: got orientation %d, %dx%d; want %dx%d", o, im.Orientation, im.Width, im.Height, w, h)
		}
		thumb := decodeJPEG(t, im.Thumbnail)
		if b := thumb.Bounds(); b.Dx() != tw || b.Dy() != th || im.ThumbnailWidth != tw || im.ThumbnailHeight != th {
			t.Errorf("orientation %d: thumbnail %v (said %dx%d), want %dx%d", o, b, im.ThumbnailWidth, im.ThumbnailHeight, tw, th)
		}
		if got := corners(thumb); got != want[o] {
			t.Errorf("orientation %d: thumbnail corners %s, want %s", o, got, want[o])
		}
		if im.HasLocation {
			t.Errorf("orientation %d: HasLocation without GPS", o)
		}
	}
}

func decodeJPEG(t testing.TB, b []byte) image.Image {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("jpeg.Decode: %v", err)
	}
	return m
}

// TestImageFormats: PNG, GIF and WebP give dimensions and a thumbnail;
// small pictures are not enlarged; the thumbnail size is configurable.
func TestImageFormats(t *testing.T) {
	var pngb, gifb bytes.Buffer
	if err := png.Encode(&pngb, quadrants(1000, 500)); err != nil {
		t.Fatal(err)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 120, 90), []color.Color{color.White, color.Black})
	if err := gif.Encode(&gifb, pal, nil); err != nil {
		t.Fatal(err)
	}
	webpb := webpFile(0, 0, 0, riffChunk("VP8L", vp8lSolid(300, 200, color.NRGBA{0, 0, 255, 255})))
	for _, c := range []struct {
		name, mime string
		file       []byte
		opts       media.Options
		w, h       int
		tw, th     int
	}{
		{"png", "image/png", pngb.Bytes(), media.Options{}, 1000, 500, 320, 160},
		{"png 100", "image/png", pngb.Bytes(), media.Options{ThumbnailSize: 100}, 1000, 500, 100, 50},
		{"gif small", "image/gif", gifb.Bytes(), media.Options{}, 120, 90, 120, 90},
		{"webp", "image/webp", webpb, media.Options{}, 300, 200, 300, 200},
		{"webp 150", "image/webp", webpb, media.Options{ThumbnailSize: 150}, 300, 200, 150, 100},
	} {
		info := mustProbe(t, c.file, c.opts)
		if info.Mime != c.mime || info.Image == nil {
			t.Fatalf("%s: %+v", c.name, info)
		}
		im := info.Image
		if im.Width != c.w || im.Height != c.h || im.Orientation != 1 {
			t.Errorf("%s: %dx%d orientation %d, want %dx%d", c.name, im.Width, im.Height, im.Orientation, c.w, c.h)
		}
		th := decodeJPEG(t, im.Thumbnail)
		if th.Bounds().Dx() != c.tw || th.Bounds().Dy() != c.th {
			t.Errorf("%s: thumbnail %v, want %dx%d", c.name, th.Bounds(), c.tw, c.th)
		}
	}
	// The WebP is solid blue: so is its thumbnail.
	info := mustProbe(t, webpb, media.Options{})
	if r, g, b, _ := decodeJPEG(t, info.Image.Thumbnail).At(150, 100).RGBA(); r>>8 > 20 || g>>8 > 20 || b>>8 < 230 {
		t.Errorf("webp thumbnail colour %d,%d,%d", r>>8, g>>8, b>>8)
	}
}

// TestImageWebPEXIF: the orientation and GPS of a WebP's EXIF chunk.
func TestImageWebPEXIF(t *testing.T) {
	file := webpFile(300, 100, 0x08, riffChunk("VP8L", vp8lSolid(300, 100, color.NRGBA{255, 0, 0, 255})),
		riffChunk("EXIF", buildTIFF(6, true)))
	info := mustProbe(t, file, media.Options{})
	im := info.Image
	if im == nil || im.Width != 100 || im.Height != 300 || im.Orientation != 6 || !im.HasLocation {
		t.Fatalf("%+v", im)
	}
	if th := decodeJPEG(t, im.Thumbnail); th.Bounds().Dx() != 100 || th.Bounds().Dy() != 300 {
		t.Errorf("thumbnail %v", th.Bounds())
	}
}

// TestImageLocation: HasLocation from an EXIF GPS IFD or XMP GPS fields,
// in JPEG and PNG.
func TestImageLocation(t *testing.T) {
	j := encodeJPEG(t, quadrants(64, 64))
	var p bytes.Buffer
	if err := png.Encode(&p, quadrants(64, 64)); err != nil {
		t.Fatal(err)
	}
	xmpJPEG := segment(0xE1, append([]byte("http://ns.adobe.com/xap/1.0/\x00"), xmpPacket(true)...))
	itxt := func(gps bool) []byte {
		return pngChunk("iTXt", append([]byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), xmpPacket(gps)...))
	}
	for _, c := range []struct {
		name string
		file []byte
		want bool
	}{
		{"jpeg plain", j, false},
		{"jpeg exif gps", insertAfterSOI(j, exifSegment(buildTIFF(1, true))), true},
		{"jpeg exif no gps", insertAfterSOI(j, exifSegment(buildTIFF(1, false))), false},
		{"jpeg xmp gps", insertAfterSOI(j, xmpJPEG), true},
		{"png exif gps", insertPNGChunks(p.Bytes(), pngChunk("eXIf", buildTIFF(3, true))), true},
		{"png xmp gps", insertPNGChunks(p.Bytes(), itxt(true)), true},
		{"png xmp no gps", insertPNGChunks(p.Bytes(), itxt(false)), false},
	} {
		info := mustProbe(t, c.file, media.Options{NoThumbnail: true})
		if info.Image == nil || info.Image.HasLocation != c.want {
			t.Errorf("%s: %+v, want HasLocation %v", c.name, info.Image, c.want)
		}
		if info.Image != nil && info.Image.Thumbnail != nil {
			t.Errorf("%s: a thumbnail with NoThumbnail", c.name)
		}
	}
}

// TestImageTooManyPixels: the limit is checked from the header, before
// decoding: a PNG that only claims 50000x50000 pixels is refused with the
// distinct error, and so is a real image above a lowered limit.
func TestImageTooManyPixels(t *testing.T) {
	ihdr := append(append(u32(50000), u32(50000)...), 8, 6, 0, 0, 0)
	bomb := append(append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...), pngChunk("IEND", nil)...)
	info, err := probe(t, bomb, media.Options{})
	if !errors.Is(err, media.ErrTooManyPixels) {
		t.Fatalf("bomb: %v", err)
	}
	if info.Mime != "image/png" || info.Kind != media.KindImage {
		t.Errorf("bomb info %+v", info)
	}
	j := encodeJPEG(t, quadrants(2000, 1000))
	if _, err := probe(t, j, media.Options{MaxPixels: 1_999_999}); !errors.Is(err, media.ErrTooManyPixels) {
		t.Errorf("2 MP under a 1.99 MP limit: %v", err)
	}
	if _, err := probe(t, j, media.Options{MaxPixels: 2_000_000}); err != nil {
		t.Errorf("2 MP under a 2 MP limit: %v", err)
	}
	// A header that passes but pixels that are not there.
	if _, err := probe(t, j[:len(j)/2], media.Options{}); !errors.Is(err, media.ErrMalformed) {
		t.Errorf("truncated JPEG: %v", err)
	}
}

// TestImagePlaceholder: a grid of average colours in the displayed
// aspect and orientation.
func TestImagePlaceholder(t *testing.T) {
	file := insertAfterSOI(encodeJPEG(t, quadrants(400, 100)), exifSegment(buildTIFF(6, false)))
	info := mustProbe(t, file, media.Options{Placeholder: true, NoThumbnail: true})
	p := info.Image.Placeholder
	if info.Image.Thumbnail != nil {
		t.Error("thumbnail with NoThumbnail")
	}
	// Displayed 100x400: 1 column, 4 rows: blue/red on top, white/green below, averaged.
	if len(p) != 1+3*4 || p[0] != 1<<4|4 {
		t.Fatalf("placeholder % x", p)
	}
	top, bottom := p[1:4], p[10:13]
	if top[0] < 100 || top[1] > 40 || top[2] < 100 { // red+blue: purple
		t.Errorf("top cell %v", top)
	}
	if bottom[0] < 100 || bottom[1] < 200 || bottom[2] < 100 { // white+green
		t.Errorf("bottom cell %v", bottom)
	}
}

// TestImageTransparency: transparent pixels come out white.
func TestImageTransparency(t *testing.T) {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 50, 50))); err != nil {
		t.Fatal(err)
	}
	info := mustProbe(t, b.Bytes(), media.Options{})
	if got := colourName(decodeJPEG(t, info.Image.Thumbnail).At(25, 25)); got != "W" {
		t.Errorf("transparent thumbnail is %s", got)
	}
}

// TestImageAnimated: an animated GIF is flagged and gives its first frame.
func TestImageAnimated(t *testing.T) {
	pal := []color.Color{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	f1, f2 := image.NewPaletted(image.Rect(0, 0, 40, 40), pal), image.NewPaletted(image.Rect(0, 0, 40, 40), pal)
	for i := range f2.Pix {
		f2.Pix[i] = 1
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{f1, f2}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	info := mustProbe(t, b.Bytes(), media.Options{})
	if !info.Image.Animated {
		t.Error("not animated")
	}
	if got := colourName(decodeJPEG(t, info.Image.Thumbnail).At(20, 20)); got != "R" {
		t.Errorf("first frame is %s", got)
	}
	var one bytes.Buffer
	if err := gif.Encode(&one, f1, nil); err != nil {
		t.Fatal(err)
	}
	if mustProbe(t, one.Bytes(), media.Options{}).Image.Animated {
		t.Error("one frame is animated")
	}
}

// TestImageHEIF: a HEIC's largest image extent, its rotation and its Exif
// item's GPS, without a thumbnail.
func TestImageHEIF(t *testing.T) {
	tiff := buildTIFF(1, true)
	exifItem := append(u32(6), append([]byte("Exif\x00\x00"), tiff...)...)
	build := func(exifAt uint32) []byte {
		ftyp := mp4Box("ftyp", []byte("heic"), u32(0), []byte("mif1heic"))
		iinf := fullBox("iinf", 0, u16(2),
			fullBox("infe", 2, u16(1), u16(0), []byte("hvc1"), []byte("\x00")),
			fullBox("infe", 2, u16(2), u16(0), []byte("Exif"), []byte("\x00")))
		// version 0: offset, length and base offset of 4 bytes.
		iloc := fullBox("iloc", 0, []byte{0x44, 0x40}, u16(1),
			u16(2), u16(0), u32(0), u16(1), u32(exifAt), u32(uint32(len(exifItem))))
		ipco := mp4Box("ipco", fullBox("ispe", 0, u32(512), u32(512)), fullBox("ispe", 0, u32(4032), u32(3024)),
			mp4Box("irot", []byte{3}))
		meta := fullBox("meta", 0, hdlr("pict"), iinf, iloc, mp4Box("iprp", ipco))
		return append(append(ftyp, meta...), mp4Box("mdat", exifItem)...)
	}
	probeFile := build(0)
	file := build(uint32(len(probeFile) - len(exifItem)))
	info := mustProbe(t, file, media.Options{})
	if info.Mime != "image/heic" || info.Kind != media.KindImage || info.Image == nil {
		t.Fatalf("%+v", info)
	}
	im := info.Image
	// irot 3: three quarter turns anticlockwise, shown as 3024x4032.
	if im.Width != 3024 || im.Height != 4032 || im.Orientation != 6 || !im.HasLocation || im.Thumbnail != nil {
		t.Errorf("%+v", im)
	}
}

func TestOptions(t *testing.T) {
	d := media.Options{}.Defaults()
	if d != media.DefaultOptions {
		t.Errorf("defaults %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	bad := media.Options{MaxPixels: -1, ThumbnailSize: 10000, ThumbnailQuality: 101, WaveformBars: -3}
	err := bad.Validate()
	for _, f := range []string{"MaxPixels", "ThumbnailSize", "ThumbnailQuality", "WaveformBars"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(f)) {
			t.Errorf("Validate does not name %s: %v", f, err)
		}
	}
	if _, err := probe(t, []byte("x"), bad); err == nil {
		t.Error("Probe accepted bad options")
	}
}

// TestProbeCancelled: a cancelled context stops Probe.
func TestProbeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j := encodeJPEG(t, quadrants(64, 64))
	info, err := media.Probe(ctx, bytes.NewReader(j), int64(len(j)), media.Options{})
	if !errors.Is(err, context.Canceled) || info.Mime != "image/jpeg" {
		t.Errorf("%+v, %v", info, err)
	}
}

// TestImageDeepPNG: 16-bit and grey PNGs go through the box filter too.
func TestImageDeepPNG(t *testing.T) {
	deep := image.NewNRGBA64(image.Rect(0, 0, 1600, 800))
	grey := image.NewGray16(image.Rect(0, 0, 1600, 800))
	for y := range 800 {
		for x := range 1600 {
			deep.SetNRGBA64(x, y, color.NRGBA64{0, 0, 0xFFFF, 0xFFFF})
			grey.SetGray16(x, y, color.Gray16{0xFFFF})
		}
	}
	for name, m := range map[string]image.Image{"nrgba64": deep, "gray16": grey} {
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		info := mustProbe(t, b.Bytes(), media.Options{})
		th := decodeJPEG(t, info.Image.Thumbnail)
		want := map[string]string{"nrgba64": "B", "gray16": "W"}[name]
		if th.Bounds().Dx() != 320 || th.Bounds().Dy() != 160 || colourName(th.At(160, 80)) != want {
			t.Errorf("%s: thumbnail %v of colour %s", name, th.Bounds(), colourName(th.At(160, 80)))
		}
	}
}

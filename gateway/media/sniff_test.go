package media_test

import (
	"archive/zip"
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/parley-im/parley/gateway/media"
)

func zipFile(t *testing.T, storedMimetype string, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	if storedMimetype != "" {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "mimetype", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(storedMimetype))
	}
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(strings.Repeat("<x/>", 100)))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// mp3Frames is n MPEG-1 layer III frames of 128 kbit/s at 44.1 kHz.
func mp3Frames(n int) []byte {
	var b []byte
	for range n {
		f := make([]byte, 417)
		copy(f, []byte{0xFF, 0xFB, 0x90, 0x64})
		b = append(b, f...)
	}
	return b
}

func adtsFrames(n int) []byte {
	var b []byte
	for range n {
		const l = 200
		f := make([]byte, l)
		copy(f, []byte{0xFF, 0xF1, 0x50, 0x80 | byte(l>>11), byte(l >> 3), byte(l&7)<<5 | 0x1F, 0xFC})
		b = append(b, f...)
	}
	return b
}

func TestSniff(t *testing.T) {
	var pngb, gifb bytes.Buffer
	if err := png.Encode(&pngb, quadrants(8, 8)); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gifb, image.NewPaletted(image.Rect(0, 0, 4, 4), []color.Color{color.Black}), nil); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 5000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	random[0] = 0x00
	longText := strings.Repeat("a", 4095) + "é and more" // é straddles the sniffed head
	id3 := append([]byte("ID3\x04\x00\x00\x00\x00\x00\x0a"), make([]byte, 10)...)
	oggOf := func(first []byte) []byte { return oggPage(0x02, 0, 1, 0, first) }
	heic := append(mp4Box("ftyp", []byte("heic"), u32(0), []byte("mif1heic")), fullBox("meta", 0)...)
	avif := mp4Box("ftyp", []byte("avif"), u32(0), []byte("avifmif1miaf"))
	m4aNoMoov := mp4Box("ftyp", []byte("M4A "), u32(0), []byte("M4A isom"))
	audioOnlyIsom := append(mp4Box("ftyp", []byte("isom"), u32(0), []byte("isom")),
		m4a([]uint32{10, 20})[len(mp4Box("ftyp", []byte("M4A "), u32(0), []byte("M4A isommp42"))):]...)

	for _, c := range []struct {
		name string
		file []byte
		mime string
		kind media.Kind
	}{
		{"jpeg", encodeJPEG(t, quadrants(8, 8)), "image/jpeg", media.KindImage},
		{"png", pngb.Bytes(), "image/png", media.KindImage},
		{"gif", gifb.Bytes(), "image/gif", media.KindImage},
		{"webp", webpFile(0, 0, 0, riffChunk("VP8L", vp8lSolid(2, 2, color.NRGBA{A: 255}))), "image/webp", media.KindImage},
		{"heic", heic, "image/heic", media.KindImage},
		{"avif", avif, "image/avif", media.KindImage},
		{"ogg opus", oggOpus(312, []int{10, 10}), "audio/ogg", media.KindAudio},
		{"ogg vorbis", oggOf([]byte("\x01vorbis\x00\x00\x00\x00\x01")), "audio/ogg", media.KindAudio},
		{"ogg theora", oggOf([]byte("\x80theora\x03\x02")), "video/ogg", media.KindVideo},
		{"ogg other", oggOf([]byte("something")), "application/ogg", media.KindFile},
		{"m4a", m4a([]uint32{10, 20}), "audio/mp4", media.KindAudio},
		{"m4a brand only", m4aNoMoov, "audio/mp4", media.KindAudio},
		{"mp4 with only sound", audioOnlyIsom, "audio/mp4", media.KindAudio},
		{"mp4 video", movie("isom"), "video/mp4", media.KindVideo},
		{"mov", movie("qt  "), "video/quicktime", media.KindVideo},
		{"webm video", webmFile(10, webmVideoTrack("V_VP8", 2, 2)), "video/webm", media.KindVideo},
		{"webm audio", webmFile(10, webmAudioTrack("A_OPUS", 48000, 1)), "audio/webm", media.KindAudio},
		{"mp3 id3", append(id3, mp3Frames(2)...), "audio/mpeg", media.KindAudio},
		{"mp3 frames", mp3Frames(3), "audio/mpeg", media.KindAudio},
		{"aac adts", adtsFrames(3), "audio/aac", media.KindAudio},
		{"wav", []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"), "audio/wav", media.KindAudio},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), "audio/flac", media.KindAudio},
		{"pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), "application/pdf", media.KindFile},
		{"zip", zipFile(t, "", "a.txt", "b/c.txt"), "application/zip", media.KindFile},
		{"docx", zipFile(t, "", "[Content_Types].xml", "_rels/.rels", "word/document.xml"),
			"application/vnd.openxmlformats-officedocument.wordprocessingml.document", media.KindFile},
		{"xlsx", zipFile(t, "", "[Content_Types].xml", "xl/workbook.xml"),
			"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", media.KindFile},
		{"odt", zipFile(t, "application/vnd.oasis.opendocument.text", "content.xml"), "application/vnd.oasis.opendocument.text", media.KindFile},
		{"epub", zipFile(t, "application/epub+zip", "OEBPS/content.opf"), "application/epub+zip", media.KindFile},
		{"text", []byte("hello\nworld\t€\r\n"), "text/plain; charset=utf-8", media.KindFile},
		{"long text", []byte(longText), "text/plain; charset=utf-8", media.KindFile},
		{"html is text", []byte("<!DOCTYPE html><script>alert(1)</script>"), "text/plain; charset=utf-8", media.KindFile},
		{"svg is text", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), "text/plain; charset=utf-8", media.KindFile},
		{"looks like a box", []byte("1234free text, not a movie"), "text/plain; charset=utf-8", media.KindFile},
		{"utf-16", []byte("\xff\xfeh\x00i\x00"), "text/plain; charset=utf-16le", media.KindFile},
		{"text with NUL", []byte("hello\x00world"), "application/octet-stream", media.KindFile},
		{"latin-1", []byte("caf\xe9 cr\xe8me"), "application/octet-stream", media.KindFile},
		{"random", random, "application/octet-stream", media.KindFile},
		{"empty", nil, "application/octet-stream", media.KindFile},
		{"lone sync", []byte{0xFF, 0xFB, 0x90, 0x64, 1, 2, 3}, "application/octet-stream", media.KindFile},
	} {
		mime, kind := media.Sniff(bytes.NewReader(c.file), int64(len(c.file)))
		if mime != c.mime || kind != c.kind {
			t.Errorf("%s: %s %s, want %s %s", c.name, mime, kind, c.mime, c.kind)
		}
	}
}

func TestAllowed(t *testing.T) {
	list := []string{"image/*,audio/ogg", " application/PDF "}
	for _, c := range []struct {
		mime string
		want bool
	}{
		{"image/jpeg", true},
		{"IMAGE/PNG", true},
		{"audio/ogg", true},
		{"audio/mp4", false},
		{"application/pdf", true},
		{"application/pdfx", false},
		{"text/plain; charset=utf-8", false},
		{"imagex/png", false},
		{"image", false},
		{"", false},
	} {
		if got := media.Allowed(c.mime, list); got != c.want {
			t.Errorf("Allowed(%q) = %v", c.mime, got)
		}
	}
	if !media.Allowed("text/plain; charset=utf-8", []string{"text/plain"}) || !media.Allowed("application/zip", []string{"*/*"}) {
		t.Error("parameters or */* not matched")
	}
	if media.Allowed("image/png", nil) {
		t.Error("empty list allows")
	}
}

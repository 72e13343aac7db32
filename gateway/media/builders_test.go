package media_test

// Builders of the test inputs: every file the tests read is written here,
// structure by structure, independently of the package's own code.

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"
)

// GPS values the tests look for in outputs: 48°51'29.99" N, 2°17'40.2" E.
var (
	gpsLat = [][2]uint32{{48, 1}, {51, 1}, {2999, 100}}
	gpsLon = [][2]uint32{{2, 1}, {17, 1}, {402, 10}}
)

// tiffEntry is one IFD entry; value holds the bytes of its value, placed
// inline or after the IFD.
type tiffEntry struct {
	tag, typ uint16
	count    uint32
	value    []byte
}

// buildTIFF writes a little-endian TIFF: IFD0 with Make, Orientation
// (when not 0) and, with gps, a GPS IFD pointer and the GPS IFD.
func buildTIFF(orientation int, gps bool) []byte {
	le := binary.LittleEndian
	short := func(v uint16) []byte { return le.AppendUint16(nil, v) }
	rationals := func(rs [][2]uint32) []byte {
		var b []byte
		for _, r := range rs {
			b = le.AppendUint32(le.AppendUint32(b, r[0]), r[1])
		}
		return b
	}
	ifd0 := []tiffEntry{{0x010F, 2, 8, []byte("TestCam\x00")}}
	if orientation != 0 {
		ifd0 = append(ifd0, tiffEntry{0x0112, 3, 1, short(uint16(orientation))})
	}
	if gps {
		ifd0 = append(ifd0, tiffEntry{0x8825, 4, 1, nil}) // value patched below
	}
	gpsIFD := []tiffEntry{
		{0x0001, 2, 2, []byte("N\x00")},
		{0x0002, 5, 3, rationals(gpsLat)},
		{0x0003, 2, 2, []byte("E\x00")},
		{0x0004, 5, 3, rationals(gpsLon)},
	}
	var out []byte
	out = append(out, "II*\x00"...)
	out = le.AppendUint32(out, 8)
	writeIFD := func(entries []tiffEntry, at int, patch func(i int) []byte) []byte {
		// layout: count, entries, next, then out-of-line values
		extra := at + 2 + 12*len(entries) + 4
		var ifd, tail []byte
		ifd = le.AppendUint16(ifd, uint16(len(entries)))
		for i, e := range entries {
			v := e.value
			if p := patch(i); p != nil {
				v = p
			}
			ifd = le.AppendUint16(ifd, e.tag)
			ifd = le.AppendUint16(ifd, e.typ)
			ifd = le.AppendUint32(ifd, e.count)
			if len(v) <= 4 {
				ifd = append(ifd, append(v, make([]byte, 4-len(v))...)...)
			} else {
				ifd = le.AppendUint32(ifd, uint32(extra+len(tail)))
				tail = append(tail, v...)
			}
		}
		ifd = le.AppendUint32(ifd, 0)
		return append(ifd, tail...)
	}
	// IFD0 first to learn where the GPS IFD goes.
	first := writeIFD(ifd0, 8, func(int) []byte { return nil })
	gpsAt := 8 + len(first)
	first = writeIFD(ifd0, 8, func(i int) []byte {
		if ifd0[i].tag == 0x8825 {
			return le.AppendUint32(nil, uint32(gpsAt))
		}
		return nil
	})
	out = append(out, first...)
	if gps {
		out = append(out, writeIFD(gpsIFD, gpsAt, func(int) []byte { return nil })...)
	}
	return out
}

// gpsBytes is the GPS latitude as it sits in a little-endian TIFF.
func gpsBytes() []byte {
	var b []byte
	for _, r := range gpsLat {
		b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, r[0]), r[1])
	}
	return b
}

func segment(marker byte, body []byte) []byte {
	n := len(body) + 2
	return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, body...)
}

// quadrants is a w×h picture whose top-left, top-right, bottom-left and
// bottom-right quarters are red, green, blue and white.
func quadrants(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{255, 0, 0, 255}
			switch {
			case x >= w/2 && y < h/2:
				c = color.RGBA{0, 255, 0, 255}
			case x < w/2 && y >= h/2:
				c = color.RGBA{0, 0, 255, 255}
			case x >= w/2 && y >= h/2:
				c = color.RGBA{255, 255, 255, 255}
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// insertAfterSOI puts segments right after a JPEG's SOI.
func insertAfterSOI(j []byte, segs ...[]byte) []byte {
	out := append([]byte{}, j[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, j[2:]...)
}

func exifSegment(tiff []byte) []byte {
	return segment(0xE1, append([]byte("Exif\x00\x00"), tiff...))
}

func xmpPacket(withGPS bool) []byte {
	gps := ""
	if withGPS {
		gps = ` exif:GPSLatitude="48,51.4998N" exif:GPSLongitude="2,17.67E"`
	}
	return []byte(`<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` +
		`<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"` + gps + `/></rdf:RDF></x:xmpmeta>`)
}

// --- PNG ---

func pngChunk(typ string, data []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// insertPNGChunks puts chunks right after IHDR.
func insertPNGChunks(p []byte, chunks ...[]byte) []byte {
	at := 8 + 8 + 13 + 4
	out := append([]byte{}, p[:at]...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, p[at:]...)
}

// --- WebP ---

type bitWriter struct {
	b    []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) put(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nacc > 0 {
		w.b = append(w.b, byte(w.acc))
	}
	return append(w.b, 0, 0, 0, 0)
}

// vp8lSolid is a lossless WebP bitstream of one colour: every prefix code
// is a simple code of one symbol, so each pixel takes no bits at all.
func vp8lSolid(w, h int, c color.NRGBA) []byte {
	var bw bitWriter
	bw.put(0x2F, 8)
	bw.put(uint64(w-1), 14)
	bw.put(uint64(h-1), 14)
	bw.put(0, 1) // alpha hint
	bw.put(0, 3) // version
	bw.put(0, 1) // no transform
	bw.put(0, 1) // no colour cache
	bw.put(0, 1) // no meta prefix codes
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} {
		bw.put(1, 1) // simple code
		bw.put(0, 1) // one symbol
		bw.put(1, 1) // of 8 bits
		bw.put(uint64(sym), 8)
	}
	return bw.bytes()
}

func riffChunk(fourcc string, data []byte) []byte {
	b := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// webpFile wraps chunks in RIFF; with extended, a VP8X chunk first.
func webpFile(w, h int, flags byte, chunks ...[]byte) []byte {
	var body []byte
	body = append(body, "WEBP"...)
	if flags != 0 {
		x := []byte{flags, 0, 0, 0}
		x = append(x, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
		x = append(x, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
		body = append(body, riffChunk("VP8X", x)...)
	}
	for _, c := range chunks {
		body = append(body, c...)
	}
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

// --- Ogg ---

// oggCRC is the Ogg page checksum, bit by bit.
func oggCRC(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04C11DB7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// oggPage writes one page holding whole packets.
func oggPage(flags byte, granule uint64, serial, seq uint32, packets ...[]byte) []byte {
	var lacing, data []byte
	for _, p := range packets {
		n := len(p)
		for n >= 255 {
			lacing = append(lacing, 255)
			n -= 255
		}
		lacing = append(lacing, byte(n))
		data = append(data, p...)
	}
	h := []byte("OggS\x00")
	h = append(h, flags)
	h = binary.LittleEndian.AppendUint64(h, granule)
	h = binary.LittleEndian.AppendUint32(h, serial)
	h = binary.LittleEndian.AppendUint32(h, seq)
	h = append(h, 0, 0, 0, 0, byte(len(lacing)))
	page := append(append(h, lacing...), data...)
	binary.LittleEndian.PutUint32(page[22:], oggCRC(page))
	return page
}

func opusHead(channels byte, preSkip uint16, rate uint32) []byte {
	b := []byte("OpusHead\x01")
	b = append(b, channels)
	b = binary.LittleEndian.AppendUint16(b, preSkip)
	b = binary.LittleEndian.AppendUint32(b, rate)
	return append(b, 0, 0, 0) // gain, mapping family 0
}

// oggOpus writes a voice note of 20 ms packets, 50 per page: sizes[i] is
// the size of packet i (fake payloads).
func oggOpus(preSkip uint16, sizes []int) []byte {
	const serial = 0x5EED
	out := oggPage(0x02, 0, serial, 0, opusHead(1, preSkip, 16000))
	out = append(out, oggPage(0, 0, serial, 1, []byte("OpusTags\x05\x00\x00\x00parle\x00\x00\x00\x00"))...)
	granule := uint64(preSkip)
	seq := uint32(2)
	for i := 0; i < len(sizes); i += 50 {
		var pkts [][]byte
		for _, n := range sizes[i:min(i+50, len(sizes))] {
			pkts = append(pkts, bytes.Repeat([]byte{0x78}, n))
		}
		granule += uint64(960 * len(pkts))
		flags := byte(0)
		if i+50 >= len(sizes) {
			flags = 0x04
		}
		out = append(out, oggPage(flags, granule, serial, seq, pkts...)...)
		seq++
	}
	return out
}

// --- ISO BMFF ---

func mp4Box(typ string, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	return append(append(binary.BigEndian.AppendUint32(nil, uint32(8+len(body))), typ...), body...)
}

func fullBox(typ string, version byte, parts ...[]byte) []byte {
	return mp4Box(typ, append([][]byte{{version, 0, 0, 0}}, parts...)...)
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func mvhd(version byte, timescale uint32, duration uint64) []byte {
	if version == 1 {
		return fullBox("mvhd", 1, u64(0), u64(0), u32(timescale), u64(duration), make([]byte, 80))
	}
	return fullBox("mvhd", 0, u32(0), u32(0), u32(timescale), u32(uint32(duration)), make([]byte, 80))
}

// tkhd v0 with a width and height and a rotation of 0 or 90 degrees.
func tkhd(width, height int, rotate90 bool) []byte {
	matrix := []uint32{0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000}
	if rotate90 {
		matrix = []uint32{0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000}
	}
	var m []byte
	for _, v := range matrix {
		m = append(m, u32(v)...)
	}
	return fullBox("tkhd", 0, u32(0), u32(0), u32(1), u32(0), u32(0), make([]byte, 16), m,
		u32(uint32(width)<<16), u32(uint32(height)<<16))
}

func mdhd(timescale, duration uint32) []byte {
	return fullBox("mdhd", 0, u32(0), u32(0), u32(timescale), u32(duration), u16(0x55C4), u16(0))
}

func hdlr(handler string) []byte {
	return fullBox("hdlr", 0, u32(0), []byte(handler), make([]byte, 12), []byte("h\x00"))
}

// mp4aEntry is an AAC sample entry with its esds (object type 0x40).
func mp4aEntry(channels, rate int) []byte {
	esds := fullBox("esds", 0,
		[]byte{0x03, 0x80, 0x80, 0x80, 25, 0, 1, 0},    // ES_Descriptor, ES_ID 1, no flags
		[]byte{0x04, 17, 0x40, 0x15}, make([]byte, 15), // DecoderConfigDescriptor: AAC
		[]byte{0x06, 1, 2})
	return mp4Box("mp4a", make([]byte, 6), u16(1), make([]byte, 8), u16(uint16(channels)), u16(16), u32(0),
		u32(uint32(rate)<<16), esds)
}

func avc1Entry(w, h int) []byte {
	return mp4Box("avc1", make([]byte, 6), u16(1), make([]byte, 16), u16(uint16(w)), u16(uint16(h)), make([]byte, 50))
}

func stbl(entry []byte, sttsEntries [][2]uint32, sizes []uint32) []byte {
	var stts []byte
	for _, e := range sttsEntries {
		stts = append(stts, u32(e[0])...)
		stts = append(stts, u32(e[1])...)
	}
	var stsz []byte
	for _, s := range sizes {
		stsz = append(stsz, u32(s)...)
	}
	return mp4Box("stbl",
		fullBox("stsd", 0, u32(1), entry),
		fullBox("stts", 0, u32(uint32(len(sttsEntries))), stts),
		fullBox("stsz", 0, u32(0), u32(uint32(len(sizes))), stsz))
}

func trak(tk, md, handler, stblBox []byte) []byte {
	return mp4Box("trak", tk, mp4Box("mdia", md, handler, mp4Box("minf", stblBox)))
}

// m4a is an AAC voice note at 44.1 kHz: one 1024-sample frame per entry
// of sizes, moov after mdat.
func m4a(sizes []uint32) []byte {
	var total uint32
	for _, s := range sizes {
		total += s
	}
	dur := uint32(1024 * len(sizes))
	moov := mp4Box("moov", mvhd(0, 1000, uint64(dur)*1000/44100),
		trak(tkhd(0, 0, false), mdhd(44100, dur), hdlr("soun"),
			stbl(mp4aEntry(1, 44100), [][2]uint32{{uint32(len(sizes)), 1024}}, sizes)))
	return append(append(mp4Box("ftyp", []byte("M4A "), u32(0), []byte("M4A isommp42")),
		mp4Box("mdat", make([]byte, total))...), moov...)
}

// --- EBML ---

func ebml(id uint32, parts ...[]byte) []byte {
	var idb []byte
	for s := 24; s >= 0; s -= 8 {
		if b := byte(id >> s); b != 0 || len(idb) > 0 {
			idb = append(idb, b)
		}
	}
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	size := append([]byte{0x01}, make([]byte, 7)...) // 8-byte size
	n := uint64(len(body))
	for i := 7; i >= 1; i-- {
		size[i] = byte(n)
		n >>= 8
	}
	return append(append(idb, size...), body...)
}

func ebmlUint(id uint32, v uint64) []byte { return ebml(id, u64(v)) }

func ebmlFloat(id uint32, v float64) []byte {
	return ebml(id, binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
}

// webm writes a header, Info and Tracks, and a cluster of filler.
func webmFile(duration float64, tracks ...[]byte) []byte {
	header := ebml(0x1A45DFA3, ebmlUint(0x4286, 1), ebml(0x4282, []byte("webm")))
	info := ebml(0x1549A966, ebmlUint(0x2AD7B1, 1_000_000), ebmlFloat(0x4489, duration))
	var entries [][]byte
	entries = append(entries, tracks...)
	seg := ebml(0x18538067, info, ebml(0x1654AE6B, entries...), ebml(0x1F43B675, ebmlUint(0xE7, 0), make([]byte, 4096)))
	return append(header, seg...)
}

func webmVideoTrack(codec string, w, h uint64) []byte {
	return ebml(0xAE, ebmlUint(0xD7, 1), ebmlUint(0x83, 1), ebml(0x86, []byte(codec)),
		ebml(0xE0, ebmlUint(0xB0, w), ebmlUint(0xBA, h)))
}

func webmAudioTrack(codec string, rate float64, channels uint64) []byte {
	return ebml(0xAE, ebmlUint(0xD7, 2), ebmlUint(0x83, 2), ebml(0x86, []byte(codec)),
		ebml(0xE1, ebmlFloat(0xB5, rate), ebmlUint(0x9F, channels)))
}

package media

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"unicode/utf8"
)

const octetStream = "application/octet-stream"

// sniffHead is how much of the start of a file Sniff looks at; containers
// (MP4, WebM, Ogg, ZIP) are then read where their structure points.
const sniffHead = 4096

// Sniff names a file's media type and kind from its bytes, never from a
// name or a claimed type. MP4 and WebM are audio or video by their tracks,
// Ogg by its first stream's codec, ZIP by its central directory (DOCX,
// XLSX, PPTX, OpenDocument, EPUB, JAR, APK). Text is valid UTF-8 (or
// UTF-16 with a byte-order mark) without control characters other than
// tab, newline, carriage return, form feed and escape in its first 4 KiB:
// markup (HTML, SVG, XML) is text/plain, so nothing is ever labelled with
// a type a browser would run. Anything else, and an empty file, is
// application/octet-stream.
func Sniff(r io.ReaderAt, size int64) (mime string, kind Kind) {
	head := make([]byte, min(size, sniffHead))
	if len(head) == 0 {
		return octetStream, KindFile
	}
	if err := readAt(r, head, 0); err != nil {
		return octetStream, KindFile
	}
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg", KindImage
	case bytes.HasPrefix(head, pngSignature):
		return "image/png", KindImage
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return "image/gif", KindImage
	case len(head) >= 12 && string(head[:4]) == "RIFF":
		switch string(head[8:12]) {
		case "WEBP":
			return "image/webp", KindImage
		case "WAVE":
			return "audio/wav", KindAudio
		case "AVI ":
			return "video/x-msvideo", KindVideo
		}
	case len(head) >= 12 && isBMFF(head):
		if m, k := sniffBMFF(r, size, head); m != "" {
			return m, k
		}
	case bytes.HasPrefix(head, ebmlMagic):
		return sniffEBML(r, size)
	case bytes.HasPrefix(head, []byte("OggS")):
		return sniffOgg(r, size)
	case bytes.HasPrefix(head, []byte("fLaC")):
		return "audio/flac", KindAudio
	case bytes.HasPrefix(head, []byte("ID3")):
		return sniffID3(r, size, head)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return sniffZip(r, size), KindFile
	}
	if m := mpegAudio(r, size, 0); m != "" {
		return m, KindAudio
	}
	if i := bytes.Index(head[:min(len(head), 1024)], []byte("%PDF-")); i >= 0 {
		return "application/pdf", KindFile
	}
	if t := sniffText(head, int64(len(head)) < size); t != "" {
		return t, KindFile
	}
	return octetStream, KindFile
}

// Allowed reports whether mime matches one of patterns: "type/subtype",
// "type/*" or "*/*", compared without parameters and case. An element may
// hold several patterns separated by commas ("image/*,audio/ogg").
func Allowed(mime string, patterns []string) bool {
	base := mediaBase(mime)
	typ, _, ok := strings.Cut(base, "/")
	if !ok {
		return false
	}
	for _, list := range patterns {
		for p := range strings.SplitSeq(list, ",") {
			p = mediaBase(p)
			switch {
			case p == "":
			case p == "*/*" || p == "*":
				return true
			case strings.HasSuffix(p, "/*"):
				if strings.TrimSuffix(p, "/*") == typ {
					return true
				}
			case p == base:
				return true
			}
		}
	}
	return false
}

func mediaBase(s string) string {
	s, _, _ = strings.Cut(s, ";")
	return strings.ToLower(strings.TrimSpace(s))
}

// sniffText accepts UTF-8 (BOM or not) and BOM-marked UTF-16. truncated
// says head is not the whole file, so a rune cut at its end is fine.
func sniffText(head []byte, truncated bool) string {
	switch {
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return "text/plain; charset=utf-16be"
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return "text/plain; charset=utf-16le"
	}
	b := bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF})
	for len(b) > 0 {
		c, n := utf8.DecodeRune(b)
		if c == utf8.RuneError && n <= 1 {
			if truncated && len(b) < utf8.UTFMax && !utf8.FullRune(b) {
				break
			}
			return ""
		}
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1B || c == 0x7F {
			return ""
		}
		b = b[n:]
	}
	return "text/plain; charset=utf-8"
}

// sniffID3 looks past an ID3v2 tag at what it precedes.
func sniffID3(r io.ReaderAt, size int64, head []byte) (string, Kind) {
	if len(head) < 10 {
		return octetStream, KindFile
	}
	n := int64(head[6]&0x7F)<<21 | int64(head[7]&0x7F)<<14 | int64(head[8]&0x7F)<<7 | int64(head[9]&0x7F)
	off := 10 + n
	if head[5]&0x10 != 0 { // footer
		off += 10
	}
	var b [4]byte
	if off+4 <= size && readAt(r, b[:], off) == nil {
		switch {
		case string(b[:]) == "fLaC":
			return "audio/flac", KindAudio
		case b[0] == 0xFF && b[1]&0xF6 == 0xF0:
			return "audio/aac", KindAudio
		}
	}
	// An ID3v2 tag belongs to MP3 in practice, even when what follows is
	// padding or garbage.
	return "audio/mpeg", KindAudio
}

// mpegAudio recognises an ADTS (AAC) or MPEG audio frame at off; for MPEG
// audio without an ID3 tag it wants a second frame right after the first.
func mpegAudio(r io.ReaderAt, size, off int64) string {
	var h [4]byte
	if off+4 > size || readAt(r, h[:], off) != nil || h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return ""
	}
	if h[1]&0xF6 == 0xF0 { // ADTS: 12 sync bits, layer 0
		var x [3]byte
		if off+7 > size || readAt(r, x[:], off+4) != nil {
			return ""
		}
		n := int64(h[3]&0x03)<<11 | int64(x[0])<<3 | int64(x[1]>>5) // 13-bit frame length
		if n < 7 {
			return ""
		}
		if off+n == size || off+n+2 <= size && nextSync(r, off+n) {
			return "audio/aac"
		}
		return ""
	}
	n := mpegFrameLen(h)
	if n == 0 {
		return ""
	}
	if off+n == size || nextSync(r, off+n) {
		return "audio/mpeg"
	}
	return ""
}

func nextSync(r io.ReaderAt, off int64) bool {
	var b [2]byte
	return readAt(r, b[:], off) == nil && b[0] == 0xFF && b[1]&0xE0 == 0xE0
}

// mpegFrameLen is the length of an MPEG-1/2/2.5 layer I–III frame from its
// header, 0 when the header is invalid.
func mpegFrameLen(h [4]byte) int64 {
	version := h[1] >> 3 & 3 // 0: 2.5, 2: 2, 3: 1
	layer := h[1] >> 1 & 3   // 1: III, 2: II, 3: I
	br := h[2] >> 4
	sr := h[2] >> 2 & 3
	if version == 1 || layer == 0 || br == 0 || br == 15 || sr == 3 {
		return 0
	}
	rates := [3][4]int64{{44100, 48000, 32000}, {22050, 24000, 16000}, {11025, 12000, 8000}}
	var rate int64
	switch version {
	case 3:
		rate = rates[0][sr]
	case 2:
		rate = rates[1][sr]
	default:
		rate = rates[2][sr]
	}
	v1 := version == 3
	var kbps int64
	switch {
	case v1 && layer == 3:
		kbps = []int64{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448}[br]
	case v1 && layer == 2:
		kbps = []int64{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384}[br]
	case v1:
		kbps = []int64{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}[br]
	case layer == 3:
		kbps = []int64{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256}[br]
	default:
		kbps = []int64{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}[br]
	}
	pad := int64(h[2] >> 1 & 1)
	switch {
	case layer == 3:
		return (12*kbps*1000/rate + pad) * 4
	case layer == 1 && !v1:
		return 72*kbps*1000/rate + pad
	default:
		return 144*kbps*1000/rate + pad
	}
}

// sniffZip names a ZIP by the entries of its central directory.
func sniffZip(r io.ReaderAt, size int64) string {
	names, mimetype := zipEntries(r, size)
	has := func(prefix string) bool {
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	switch {
	case has("[Content_Types].xml") && has("word/"):
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case has("[Content_Types].xml") && has("xl/"):
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case has("[Content_Types].xml") && has("ppt/"):
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case mimetype != "":
		return mimetype
	case has("AndroidManifest.xml") && has("classes"):
		return "application/vnd.android.package-archive"
	case has("META-INF/MANIFEST.MF"):
		return "application/java-archive"
	}
	return "application/zip"
}

// maxZipEntries bounds the central directory entries Sniff reads.
const maxZipEntries = 4096

// zipEntries returns the names in the central directory (at most
// maxZipEntries) and the content of a stored "mimetype" entry when it is
// an OpenDocument or EPUB type.
func zipEntries(r io.ReaderAt, size int64) (names []string, mimetype string) {
	tail := make([]byte, min(size, 22+65535))
	tailOff := size - int64(len(tail))
	if readAt(r, tail, tailOff) != nil {
		return nil, ""
	}
	eocd := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if eocd < 0 || len(tail)-eocd < 22 {
		return nil, ""
	}
	e := tail[eocd:]
	cdSize := int64(binary.LittleEndian.Uint32(e[12:]))
	cdOff := int64(binary.LittleEndian.Uint32(e[16:]))
	if (cdOff == 0xFFFFFFFF || cdSize == 0xFFFFFFFF) && eocd >= 20 {
		loc := tail[eocd-20 : eocd]
		if string(loc[:4]) == "PK\x06\x07" {
			var z [56]byte
			off := int64(binary.LittleEndian.Uint64(loc[8:]))
			if off >= 0 && readAt(r, z[:], off) == nil && string(z[:4]) == "PK\x06\x06" {
				cdSize = int64(binary.LittleEndian.Uint64(z[40:]))
				cdOff = int64(binary.LittleEndian.Uint64(z[48:]))
			}
		}
	}
	if cdOff < 0 || cdSize < 0 || cdOff > size || cdSize > size-cdOff {
		return nil, ""
	}
	var hdr [46]byte
	mimeOff, mimeLen := int64(-1), int64(0)
	for off, end := cdOff, cdOff+cdSize; off+46 <= end && len(names) < maxZipEntries; {
		if readAt(r, hdr[:], off) != nil || string(hdr[:4]) != "PK\x01\x02" {
			break
		}
		nl := int64(binary.LittleEndian.Uint16(hdr[28:]))
		el := int64(binary.LittleEndian.Uint16(hdr[30:]))
		cl := int64(binary.LittleEndian.Uint16(hdr[32:]))
		name := make([]byte, nl)
		if readAt(r, name, off+46) != nil {
			break
		}
		names = append(names, string(name))
		if string(name) == "mimetype" && binary.LittleEndian.Uint16(hdr[10:]) == 0 {
			mimeOff = int64(binary.LittleEndian.Uint32(hdr[42:]))
			mimeLen = int64(binary.LittleEndian.Uint32(hdr[20:]))
		}
		off += 46 + nl + el + cl
	}
	if mimeOff >= 0 {
		mimetype = zipMimetype(r, size, mimeOff, mimeLen)
	}
	return names, mimetype
}

// zipMimetype reads the stored "mimetype" entry of n bytes (as the
// central directory says: the local header may defer its sizes to a data
// descriptor) whose local header is at off.
func zipMimetype(r io.ReaderAt, size, off, n int64) string {
	var h [30]byte
	if off+30 > size || readAt(r, h[:], off) != nil || string(h[:4]) != "PK\x03\x04" {
		return ""
	}
	if binary.LittleEndian.Uint16(h[8:]) != 0 || n == 0 || n > 100 {
		return ""
	}
	data := off + 30 + int64(binary.LittleEndian.Uint16(h[26:])) + int64(binary.LittleEndian.Uint16(h[28:]))
	b := make([]byte, n)
	if data+n > size || readAt(r, b, data) != nil {
		return ""
	}
	m := string(b)
	if m != "application/epub+zip" && !strings.HasPrefix(m, "application/vnd.oasis.opendocument.") {
		return ""
	}
	for _, c := range m {
		if c <= ' ' || c >= 0x7F {
			return ""
		}
	}
	return m
}

package media

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

const (
	// maxMetaBytes bounds a metadata block (EXIF, XMP) read into memory;
	// larger ones are not parsed (StripLocation still removes them).
	maxMetaBytes = 1 << 20
	// maxPNGChunks bounds the chunks pngMeta walks.
	maxPNGChunks = 1 << 20
)

// pngTextDropped: text chunks that hold XMP, or EXIF, IPTC and XMP as
// ImageMagick writes them ("Raw profile type exif" and the like).
func pngTextDropped(keyword []byte) bool {
	return string(keyword) == "XML:com.adobe.xmp" || bytes.HasPrefix(keyword, []byte("Raw profile type "))
}

// pngMeta walks the chunks of a PNG (reading only what it needs): the
// orientation and GPS of eXIf, GPS fields in XMP, and acTL for APNG.
// "Raw profile" text chunks are not decoded and count as a location.
func pngMeta(r io.ReaderAt, size int64) (imageMeta, error) {
	var m imageMeta
	var h [8]byte
	for i, off := 0, int64(len(pngSignature)); i < maxPNGChunks && off+12 <= size; i++ {
		if err := readAt(r, h[:], off); err != nil {
			return m, err
		}
		n := int64(binary.BigEndian.Uint32(h[:4]))
		if n > 1<<31-1 || off+12+n > size {
			return m, nil // the decoder reports the damage
		}
		body := func() []byte {
			if n > maxMetaBytes {
				return nil
			}
			b := make([]byte, n)
			if readAt(r, b, off+8) != nil {
				return nil
			}
			return b
		}
		switch string(h[4:]) {
		case "eXIf":
			if ex, err := parseTIFF(body()); err == nil {
				m.orientation = ex.orientation
				m.location = m.location || ex.gps
			}
		case "acTL":
			m.animated = true
		case "iTXt", "tEXt", "zTXt":
			b := body()
			keyword, rest, _ := bytes.Cut(b, []byte{0})
			switch {
			case bytes.HasPrefix(keyword, []byte("Raw profile type ")):
				m.location = true
			case string(h[4:]) == "iTXt" && string(keyword) == "XML:com.adobe.xmp" && len(rest) >= 2:
				text := rest[2:] // after the compression flag and method
				if rest[0] == 1 {
					text = inflate(text)
				}
				m.location = m.location || xmpHasLocation(text)
			}
		case "IEND":
			return m, nil
		}
		off += 12 + n
	}
	return m, nil
}

// inflate decompresses zlib data up to maxMetaBytes, nil when it cannot.
func inflate(b []byte) []byte {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(io.LimitReader(zr, maxMetaBytes))
	return out
}

// stripPNG copies a PNG chunk by chunk: eXIf is replaced by one holding
// only the orientation (none when it is 1), XMP and "Raw profile" text
// chunks are dropped, everything else (pixels, palette, colour profile,
// other text) is copied with its CRC; nothing after IEND.
func stripPNG(w io.Writer, br *bufio.Reader) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	sig := make([]byte, len(pngSignature))
	if _, err := io.ReadFull(br, sig); err != nil || !bytes.Equal(sig, pngSignature) {
		return fmt.Errorf("%w: no PNG signature", ErrMalformed)
	}
	bw.Write(sig)
	var h [8]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return truncated(err)
		}
		n := int64(binary.BigEndian.Uint32(h[:4]))
		if n > 1<<31-1 {
			return fmt.Errorf("%w: PNG chunk length", ErrMalformed)
		}
		typ := string(h[4:])
		switch typ {
		case "eXIf":
			orientation := 0
			if n <= maxMetaBytes {
				b := make([]byte, n)
				if _, err := io.ReadFull(br, b); err != nil {
					return truncated(err)
				}
				if ex, err := parseTIFF(b); err == nil {
					orientation = ex.orientation
				}
				n = 0
			}
			if _, err := br.Discard(int(n) + 4); err != nil {
				return truncated(err)
			}
			if orientation > 1 {
				writePNGChunk(bw, "eXIf", minimalTIFF(orientation))
			}
			continue
		case "iTXt", "tEXt", "zTXt":
			head := make([]byte, min(n, 80))
			if _, err := io.ReadFull(br, head); err != nil {
				return truncated(err)
			}
			keyword, _, _ := bytes.Cut(head, []byte{0})
			if pngTextDropped(keyword) {
				if _, err := br.Discard(int(n-int64(len(head))) + 4); err != nil {
					return truncated(err)
				}
				continue
			}
			bw.Write(h[:])
			bw.Write(head)
			n -= int64(len(head))
		default:
			bw.Write(h[:])
		}
		if _, err := io.CopyN(bw, br, n+4); err != nil {
			return truncated(err)
		}
		if typ == "IEND" {
			return bw.Flush()
		}
	}
}

func writePNGChunk(w io.Writer, typ string, data []byte) {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	w.Write(b)
}

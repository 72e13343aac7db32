package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

const maxRIFFChunks = 1 << 16

// webpMeta walks the RIFF chunks of a WebP: VP8X's animation flag, the
// EXIF chunk's orientation and GPS, GPS fields in the XMP chunk.
func webpMeta(r io.ReaderAt, size int64) (imageMeta, error) {
	var m imageMeta
	var h [12]byte
	if err := readAt(r, h[:], 0); err != nil {
		return m, err
	}
	end := min(size, 8+int64(binary.LittleEndian.Uint32(h[4:])))
	for i, off := 0, int64(12); i < maxRIFFChunks && off+8 <= end; i++ {
		if err := readAt(r, h[:8], off); err != nil {
			return m, err
		}
		n := int64(binary.LittleEndian.Uint32(h[4:]))
		if off+8+n > end {
			return m, nil
		}
		var body []byte
		if typ := string(h[:4]); n <= maxMetaBytes && (typ == "VP8X" || typ == "EXIF" || typ == "XMP ") {
			body = make([]byte, n)
			if err := readAt(r, body, off+8); err != nil {
				return m, err
			}
		}
		switch string(h[:4]) {
		case "VP8X":
			m.animated = len(body) > 0 && body[0]&0x02 != 0
		case "EXIF":
			if ex, err := parseTIFF(bytes.TrimPrefix(body, exifPrefix)); err == nil {
				m.orientation = ex.orientation
				m.location = m.location || ex.gps
			}
		case "XMP ":
			m.location = m.location || xmpHasLocation(body)
		}
		off += 8 + n + n&1
	}
	return m, nil
}

// stripWebP copies a WebP chunk by chunk, overwriting metadata in place so
// that no size (the RIFF header's, written first) changes: the EXIF
// chunk's body becomes a TIFF holding only the orientation, padded with
// zeros; the XMP chunk's body becomes spaces. Nothing after the RIFF
// data is copied.
func stripWebP(w io.Writer, br *bufio.Reader) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var h [12]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || string(h[:4]) != "RIFF" || string(h[8:]) != "WEBP" {
		return fmt.Errorf("%w: no WebP header", ErrMalformed)
	}
	bw.Write(h[:])
	left := int64(binary.LittleEndian.Uint32(h[4:])) - 4
	for left > 0 {
		if left < 8 {
			return fmt.Errorf("%w: WebP chunk header", ErrMalformed)
		}
		if _, err := io.ReadFull(br, h[:8]); err != nil {
			return truncated(err)
		}
		n := int64(binary.LittleEndian.Uint32(h[4:]))
		padded := n + n&1
		if 8+padded > left {
			return fmt.Errorf("%w: WebP chunk past the RIFF end", ErrMalformed)
		}
		left -= 8 + padded
		bw.Write(h[:8])
		switch string(h[:4]) {
		case "EXIF":
			body := make([]byte, min(padded, maxMetaBytes))
			if _, err := io.ReadFull(br, body); err != nil {
				return truncated(err)
			}
			orientation := 0
			if ex, err := parseTIFF(bytes.TrimPrefix(body, exifPrefix)); err == nil {
				orientation = ex.orientation
			}
			var repl []byte
			if bytes.HasPrefix(body, exifPrefix) {
				repl = append(repl, exifPrefix...)
			}
			repl = append(repl, minimalTIFF(orientation)...)
			clear(body)
			if int64(len(repl)) <= n {
				copy(body, repl)
			}
			bw.Write(body)
			if err := overwrite(bw, br, padded-int64(len(body)), 0); err != nil {
				return err
			}
		case "XMP ":
			if err := overwrite(bw, br, n, ' '); err != nil {
				return err
			}
			if err := overwrite(bw, br, padded-n, 0); err != nil {
				return err
			}
		default:
			if _, err := io.CopyN(bw, br, padded); err != nil {
				return truncated(err)
			}
		}
	}
	return bw.Flush()
}

// overwrite consumes n bytes of br and writes n copies of c instead.
func overwrite(w *bufio.Writer, br *bufio.Reader, n int64, c byte) error {
	fill := bytes.Repeat([]byte{c}, 4096)
	for n > 0 {
		k := min(n, int64(len(fill)))
		if _, err := br.Discard(int(k)); err != nil {
			return truncated(err)
		}
		w.Write(fill[:k])
		n -= k
	}
	return nil
}

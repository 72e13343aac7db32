package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	markerSOI  = 0xD8
	markerEOI  = 0xD9
	markerSOS  = 0xDA
	markerAPP0 = 0xE0
	markerAPP1 = 0xE1
	markerAPP2 = 0xE2
	markerAPPE = 0xEE
	markerAPPF = 0xEF
	markerCOM  = 0xFE
)

// imageMeta is what an image's metadata says about its display and privacy.
type imageMeta struct {
	orientation int // 1–8, 0 when not said
	location    bool
	animated    bool
}

// jpegMarker reads the next marker, skipping fill bytes.
func jpegMarker(br *bufio.Reader) (byte, error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, truncated(err)
	}
	if c != 0xFF {
		return 0, fmt.Errorf("%w: JPEG marker expected", ErrMalformed)
	}
	for c == 0xFF {
		if c, err = br.ReadByte(); err != nil {
			return 0, truncated(err)
		}
	}
	if c == 0 {
		return 0, fmt.Errorf("%w: JPEG marker 0", ErrMalformed)
	}
	return c, nil
}

// standalone markers carry no length: SOI, EOI, RSTn, TEM.
func standalone(m byte) bool {
	return m == markerSOI || m == markerEOI || m == 0x01 || m >= 0xD0 && m <= 0xD7
}

// segmentBody reads the length of a segment and its body into buf.
func segmentBody(br *bufio.Reader, buf []byte) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return nil, truncated(err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n < 2 {
		return nil, fmt.Errorf("%w: JPEG segment length %d", ErrMalformed, n)
	}
	buf = buf[:n-2]
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, truncated(err)
	}
	return buf, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrMalformed)
	}
	return err
}

var xmpPrefixes = [][]byte{[]byte("http://ns.adobe.com/xap/1.0/\x00"), []byte("http://ns.adobe.com/xmp/extension/\x00")}

func isXMP(b []byte) bool {
	for _, p := range xmpPrefixes {
		if bytes.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// jpegMeta reads the segments before the first scan: the orientation of
// the first EXIF segment and whether EXIF or XMP hold a location.
func jpegMeta(br *bufio.Reader) (imageMeta, error) {
	var m imageMeta
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xFF, markerSOI} {
		return m, fmt.Errorf("%w: no JPEG SOI", ErrMalformed)
	}
	buf := make([]byte, 0, 1<<16)
	seenEXIF := false
	for {
		mk, err := jpegMarker(br)
		if err != nil {
			return m, err
		}
		if standalone(mk) {
			if mk == markerEOI {
				return m, nil
			}
			continue
		}
		if mk == markerSOS {
			return m, nil
		}
		body, err := segmentBody(br, buf)
		if err != nil {
			return m, err
		}
		if mk != markerAPP1 {
			continue
		}
		switch {
		case bytes.HasPrefix(body, exifPrefix):
			if seenEXIF {
				continue
			}
			seenEXIF = true
			if ex, err := parseTIFF(body[len(exifPrefix):]); err == nil {
				m.orientation = ex.orientation
				m.location = m.location || ex.gps
			}
		case isXMP(body):
			m.location = m.location || xmpHasLocation(body)
		}
	}
}

// keepJPEGSegment says which metadata segments survive StripLocation: a
// whitelist of what decoding and colour need. Every other APPn (EXIF,
// XMP, IPTC, MPF and the images it points to, maker data) and COM goes.
func keepJPEGSegment(mk byte, body []byte) bool {
	switch {
	case mk == markerAPP0:
		return bytes.HasPrefix(body, []byte("JFIF\x00")) || bytes.HasPrefix(body, []byte("JFXX\x00"))
	case mk == markerAPP2:
		return bytes.HasPrefix(body, []byte("ICC_PROFILE\x00"))
	case mk == markerAPPE:
		return bytes.HasPrefix(body, []byte("Adobe"))
	case mk >= markerAPP0 && mk <= markerAPPF, mk == markerCOM:
		return false
	}
	return true
}

// stripJPEG copies a JPEG from br to w segment by segment, without
// re-encoding: the first EXIF segment is replaced by one holding only its
// orientation (none when the orientation is 1 or unreadable), the other
// segments as keepJPEGSegment says, entropy-coded data copied byte for
// byte, and nothing after EOI (where MPF keeps its extra images).
func stripJPEG(w io.Writer, br *bufio.Reader) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xFF, markerSOI} {
		return fmt.Errorf("%w: no JPEG SOI", ErrMalformed)
	}
	bw.Write(soi[:])
	buf := make([]byte, 0, 1<<16)
	seenEXIF := false
	var mk byte
	pending := false // mk was read while copying a scan
	for {
		if !pending {
			var err error
			if mk, err = jpegMarker(br); err != nil {
				return err
			}
		}
		pending = false
		if standalone(mk) {
			bw.Write([]byte{0xFF, mk})
			if mk == markerEOI {
				return bw.Flush()
			}
			continue
		}
		body, err := segmentBody(br, buf)
		if err != nil {
			return err
		}
		if mk == markerAPP1 && bytes.HasPrefix(body, exifPrefix) {
			if !seenEXIF {
				seenEXIF = true
				if ex, err := parseTIFF(body[len(exifPrefix):]); err == nil && ex.orientation > 1 {
					seg := append(append([]byte{}, exifPrefix...), minimalTIFF(ex.orientation)...)
					writeSegment(bw, markerAPP1, seg)
				}
			}
			continue
		}
		if !keepJPEGSegment(mk, body) {
			continue
		}
		writeSegment(bw, mk, body)
		if mk != markerSOS {
			continue
		}
		if mk, err = copyScan(bw, br); err != nil {
			return err
		}
		pending = true
	}
}

func writeSegment(w *bufio.Writer, mk byte, body []byte) {
	n := len(body) + 2
	w.Write([]byte{0xFF, mk, byte(n >> 8), byte(n)})
	w.Write(body)
}

// copyScan copies entropy-coded data (with its stuffed zeros and restart
// markers) and returns the marker that ends it.
func copyScan(w *bufio.Writer, br *bufio.Reader) (byte, error) {
	for {
		chunk, err := br.ReadSlice(0xFF)
		switch {
		case err == bufio.ErrBufferFull:
			w.Write(chunk)
			continue
		case err != nil:
			return 0, truncated(err)
		}
		w.Write(chunk[:len(chunk)-1])
		c, err := br.ReadByte()
		for err == nil && c == 0xFF { // fill bytes before a marker
			c, err = br.ReadByte()
		}
		if err != nil {
			return 0, truncated(err)
		}
		if c == 0 || c >= 0xD0 && c <= 0xD7 {
			w.Write([]byte{0xFF, c})
			continue
		}
		return c, nil
	}
}

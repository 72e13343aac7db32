package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// exifPrefix starts the EXIF APP1 segment of a JPEG (and, by mistake of
// some writers, the EXIF chunk of a WebP).
var exifPrefix = []byte("Exif\x00\x00")

const (
	tagOrientation = 0x0112
	tagGPSIFD      = 0x8825
	typeShort      = 3
)

// exifInfo is what Parley reads from EXIF: only IFD0 is looked at, since
// both the orientation and the pointer to the GPS IFD live there.
type exifInfo struct {
	orientation int  // 1–8, 0 when absent or out of range
	gps         bool // IFD0 points to a GPS IFD
}

// parseTIFF reads IFD0 of a TIFF structure (the body of EXIF).
func parseTIFF(b []byte) (exifInfo, error) {
	var ex exifInfo
	if len(b) < 8 {
		return ex, fmt.Errorf("%w: EXIF too short", ErrMalformed)
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return ex, fmt.Errorf("%w: EXIF byte order", ErrMalformed)
	}
	if bo.Uint16(b[2:]) != 42 {
		return ex, fmt.Errorf("%w: EXIF magic", ErrMalformed)
	}
	off := int64(bo.Uint32(b[4:]))
	if off < 8 || off+2 > int64(len(b)) {
		return ex, fmt.Errorf("%w: EXIF IFD0 offset", ErrMalformed)
	}
	n := int64(bo.Uint16(b[off:]))
	if off+2+12*n > int64(len(b)) {
		return ex, fmt.Errorf("%w: EXIF IFD0 past its end", ErrMalformed)
	}
	for i := range n {
		e := b[off+2+12*i:]
		switch bo.Uint16(e) {
		case tagOrientation:
			if bo.Uint16(e[2:]) == typeShort && bo.Uint32(e[4:]) >= 1 {
				if o := int(bo.Uint16(e[8:])); o >= 1 && o <= 8 {
					ex.orientation = o
				}
			}
		case tagGPSIFD:
			ex.gps = true
		}
	}
	return ex, nil
}

// minimalTIFF is a big-endian TIFF structure whose IFD0 holds only the
// Orientation tag, or no tag at all for orientation 0 or 1.
func minimalTIFF(orientation int) []byte {
	var b bytes.Buffer
	b.WriteString("MM\x00\x2a\x00\x00\x00\x08")
	if orientation < 2 || orientation > 8 {
		b.Write([]byte{0, 0, 0, 0, 0, 0})
		return b.Bytes()
	}
	b.Write([]byte{0, 1}) // one entry
	b.Write([]byte{tagOrientation >> 8, tagOrientation & 0xFF, 0, typeShort, 0, 0, 0, 1, 0, byte(orientation), 0, 0})
	b.Write([]byte{0, 0, 0, 0}) // no IFD1
	return b.Bytes()
}

// xmpHasLocation: XMP (RDF text) with GPS fields of the exif namespace.
func xmpHasLocation(b []byte) bool {
	return bytes.Contains(b, []byte("GPSLatitude")) || bytes.Contains(b, []byte("GPSLongitude"))
}

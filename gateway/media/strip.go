package media

import (
	"bufio"
	"bytes"
	"io"
)

// StripLocation copies the image read from r to w without its location,
// streaming (only one metadata block at a time is held in memory) and
// without re-encoding a pixel:
//
//   - JPEG: segment surgery. The first EXIF segment becomes a minimal EXIF
//     that holds only the Orientation tag (no EXIF at all when it is 1);
//     other EXIF, XMP, IPTC (APP13), MPF with the images it appends after
//     EOI, maker segments and comments are dropped. JFIF, the ICC profile
//     and the Adobe segment are kept; entropy-coded data is copied byte
//     for byte.
//   - PNG: eXIf becomes an orientation-only eXIf, XMP and ImageMagick's
//     "Raw profile" text chunks are dropped.
//   - WebP: the EXIF chunk's body is overwritten in place with an
//     orientation-only TIFF padded with zeros, the XMP chunk's with spaces,
//     so no chunk size changes and the stream needs no second pass.
//   - GIF (no EXIF): XMP application extensions are dropped.
//
// Other formats give ErrUnsupported before anything is written. On any
// error w holds a partial copy to discard.
func StripLocation(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(12)
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return stripJPEG(w, br)
	case bytes.HasPrefix(head, pngSignature):
		return stripPNG(w, br)
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return stripGIF(w, br)
	case len(head) == 12 && string(head[:4]) == "RIFF" && string(head[8:]) == "WEBP":
		return stripWebP(w, br)
	}
	return ErrUnsupported
}

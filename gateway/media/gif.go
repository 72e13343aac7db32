package media

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// gifBlock is one top-level block of a GIF after its header.
type gifBlock struct {
	kind byte   // 0x2C image, 0x21 extension, 0x3B trailer
	head []byte // the block up to its data sub-blocks
	xmp  bool   // an XMP application extension
}

// gifWalk reads a GIF block by block, calling fn with each block's head;
// fn returns whether to keep (then data gets the sub-blocks as they are
// read) and whether to go on. The header and colour table go to header.
func gifWalk(br *bufio.Reader, header func([]byte), fn func(b gifBlock) (keep io.Writer, more bool)) error {
	h := make([]byte, 13)
	if _, err := io.ReadFull(br, h); err != nil || !bytes.HasPrefix(h, []byte("GIF8")) {
		return fmt.Errorf("%w: no GIF header", ErrMalformed)
	}
	if h[10]&0x80 != 0 {
		h = append(h, make([]byte, 3<<(h[10]&7+1))...)
		if _, err := io.ReadFull(br, h[13:]); err != nil {
			return truncated(err)
		}
	}
	header(h)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return truncated(err)
		}
		b := gifBlock{kind: c, head: []byte{c}}
		switch c {
		case 0x3B:
			fn(b)
			return nil
		case 0x2C:
			d := make([]byte, 10) // descriptor and LZW code size
			if _, err := io.ReadFull(br, d[:9]); err != nil {
				return truncated(err)
			}
			if d[8]&0x80 != 0 {
				d = append(d[:9], make([]byte, 3<<(d[8]&7+1)+1)...)
			}
			if _, err := io.ReadFull(br, d[9:]); err != nil {
				return truncated(err)
			}
			b.head = append(b.head, d...)
		case 0x21:
			label, err := br.ReadByte()
			if err != nil {
				return truncated(err)
			}
			b.head = append(b.head, label)
			if label == 0xFF {
				p, _ := br.Peek(12)
				b.xmp = len(p) == 12 && string(p) == "\x0bXMP DataXMP"
			}
		default:
			return fmt.Errorf("%w: GIF block 0x%02x", ErrMalformed, c)
		}
		keep, more := fn(b)
		if !more {
			return nil
		}
		if err := gifSubBlocks(keep, br); err != nil {
			return err
		}
	}
}

// gifSubBlocks copies (or, with a nil w, skips) a chain of data
// sub-blocks up to and including its terminator.
func gifSubBlocks(w io.Writer, br *bufio.Reader) error {
	if w == nil {
		w = io.Discard
	}
	for {
		n, err := br.ReadByte()
		if err != nil {
			return truncated(err)
		}
		w.Write([]byte{n})
		if n == 0 {
			return nil
		}
		if _, err := io.CopyN(w, br, int64(n)); err != nil {
			return truncated(err)
		}
	}
}

// gifMeta: a second image makes the GIF animated; XMP may hold a location.
// GIF has no EXIF, hence no orientation.
func gifMeta(br *bufio.Reader) (imageMeta, error) {
	var m imageMeta
	images := 0
	err := gifWalk(br, func([]byte) {}, func(b gifBlock) (io.Writer, bool) {
		switch {
		case b.kind == 0x2C:
			images++
			if images > 1 {
				m.animated = true
				return nil, false
			}
		case b.xmp:
			return &xmpScan{m: &m}, true
		}
		return nil, b.kind != 0x3B
	})
	return m, err
}

// xmpScan looks for GPS fields in the first maxMetaBytes of an XMP block
// written to it piecewise.
type xmpScan struct {
	b       []byte
	checked int // b[:checked] was searched already
	m       *imageMeta
}

func (x *xmpScan) Write(p []byte) (int, error) {
	if len(x.b) < maxMetaBytes && !x.m.location {
		x.b = append(x.b, p[:min(len(p), maxMetaBytes-len(x.b))]...)
		from := max(0, x.checked-len("GPSLongitude"))
		x.m.location = xmpHasLocation(x.b[from:])
		x.checked = len(x.b)
	}
	return len(p), nil
}

// stripGIF copies a GIF without its XMP application extensions, up to
// its trailer.
func stripGIF(w io.Writer, br *bufio.Reader) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := gifWalk(br, func(h []byte) { bw.Write(h) }, func(b gifBlock) (io.Writer, bool) {
		if b.xmp {
			return nil, true
		}
		bw.Write(b.head)
		return bw, b.kind != 0x3B
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// probeHEIF reads a HEIF/HEIC/AVIF's meta box: the largest image spatial
// extent (the primary image of a grid is the largest), a single rotation
// (irot) and whether its Exif item has GPS. Nothing is decoded: Go has
// no HEVC or AV1 decoder, so there is no thumbnail.
func probeHEIF(ctx context.Context, r io.ReaderAt, size int64) (*Image, error) {
	var img Image
	var rotations []byte
	var exifID uint32
	var iloc []byte
	errDone := errors.New("done")
	err := eachBox(ctx, r, 0, size, func(b box) error {
		if b.typ != "meta" {
			return nil
		}
		err := eachBox(ctx, r, b.data+4, b.end, func(c box) error { // a full box
			switch c.typ {
			case "iinf":
				id, err := exifItem(ctx, r, c)
				exifID = id
				return err
			case "iloc":
				var err error
				iloc, err = payload(r, c, maxMetaBytes)
				return err
			case "iprp":
				return eachBox(ctx, r, c.data, c.end, func(d box) error {
					if d.typ != "ipco" {
						return nil
					}
					return eachBox(ctx, r, d.data, d.end, func(p box) error {
						switch p.typ {
						case "ispe":
							pl, err := payload(r, p, 12)
							if err != nil || len(pl) < 12 {
								return err
							}
							w, h := int(binary.BigEndian.Uint32(pl[4:])), int(binary.BigEndian.Uint32(pl[8:]))
							if int64(w)*int64(h) > int64(img.Width)*int64(img.Height) {
								img.Width, img.Height = w, h
							}
						case "irot":
							pl, err := payload(r, p, 1)
							if err != nil {
								return err
							}
							if len(pl) == 1 {
								rotations = append(rotations, pl[0]&3)
							}
						}
						return nil
					})
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		return errDone
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, err
	}
	if img.Width == 0 || img.Height == 0 {
		return nil, fmt.Errorf("%w: no image extent in HEIF", ErrMalformed)
	}
	img.Orientation = 1
	if len(rotations) == 1 { // anticlockwise quarter turns
		img.Orientation = [4]int{1, 8, 3, 6}[rotations[0]]
	}
	img.Width, img.Height = displayed(img.Width, img.Height, img.Orientation)
	if exifID != 0 && iloc != nil {
		if off, n, ok := itemExtent(iloc, exifID); ok && off >= 0 && n >= 4 && n <= maxMetaBytes && off+n <= size {
			b := make([]byte, n)
			if err := readAt(r, b, off); err != nil {
				return &img, err
			}
			if skip := int64(binary.BigEndian.Uint32(b)); skip <= n-4 {
				if ex, err := parseTIFF(b[4+skip:]); err == nil {
					img.HasLocation = ex.gps
				}
			}
		}
	}
	return &img, nil
}

// exifItem returns the id of the first item of type Exif listed in iinf.
func exifItem(ctx context.Context, r io.ReaderAt, iinf box) (uint32, error) {
	p, err := payload(r, iinf, 8)
	if err != nil || len(p) < 6 {
		return 0, err
	}
	from := iinf.data + 6
	if p[0] != 0 {
		from = iinf.data + 8
	}
	var id uint32
	errFound := errors.New("found")
	err = eachBox(ctx, r, from, iinf.end, func(b box) error {
		if b.typ != "infe" {
			return nil
		}
		e, err := payload(r, b, 16)
		if err != nil {
			return err
		}
		switch {
		case len(e) >= 12 && e[0] == 2 && string(e[8:12]) == "Exif":
			id = uint32(binary.BigEndian.Uint16(e[4:]))
			return errFound
		case len(e) >= 14 && e[0] == 3 && string(e[10:14]) == "Exif":
			id = binary.BigEndian.Uint32(e[4:])
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return id, err
}

// itemExtent finds the first extent of an item in an iloc payload,
// stored in the file itself (construction method 0).
func itemExtent(p []byte, item uint32) (off, n int64, ok bool) {
	if len(p) < 8 {
		return 0, 0, false
	}
	version := p[0]
	offSize, lenSize := int(p[4]>>4), int(p[4]&15)
	baseSize, indexSize := int(p[5]>>4), int(p[5]&15)
	if version == 0 {
		indexSize = 0
	}
	pos := 6
	get := func(size int) (uint64, bool) {
		if size != 0 && size != 4 && size != 8 && size != 2 || pos+size > len(p) {
			return 0, false
		}
		var v uint64
		for _, c := range p[pos : pos+size] {
			v = v<<8 | uint64(c)
		}
		pos += size
		return v, true
	}
	idSize := 2
	if version >= 2 {
		idSize = 4
	}
	count, ok := get(idSize)
	for i := uint64(0); ok && i < count; i++ {
		var id, method, base, extents uint64
		id, ok = get(idSize)
		if ok && (version == 1 || version == 2) {
			method, ok = get(2)
			method &= 15
		}
		if ok {
			_, ok = get(2) // data reference index
		}
		if ok {
			base, ok = get(baseSize)
		}
		if ok {
			extents, ok = get(2)
		}
		for e := uint64(0); ok && e < extents; e++ {
			var eo, el uint64
			if indexSize > 0 {
				_, ok = get(indexSize)
			}
			if ok {
				eo, ok = get(offSize)
			}
			if ok {
				el, ok = get(lenSize)
			}
			if ok && e == 0 && uint32(id) == item && method == 0 && base+eo < 1<<62 && el < 1<<62 {
				return int64(base + eo), int64(el), true
			}
		}
	}
	return 0, 0, false
}

package media

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// probeImage reads an image's metadata and header, refuses it if it has
// too many pixels, then decodes it for the thumbnail and placeholder.
func probeImage(ctx context.Context, r io.ReaderAt, size int64, mime string, opts Options) (*Image, error) {
	stream := func() io.Reader {
		return bufio.NewReaderSize(ctxReader{ctx, io.NewSectionReader(r, 0, size)}, 64<<10)
	}
	var meta imageMeta
	var err error
	switch mime {
	case "image/jpeg":
		meta, err = jpegMeta(stream().(*bufio.Reader))
	case "image/png":
		meta, err = pngMeta(r, size)
	case "image/gif":
		meta, err = gifMeta(stream().(*bufio.Reader))
	case "image/webp":
		meta, err = webpMeta(r, size)
	}
	// Broken metadata is not fatal: the decoder says whether the pixels
	// are readable.
	if err != nil && !errors.Is(err, ErrMalformed) {
		return nil, err
	}
	cfg, err := decodeConfig(mime, stream())
	if err != nil {
		return nil, decodeError(ctx, mime, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, fmt.Errorf("%w: %s of %dx%d pixels", ErrMalformed, mime, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > opts.MaxPixels {
		return nil, fmt.Errorf("%w: %dx%d is more than %d", ErrTooManyPixels, cfg.Width, cfg.Height, opts.MaxPixels)
	}
	img := &Image{
		Orientation: max(meta.orientation, 1),
		HasLocation: meta.location,
		Animated:    meta.animated,
	}
	img.Width, img.Height = displayed(cfg.Width, cfg.Height, img.Orientation)
	if opts.NoThumbnail && !opts.Placeholder || mime == "image/webp" && meta.animated {
		return img, nil
	}
	src, err := decode(mime, stream())
	if err != nil {
		return img, decodeError(ctx, mime, err)
	}
	thumb := thumbnail(src, img.Orientation, opts.ThumbnailSize)
	if !opts.NoThumbnail {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, thumb, &jpeg.Options{Quality: opts.ThumbnailQuality}); err != nil {
			return img, err
		}
		img.Thumbnail = buf.Bytes()
		img.ThumbnailWidth, img.ThumbnailHeight = thumb.Rect.Dx(), thumb.Rect.Dy()
	}
	if opts.Placeholder {
		img.Placeholder = placeholder(thumb)
	}
	return img, nil
}

func decodeError(ctx context.Context, mime string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %s: %v", ErrMalformed, mime, err)
}

func decodeConfig(mime string, r io.Reader) (image.Config, error) {
	switch mime {
	case "image/jpeg":
		return jpeg.DecodeConfig(r)
	case "image/png":
		return png.DecodeConfig(r)
	case "image/gif":
		return gif.DecodeConfig(r)
	case "image/webp":
		return webp.DecodeConfig(r)
	}
	return image.Config{}, ErrUnsupported
}

// decode decodes the picture, the first frame of an animated GIF or APNG.
func decode(mime string, r io.Reader) (image.Image, error) {
	switch mime {
	case "image/jpeg":
		return jpeg.Decode(r)
	case "image/png":
		return png.Decode(r)
	case "image/gif":
		return gif.Decode(r)
	case "image/webp":
		return webp.Decode(r)
	}
	return nil, ErrUnsupported
}

// displayed is the size of a w×h picture shown with an EXIF orientation:
// 5–8 turn it a quarter.
func displayed(w, h, orientation int) (int, int) {
	if orientation >= 5 && orientation <= 8 {
		return h, w
	}
	return w, h
}

// fit scales w×h so its longest side is at most maxSide, never enlarging.
func fit(w, h, maxSide int) (int, int) {
	long := max(w, h)
	if long <= maxSide {
		return w, h
	}
	return max(1, (w*maxSide+long/2)/long), max(1, (h*maxSide+long/2)/long)
}

// thumbnail scales src to fit maxSide once oriented, over white, then
// orients it. A large reduction starts with a box filter by an integer
// factor (cheap, and it averages every pixel, so no aliasing) down to
// 2–4 times the target, and Catmull-Rom does the rest.
func thumbnail(src image.Image, orientation, maxSide int) *image.RGBA {
	b := src.Bounds()
	dw, dh := displayed(b.Dx(), b.Dy(), orientation)
	tw, th := fit(dw, dh, maxSide)
	sw, sh := displayed(tw, th, orientation) // the same size before orienting
	if k := min(b.Dx()/sw, b.Dy()/sh) / 2; k >= 2 {
		src = boxReduce(src, k)
	}
	dst := image.NewRGBA(image.Rect(0, 0, sw, sh))
	draw.Draw(dst, dst.Rect, image.White, image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Rect, src, src.Bounds(), draw.Over, nil)
	return orient(dst, orientation)
}

// orient turns a stored picture into the displayed one for an EXIF
// orientation (2: mirrored, 3: turned 180°, 4: flipped, 5: transposed,
// 6: turned 90° clockwise, 7: transversed, 8: turned 90° anticlockwise).
func orient(src *image.RGBA, orientation int) *image.RGBA {
	if orientation < 2 || orientation > 8 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := displayed(w, h, orientation)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for dy := range dh {
		for dx := range dw {
			var sx, sy int
			switch orientation {
			case 2:
				sx, sy = w-1-dx, dy
			case 3:
				sx, sy = w-1-dx, h-1-dy
			case 4:
				sx, sy = dx, h-1-dy
			case 5:
				sx, sy = dy, dx
			case 6:
				sx, sy = dy, h-1-dx
			case 7:
				sx, sy = w-1-dy, h-1-dx
			case 8:
				sx, sy = w-1-dy, dx
			}
			copy(dst.Pix[dst.PixOffset(dx, dy):][:4], src.Pix[src.PixOffset(sx, sy):][:4])
		}
	}
	return dst
}

// placeholder averages an opaque thumbnail over a grid whose long side
// has 4 cells (format in Image.Placeholder).
func placeholder(m *image.RGBA) []byte {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cols, rows := 4, 4
	if w >= h {
		rows = min(4, max(1, (4*h+w/2)/w))
	} else {
		cols = min(4, max(1, (4*w+h/2)/h))
	}
	cols, rows = min(cols, w), min(rows, h)
	out := []byte{byte(cols<<4 | rows)}
	for r := range rows {
		for c := range cols {
			var sum [3]int
			n := 0
			for y := r * h / rows; y < (r+1)*h/rows; y++ {
				for x := c * w / cols; x < (c+1)*w/cols; x++ {
					p := m.Pix[m.PixOffset(x, y):]
					sum[0], sum[1], sum[2] = sum[0]+int(p[0]), sum[1]+int(p[1]), sum[2]+int(p[2])
					n++
				}
			}
			out = append(out, byte(sum[0]/n), byte(sum[1]/n), byte(sum[2]/n))
		}
	}
	return out
}

// boxReduce averages k×k blocks of src (premultiplied alpha) into a new
// picture, with fast paths for what the decoders produce.
func boxReduce(src image.Image, k int) *image.RGBA {
	b := src.Bounds()
	ow, oh := (b.Dx()+k-1)/k, (b.Dy()+k-1)/k
	dst := image.NewRGBA(image.Rect(0, 0, ow, oh))
	if s, ok := src.(*image.YCbCr); ok {
		reduceYCbCr(dst, s, k)
		return dst
	}
	px := pixelFunc(src)
	for oy := range oh {
		y0, y1 := b.Min.Y+oy*k, min(b.Min.Y+(oy+1)*k, b.Max.Y)
		for ox := range ow {
			x0, x1 := b.Min.X+ox*k, min(b.Min.X+(ox+1)*k, b.Max.X)
			var s [4]uint32
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					c := px(x, y)
					s[0], s[1], s[2], s[3] = s[0]+c[0], s[1]+c[1], s[2]+c[2], s[3]+c[3]
				}
			}
			n := uint32((y1 - y0) * (x1 - x0))
			i := dst.PixOffset(ox, oy)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = byte(s[0]/n), byte(s[1]/n), byte(s[2]/n), byte(s[3]/n)
		}
	}
	return dst
}

// pixelFunc reads premultiplied 8-bit RGBA at (x, y).
func pixelFunc(src image.Image) func(x, y int) [4]uint32 {
	switch s := src.(type) {
	case *image.RGBA:
		return func(x, y int) [4]uint32 {
			p := s.Pix[s.PixOffset(x, y):]
			return [4]uint32{uint32(p[0]), uint32(p[1]), uint32(p[2]), uint32(p[3])}
		}
	case *image.NRGBA:
		return func(x, y int) [4]uint32 {
			p := s.Pix[s.PixOffset(x, y):]
			a := uint32(p[3])
			return [4]uint32{uint32(p[0]) * a / 255, uint32(p[1]) * a / 255, uint32(p[2]) * a / 255, a}
		}
	case *image.NRGBA64: // 16-bit PNG
		return func(x, y int) [4]uint32 {
			p := s.Pix[s.PixOffset(x, y):]
			a := uint32(p[6])
			return [4]uint32{uint32(p[0]) * a / 255, uint32(p[2]) * a / 255, uint32(p[4]) * a / 255, a}
		}
	case *image.RGBA64:
		return func(x, y int) [4]uint32 {
			p := s.Pix[s.PixOffset(x, y):]
			return [4]uint32{uint32(p[0]), uint32(p[2]), uint32(p[4]), uint32(p[6])}
		}
	case *image.Gray16:
		return func(x, y int) [4]uint32 {
			v := uint32(s.Pix[s.PixOffset(x, y)])
			return [4]uint32{v, v, v, 255}
		}
	case *image.Gray:
		return func(x, y int) [4]uint32 {
			v := uint32(s.Pix[s.PixOffset(x, y)])
			return [4]uint32{v, v, v, 255}
		}
	case *image.Paletted:
		pal := make([][4]uint32, 256)
		for i, c := range s.Palette {
			r, g, b, a := c.RGBA()
			pal[i] = [4]uint32{r >> 8, g >> 8, b >> 8, a >> 8}
		}
		return func(x, y int) [4]uint32 { return pal[s.Pix[s.PixOffset(x, y)]] }
	}
	return func(x, y int) [4]uint32 {
		r, g, b, a := src.At(x, y).RGBA()
		return [4]uint32{r >> 8, g >> 8, b >> 8, a >> 8}
	}
}

// reduceYCbCr averages luma over each block and chroma over the samples
// that cover it, and converts only the averages to RGB.
func reduceYCbCr(dst *image.RGBA, s *image.YCbCr, k int) {
	b := s.Rect
	sx, sy := 1, 1
	switch s.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		sx = 2
	case image.YCbCrSubsampleRatio420:
		sx, sy = 2, 2
	case image.YCbCrSubsampleRatio440:
		sy = 2
	case image.YCbCrSubsampleRatio411:
		sx = 4
	case image.YCbCrSubsampleRatio410:
		sx, sy = 4, 2
	}
	ow, oh := dst.Rect.Dx(), dst.Rect.Dy()
	for oy := range oh {
		y0, y1 := b.Min.Y+oy*k, min(b.Min.Y+(oy+1)*k, b.Max.Y)
		for ox := range ow {
			x0, x1 := b.Min.X+ox*k, min(b.Min.X+(ox+1)*k, b.Max.X)
			var ys uint32
			for y := y0; y < y1; y++ {
				for _, v := range s.Y[s.YOffset(x0, y):][:x1-x0] {
					ys += uint32(v)
				}
			}
			// The chroma samples covering the block, as COffset places them.
			var cb, cr uint32
			cx0, cx1 := x0/sx-b.Min.X/sx, (x1-1)/sx-b.Min.X/sx+1
			cy0, cy1 := y0/sy-b.Min.Y/sy, (y1-1)/sy-b.Min.Y/sy+1
			for cy := cy0; cy < cy1; cy++ {
				row := cy * s.CStride
				for _, v := range s.Cb[row+cx0 : row+cx1] {
					cb += uint32(v)
				}
				for _, v := range s.Cr[row+cx0 : row+cx1] {
					cr += uint32(v)
				}
			}
			cn := uint32((cx1 - cx0) * (cy1 - cy0))
			n := uint32((y1 - y0) * (x1 - x0))
			r, g, bl := color.YCbCrToRGB(byte(ys/n), byte(cb/cn), byte(cr/cn))
			i := dst.PixOffset(ox, oy)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = r, g, bl, 255
		}
	}
}

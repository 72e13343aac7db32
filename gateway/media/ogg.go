package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Ogg: a sequence of pages, each with a granule position (for Opus, the
// 48 kHz sample count at the end of the last packet that ends in it), a
// CRC, and a lacing table giving its packets' sizes. Only page headers
// are read while walking; the CRC is checked on the pages Probe relies on
// (the Opus header and the last page).

var errNotOpus = errors.New("media: no Opus stream in the Ogg file")

const (
	oggMaxHeader  = 27 + 255
	oggBOS        = 0x02
	oggNoGranule  = ^uint64(0)
	oggMaxBOS     = 16      // streams looked at
	oggMaxBack    = 1 << 20 // how far from the end the last page is looked for
	opusRate      = 48000
	opusHeadBytes = 19
)

type oggPage struct {
	off      int64
	flags    byte
	granule  uint64
	serial   uint32
	lacing   []byte
	hdrLen   int64
	dataLen  int64
	checksum uint32
}

func (p oggPage) end() int64 { return p.off + p.hdrLen + p.dataLen }

// readOggPage reads the header of the page at off; the page must end
// within size.
func readOggPage(r io.ReaderAt, off, size int64) (oggPage, error) {
	var b [oggMaxHeader]byte
	n := min(int64(len(b)), size-off)
	if n < 27 {
		return oggPage{}, fmt.Errorf("%w: Ogg page at %d truncated", ErrMalformed, off)
	}
	if err := readAt(r, b[:n], off); err != nil {
		return oggPage{}, err
	}
	if string(b[:4]) != "OggS" || b[4] != 0 {
		return oggPage{}, fmt.Errorf("%w: no Ogg page at %d", ErrMalformed, off)
	}
	nseg := int64(b[26])
	if 27+nseg > n {
		return oggPage{}, fmt.Errorf("%w: Ogg page at %d truncated", ErrMalformed, off)
	}
	p := oggPage{
		off:      off,
		flags:    b[5],
		granule:  binary.LittleEndian.Uint64(b[6:]),
		serial:   binary.LittleEndian.Uint32(b[14:]),
		checksum: binary.LittleEndian.Uint32(b[22:]),
		lacing:   append([]byte(nil), b[27:27+nseg]...),
		hdrLen:   27 + nseg,
	}
	for _, l := range p.lacing {
		p.dataLen += int64(l)
	}
	if p.end() > size {
		return p, fmt.Errorf("%w: Ogg page at %d truncated", ErrMalformed, off)
	}
	return p, nil
}

// read returns the whole page, header included.
func (p oggPage) read(r io.ReaderAt) ([]byte, error) {
	b := make([]byte, p.hdrLen+p.dataLen)
	return b, readAt(r, b, p.off)
}

var oggTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// oggCRC is the page checksum: CRC-32, polynomial 0x04C11DB7, no
// reflection, initial value and final XOR zero, with the checksum field
// taken as zero.
func oggCRC(page []byte) uint32 {
	var c uint32
	for i, x := range page {
		if i >= 22 && i < 26 {
			x = 0
		}
		c = c<<8 ^ oggTable[byte(c>>24)^x]
	}
	return c
}

func (p oggPage) verify(r io.ReaderAt) error {
	b, err := p.read(r)
	if err != nil {
		return err
	}
	if oggCRC(b) != p.checksum {
		return fmt.Errorf("%w: Ogg page at %d fails its CRC", ErrMalformed, p.off)
	}
	return nil
}

// oggStream is a logical stream announced by a beginning-of-stream page.
type oggStream struct {
	page oggPage
	head []byte // the start of its first packet
}

// oggStreams lists the streams whose BOS pages open the file.
func oggStreams(r io.ReaderAt, size int64) ([]oggStream, error) {
	var out []oggStream
	for off := int64(0); len(out) < oggMaxBOS && off < size; {
		p, err := readOggPage(r, off, size)
		if err != nil {
			if len(out) > 0 {
				return out, nil
			}
			return nil, err
		}
		if p.flags&oggBOS == 0 {
			break
		}
		head := make([]byte, min(p.dataLen, 64))
		if err := readAt(r, head, p.off+p.hdrLen); err != nil {
			return nil, err
		}
		out = append(out, oggStream{page: p, head: head})
		off = p.end()
	}
	return out, nil
}

func sniffOgg(r io.ReaderAt, size int64) (string, Kind) {
	streams, _ := oggStreams(r, size)
	mime, kind := "application/ogg", KindFile
	for _, s := range streams {
		switch {
		case bytes.HasPrefix(s.head, []byte("\x80theora")):
			return "video/ogg", KindVideo
		case bytes.HasPrefix(s.head, []byte("OpusHead")), bytes.HasPrefix(s.head, []byte("\x01vorbis")),
			bytes.HasPrefix(s.head, []byte("\x7fFLAC")), bytes.HasPrefix(s.head, []byte("Speex   ")):
			mime, kind = "audio/ogg", KindAudio
		}
	}
	return mime, kind
}

// probeOgg describes the first Opus stream: its header, its duration
// from the last page's granule position, and a waveform from its packet
// sizes.
func probeOgg(ctx context.Context, r io.ReaderAt, size int64, opts Options) (*Audio, error) {
	streams, err := oggStreams(r, size)
	if err != nil {
		return nil, err
	}
	var opus *oggStream
	for i, s := range streams {
		if bytes.HasPrefix(s.head, []byte("OpusHead")) {
			opus = &streams[i]
			break
		}
	}
	if opus == nil {
		return nil, errNotOpus
	}
	h := opus.head
	if len(h) < opusHeadBytes || h[8]>>4 != 0 {
		return nil, fmt.Errorf("%w: OpusHead", ErrMalformed)
	}
	if err := opus.page.verify(r); err != nil {
		return nil, err
	}
	preSkip := uint64(binary.LittleEndian.Uint16(h[10:]))
	a := &Audio{Codec: "opus", Channels: int(h[9]), SampleRate: int(binary.LittleEndian.Uint32(h[12:]))}
	last, err := lastGranule(ctx, r, size, opus.page.serial)
	if err != nil {
		return a, err
	}
	samples := uint64(0)
	if last > preSkip {
		samples = last - preSkip
	}
	a.Duration = seconds(samples, opusRate)
	a.Waveform, err = opusWaveform(ctx, r, size, opus.page.serial, preSkip, samples, opts.WaveformBars)
	return a, err
}

// lastGranule finds, looking back from the end, the last page of the
// stream that has a granule position and a correct CRC.
func lastGranule(ctx context.Context, r io.ReaderAt, size int64, serial uint32) (uint64, error) {
	const chunk = 64 << 10
	for end := size; end > 0 && size-end < oggMaxBack; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		start := max(0, end-chunk)
		buf := make([]byte, min(size, end+3)-start) // "OggS" may straddle chunks
		if err := readAt(r, buf, start); err != nil {
			return 0, err
		}
		for i := len(buf); i > 0; {
			if i = bytes.LastIndex(buf[:i], []byte("OggS")); i < 0 {
				break
			}
			if start+int64(i) >= end {
				continue // tried with the chunk after this one
			}
			p, err := readOggPage(r, start+int64(i), size)
			if err == nil && p.serial == serial && p.granule != oggNoGranule && p.verify(r) == nil {
				return p.granule, nil
			}
		}
		end = start
	}
	return 0, fmt.Errorf("%w: no Ogg page with a granule position near the end", ErrMalformed)
}

// opusWaveform walks the page headers of the stream. A page's packets
// are spread evenly between the previous page's granule position and its
// own, each counted at its middle; the first two packets (OpusHead,
// OpusTags) are not audio.
func opusWaveform(ctx context.Context, r io.ReaderAt, size int64, serial uint32, preSkip, samples uint64, bars int) ([]byte, error) {
	if samples == 0 {
		return nil, nil
	}
	w := newWaveform(bars)
	var packets int // packets completed so far, headers included
	var partial int // bytes of a packet continued on the next page
	var pending []int
	var prev uint64 // the granule position before the first audio page
	for i, off := 0, int64(0); off < size; i++ {
		if i%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		p, err := readOggPage(r, off, size)
		if err != nil {
			break // a damaged or truncated tail: what came before still counts
		}
		off = p.end()
		if p.serial != serial {
			continue
		}
		for _, l := range p.lacing {
			partial += int(l)
			if l == 255 {
				continue
			}
			if packets >= 2 && len(pending) < 1<<16 {
				pending = append(pending, partial)
			}
			packets++
			partial = 0
		}
		if p.granule == oggNoGranule || len(pending) == 0 {
			continue
		}
		g := max(p.granule, prev)
		for j, n := range pending {
			t := prev + (g-prev)*uint64(2*j+1)/uint64(2*len(pending)) // the packet's middle
			pos := 0.0
			if t > preSkip {
				pos = float64(t-preSkip) / float64(samples)
			}
			w.add(pos, n)
		}
		pending, prev = pending[:0], g
	}
	return w.values(), nil
}

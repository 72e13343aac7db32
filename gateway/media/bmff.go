package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ISO base media file format (MP4, M4A, MOV, 3GP, HEIF, AVIF): a tree of
// boxes, each with its size, walked with ReadAt so mdat is never read.

const (
	maxBoxes  = 10_000 // per container
	maxTracks = 64
)

type box struct {
	typ            string
	off, data, end int64 // start, payload, end
}

func readBox(r io.ReaderAt, off, end int64) (box, error) {
	var h [16]byte
	if end-off < 8 {
		return box{}, fmt.Errorf("%w: box header at %d", ErrMalformed, off)
	}
	if err := readAt(r, h[:8], off); err != nil {
		return box{}, err
	}
	size, hdr := int64(binary.BigEndian.Uint32(h[:4])), int64(8)
	switch size {
	case 1:
		if end-off < 16 {
			return box{}, fmt.Errorf("%w: box header at %d", ErrMalformed, off)
		}
		if err := readAt(r, h[8:], off+8); err != nil {
			return box{}, err
		}
		s := binary.BigEndian.Uint64(h[8:])
		if s > 1<<62 {
			return box{}, fmt.Errorf("%w: box size at %d", ErrMalformed, off)
		}
		size, hdr = int64(s), 16
	case 0: // to the end of its container
		size = end - off
	}
	b := box{typ: string(h[4:8]), off: off, data: off + hdr, end: off + size}
	if b.typ == "uuid" {
		b.data += 16
	}
	if size < b.data-off || size > end-off {
		return b, fmt.Errorf("%w: %q box of %d bytes at %d, container ends at %d", ErrMalformed, b.typ, size, off, end)
	}
	return b, nil
}

// eachBox calls fn for the boxes in [from, end). Fewer than 8 bytes left
// over is padding.
func eachBox(ctx context.Context, r io.ReaderAt, from, end int64, fn func(box) error) error {
	for i, off := 0, from; end-off >= 8; i++ {
		if i == maxBoxes {
			return fmt.Errorf("%w: more than %d boxes", ErrMalformed, maxBoxes)
		}
		if i%256 == 255 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		b, err := readBox(r, off, end)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		off = b.end
	}
	return nil
}

// payload reads up to max bytes of a box's payload.
func payload(r io.ReaderAt, b box, max int64) ([]byte, error) {
	p := make([]byte, min(b.end-b.data, max))
	return p, readAt(r, p, b.data)
}

func isBMFF(head []byte) bool {
	switch string(head[4:8]) {
	case "ftyp", "moov", "mdat", "wide", "free", "skip":
		return true
	}
	return false
}

var heifBrands = map[string]string{
	"heic": "image/heic", "heix": "image/heic", "heim": "image/heic", "heis": "image/heic",
	"hevc": "image/heic", "hevx": "image/heic", "hevm": "image/heic", "hevs": "image/heic",
	"avif": "image/avif", "avis": "image/avif",
	"mif1": "image/heif", "msf1": "image/heif",
}

// brands returns an ftyp's major brand followed by its compatible ones.
func brands(head []byte) []string {
	if string(head[4:8]) != "ftyp" {
		return nil
	}
	n := min(int(binary.BigEndian.Uint32(head[:4])), len(head))
	if n < 16 {
		return nil
	}
	out := []string{string(head[8:12])}
	for i := 16; i+4 <= n; i += 4 {
		out = append(out, string(head[i:i+4]))
	}
	return out
}

// sniffBMFF: HEIF and AVIF by brand, movies by their tracks; "" when the
// bytes only looked like boxes.
func sniffBMFF(r io.ReaderAt, size int64, head []byte) (string, Kind) {
	bs := brands(head)
	image := ""
	for _, b := range bs {
		if m := heifBrands[b]; m != "" && (image == "" || image == "image/heif") {
			image = m
		}
	}
	if image != "" && heifBrands[bs[0]] != "" { // an image brand comes first
		return image, KindImage
	}
	mv, err := findMovie(context.Background(), r, size)
	major := ""
	if len(bs) > 0 {
		major = bs[0]
	}
	if err != nil && len(bs) == 0 {
		return "", KindFile
	}
	if image != "" && len(mv.tracks) == 0 {
		return image, KindImage
	}
	return movieType(major, mv)
}

func movieType(major string, mv movie) (string, Kind) {
	family := "mp4"
	switch {
	case major == "qt  " || major == "":
		family = "quicktime"
	case strings.HasPrefix(major, "3gp"), strings.HasPrefix(major, "3g2"):
		family = "3gpp"
	}
	v, a := mv.video(), mv.audio()
	switch {
	case v != nil:
		return "video/" + family, KindVideo
	case a != nil && family == "3gpp":
		return "audio/3gpp", KindAudio
	case a != nil:
		return "audio/mp4", KindAudio
	case major == "M4A " || major == "M4B " || major == "M4P ":
		return "audio/mp4", KindAudio
	}
	return "video/" + family, KindVideo
}

type track struct {
	handler              string // "vide", "soun", …
	codec                string // sample entry code
	oti                  byte   // MPEG-4 object type of an mp4a entry
	timescale, duration  uint64 // mdhd
	width, height        int    // tkhd, else the visual sample entry
	sampleW, sampleH     int
	rotation             int
	channels, sampleRate int
	stsz, stts           box
	hasStsz, hasStts     bool
}

type movie struct {
	found               bool
	timescale, duration uint64
	fragmentDuration    uint64 // mehd
	tracks              []track
}

// video is the first video track that is not a still (cover art).
func (mv movie) video() *track {
	for i, t := range mv.tracks {
		if t.handler == "vide" && t.codec != "jpeg" && t.codec != "png " {
			return &mv.tracks[i]
		}
	}
	return nil
}

func (mv movie) audio() *track {
	for i, t := range mv.tracks {
		if t.handler == "soun" {
			return &mv.tracks[i]
		}
	}
	return nil
}

func (mv movie) seconds() (ticks, scale uint64) {
	if mv.duration != 0 {
		return mv.duration, mv.timescale
	}
	return mv.fragmentDuration, mv.timescale
}

// findMovie walks the top-level boxes to moov, wherever it is. A box cut
// short by the end of the file only matters before moov was read.
func findMovie(ctx context.Context, r io.ReaderAt, size int64) (movie, error) {
	var mv movie
	errDone := errors.New("done")
	err := eachBox(ctx, r, 0, size, func(b box) error {
		if b.typ != "moov" {
			return nil
		}
		var err error
		mv, err = parseMoov(ctx, r, b)
		if err != nil {
			return err
		}
		return errDone
	})
	if errors.Is(err, errDone) {
		return mv, nil
	}
	if err == nil && !mv.found {
		err = fmt.Errorf("%w: no moov box", ErrMalformed)
	}
	return mv, err
}

func parseMoov(ctx context.Context, r io.ReaderAt, moov box) (movie, error) {
	mv := movie{found: true}
	err := eachBox(ctx, r, moov.data, moov.end, func(b box) error {
		switch b.typ {
		case "mvhd":
			p, err := payload(r, b, 32)
			if err != nil {
				return err
			}
			mv.timescale, mv.duration = timing(p)
		case "mvex":
			return eachBox(ctx, r, b.data, b.end, func(c box) error {
				if c.typ != "mehd" {
					return nil
				}
				p, err := payload(r, c, 12)
				if err != nil {
					return err
				}
				switch {
				case len(p) >= 12 && p[0] == 1:
					mv.fragmentDuration = binary.BigEndian.Uint64(p[4:])
				case len(p) >= 8:
					mv.fragmentDuration = uint64(binary.BigEndian.Uint32(p[4:]))
				}
				return nil
			})
		case "trak":
			if len(mv.tracks) == maxTracks {
				return nil
			}
			t, err := parseTrak(ctx, r, b)
			if err != nil {
				return err
			}
			mv.tracks = append(mv.tracks, t)
		}
		return nil
	})
	return mv, err
}

// timing reads the timescale and duration of an mvhd or mdhd payload.
func timing(p []byte) (timescale, duration uint64) {
	switch {
	case len(p) >= 32 && p[0] == 1:
		return uint64(binary.BigEndian.Uint32(p[20:])), binary.BigEndian.Uint64(p[24:])
	case len(p) >= 20 && p[0] == 0:
		return uint64(binary.BigEndian.Uint32(p[12:])), uint64(binary.BigEndian.Uint32(p[16:]))
	}
	return 0, 0
}

func parseTrak(ctx context.Context, r io.ReaderAt, trak box) (track, error) {
	var t track
	var walk func(b box) error
	walk = func(b box) error {
		switch b.typ {
		case "mdia", "minf", "stbl":
			return eachBox(ctx, r, b.data, b.end, walk)
		case "tkhd":
			p, err := payload(r, b, 96)
			if err != nil {
				return err
			}
			at := 76 // matrix at 40, width and height after it
			if len(p) > 0 && p[0] == 1 {
				at = 88
			}
			if len(p) >= at+8 {
				t.width = int(binary.BigEndian.Uint32(p[at:]) >> 16)
				t.height = int(binary.BigEndian.Uint32(p[at+4:]) >> 16)
				t.rotation = matrixRotation(p[at-36 : at])
			}
		case "mdhd":
			p, err := payload(r, b, 32)
			if err != nil {
				return err
			}
			t.timescale, t.duration = timing(p)
		case "hdlr":
			p, err := payload(r, b, 12)
			if err != nil {
				return err
			}
			if len(p) == 12 {
				t.handler = string(p[8:12])
			}
		case "stsd":
			p, err := payload(r, b, 4096)
			if err != nil {
				return err
			}
			sampleEntry(&t, p)
		case "stsz":
			t.stsz, t.hasStsz = b, true
		case "stts":
			t.stts, t.hasStts = b, true
		}
		return nil
	}
	err := eachBox(ctx, r, trak.data, trak.end, walk)
	if t.width == 0 || t.height == 0 {
		t.width, t.height = t.sampleW, t.sampleH
	}
	return t, err
}

// matrixRotation reads a track matrix (a, b, u, c, d, v, x, y, w): only
// quarter turns are recognised.
func matrixRotation(m []byte) int {
	a := int32(binary.BigEndian.Uint32(m[0:]))
	b := int32(binary.BigEndian.Uint32(m[4:]))
	d := int32(binary.BigEndian.Uint32(m[16:]))
	switch {
	case a == 0 && d == 0 && b > 0:
		return 90
	case a == 0 && d == 0 && b < 0:
		return 270
	case a < 0 && d < 0:
		return 180
	}
	return 0
}

// sampleEntry reads the first sample entry of an stsd payload.
func sampleEntry(t *track, p []byte) {
	if len(p) < 16 {
		return
	}
	e := p[8:]
	n := min(int(binary.BigEndian.Uint32(e)), len(e))
	if n < 16 {
		return
	}
	e = e[:n]
	t.codec = string(e[4:8])
	switch {
	case t.handler == "vide" && len(e) >= 36:
		t.sampleW, t.sampleH = int(binary.BigEndian.Uint16(e[32:])), int(binary.BigEndian.Uint16(e[34:]))
	case t.handler == "soun" && len(e) >= 36:
		t.channels = int(binary.BigEndian.Uint16(e[24:]))
		t.sampleRate = int(binary.BigEndian.Uint32(e[32:]) >> 16)
		children := 36
		switch binary.BigEndian.Uint16(e[16:]) { // QuickTime sound description version
		case 1:
			children += 16
		case 2:
			children += 36
		}
		if t.codec == "mp4a" {
			t.oti = esdsObjectType(e[min(children, len(e)):])
		}
	}
}

// esdsObjectType finds the esds box among a sample entry's children and
// returns the objectTypeIndication of its decoder config, 0 if none.
func esdsObjectType(b []byte) byte {
	for len(b) >= 8 {
		n := int(binary.BigEndian.Uint32(b))
		if n < 8 || n > len(b) {
			return 0
		}
		if string(b[4:8]) == "esds" {
			return esdsOTI(b[12:n])
		}
		b = b[n:]
	}
	return 0
}

func esdsOTI(d []byte) byte {
	desc := func(d []byte) (tag byte, body []byte, ok bool) {
		if len(d) < 2 {
			return 0, nil, false
		}
		tag, d = d[0], d[1:]
		n := 0
		for i := 0; i < 4; i++ {
			if len(d) == 0 {
				return 0, nil, false
			}
			c := d[0]
			d = d[1:]
			n = n<<7 | int(c&0x7F)
			if c&0x80 == 0 {
				break
			}
		}
		if n > len(d) {
			n = len(d)
		}
		return tag, d[:n], true
	}
	tag, es, ok := desc(d)
	if !ok || tag != 0x03 || len(es) < 3 {
		return 0
	}
	flags := es[2]
	es = es[3:]
	if flags&0x80 != 0 {
		es = es[min(2, len(es)):]
	}
	if flags&0x40 != 0 && len(es) > 0 {
		es = es[min(1+int(es[0]), len(es)):]
	}
	if flags&0x20 != 0 {
		es = es[min(2, len(es)):]
	}
	tag, dc, ok := desc(es)
	if !ok || tag != 0x04 || len(dc) < 1 {
		return 0
	}
	return dc[0]
}

var codecNames = map[string]string{
	"avc1": "h264", "avc3": "h264", "hvc1": "h265", "hev1": "h265", "av01": "av1",
	"vp08": "vp8", "vp09": "vp9", "mp4v": "mpeg4", "s263": "h263", "h263": "h263",
	"jpeg": "mjpeg", "apch": "prores", "apcn": "prores", "apcs": "prores", "apco": "prores", "ap4h": "prores",
	"Opus": "opus", "alac": "alac", "fLaC": "flac", "samr": "amr", "sawb": "amr-wb",
	"ac-3": "ac3", "ec-3": "eac3", ".mp3": "mp3",
}

func (t *track) codecName() string {
	if t.codec == "mp4a" {
		switch t.oti {
		case 0x40, 0x66, 0x67, 0x68:
			return "aac"
		case 0x69, 0x6B:
			return "mp3"
		}
	}
	if n := codecNames[t.codec]; n != "" {
		return n
	}
	return printable(t.codec)
}

// printable keeps a code's printable ASCII, for anything that ends up in
// a log or an event.
func printable(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c > ' ' && c < 0x7F {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// probeMP4 describes the video track, or else the sound track.
func probeMP4(ctx context.Context, r io.ReaderAt, size int64, opts Options) (*Audio, *Video, error) {
	mv, err := findMovie(ctx, r, size)
	if err != nil {
		return nil, nil, err
	}
	if v := mv.video(); v != nil {
		ticks, scale := mv.seconds()
		if ticks == 0 {
			ticks, scale = v.duration, v.timescale
		}
		out := &Video{Codec: v.codecName(), Duration: seconds(ticks, scale), Rotation: v.rotation, HasAudio: mv.audio() != nil}
		out.Width, out.Height = v.width, v.height
		if v.rotation == 90 || v.rotation == 270 {
			out.Width, out.Height = v.height, v.width
		}
		return nil, out, nil
	}
	a := mv.audio()
	if a == nil {
		return nil, nil, nil
	}
	out := &Audio{Codec: a.codecName(), Channels: a.channels, SampleRate: a.sampleRate}
	if a.duration != 0 {
		out.Duration = seconds(a.duration, a.timescale)
	} else {
		out.Duration = seconds(mv.seconds())
	}
	out.Waveform, err = sampleWaveform(ctx, r, a, opts.WaveformBars)
	return out, nil, err
}

// u32s reads a run of big-endian uint32 from a box, a chunk at a time.
type u32s struct {
	r        io.ReaderAt
	off, end int64
	buf      []byte
}

func (u *u32s) next() (uint32, error) {
	if len(u.buf) == 0 {
		n := min(u.end-u.off, 16<<10) &^ 3
		if n == 0 {
			return 0, fmt.Errorf("%w: table past its box", ErrMalformed)
		}
		u.buf = make([]byte, n)
		if err := readAt(u.r, u.buf, u.off); err != nil {
			return 0, err
		}
		u.off += n
	}
	v := binary.BigEndian.Uint32(u.buf)
	u.buf = u.buf[4:]
	return v, nil
}

// sampleWaveform buckets the sample sizes of stsz by the times of stts,
// streaming both tables.
func sampleWaveform(ctx context.Context, r io.ReaderAt, t *track, bars int) ([]byte, error) {
	if !t.hasStsz {
		return nil, nil
	}
	var h [12]byte
	if t.stsz.end-t.stsz.data < 12 {
		return nil, fmt.Errorf("%w: stsz", ErrMalformed)
	}
	if err := readAt(r, h[:], t.stsz.data); err != nil {
		return nil, err
	}
	constant, count := binary.BigEndian.Uint32(h[4:]), int64(binary.BigEndian.Uint32(h[8:]))
	w := newWaveform(bars)
	if count == 0 {
		return nil, nil
	}
	if constant != 0 {
		w.add(0, int(constant))
		return w.values(), nil
	}
	if 4*count > t.stsz.end-t.stsz.data-12 {
		return nil, fmt.Errorf("%w: stsz has fewer than %d entries", ErrMalformed, count)
	}
	sizes := u32s{r: r, off: t.stsz.data + 12, end: t.stsz.data + 12 + 4*count}

	// stts: the total first, then the time of each sample.
	var entries int64
	var total uint64
	if t.hasStts && t.stts.end-t.stts.data >= 8 {
		var e [8]byte
		if err := readAt(r, e[:], t.stts.data); err != nil {
			return nil, err
		}
		entries = min(int64(binary.BigEndian.Uint32(e[4:])), (t.stts.end-t.stts.data-8)/8)
		tt := u32s{r: r, off: t.stts.data + 8, end: t.stts.data + 8 + 8*entries}
		for range entries {
			c, err := tt.next()
			if err != nil {
				return nil, err
			}
			d, err := tt.next()
			if err != nil {
				return nil, err
			}
			total += uint64(c) * uint64(d)
		}
	}
	times := u32s{r: r, off: t.stts.data + 8, end: t.stts.data + 8 + 8*entries}
	var now uint64
	var left, delta uint32 // samples left in the current stts entry, their duration
	for i := range count {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for left == 0 && entries > 0 {
			var err error
			if left, err = times.next(); err != nil {
				return nil, err
			}
			if delta, err = times.next(); err != nil {
				return nil, err
			}
			entries--
		}
		s, err := sizes.next()
		if err != nil {
			return nil, err
		}
		pos := (float64(i) + 0.5) / float64(count) // the sample's middle
		if total > 0 && left > 0 {
			pos = (float64(now) + float64(delta)/2) / float64(total)
			now += uint64(delta)
			left--
		}
		w.add(pos, int(s))
	}
	return w.values(), nil
}

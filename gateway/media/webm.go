package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// WebM and Matroska: EBML elements, each an ID and a size, so everything
// but the header elements (Info, Tracks) is skipped with ReadAt. Browsers'
// recorders write a Segment of unknown size with no Duration; such a file
// has no duration here (finding it would mean reading every cluster).

var ebmlMagic = []byte{0x1A, 0x45, 0xDF, 0xA3}

const (
	idEBML          = 0x1A45DFA3
	idDocType       = 0x4282
	idSegment       = 0x18538067
	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idDuration      = 0x4489
	idTracks        = 0x1654AE6B
	idTrackEntry    = 0xAE
	idTrackType     = 0x83
	idCodecID       = 0x86
	idVideo         = 0xE0
	idPixelWidth    = 0xB0
	idPixelHeight   = 0xBA
	idAudio         = 0xE1
	idSamplingFreq  = 0xB5
	idChannels      = 0x9F
	idCluster       = 0x1F43B675
)

type ebmlElem struct {
	id             uint32
	off, data, end int64
	unknown        bool // unknown size: runs to the end of its parent
}

// vint reads a variable-length integer of at most maxLen bytes; marker
// keeps the length marker (element IDs are written with it).
func vint(b []byte, maxLen int, marker bool) (v uint64, n int, allOnes bool, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false, false
	}
	n = 1
	for b[0]&(0x80>>(n-1)) == 0 {
		n++
	}
	if n > maxLen || n > len(b) {
		return 0, 0, false, false
	}
	v = uint64(b[0])
	if !marker {
		v &= uint64(0xFF >> n)
	}
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, v == uint64(1)<<(7*n)-1, true
}

func readElem(r io.ReaderAt, off, end int64) (ebmlElem, error) {
	var b [12]byte
	n := min(int64(len(b)), end-off)
	if n < 2 {
		return ebmlElem{}, fmt.Errorf("%w: EBML element at %d", ErrMalformed, off)
	}
	if err := readAt(r, b[:n], off); err != nil {
		return ebmlElem{}, err
	}
	id, idLen, _, ok := vint(b[:n], 4, true)
	if !ok {
		return ebmlElem{}, fmt.Errorf("%w: EBML ID at %d", ErrMalformed, off)
	}
	size, sizeLen, unknown, ok := vint(b[idLen:n], 8, false)
	if !ok {
		return ebmlElem{}, fmt.Errorf("%w: EBML size at %d", ErrMalformed, off)
	}
	e := ebmlElem{id: uint32(id), off: off, data: off + int64(idLen+sizeLen), unknown: unknown}
	switch {
	case unknown:
		e.end = end
	case size > uint64(end-e.data):
		return e, fmt.Errorf("%w: EBML element 0x%X at %d runs past its parent", ErrMalformed, id, off)
	default:
		e.end = e.data + int64(size)
	}
	return e, nil
}

var errStop = errors.New("stop")

// eachElem calls fn for the elements in [from, end); fn may return
// errStop to end the walk without error.
func eachElem(ctx context.Context, r io.ReaderAt, from, end int64, fn func(ebmlElem) error) error {
	for i, off := 0, from; end-off >= 2; i++ {
		if i == maxBoxes {
			return fmt.Errorf("%w: more than %d EBML elements", ErrMalformed, maxBoxes)
		}
		if i%256 == 255 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e, err := readElem(r, off, end)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
		if e.unknown {
			return nil // cannot be skipped
		}
		off = e.end
	}
	return nil
}

func elemUint(r io.ReaderAt, e ebmlElem) uint64 {
	n := e.end - e.data
	if n < 1 || n > 8 {
		return 0
	}
	var b [8]byte
	if readAt(r, b[8-n:], e.data) != nil {
		return 0
	}
	return binary.BigEndian.Uint64(b[:])
}

func elemFloat(r io.ReaderAt, e ebmlElem) float64 {
	var b [8]byte
	switch e.end - e.data {
	case 4:
		if readAt(r, b[:4], e.data) == nil {
			return float64(math.Float32frombits(binary.BigEndian.Uint32(b[:])))
		}
	case 8:
		if readAt(r, b[:], e.data) == nil {
			return math.Float64frombits(binary.BigEndian.Uint64(b[:]))
		}
	}
	return 0
}

func elemString(r io.ReaderAt, e ebmlElem) string {
	b := make([]byte, min(e.end-e.data, 64))
	if readAt(r, b, e.data) != nil {
		return ""
	}
	return printable(strings.TrimRight(string(b), "\x00"))
}

type webmTrack struct {
	typ           uint64 // 1 video, 2 audio
	codec         string
	width, height int
	rate          float64
	channels      int
}

type webmFile struct {
	docType   string
	timescale uint64 // nanoseconds per tick
	duration  float64
	tracks    []webmTrack
}

func parseWebM(ctx context.Context, r io.ReaderAt, size int64) (webmFile, error) {
	f := webmFile{timescale: 1_000_000}
	seenSegment := false
	err := eachElem(ctx, r, 0, size, func(top ebmlElem) error {
		switch top.id {
		case idEBML:
			return eachElem(ctx, r, top.data, top.end, func(e ebmlElem) error {
				if e.id == idDocType {
					f.docType = elemString(r, e)
				}
				return nil
			})
		case idSegment:
			seenSegment = true
			return parseSegment(ctx, r, top, &f)
		}
		return nil
	})
	if err == nil && (f.docType == "" || !seenSegment) {
		err = fmt.Errorf("%w: no EBML header or segment", ErrMalformed)
	}
	return f, err
}

func parseSegment(ctx context.Context, r io.ReaderAt, seg ebmlElem, f *webmFile) error {
	var info, tracks bool
	err := eachElem(ctx, r, seg.data, seg.end, func(e ebmlElem) error {
		switch e.id {
		case idInfo:
			info = true
			return eachElem(ctx, r, e.data, e.end, func(c ebmlElem) error {
				switch c.id {
				case idTimecodeScale:
					if ts := elemUint(r, c); ts > 0 {
						f.timescale = ts
					}
				case idDuration:
					f.duration = elemFloat(r, c)
				}
				return nil
			})
		case idTracks:
			tracks = true
			return eachElem(ctx, r, e.data, e.end, func(c ebmlElem) error {
				if c.id != idTrackEntry || len(f.tracks) == maxTracks {
					return nil
				}
				t, err := parseTrackEntry(ctx, r, c)
				f.tracks = append(f.tracks, t)
				return err
			})
		case idCluster:
			return errStop // the header elements come before the media
		}
		if info && tracks {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

func parseTrackEntry(ctx context.Context, r io.ReaderAt, entry ebmlElem) (webmTrack, error) {
	var t webmTrack
	err := eachElem(ctx, r, entry.data, entry.end, func(e ebmlElem) error {
		switch e.id {
		case idTrackType:
			t.typ = elemUint(r, e)
		case idCodecID:
			t.codec = elemString(r, e)
		case idVideo:
			return eachElem(ctx, r, e.data, e.end, func(c ebmlElem) error {
				switch c.id {
				case idPixelWidth:
					t.width = int(min(elemUint(r, c), 1<<31))
				case idPixelHeight:
					t.height = int(min(elemUint(r, c), 1<<31))
				}
				return nil
			})
		case idAudio:
			return eachElem(ctx, r, e.data, e.end, func(c ebmlElem) error {
				switch c.id {
				case idSamplingFreq:
					t.rate = elemFloat(r, c)
				case idChannels:
					t.channels = int(min(elemUint(r, c), 255))
				}
				return nil
			})
		}
		return nil
	})
	return t, err
}

func (f webmFile) track(typ uint64) *webmTrack {
	for i := range f.tracks {
		if f.tracks[i].typ == typ {
			return &f.tracks[i]
		}
	}
	return nil
}

func (f webmFile) length() time.Duration {
	ns := f.duration * float64(f.timescale)
	if !(ns > 0 && ns < math.MaxInt64) {
		return 0
	}
	return time.Duration(ns)
}

func sniffEBML(r io.ReaderAt, size int64) (string, Kind) {
	f, _ := parseWebM(context.Background(), r, size)
	family := ""
	switch f.docType {
	case "webm":
		family = "webm"
	case "matroska":
		family = "x-matroska"
	default:
		return octetStream, KindFile
	}
	if f.track(1) == nil && f.track(2) != nil {
		return "audio/" + family, KindAudio
	}
	return "video/" + family, KindVideo
}

var webmCodecs = map[string]string{
	"V_VP8": "vp8", "V_VP9": "vp9", "V_AV1": "av1", "V_MPEG4/ISO/AVC": "h264", "V_MPEGH/ISO/HEVC": "h265",
	"A_OPUS": "opus", "A_VORBIS": "vorbis", "A_AAC": "aac", "A_FLAC": "flac", "A_MPEG/L3": "mp3",
}

func webmCodec(id string) string {
	if c := webmCodecs[id]; c != "" {
		return c
	}
	return strings.ToLower(id)
}

// probeWebM describes the video track, or else the audio track.
func probeWebM(ctx context.Context, r io.ReaderAt, size int64) (*Audio, *Video, error) {
	f, err := parseWebM(ctx, r, size)
	if err != nil {
		return nil, nil, err
	}
	if v := f.track(1); v != nil {
		return nil, &Video{Codec: webmCodec(v.codec), Duration: f.length(), Width: v.width, Height: v.height, HasAudio: f.track(2) != nil}, nil
	}
	if a := f.track(2); a != nil {
		rate := 0
		if a.rate > 0 && a.rate < 1e7 {
			rate = int(a.rate)
		}
		return &Audio{Codec: webmCodec(a.codec), Duration: f.length(), SampleRate: rate, Channels: a.channels}, nil, nil
	}
	return nil, nil, nil
}

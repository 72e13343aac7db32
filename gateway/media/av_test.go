package media_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway/media"
)

// loudThenQuiet is n packet sizes: the first half loud, the second quiet.
func loudThenQuiet(n, loud, quiet int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = loud
		if i >= n/2 {
			s[i] = quiet
		}
	}
	return s
}

// checkHalves wants the first half of the bars at 255 and the second at 0
// (the bar in the middle may be between).
func checkHalves(t *testing.T, w []byte, bars int) {
	t.Helper()
	if len(w) != bars {
		t.Fatalf("waveform of %d bars, want %d", len(w), bars)
	}
	for i, v := range w {
		switch {
		case i < bars/2-1 && v != 255, i > bars/2 && v != 0:
			t.Fatalf("waveform %v", w)
		}
	}
}

// TestOggOpus: 150 packets of 20 ms after a pre-skip of 312 samples are
// 3 s; loud packets first, quiet after.
func TestOggOpus(t *testing.T) {
	file := oggOpus(312, loudThenQuiet(150, 120, 20))
	info := mustProbe(t, file, media.Options{})
	if info.Mime != "audio/ogg" || info.Kind != media.KindAudio || info.Audio == nil {
		t.Fatalf("%+v", info)
	}
	a := info.Audio
	if a.Duration != 3*time.Second || a.Codec != "opus" || a.Channels != 1 || a.SampleRate != 16000 {
		t.Errorf("%+v", a)
	}
	checkHalves(t, a.Waveform, 64)
	info = mustProbe(t, file, media.Options{WaveformBars: 10})
	checkHalves(t, info.Audio.Waveform, 10)
}

// TestOggOpusLastPage: the last page must pass its CRC and be whole;
// otherwise the one before it gives the duration.
func TestOggOpusLastPage(t *testing.T) {
	file := oggOpus(312, loudThenQuiet(150, 120, 20))
	bad := append([]byte{}, file...)
	bad[len(bad)-5] ^= 0xFF // in the last page's payload
	if a := mustProbe(t, bad, media.Options{}).Audio; a == nil || a.Duration != 2*time.Second {
		t.Errorf("corrupt last page: %+v", a)
	}
	if a := mustProbe(t, file[:len(file)-10], media.Options{}).Audio; a == nil || a.Duration != 2*time.Second {
		t.Errorf("truncated last page: %+v", a)
	}
	head := append([]byte{}, file...)
	head[40] ^= 0xFF // inside OpusHead
	if _, err := probe(t, head, media.Options{}); !errors.Is(err, media.ErrMalformed) {
		t.Errorf("corrupt OpusHead page: %v", err)
	}
}

// TestOggShort: fewer packets than bars still fills every bar.
func TestOggShort(t *testing.T) {
	a := mustProbe(t, oggOpus(0, []int{10, 30, 50}), media.Options{}).Audio
	if a.Duration != 60*time.Millisecond || len(a.Waveform) != 64 || a.Waveform[0] != 0 || a.Waveform[63] != 255 {
		t.Errorf("%+v", a)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r    io.ReaderAt
	read int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// TestOggReadsHeaders: only page headers, the first and the last page
// are read, not the audio.
func TestOggReadsHeaders(t *testing.T) {
	file := oggOpus(312, loudThenQuiet(3000, 250, 100)) // 60 s, 60 pages
	cr := &countingReader{r: bytes.NewReader(file)}
	info, err := media.Probe(context.Background(), cr, int64(len(file)), media.Options{})
	if err != nil || info.Audio.Duration != time.Minute {
		t.Fatalf("%+v, %v", info.Audio, err)
	}
	if cr.read > int64(len(file))/4 {
		t.Errorf("read %d of %d bytes", cr.read, len(file))
	}
}

// TestMP4Audio: an M4A (moov after mdat) is audio by its one sound track,
// with the mdhd duration and a waveform from stsz.
func TestMP4Audio(t *testing.T) {
	sizes := make([]uint32, 431)
	for i := range sizes {
		sizes[i] = 400
		if i >= len(sizes)/2 {
			sizes[i] = 100
		}
	}
	info := mustProbe(t, m4a(sizes), media.Options{})
	if info.Mime != "audio/mp4" || info.Kind != media.KindAudio || info.Audio == nil || info.Video != nil {
		t.Fatalf("%+v", info)
	}
	a := info.Audio
	want := time.Duration(431*1024) * time.Second / 44100
	if a.Duration != want || a.Codec != "aac" || a.Channels != 1 || a.SampleRate != 44100 {
		t.Errorf("%+v, want duration %v", a, want)
	}
	checkHalves(t, a.Waveform, 64)
}

// movie is an MP4 with a rotated 1920x1080 H.264 track and an AAC track,
// its duration in a version 1 mvhd.
func movie(brand string) []byte {
	video := trak(tkhd(1920, 1080, true), mdhd(90000, 90000*12), hdlr("vide"),
		stbl(avc1Entry(1920, 1080), [][2]uint32{{300, 3600}}, make([]uint32, 300)))
	audio := trak(tkhd(0, 0, false), mdhd(48000, 48000*12), hdlr("soun"),
		stbl(mp4aEntry(2, 48000), [][2]uint32{{10, 1024}}, make([]uint32, 10)))
	moov := mp4Box("moov", mvhd(1, 600, 7500), video, audio)
	ftyp := mp4Box("ftyp", []byte(brand), u32(0), []byte(brand+"mp41"))
	return append(append(ftyp, moov...), mp4Box("mdat", make([]byte, 1000))...)
}

func TestMP4Video(t *testing.T) {
	for brand, mime := range map[string]string{"isom": "video/mp4", "qt  ": "video/quicktime", "3gp5": "video/3gpp"} {
		info := mustProbe(t, movie(brand), media.Options{})
		if info.Mime != mime || info.Kind != media.KindVideo || info.Video == nil || info.Audio != nil {
			t.Fatalf("%s: %+v", brand, info)
		}
		v := info.Video
		if v.Duration != 12500*time.Millisecond || v.Width != 1080 || v.Height != 1920 || v.Rotation != 90 || v.Codec != "h264" || !v.HasAudio {
			t.Errorf("%s: %+v", brand, v)
		}
	}
}

// sparseFile is a huge file of zeros but for a few parts, read without
// holding it.
type sparseFile struct {
	size  int64
	parts map[int64][]byte
	read  int64
}

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-off))
	clear(p[:n])
	offs := make([]int64, 0, len(s.parts))
	for o := range s.parts {
		offs = append(offs, o)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	for _, o := range offs {
		d := s.parts[o]
		lo, hi := max(o, off), min(o+int64(len(d)), off+int64(n))
		if lo < hi {
			copy(p[lo-off:hi-off], d[lo-o:hi-o])
		}
	}
	s.read += int64(n)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestMP4Seeks: moov after a 5 GB mdat (a 64-bit box size) is found by
// seeking; a few kilobytes are read.
func TestMP4Seeks(t *testing.T) {
	ftyp := mp4Box("ftyp", []byte("isom"), u32(0), []byte("isom"))
	const mdatSize = 5 << 30
	mdat := append(append(u32(1), "mdat"...), u64(mdatSize)...)
	mv := movie("isom")
	moov := mv[bytes.Index(mv, []byte("moov"))-4 : bytes.Index(mv, []byte("mdat"))-4]
	moovAt := int64(len(ftyp)) + mdatSize
	f := &sparseFile{size: moovAt + int64(len(moov)), parts: map[int64][]byte{0: append(ftyp, mdat...), moovAt: moov}}
	info, err := media.Probe(context.Background(), f, f.size, media.Options{})
	if err != nil || info.Mime != "video/mp4" || info.Video == nil || info.Video.Width != 1080 {
		t.Fatalf("%+v, %v", info, err)
	}
	if f.read > 64<<10 {
		t.Errorf("read %d bytes", f.read)
	}
}

// TestMP4Broken: a box running past its container is ErrMalformed, the
// type is still known from ftyp.
func TestMP4Broken(t *testing.T) {
	file := movie("isom")
	i := bytes.Index(file, []byte("trak"))
	bad := append([]byte{}, file...)
	copy(bad[i-4:], u32(1<<30))
	info, err := probe(t, bad, media.Options{})
	if !errors.Is(err, media.ErrMalformed) || info.Mime != "video/mp4" {
		t.Errorf("%+v, %v", info, err)
	}
}

func TestWebM(t *testing.T) {
	info := mustProbe(t, webmFile(2500, webmVideoTrack("V_VP9", 640, 360), webmAudioTrack("A_OPUS", 48000, 2)), media.Options{})
	if info.Mime != "video/webm" || info.Kind != media.KindVideo || info.Video == nil {
		t.Fatalf("%+v", info)
	}
	if v := info.Video; v.Duration != 2500*time.Millisecond || v.Width != 640 || v.Height != 360 || v.Codec != "vp9" || !v.HasAudio {
		t.Errorf("%+v", v)
	}
	info = mustProbe(t, webmFile(1234.5, webmAudioTrack("A_OPUS", 48000, 1)), media.Options{})
	if info.Mime != "audio/webm" || info.Kind != media.KindAudio || info.Audio == nil {
		t.Fatalf("%+v", info)
	}
	if a := info.Audio; a.Duration != 1234500*time.Microsecond || a.Codec != "opus" || a.SampleRate != 48000 || a.Channels != 1 || a.Waveform != nil {
		t.Errorf("%+v", a)
	}
}

// TestWebMRecorder: a segment of unknown size without Duration, as
// browsers record: tracks are read, the duration is unknown.
func TestWebMRecorder(t *testing.T) {
	header := ebml(0x1A45DFA3, ebml(0x4282, []byte("webm")))
	seg := append([]byte{0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		ebml(0x1549A966, ebmlUint(0x2AD7B1, 1_000_000))...)
	seg = append(seg, ebml(0x1654AE6B, webmAudioTrack("A_OPUS", 48000, 1))...)
	seg = append(seg, 0x1F, 0x43, 0xB6, 0x75, 0xFF) // a cluster of unknown size
	seg = append(seg, make([]byte, 500)...)
	info := mustProbe(t, append(header, seg...), media.Options{})
	if info.Mime != "audio/webm" || info.Audio == nil || info.Audio.Duration != 0 || info.Audio.Codec != "opus" {
		t.Errorf("%+v %+v", info, info.Audio)
	}
}

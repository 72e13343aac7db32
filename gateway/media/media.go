package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Kind is what a client shows an attachment as.
type Kind string

const (
	KindImage Kind = "image"
	KindAudio Kind = "audio" // voice notes and other sound
	KindVideo Kind = "video"
	KindFile  Kind = "file" // everything else, and whatever is not recognised
)

var (
	// ErrTooManyPixels refuses an image whose width × height exceeds
	// Options.MaxPixels, before anything is decoded (decompression bombs).
	ErrTooManyPixels = errors.New("media: image has too many pixels")
	// ErrMalformed: the bytes start like a known format but their
	// structure is broken or truncated.
	ErrMalformed = errors.New("media: malformed file")
	// ErrUnsupported: StripLocation does not know how to rewrite the format.
	ErrUnsupported = errors.New("media: unsupported format")
)

// Options bound and tune Probe. Defaults() fills what is unset.
type Options struct {
	// MaxPixels refuses larger images with ErrTooManyPixels (default
	// 100,000,000). Decoding holds the whole picture in memory: up to about
	// 4 bytes per pixel (PNG, GIF, WebP), 1.5 to 3 for JPEG, more for a
	// progressive JPEG, whose coefficients are kept until the last scan.
	MaxPixels int64
	// ThumbnailSize is the longest side of the thumbnail in pixels
	// (default 320). Smaller images are not enlarged.
	ThumbnailSize int
	// ThumbnailQuality is the JPEG quality of the thumbnail, 1–100 (default 75).
	ThumbnailQuality int
	// NoThumbnail skips decoding: only type, dimensions, orientation and
	// location flags are derived (unless Placeholder is set).
	NoThumbnail bool
	// Placeholder computes Image.Placeholder (see its format there).
	Placeholder bool
	// WaveformBars is the number of values of Audio.Waveform (default 64).
	WaveformBars int
}

// DefaultOptions is used for every zero field of Options.
var DefaultOptions = Options{
	MaxPixels:        100_000_000,
	ThumbnailSize:    320,
	ThumbnailQuality: 75,
	WaveformBars:     64,
}

// Defaults returns o with every unset field given its default.
func (o Options) Defaults() Options {
	if o.MaxPixels == 0 {
		o.MaxPixels = DefaultOptions.MaxPixels
	}
	if o.ThumbnailSize == 0 {
		o.ThumbnailSize = DefaultOptions.ThumbnailSize
	}
	if o.ThumbnailQuality == 0 {
		o.ThumbnailQuality = DefaultOptions.ThumbnailQuality
	}
	if o.WaveformBars == 0 {
		o.WaveformBars = DefaultOptions.WaveformBars
	}
	return o
}

// Validate reports every out-of-range setting.
func (o Options) Validate() error {
	var errs []error
	if o.MaxPixels < 1 {
		errs = append(errs, fmt.Errorf("media: MaxPixels %d must be positive", o.MaxPixels))
	}
	if o.ThumbnailSize < 1 || o.ThumbnailSize > 4096 {
		errs = append(errs, fmt.Errorf("media: ThumbnailSize %d must be 1–4096", o.ThumbnailSize))
	}
	if o.ThumbnailQuality < 1 || o.ThumbnailQuality > 100 {
		errs = append(errs, fmt.Errorf("media: ThumbnailQuality %d must be 1–100", o.ThumbnailQuality))
	}
	if o.WaveformBars < 1 || o.WaveformBars > 4096 {
		errs = append(errs, fmt.Errorf("media: WaveformBars %d must be 1–4096", o.WaveformBars))
	}
	return errors.Join(errs...)
}

// Info is what Probe learned from a file's bytes. At most one of Image,
// Audio and Video is set, and none for a KindFile or when the format gives
// nothing more than its type (MP3, WAV, FLAC).
type Info struct {
	Mime string // media type, from the bytes alone; parameters only for text
	Kind Kind
	Size int64
	// Image is set for JPEG, PNG, GIF and WebP (with a thumbnail) and for
	// HEIF/HEIC/AVIF (dimensions only: Go decodes neither HEVC nor AV1).
	Image *Image
	Audio *Audio
	Video *Video
}

// Image describes a picture as it is displayed.
type Image struct {
	// Width and Height as displayed: swapped when Orientation is 5–8.
	Width, Height int
	// Orientation is the EXIF orientation, 1–8 (1 when there is none).
	Orientation int
	// HasLocation: the file carries GPS coordinates (an EXIF GPS IFD, or
	// GPS fields in XMP). StripLocation removes them.
	HasLocation bool
	// Animated: an animated GIF, PNG (APNG) or WebP; the thumbnail, if
	// any, is of its first frame (none for animated WebP, which Go cannot
	// decode).
	Animated bool
	// Thumbnail is a baseline JPEG whose longest side is at most
	// Options.ThumbnailSize, orientation applied, transparency over white.
	Thumbnail                       []byte
	ThumbnailWidth, ThumbnailHeight int
	// Placeholder, with Options.Placeholder, is a grid of average colours
	// to paint, smoothly stretched, while the thumbnail loads: one byte
	// cols<<4|rows (the long side has 4 cells, the short side 1–4 after the
	// displayed aspect ratio), then cols×rows sRGB triples, row by row; at
	// most 49 bytes.
	Placeholder []byte
}

// Audio describes a sound file (a voice note).
type Audio struct {
	Codec      string // "opus", "aac", "mp3" (in MP4), or the sample entry's code
	Duration   time.Duration
	SampleRate int // the encoder's input rate for Opus (it always decodes at 48 kHz)
	Channels   int
	// Waveform has Options.WaveformBars values 0–255 over the duration.
	// Nothing is decoded: each value is the mean size of the compressed
	// packets (Opus) or samples (AAC) in its slice of time, scaled so the
	// smallest is 0 and the largest 255. Variable-bitrate encoders spend
	// more bytes on louder, busier sound, so this follows loudness
	// roughly; a constant-bitrate file gives a flat 255. Nil for WebM.
	Waveform []byte
}

// Video describes a video file; nothing is decoded.
type Video struct {
	Codec    string // "h264", "h265", "vp8", "vp9", "av1", … or the raw code
	Duration time.Duration
	// Width and Height as displayed: swapped when Rotation is 90 or 270.
	Width, Height int
	// Rotation in degrees clockwise from the MP4 track matrix (0, 90, 180, 270).
	Rotation int
	HasAudio bool
}

// Probe derives what Parley records about an uploaded file from its bytes
// alone: type and kind (see Sniff), then image, audio or video metadata.
// Images are decoded (streamed from r) only for the thumbnail and the
// placeholder, after their dimensions passed Options.MaxPixels; audio,
// video and other files are read by seeking through their structure,
// never whole into memory.
//
// On error Info still holds what was learned (Mime, Kind and Size at
// least); errors are ErrTooManyPixels, ErrMalformed, a read error of r, or
// the context's.
func Probe(ctx context.Context, r io.ReaderAt, size int64, opts Options) (Info, error) {
	opts = opts.Defaults()
	if err := opts.Validate(); err != nil {
		return Info{}, err
	}
	mime, kind := Sniff(r, size)
	info := Info{Mime: mime, Kind: kind, Size: size}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	var err error
	switch mime {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		info.Image, err = probeImage(ctx, r, size, mime, opts)
	case "image/heic", "image/heif", "image/avif":
		info.Image, err = probeHEIF(ctx, r, size)
	case "audio/ogg":
		info.Audio, err = probeOgg(ctx, r, size, opts)
		if errors.Is(err, errNotOpus) {
			info.Audio, err = nil, nil // Vorbis, FLAC, Speex: type only
		}
	case "audio/mp4", "video/mp4", "video/quicktime", "audio/3gpp", "video/3gpp":
		info.Audio, info.Video, err = probeMP4(ctx, r, size, opts)
	case "audio/webm", "video/webm", "audio/x-matroska", "video/x-matroska":
		info.Audio, info.Video, err = probeWebM(ctx, r, size)
	}
	return info, err
}

// readAt fills p from off; a short read is ErrMalformed.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return fmt.Errorf("%w: truncated at offset %d", ErrMalformed, off)
	}
	return err
}

// ctxReader fails reads once its context is done, so a decoder working
// through a large image stops soon after cancellation.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// seconds converts a count of ticks of a timescale to a Duration without
// overflowing for long media.
func seconds(ticks, timescale uint64) time.Duration {
	if timescale == 0 {
		return 0
	}
	s := ticks / timescale
	rem := ticks % timescale
	if s > uint64(1<<63-1)/uint64(time.Second) {
		return 0
	}
	return time.Duration(s)*time.Second + time.Duration(rem*uint64(time.Second)/timescale)
}

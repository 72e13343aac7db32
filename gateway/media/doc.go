// Package media derives what Parley records about an uploaded attachment
// from its bytes alone, never from the name or type the client claims:
// its media type and kind (image, audio, video, file), image dimensions
// as displayed, EXIF orientation, a thumbnail and a placeholder, voice
// note duration and waveform, video duration and size. It also rewrites
// images without their location (StripLocation).
//
// It owns only that reading and rewriting, in pure Go: it stores nothing,
// talks to no server and knows nothing of devices, commands or events.
// It is meant for the gateway's upload path, which decides what to accept.
//
// # Type sniffing
//
// Sniff uses the standard library and its own magic numbers rather than
// a detection library, because the decisions that matter here need the
// container parsers this package has anyway: an MP4 is audio or video by
// its tracks (not its brand), an Ogg by its first stream's codec, a ZIP
// (DOCX, XLSX, PPTX, OpenDocument, EPUB) by its central directory, read
// through ReadAt wherever it is. Text is recognised as text/plain only,
// so nothing is ever labelled HTML or SVG, types a browser would run.
// Anything unrecognised is application/octet-stream. Allowed matches a
// type against an allow-list such as "image/*,audio/ogg,application/pdf".
//
// # Images
//
// JPEG, PNG, GIF and WebP (golang.org/x/image/webp) are checked against
// Options.MaxPixels from their header before any pixel is decoded
// (ErrTooManyPixels, default 100 MP), then decoded for a JPEG thumbnail
// (longest side Options.ThumbnailSize, default 320, orientation applied,
// transparency over white; a box filter then Catmull-Rom from
// golang.org/x/image/draw) and, if asked, a placeholder of at most 4×4
// average colours in 49 bytes (see Image.Placeholder). Width and height
// are as displayed: swapped for EXIF orientations 5–8. The orientation is
// read from the JPEG EXIF segment, the PNG eXIf chunk and the WebP EXIF
// chunk with a minimal TIFF reader of this package (IFD0 only). HEIF,
// HEIC and AVIF give their dimensions, rotation and whether their Exif
// item has GPS, but no thumbnail: Go has no HEVC or AV1 decoder. Neither
// can it decode animated WebP (no thumbnail); animated GIF and APNG give
// their first frame.
//
// # Location
//
// StripLocation rewrites JPEG, PNG, WebP and GIF losslessly, streaming
// from a reader to a writer: GPS (and with it all other EXIF but the
// orientation, XMP, IPTC and JPEG's appended MPF images) is removed and
// the orientation kept; see StripLocation for each format. HEIF is not
// rewritten (ErrUnsupported); Image.HasLocation tells whether it matters.
//
// # Voice notes and video
//
// Ogg Opus: the duration is the last page's granule position minus the
// pre-skip, at 48 kHz, the last page found from the end of the file and
// checked by its CRC. AAC (or any codec) in MP4/M4A: the duration is the
// track's mdhd, else the movie's mvhd (or mehd when fragmented). Edit
// lists and the encoder delay of AAC are not subtracted.
//
// Go has no Opus or AAC decoder in its standard library, and this
// package decodes no audio at all. The waveform (Options.WaveformBars
// values 0–255, default 64) is therefore made from the size of each
// compressed packet over time: Opus packet sizes from the Ogg lacing
// tables, AAC sample sizes from the MP4 stsz table, timed by granule
// positions and stts. A variable-bitrate encoder spends more bytes on
// louder and busier sound, so this follows the loudness of speech
// roughly; it is not a level meter, and a constant-bitrate file gives a
// flat line.
//
// MP4/MOV/3GP and WebM/Matroska videos give duration, codec, and width
// and height as displayed (an MP4 track matrix's quarter turn applied);
// nothing is decoded. WebM as browsers record it has no duration in its
// header, and none is given.
//
// # Bounds
//
// Only images are decoded, and only after the pixel check; a decoded
// image of N pixels takes about 4N bytes of memory. Audio, video and
// other files are never read whole: Probe seeks through boxes, pages,
// elements and tables with ReadAt, reading each table in chunks; the
// number of boxes or elements per container, of tracks, of ZIP entries
// examined and of bytes of any metadata block parsed (1 MiB) are capped.
// A cancelled context stops Probe between reads.
package media

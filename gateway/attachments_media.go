package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/parley-im/parley/gateway/media"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// prepare learns what the log records of a staged upload from its bytes
// (gateway/media): its type and kind, refused when not allowed or when it
// contradicts the declared type; an image's location stripped (unless
// KeepLocation) and its thumbnail made; audio and video metadata. Once
// the bytes passed the virus scan (when a Scanner is configured) it stores
// them (and the thumbnail) in the blob store and returns the Attachment
// without id, owner and time.
func (a *attachments) prepare(ctx context.Context, st *staged, name, declared string) (*pb.Attachment, error) {
	cfg := a.cfg
	info, err := a.probe(ctx, st)
	if err != nil {
		return nil, err
	}
	if !media.Allowed(info.Mime, cfg.AllowedTypes) {
		return nil, refuse(http.StatusUnsupportedMediaType, pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE,
			"files of type %s are not accepted here", info.Mime)
	}
	if declared != "" && !declaredMatches(declared, info.Mime) {
		return nil, refuse(http.StatusUnsupportedMediaType, pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE,
			"the upload says it is %s but its bytes are %s", declared, info.Mime)
	}
	if err := a.scan(ctx, st); err != nil {
		return nil, err
	}
	att := &pb.Attachment{Kind: kindOf(info.Kind), ContentType: baseType(info.Mime), Name: name}
	body := st
	if im := info.Image; im != nil {
		att.Image = &pb.ImageInfo{Width: int32(im.Width), Height: int32(im.Height), Orientation: int32(im.Orientation), Placeholder: im.Placeholder}
		if im.HasLocation && !cfg.KeepLocation {
			stripped, err := a.stripLocation(st)
			if err != nil {
				return nil, err
			}
			defer stripped.remove()
			body, att.Image.LocationStripped = stripped, true
		}
		if len(im.Thumbnail) > 0 {
			sum := sha256.Sum256(im.Thumbnail)
			th := &pb.Thumbnail{Sha256: hex.EncodeToString(sum[:]), ContentType: "image/jpeg", Width: int32(im.ThumbnailWidth),
				Height: int32(im.ThumbnailHeight), Size: int64(len(im.Thumbnail))}
			if err := a.put(ctx, th.GetSha256(), th.GetSize(), th.GetContentType(), func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(im.Thumbnail)), nil
			}); err != nil {
				return nil, err
			}
			att.Thumbnail = th
		}
	}
	if au := info.Audio; au != nil && info.Kind == media.KindAudio {
		att.Audio = &pb.AudioInfo{DurationMs: au.Duration.Milliseconds(), Waveform: au.Waveform}
	}
	if v := info.Video; v != nil {
		att.Video = &pb.VideoInfo{DurationMs: v.Duration.Milliseconds(), Width: int32(v.Width), Height: int32(v.Height)}
	}
	att.Size, att.Sha256 = body.size, body.sha256
	if err := a.put(ctx, body.sha256, body.size, att.GetContentType(), func() (io.ReadCloser, error) { return body.open() }); err != nil {
		return nil, err
	}
	return att, nil
}

// probe runs media.Probe on the staged file, turning its refusals into
// answers.
func (a *attachments) probe(ctx context.Context, st *staged) (media.Info, error) {
	f, err := st.open()
	if err != nil {
		return media.Info{}, err
	}
	defer f.Close()
	info, err := media.Probe(ctx, f, st.size, media.Options{ThumbnailSize: a.cfg.ThumbnailPixels, Placeholder: true})
	switch {
	case errors.Is(err, media.ErrTooManyPixels):
		return info, refuse(http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_FILE_TOO_LARGE, "%v", err)
	case errors.Is(err, media.ErrMalformed):
		return info, refuse(http.StatusUnsupportedMediaType, pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE,
			"the bytes start like %s but are not a valid one: %v", info.Mime, err)
	case err != nil:
		return info, err
	}
	return info, nil
}

// stripLocation writes the staged image without its location to a new
// staged file, with its own digest.
func (a *attachments) stripLocation(st *staged) (*staged, error) {
	in, err := st.open()
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.CreateTemp(a.cfg.StagingDir, "stripped-*")
	if err != nil {
		return nil, err
	}
	s := &staged{path: out.Name()}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	err = media.StripLocation(cw, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.remove()
		return nil, refuse(http.StatusUnsupportedMediaType, pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE,
			"the image's location could not be removed: %v", err)
	}
	s.size, s.sha256 = cw.n, hex.EncodeToString(h.Sum(nil))
	return s, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func kindOf(k media.Kind) pb.AttachmentKind {
	switch k {
	case media.KindImage:
		return pb.AttachmentKind_ATTACHMENT_KIND_IMAGE
	case media.KindAudio:
		return pb.AttachmentKind_ATTACHMENT_KIND_AUDIO
	case media.KindVideo:
		return pb.AttachmentKind_ATTACHMENT_KIND_VIDEO
	}
	return pb.AttachmentKind_ATTACHMENT_KIND_FILE
}

// baseType is a media type without its parameters, lower case.
func baseType(t string) string {
	if mt, _, err := mime.ParseMediaType(t); err == nil {
		return mt
	}
	return strings.ToLower(t)
}

// declaredMatches reports whether the type an uploader declared agrees with
// the sniffed one: the same type, or the same top-level type (image/jpg for
// image/jpeg), or no claim at all (application/octet-stream, or the form
// encoding an HTTP client sends for a body it was given no type for, as
// curl --data-binary does). Any other claim is a spoof: a file that says it
// is an image and is not one.
func declaredMatches(declared, sniffed string) bool {
	declared, sniffed = baseType(declared), baseType(sniffed)
	switch declared {
	case sniffed, "application/octet-stream", "application/x-www-form-urlencoded":
		return true
	}
	top := func(t string) string { top, _, _ := strings.Cut(t, "/"); return top }
	return top(declared) == top(sniffed) && top(declared) != "application"
}

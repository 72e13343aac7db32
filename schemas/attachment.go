package schemas

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Attachments (README.md, "Attachments"): the bytes are in a blob store,
// the facts about them in the log. These bounds and checks are shared by
// the gateway (which builds an Attachment from the bytes it stored) and
// the decider (which refuses any other).
const (
	// MaxAttachmentsPerMessage bounds SendMessage.attachment_ids.
	MaxAttachmentsPerMessage = 10
	// MaxFileNameBytes bounds Attachment.name.
	MaxFileNameBytes = 255
	// MaxWaveformBytes bounds AudioInfo.waveform.
	MaxWaveformBytes = 256
	// MaxPlaceholderBytes bounds ImageInfo.placeholder.
	MaxPlaceholderBytes = 2048
	// maxMediaTypeBytes bounds Attachment.content_type (RFC 6838 allows
	// 127 bytes per part).
	maxMediaTypeBytes = 255
	// AttachmentIDHexDigits is the length of an attachment id.
	AttachmentIDHexDigits = 32
)

// NewAttachmentID returns a fresh attachment id: 32 lowercase hex digits.
func NewAttachmentID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// CheckAttachmentID checks id is 32 lowercase hex digits (NewAttachmentID).
func CheckAttachmentID(field, id string) error {
	if len(id) != AttachmentIDHexDigits || !isLowerHex(id) {
		return invalidID(field, "must be %d lowercase hex digits, got %s", AttachmentIDHexDigits, Clip(id))
	}
	return nil
}

// CheckSHA256 checks s is a SHA-256 digest in 64 lowercase hex digits.
func CheckSHA256(field, s string) error {
	if len(s) != 64 || !isLowerHex(s) {
		return invalidID(field, "must be a SHA-256 in 64 lowercase hex digits, got %s", Clip(s))
	}
	return nil
}

// CleanFileName makes an uploader's file name safe to store and to put in a
// Content-Disposition header: its last path element only, control and
// format characters dropped, surrounding space trimmed, at most
// MaxFileNameBytes bytes (cut at a rune boundary, keeping the extension
// when it is short). Invalid UTF-8 becomes U+FFFD. "." and ".." are empty.
func CleanFileName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "/" || name == "." || name == ".." {
		return ""
	}
	if len(name) <= MaxFileNameBytes {
		return name
	}
	ext := path.Ext(name)
	if len(ext) > 16 {
		ext = ""
	}
	stem := name[:len(name)-len(ext)]
	for len(stem)+len(ext) > MaxFileNameBytes {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return stem + ext
}

// CheckAttachment checks an Attachment as a gateway must build it: a
// well-formed id and digests, an owner, a known kind, a media type, a clean
// name, and bounded metadata.
func CheckAttachment(a *pb.Attachment) error {
	if a == nil {
		return fmt.Errorf("attachment: missing")
	}
	if err := CheckAttachmentID("attachment.attachment_id", a.GetAttachmentId()); err != nil {
		return err
	}
	if err := CheckSHA256("attachment.sha256", a.GetSha256()); err != nil {
		return err
	}
	switch {
	case a.GetOwnerUserId() == "":
		return fmt.Errorf("attachment.owner_user_id: missing")
	case a.GetKind() == pb.AttachmentKind_ATTACHMENT_KIND_UNSPECIFIED || pb.AttachmentKind_name[int32(a.GetKind())] == "":
		return fmt.Errorf("attachment.kind: unknown kind %d", a.GetKind())
	case a.GetContentType() == "" || len(a.GetContentType()) > maxMediaTypeBytes ||
		a.GetContentType() != strings.ToLower(a.GetContentType()) || !strings.Contains(a.GetContentType(), "/"):
		return fmt.Errorf("attachment.content_type: must be a lower-case media type of at most %d bytes", maxMediaTypeBytes)
	case a.GetName() != CleanFileName(a.GetName()):
		return fmt.Errorf("attachment.name: not a clean file name (schemas.CleanFileName)")
	case a.GetSize() < 0:
		return fmt.Errorf("attachment.size: negative")
	case a.GetUploadedAt() == nil:
		return fmt.Errorf("attachment.uploaded_at: missing")
	case len(a.GetAudio().GetWaveform()) > MaxWaveformBytes:
		return fmt.Errorf("attachment.audio.waveform: more than %d bytes", MaxWaveformBytes)
	case len(a.GetImage().GetPlaceholder()) > MaxPlaceholderBytes:
		return fmt.Errorf("attachment.image.placeholder: more than %d bytes", MaxPlaceholderBytes)
	}
	if th := a.GetThumbnail(); th != nil {
		if err := CheckSHA256("attachment.thumbnail.sha256", th.GetSha256()); err != nil {
			return err
		}
		if !strings.HasPrefix(th.GetContentType(), "image/") || th.GetSize() <= 0 {
			return fmt.Errorf("attachment.thumbnail: must be a non-empty image")
		}
	}
	return nil
}

// AttachmentLabel is how a preview names an attachment: "[image]",
// "[voice]", "[video]", or "[file] name".
func AttachmentLabel(a *pb.Attachment) string {
	switch a.GetKind() {
	case pb.AttachmentKind_ATTACHMENT_KIND_IMAGE:
		return "[image]"
	case pb.AttachmentKind_ATTACHMENT_KIND_AUDIO:
		return "[voice]"
	case pb.AttachmentKind_ATTACHMENT_KIND_VIDEO:
		return "[video]"
	}
	if a.GetName() == "" {
		return "[file]"
	}
	return "[file] " + a.GetName()
}

// MessagePreviewText is the text an inbox preview starts from for a
// message: its text, led by the label of its first attachment (and how
// many more there are) when it has any, e.g. "[image] look at this" or
// "[file] report.pdf (+2)".
func MessagePreviewText(text string, atts []*pb.Attachment) string {
	if len(atts) == 0 {
		return text
	}
	label := AttachmentLabel(atts[0])
	if len(atts) > 1 {
		label += fmt.Sprintf(" (+%d)", len(atts)-1)
	}
	if text == "" {
		return label
	}
	return label + " " + text
}

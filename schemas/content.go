package schemas

import (
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Content types of SendMessage.content_type with a documented form. Any
// other well-formed media type passes through untouched: Parley stores and
// delivers its bytes as they came, and clients that do not know it show a
// fallback.
const (
	// ContentText is plain UTF-8 text, the default.
	ContentText = "text/plain"
	// ContentMarkdown is UTF-8 text in a markdown dialect of the client's
	// choosing (emphasis, links, lists, code); Parley does not render it.
	ContentMarkdown = "text/markdown"
	// ContentCustom is an application-defined payload: a JSON object whose
	// "type" member (1–64 bytes) names what it is, for example
	// {"type":"approval.request","id":"PO-1182","amount":"420.00"}. At most
	// Limits.MaxCustomBytes (ingest) and always at most the message size.
	ContentCustom = "application/vnd.parley.custom+json"
	// MaxContentTypeBytes bounds content_type.
	MaxContentTypeBytes = 128
	// MaxCustomTypeBytes bounds the "type" member of a custom payload.
	MaxCustomTypeBytes = 64
)

// CheckContent checks a message's text against its content type: the type
// must be a media type ("type/subtype", parameters allowed), the text UTF-8;
// a custom payload must be a JSON object of at most maxCustom bytes with a
// "type" string of 1–MaxCustomTypeBytes bytes. It returns the content type
// with its media type lower-cased ("text/plain" when empty).
func CheckContent(contentType, text string, maxCustom int) (string, error) {
	if contentType == "" {
		contentType = ContentText
	}
	if len(contentType) > MaxContentTypeBytes {
		return "", fmt.Errorf("content_type longer than %d bytes", MaxContentTypeBytes)
	}
	media, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.Contains(media, "/") {
		return "", fmt.Errorf("content_type %q is not a media type (type/subtype)", Clip(contentType))
	}
	if !utf8.ValidString(text) {
		return "", fmt.Errorf("text is not UTF-8")
	}
	if media == ContentCustom {
		if len(text) > maxCustom {
			return "", fmt.Errorf("custom payload of %d bytes, limit %d", len(text), maxCustom)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(text), &obj); err != nil {
			return "", fmt.Errorf("custom payload is not a JSON object: %v", err)
		}
		var typ string
		if err := json.Unmarshal(obj["type"], &typ); err != nil || typ == "" || len(typ) > MaxCustomTypeBytes {
			return "", fmt.Errorf("custom payload needs a \"type\" string of 1 to %d bytes", MaxCustomTypeBytes)
		}
	}
	if len(params) == 0 {
		return media, nil
	}
	return mime.FormatMediaType(media, params), nil
}

// MaxEmojiBytes bounds a reaction (AddReaction.emoji).
const MaxEmojiBytes = 64

// CheckEmoji checks the form of a reaction: 1 to MaxEmojiBytes bytes of
// UTF-8 without spaces or control characters (an emoji, or a short code such
// as ":shipit:").
func CheckEmoji(emoji string) error {
	switch {
	case emoji == "":
		return fmt.Errorf("emoji is empty")
	case len(emoji) > MaxEmojiBytes:
		return fmt.Errorf("emoji of %d bytes, limit %d", len(emoji), MaxEmojiBytes)
	case !utf8.ValidString(emoji):
		return fmt.Errorf("emoji is not UTF-8")
	}
	for _, r := range emoji {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("emoji has a space or control character")
		}
	}
	return nil
}

// Editable reports whether a message of content type ct (as CheckContent
// returns it) can be edited, and an edit may take that type: plain text and
// markdown only.
func Editable(ct string) bool {
	media, _, _ := strings.Cut(ct, ";")
	media = strings.TrimSpace(media)
	return media == ContentText || media == ContentMarkdown
}

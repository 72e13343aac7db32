package schemas

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The documented forms of the ids a client names. Every edge (gateway frames,
// query paths and parameters, token claims) checks them with the functions
// below before anything is appended, read or logged, so one rule holds
// everywhere and an oversized id never reaches Kafka, Cassandra or a log line.
const (
	// MaxIDBytes bounds user, device, client message and request ids.
	MaxIDBytes = 128
	// ConversationIDHexDigits is the length of the hex part of "d:…" and
	// "g:…" conversation ids.
	ConversationIDHexDigits = 32
)

// IDError is a client-named id or cursor that breaks its documented form.
// Code is ERROR_CODE_INVALID_ID or ERROR_CODE_INVALID_CURSOR; Error() is a
// message fit for the client, which never repeats more than a bounded prefix
// of the offending value.
type IDError struct {
	Code    pb.ErrorCode
	Field   string
	Message string
}

func (e *IDError) Error() string { return e.Field + ": " + e.Message }

func invalidID(field, format string, args ...any) *IDError {
	return &IDError{Code: pb.ErrorCode_ERROR_CODE_INVALID_ID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CheckConversationID checks id against the two documented forms:
// "d:" + 32 lowercase hex digits (DirectConversationID) or "g:" + 32
// lowercase hex digits (NewGroupConversationID).
func CheckConversationID(field, id string) error {
	if id == "" {
		return invalidID(field, "is empty")
	}
	if len(id) != 2+ConversationIDHexDigits {
		return invalidID(field, "must be \"d:\" or \"g:\" followed by %d lowercase hex digits (got %d bytes: %s)",
			ConversationIDHexDigits, len(id), Clip(id))
	}
	prefix, digits := id[:2], id[2:]
	if prefix != "d:" && prefix != "g:" {
		return invalidID(field, "must start with \"d:\" (direct) or \"g:\" (group), got %s", Clip(id))
	}
	if !isLowerHex(digits) {
		return invalidID(field, "must be %q followed by %d lowercase hex digits, got %s", prefix, ConversationIDHexDigits, Clip(id))
	}
	return nil
}

// isLowerHex reports whether s is only lowercase hex digits.
func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CheckStreamID is CheckConversationID that also accepts a user stream id
// ("u:" + 32 lowercase hex digits, UserStreamID): where a device names a
// stream to resume.
func CheckStreamID(field, id string) error {
	if IsUserStreamID(id) {
		return nil
	}
	return CheckConversationID(field, id)
}

// IsGroupConversationID reports whether id has the form of a group id.
func IsGroupConversationID(id string) bool {
	return strings.HasPrefix(id, "g:") && CheckConversationID("", id) == nil
}

// CheckID checks a user, device, client message or request id: 1 to
// MaxIDBytes bytes of valid UTF-8 without control or space characters.
func CheckID(field, id string) error {
	switch {
	case id == "":
		return invalidID(field, "is empty")
	case len(id) > MaxIDBytes:
		return invalidID(field, "is %d bytes; at most %d", len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return invalidID(field, "is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return invalidID(field, "must not contain control or space characters, got %s", Clip(id))
		}
	}
	return nil
}

// CheckOptionalID is CheckID for an id that may be absent.
func CheckOptionalID(field, id string) error {
	if id == "" {
		return nil
	}
	return CheckID(field, id)
}

// CheckCursor checks a cursor (a seq or a version) against 0 ≤ seq ≤
// lastSeq, the conversation's last one. lastSeq < 0 means it is not known
// here: only the lower bound is checked.
func CheckCursor(field string, seq, lastSeq int64) error {
	if seq < 0 {
		return &IDError{Code: pb.ErrorCode_ERROR_CODE_INVALID_CURSOR, Field: field, Message: fmt.Sprintf("must not be negative, got %d", seq)}
	}
	if lastSeq >= 0 && seq > lastSeq {
		return &IDError{Code: pb.ErrorCode_ERROR_CODE_INVALID_CURSOR, Field: field,
			Message: fmt.Sprintf("is %d, beyond the conversation's last one, %d; a device never saw it, so start again from %d or lower", seq, lastSeq, lastSeq)}
	}
	return nil
}

// maxClip is how much of a client-named value an error message or a log line
// repeats.
const maxClip = 64

// Clip returns s quoted, cut to a bounded prefix with its full length noted,
// for error messages and log lines: one request must never write a
// megabyte-long log line.
func Clip(s string) string {
	if len(s) <= maxClip {
		return fmt.Sprintf("%q", s)
	}
	cut := maxClip
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// MaxCloseReasonBytes caps CloseConversation.reason and
// DeleteConversation.reason (commands.proto): the gateway and the decider
// both check it.
const MaxCloseReasonBytes = 512

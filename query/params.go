package query

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
)

// The edge. Every value a client names — the conversation id and message
// seq of a path, the history cursors before/after, the inbox cursor, limit
// — is checked here, before any Cassandra read and before any log line,
// with the checks every Parley edge shares (schemas/ids.go). A bad id is 400
// INVALID_ID, a bad cursor 400 INVALID_CURSOR, a bad limit or message seq
// 400 INVALID_ARGUMENT (the code the gateway refuses a bad message seq of
// EditMessage with); messages repeat at most a clipped prefix of the value
// (schemas.Clip).

// maxInboxCursorBytes bounds the inbox cursor before it is decoded: the
// cursors query issues are under 100 bytes.
const maxInboxCursorBytes = 256

func invalidCursor(field, msg string) *schemas.IDError {
	return &schemas.IDError{Code: parleyv1.ErrorCode_ERROR_CODE_INVALID_CURSOR, Field: field, Message: msg}
}

// conversationParam is the {id} of a conversation path, in the documented
// form ("d:" or "g:" + 32 lowercase hex digits).
func conversationParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := schemas.CheckConversationID("conversation id", id); err != nil {
		return "", err
	}
	return id, nil
}

// messageSeqParam is the {seq} of a message path: the seq of a timeline
// item, an integer from 1 to 2^63−1. It names one item rather than a
// position to page from, so a bad one is INVALID_ARGUMENT, not
// INVALID_CURSOR.
func messageSeqParam(r *http.Request) (int64, error) {
	v := r.PathValue("seq")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, invalidArgument("message seq must be an integer from 1 to 9223372036854775807, got " + schemas.Clip(v))
	}
	return n, nil
}

// parseLimit reads the limit parameter: def when absent, else 1..maxLimit.
func parseLimit(r *http.Request, def, maxLimit int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, invalidArgument("limit must be an integer from 1 to " + strconv.Itoa(maxLimit) + ", got " + schemas.Clip(v))
	}
	return n, nil
}

// parseSeq reads an optional seq cursor that must be an integer of at least
// minSeq. It may lie beyond the conversation's last seq: the views can lag
// behind what a device has already received live, and such a cursor simply
// finds nothing (after) or the newest page (before).
func parseSeq(r *http.Request, name string, minSeq int64) (seq int64, set bool, err error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil {
		return 0, false, invalidCursor(name, "must be an integer seq of at least "+strconv.FormatInt(minSeq, 10)+", got "+schemas.Clip(v))
	}
	if err := schemas.CheckCursor(name, n, -1); err != nil {
		return 0, false, err
	}
	if n < minSeq {
		return 0, false, invalidCursor(name, "must be at least "+strconv.FormatInt(minSeq, 10)+", got "+strconv.FormatInt(n, 10))
	}
	return n, true, nil
}

// inboxCursor is the keyset position after the last item of a page: pages
// are ordered pinned first (the newest pin first), then by activity (newest
// first), then conversation id. PinnedMS is 0 for a conversation not pinned
// (and absent from cursors issued before pins).
type inboxCursor struct {
	PinnedMS   int64  `json:"p,omitempty"`
	ActivityMS int64  `json:"a"`
	ID         string `json:"c"`
}

// parseChoice reads an optional parameter that takes one of choices (the
// first is the default); anything else is INVALID_ARGUMENT.
func parseChoice(r *http.Request, name string, choices ...string) (string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return choices[0], nil
	}
	for _, c := range choices {
		if v == c {
			return v, nil
		}
	}
	return "", invalidArgument(name + " must be one of " + strings.Join(choices, ", ") + ", got " + schemas.Clip(v))
}

func (c inboxCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeInboxCursor reads a cursor encode made: base64url (no padding) of
// {"p": pin time ms (absent: not pinned), "a": activity ms, "c":
// conversation id}.
func decodeInboxCursor(s string) (inboxCursor, error) {
	var c inboxCursor
	if len(s) > maxInboxCursorBytes {
		return c, invalidCursor("cursor", "is "+strconv.Itoa(len(s))+" bytes; a cursor from next_cursor is at most "+strconv.Itoa(maxInboxCursorBytes))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return inboxCursor{}, invalidCursor("cursor", "is not a cursor from next_cursor, got "+schemas.Clip(s))
	}
	if err := schemas.CheckConversationID("cursor", c.ID); err != nil {
		return inboxCursor{}, invalidCursor("cursor", "is not a cursor from next_cursor (its conversation id is invalid), got "+schemas.Clip(s))
	}
	return c, nil
}

package query

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
)

// The decoders of the edge, fuzzed: whatever a client sends, they answer
// with a value in the documented form or a 400 with their own code and a
// bounded message — never a panic, never a value that would reach
// Cassandra out of form.

// maxEdgeMessage bounds what an edge error repeats to the client.
const maxEdgeMessage = 400

func wantIDError(t *testing.T, what string, err error, code parleyv1.ErrorCode) {
	t.Helper()
	var ie *schemas.IDError
	if !errors.As(err, &ie) || ie.Code != code {
		t.Fatalf("%s: error %v, want a %v", what, err, code)
	}
	if len(ie.Error()) > maxEdgeMessage {
		t.Fatalf("%s: a %d-byte message", what, len(ie.Error()))
	}
}

var conversationIDForm = regexp.MustCompile(`^[dg]:[0-9a-f]{32}$`)

func FuzzConversationParam(f *testing.F) {
	for _, s := range []string{gid("club"), schemas.DirectConversationID("alice", "bob"), schemas.NewGroupConversationID(),
		"", "g:", "g:club", "G:" + strings.Repeat("0", 32), "g:" + strings.Repeat("A", 32), "x:" + strings.Repeat("0", 32),
		"g:" + strings.Repeat("0", 33), "g:" + strings.Repeat("0", 31) + "\x00", "g:" + strings.Repeat("é", 16),
		"g:" + strings.Repeat("a", 70000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.SetPathValue("id", id)
		got, err := conversationParam(r)
		if err != nil {
			if conversationIDForm.MatchString(id) {
				t.Fatalf("%q: refused (%v) but in the documented form", id, err)
			}
			wantIDError(t, strconv.Quote(schemas.Clip(id)), err, parleyv1.ErrorCode_ERROR_CODE_INVALID_ID)
			return
		}
		if got != id || !conversationIDForm.MatchString(id) {
			t.Fatalf("%q: accepted as %q, not the documented form", id, got)
		}
	})
}

func FuzzParseSeq(f *testing.F) {
	for _, s := range []string{"", "0", "1", "-1", "+5", "007", "1.5", "1e3", "0x10", " 1", "9223372036854775807",
		"9223372036854775808", "-9223372036854775808", strings.Repeat("9", 1000), "١٢", "\x00"} {
		f.Add(s, int64(1))
		f.Add(s, int64(0))
	}
	f.Fuzz(func(t *testing.T, v string, minSeq int64) {
		if minSeq != 0 && minSeq != 1 { // the two bounds handlers use: after ≥ 0, before ≥ 1
			minSeq = min(max(minSeq, 0), 1)
		}
		r := httptest.NewRequest(http.MethodGet, "/?"+url.Values{"before": {v}}.Encode(), nil)
		seq, set, err := parseSeq(r, "before", minSeq)
		if v == "" {
			if err != nil || set {
				t.Fatalf("absent: %d %v %v", seq, set, err)
			}
			return
		}
		want, perr := strconv.ParseInt(v, 10, 64)
		ok := perr == nil && want >= minSeq
		if err != nil {
			if ok {
				t.Fatalf("%q (min %d): refused (%v), want %d", v, minSeq, err, want)
			}
			wantIDError(t, strconv.Quote(schemas.Clip(v)), err, parleyv1.ErrorCode_ERROR_CODE_INVALID_CURSOR)
			return
		}
		if !ok || !set || seq != want || seq < minSeq {
			t.Fatalf("%q (min %d): accepted as %d (set %v)", v, minSeq, seq, set)
		}
	})
}

func FuzzInboxCursor(f *testing.F) {
	for _, c := range []inboxCursor{{ActivityMS: 1740830400123, ID: gid("a")}, {ActivityMS: -1, ID: gid("b")},
		{ActivityMS: math.MaxInt64, ID: schemas.DirectConversationID("a", "b")}, {ID: "g:club"}, {ID: strings.Repeat("g", 300)}} {
		f.Add(c.encode())
	}
	for _, s := range []string{"", "!!", "e30", "bnVsbA", "eyJhIjoxfQ", "eyJjIjpudWxsfQ", "W10", "eyJhIjoiMSIsImMiOiJnOiJ9",
		strings.Repeat("A", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeInboxCursor(s)
		if err != nil {
			wantIDError(t, strconv.Quote(schemas.Clip(s)), err, parleyv1.ErrorCode_ERROR_CODE_INVALID_CURSOR)
			if c != (inboxCursor{}) {
				t.Fatalf("%q: refused but returned %+v", s, c)
			}
			return
		}
		if len(s) > maxInboxCursorBytes || schemas.CheckConversationID("c", c.ID) != nil {
			t.Fatalf("%q: accepted as %+v", s, c)
		}
		// What the server would issue for the same position decodes to it.
		again, err := decodeInboxCursor(c.encode())
		if err != nil || again != c {
			t.Fatalf("%q: %+v re-encoded decodes to %+v, %v", s, c, again, err)
		}
	})
}

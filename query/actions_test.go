package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/parleyv1"
)

// The message actions as history and the versions endpoint show them, on
// rows the projector wrote from a log of edits, a recall, reactions and
// replies.

func sent(user, clientMsgID, text, contentType string, seq, replyTo int64) *parleyv1.Event {
	return &parleyv1.Event{Seq: seq, ActorUserId: user, ActorDeviceId: user + "-phone", CommandId: "cmd-" + clientMsgID,
		Body: &parleyv1.Event_MessageSent{MessageSent: &parleyv1.MessageSent{
			ClientMsgId: clientMsgID, Text: text, ContentType: contentType, ReplyToSeq: replyTo}}}
}

func edited(user string, seq int64, n int32, text, contentType string) *parleyv1.Event {
	return &parleyv1.Event{ActorUserId: user, ActorDeviceId: user + "-phone",
		Body: &parleyv1.Event_MessageEdited{MessageEdited: &parleyv1.MessageEdited{
			MessageSeq: seq, EditNumber: n, Text: text, ContentType: contentType, ClientMsgId: fmt.Sprintf("e%d-%d", seq, n)}}}
}

func recalled(user string, seq int64, sender string) *parleyv1.Event {
	return &parleyv1.Event{ActorUserId: user, ActorDeviceId: user + "-phone",
		Body: &parleyv1.Event_MessageRecalled{MessageRecalled: &parleyv1.MessageRecalled{MessageSeq: seq, SenderUserId: sender}}}
}

func reacted(user string, seq int64, emoji string) *parleyv1.Event {
	return &parleyv1.Event{ActorUserId: user, ActorDeviceId: user + "-phone",
		Body: &parleyv1.Event_ReactionAdded{ReactionAdded: &parleyv1.ReactionAdded{MessageSeq: seq, Emoji: emoji}}}
}

func unreacted(user string, seq int64, emoji string) *parleyv1.Event {
	return &parleyv1.Event{ActorUserId: user, ActorDeviceId: user + "-phone",
		Body: &parleyv1.Event_ReactionRemoved{ReactionRemoved: &parleyv1.ReactionRemoved{MessageSeq: seq, Emoji: emoji}}}
}

// at is the time of the event with version v in a projected log.
func at(v int) string { return t0.Add(time.Duration(v) * time.Second).Format(time.RFC3339) }

// The log of TestMessageActions, by version (each event's time is t0 + its
// version in seconds).
func actionsLog() []*parleyv1.Event {
	long := strings.Repeat("é", 60) + strings.Repeat("x", 60) // 120 runes
	return []*parleyv1.Event{
		/* 1 */ {ActorUserId: "alice", ActorDeviceId: "alice-phone", Body: &parleyv1.Event_ConversationCreated{ConversationCreated: &parleyv1.ConversationCreated{
			Kind: parleyv1.ConversationKind_CONVERSATION_KIND_GROUP, Title: "Acts", MemberUserIds: []string{"alice", "bob", "carol", "dave"}}}},
		/* 2 */ sent("bob", "c1", "helo wrld", "text/plain", 1, 0),
		/* 3 */ edited("bob", 1, 1, "hello wrld", "text/plain"),
		/* 4 */ edited("bob", 1, 2, "hello *world*", "text/markdown"),
		/* 5 */ sent("alice", "c2", "the secret plan", "text/plain", 2, 0),
		/* 6 */ edited("alice", 2, 1, "the secret plan, revised", "text/plain"),
		/* 7 */ reacted("bob", 2, "+1"),
		/* 8 */ recalled("alice", 2, "alice"),
		/* 9 */ sent("carol", "c3", "agreed", "text/plain", 3, 1), // answers the edited message
		/* 10 */ sent("bob", "c4", "what did it say?", "text/plain", 4, 2), // answers the recalled one
		/* 11 */ reacted("bob", 1, "+1"),
		/* 12 */ reacted("alice", 1, "+1"),
		/* 13 */ reacted("carol", 1, "🎉"),
		/* 14 */ reacted("dave", 1, "👀"),
		/* 15 */ unreacted("dave", 1, "👀"),
		/* 16 */ reacted("bob", 3, "+1"),
		/* 17 */ {Seq: 5, ActorUserId: "dave", ActorDeviceId: "dave-phone", Body: &parleyv1.Event_MemberRemoved{MemberRemoved: &parleyv1.MemberRemoved{
			UserId: "dave", Reason: parleyv1.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT}}},
		/* 18 */ sent("alice", "c6", long, "text/plain", 6, 0),
		/* 19 */ sent("carol", "c7", "long indeed", "text/plain", 7, 6),
		// Replies the decider would refuse, to a notice and to a seq with
		// no row: the views show the seq alone.
		/* 20 */ sent("bob", "c8", "re notice", "text/plain", 8, 5),
		/* 21 */ sent("bob", "c9", "re nothing", "text/plain", 9, 99),
	}
}

// wantItems are the history items of actionsLog, oldest first.
func wantItems() []string {
	snippet := strings.Repeat("é", 60) + strings.Repeat("x", 40)
	return []string{
		`{"seq":1,"type":"MessageSent","sender":"bob","sender_device":"bob-phone","client_msg_id":"c1","content_type":"text/markdown",
		  "text":"hello *world*","occurred_at":"` + at(2) + `","edit_count":2,"edited_at":"` + at(4) + `",
		  "reactions":[{"emoji":"+1","count":2,"user_ids":["alice","bob"]},{"emoji":"🎉","count":1,"user_ids":["carol"]}]}`,
		`{"seq":2,"type":"MessageSent","sender":"alice","sender_device":"alice-phone","client_msg_id":"c2","occurred_at":"` + at(5) + `",
		  "recalled":{"by":"alice","at":"` + at(8) + `"}}`,
		`{"seq":3,"type":"MessageSent","sender":"carol","sender_device":"carol-phone","client_msg_id":"c3","content_type":"text/plain",
		  "text":"agreed","occurred_at":"` + at(9) + `","reply_to":{"seq":1,"sender":"bob","snippet":"hello *world*"},
		  "reactions":[{"emoji":"+1","count":1,"user_ids":["bob"]}]}`,
		`{"seq":4,"type":"MessageSent","sender":"bob","sender_device":"bob-phone","client_msg_id":"c4","content_type":"text/plain",
		  "text":"what did it say?","occurred_at":"` + at(10) + `","reply_to":{"seq":2,"sender":"alice","recalled":true}}`,
		`{"seq":5,"type":"MemberRemoved","sender":"dave","sender_device":"dave-phone","occurred_at":"` + at(17) + `",
		  "member_ids":["dave"],"removed_reason":"left"}`,
		`{"seq":6,"type":"MessageSent","sender":"alice","sender_device":"alice-phone","client_msg_id":"c6","content_type":"text/plain",
		  "text":"` + strings.Repeat("é", 60) + strings.Repeat("x", 60) + `","occurred_at":"` + at(18) + `"}`,
		`{"seq":7,"type":"MessageSent","sender":"carol","sender_device":"carol-phone","client_msg_id":"c7","content_type":"text/plain",
		  "text":"long indeed","occurred_at":"` + at(19) + `","reply_to":{"seq":6,"sender":"alice","snippet":"` + snippet + `"}}`,
		`{"seq":8,"type":"MessageSent","sender":"bob","sender_device":"bob-phone","client_msg_id":"c8","content_type":"text/plain",
		  "text":"re notice","occurred_at":"` + at(20) + `","reply_to":{"seq":5}}`,
		`{"seq":9,"type":"MessageSent","sender":"bob","sender_device":"bob-phone","client_msg_id":"c9","content_type":"text/plain",
		  "text":"re nothing","occurred_at":"` + at(21) + `","reply_to":{"seq":99}}`,
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

// rawItems requests a history page and returns its items as sent, after
// checking the page against the spec.
func (f *fixture) rawItems(user, path string) []string {
	f.t.Helper()
	code, body := f.get(user, path)
	if code != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	conforms(f.t, "MessagePage", body)
	var p struct{ Messages []json.RawMessage }
	if err := json.Unmarshal(body, &p); err != nil {
		f.t.Fatal(err)
	}
	out := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		out[i] = compact(f.t, string(m))
	}
	return out
}

func TestMessageActions(t *testing.T) {
	f := newFixture(t)
	conv := gid("acts")
	f.project(conv, actionsLog()...)
	want := wantItems()
	for i := range want {
		want[i] = compact(t, want[i])
	}
	history := "/v1/conversations/" + conv + "/messages"

	t.Run("History", func(t *testing.T) {
		got := f.rawItems("carol", history+"?after=0")
		if len(got) != len(want) {
			t.Fatalf("%d items, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("item %d\n got %s\nwant %s", i+1, got[i], want[i])
			}
		}
		// Backwards, newest first: the same items.
		back := f.rawItems("carol", history)
		for i := range back {
			if j := len(want) - 1 - i; back[i] != want[j] {
				t.Errorf("newest-first item %d\n got %s\nwant %s", i, back[i], want[j])
			}
		}
	})

	t.Run("QuotedOffPage", func(t *testing.T) {
		// Pages that do not hold the quoted messages read them (MessageAt);
		// the reactions read covers the page's range only.
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"after=2&limit=2", want[2:4]},
			{"before=8&limit=1", want[6:7]},
			{"after=8&limit=1", want[8:9]},
			{"after=1&limit=1", want[1:2]},
		} {
			got := f.rawItems("alice", history+"?"+c.query)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("%s\n got %s\nwant %s", c.query, strings.Join(got, "\n     "), strings.Join(c.want, "\n     "))
			}
		}
	})

	t.Run("Versions", func(t *testing.T) {
		for _, c := range []struct {
			seq  int
			want string
		}{
			{1, `{"seq":1,"versions":[{"number":0,"text":"helo wrld","content_type":"text/plain","at":"` + at(2) + `"},
				{"number":1,"text":"hello wrld","content_type":"text/plain","at":"` + at(3) + `"},
				{"number":2,"text":"hello *world*","content_type":"text/markdown","at":"` + at(4) + `"}]}`},
			{2, `{"seq":2,"recalled":{"by":"alice","at":"` + at(8) + `"},"versions":[]}`},
			{3, `{"seq":3,"versions":[{"number":0,"text":"agreed","content_type":"text/plain","at":"` + at(9) + `"}]}`},
		} {
			path := fmt.Sprintf("/v1/conversations/%s/messages/%d/versions", conv, c.seq)
			code, body := f.get("bob", path)
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			conforms(t, "MessageVersions", body)
			if got := compact(t, string(body)); got != compact(t, c.want) {
				t.Errorf("seq %d\n got %s\nwant %s", c.seq, got, compact(t, c.want))
			}
		}
		// Escaped ids name the same conversation here too.
		if code, body := f.get("bob", "/v1/conversations/"+strings.Replace(conv, ":", "%3A", 1)+"/messages/3/versions"); code != http.StatusOK {
			t.Errorf("escaped id: %d %s", code, body)
		}
	})

	t.Run("NoContentOnceRecalled", func(t *testing.T) {
		// Whatever the recalled message said, in any version, shows nowhere.
		for _, path := range []string{history, history + "?after=0", history + "?after=1&limit=1", history + "?after=3&limit=1",
			"/v1/conversations/" + conv + "/messages/2/versions", "/v1/conversations/" + conv,
			"/v1/inbox", "/v1/conversations/" + conv + "/messages/4/versions"} {
			code, body := f.get("alice", path)
			if code != http.StatusOK || bytes.Contains(body, []byte("secret")) {
				t.Errorf("GET %s: %d %s", path, code, body)
			}
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		versions := func(id, seq string) string { return "/v1/conversations/" + id + "/messages/" + seq + "/versions" }
		alice := f.token("alice")
		for _, seq := range []string{"5", "10", "99", "9223372036854775807"} { // a notice; nothing there
			f.wantError(alice, versions(conv, seq), http.StatusNotFound, "NOT_FOUND")
			_, body := f.getWithToken(alice, versions(conv, seq))
			conforms(t, "Error", body)
		}
		for _, seq := range []string{"0", "-1", "x", "1.5", "0x10", "1e3", "%2B1x", "9223372036854775808", "%20", strings.Repeat("9", 70000)} {
			f.wantError(alice, versions(conv, seq), http.StatusBadRequest, "INVALID_ARGUMENT")
		}
		// Members only: a stranger, a member who left (dave, at seq 5), a
		// conversation that does not exist look the same — and a bad seq
		// is refused before anything is read, membership included.
		for _, tok := range []string{f.token("mallory"), f.token("dave")} {
			f.wantError(tok, versions(conv, "1"), http.StatusForbidden, "NOT_MEMBER")
			f.wantError(tok, versions(conv, "2"), http.StatusForbidden, "NOT_MEMBER")
			f.wantError(tok, versions(conv, "99"), http.StatusForbidden, "NOT_MEMBER")
			f.wantError(tok, history, http.StatusForbidden, "NOT_MEMBER")
		}
		f.wantError(alice, versions(gid("nope"), "1"), http.StatusForbidden, "NOT_MEMBER")
		f.wantError(f.token("mallory"), versions(conv, "0"), http.StatusBadRequest, "INVALID_ARGUMENT")
		f.wantError(alice, versions("g:nope", "1"), http.StatusBadRequest, "INVALID_ID")
		f.wantError("", versions(conv, "1"), http.StatusUnauthorized, "UNAUTHENTICATED")
	})
}

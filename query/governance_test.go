package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
)

// Governance as query shows it, on rows the projector wrote from a log of
// role changes, a transfer, settings, mutes, pins and mentions.

func governed(user string, body func(e *parleyv1.Event)) *parleyv1.Event {
	e := &parleyv1.Event{ActorUserId: user, ActorDeviceId: user + "-phone"}
	body(e)
	return e
}

func mentioning(user, clientMsgID, text string, seq int64, all bool, users ...string) *parleyv1.Event {
	e := sent(user, clientMsgID, text, "text/plain", seq, 0)
	e.GetMessageSent().MentionUserIds, e.GetMessageSent().MentionAll = users, all
	return e
}

func pinnedBy(user string, seq int64) *parleyv1.Event {
	return governed(user, func(e *parleyv1.Event) {
		e.Body = &parleyv1.Event_MessagePinned{MessagePinned: &parleyv1.MessagePinned{MessageSeq: seq}}
	})
}

func mutedBy(user, target string, until time.Time) *parleyv1.Event {
	return governed(user, func(e *parleyv1.Event) {
		e.Body = &parleyv1.Event_MemberMuted{MemberMuted: &parleyv1.MemberMuted{UserId: target, Until: timestamppb.New(until)}}
	})
}

// The log of TestGovernance, by version (each event at t0 + its version in
// seconds). The mute of dave lasts beyond any test run; carol's ended long
// ago.
var muteEnd = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

func governanceLog() []*parleyv1.Event {
	return []*parleyv1.Event{
		/* 1 */ {ActorUserId: "alice", ActorDeviceId: "alice-phone", Body: &parleyv1.Event_ConversationCreated{ConversationCreated: &parleyv1.ConversationCreated{
			Kind: parleyv1.ConversationKind_CONVERSATION_KIND_GROUP, Title: "Gov", MemberUserIds: []string{"alice", "bob", "carol", "dave"}}}},
		/* 2 */ mentioning("bob", "c1", "hello @carol", 1, false, "carol"),
		/* 3 */ edited("bob", 1, 1, "hello @carol, edited", "text/plain"),
		/* 4 */ governed("alice", func(e *parleyv1.Event) {
			e.Body = &parleyv1.Event_MemberRoleChanged{MemberRoleChanged: &parleyv1.MemberRoleChanged{UserId: "bob", Role: parleyv1.MemberRole_MEMBER_ROLE_ADMIN}}
		}),
		/* 5 */ mentioning("alice", "c2", "@all standup", 2, true),
		/* 6 */ pinnedBy("carol", 1),
		/* 7 */ reacted("carol", 1, "+1"),
		/* 8 */ sent("carol", "c3", "re", "text/plain", 3, 1),
		/* 9 */ pinnedBy("alice", 3),
		/* 10 */ governed("alice", func(e *parleyv1.Event) {
			e.Body = &parleyv1.Event_GroupSettingsChanged{GroupSettingsChanged: &parleyv1.GroupSettingsChanged{Settings: &parleyv1.GroupSettings{
				Title: proto.String("Gov 2"), Description: proto.String("desc"), AvatarUrl: proto.String("https://example.com/a.png"),
				WhoMayMentionAll: parleyv1.GroupPolicy_GROUP_POLICY_ADMINS.Enum()}}}
		}),
		/* 11 */ mentioning("dave", "c4", "@bob @carol look", 4, false, "bob", "carol"),
		/* 12 */ mutedBy("alice", "dave", muteEnd),
		/* 13 */ mutedBy("alice", "carol", t0.Add(time.Hour)),
		/* 14 */ mentioning("bob", "c5", "secret @carol", 5, false, "carol"),
		/* 15 */ pinnedBy("bob", 5),
		/* 16 */ recalled("bob", 5, "bob"),
		/* 17 */ governed("alice", func(e *parleyv1.Event) {
			e.Body = &parleyv1.Event_OwnershipTransferred{OwnershipTransferred: &parleyv1.OwnershipTransferred{
				FromUserId: "alice", ToUserId: "bob", Reason: parleyv1.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED}}
		}),
		/* 18 */ mentioning("alice", "c6", "@all again", 6, true),
		/* 19 */ {Seq: 7, ActorUserId: "alice", ActorDeviceId: "alice-phone", Body: &parleyv1.Event_MembersAdded{MembersAdded: &parleyv1.MembersAdded{UserIds: []string{"erin"}}}},
	}
}

func TestGovernance(t *testing.T) {
	f := newFixture(t)
	conv := gid("gov")
	f.project(conv, governanceLog()...)
	base := "/v1/conversations/" + conv

	// getCompact requests path as user, checks it against the spec's
	// schema and returns the body compacted.
	getCompact := func(t *testing.T, user, path, schema string) string {
		t.Helper()
		code, body := f.get(user, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s as %s: %d %s", path, user, code, body)
		}
		conforms(t, schema, body)
		return compact(t, string(body))
	}

	direct := schemas.DirectConversationID("alice", "bob")
	f.project(direct, &parleyv1.Event{ActorUserId: "alice", ActorDeviceId: "alice-phone", Body: &parleyv1.Event_ConversationCreated{
		ConversationCreated: &parleyv1.ConversationCreated{Kind: parleyv1.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{"alice", "bob"}}}})

	t.Run("Conversation", func(t *testing.T) {
		// A direct conversation has no owner and no settings.
		if got := getCompact(t, "bob", "/v1/conversations/"+direct, "Conversation"); got != compact(t, `{"conversation_id":"`+direct+`","kind":"direct","title":"","creator_user_id":"alice","created_at":"`+at(1)+`",
				"last_seq":0,"version":1,"last_activity":"`+at(1)+`","members":[
				{"user_id":"alice","role":"member","joined_seq":0,"read_seq":0,"delivered_seq":0},
				{"user_id":"bob","role":"member","joined_seq":0,"read_seq":0,"delivered_seq":0}]}`) {
			t.Errorf("direct conversation %s", got)
		}

		got := getCompact(t, "carol", base, "Conversation")
		// Roles after the transfer, dave's mute in force, carol's over;
		// the settings that were never set take their defaults.
		want := compact(t, `{"conversation_id":"`+conv+`","kind":"group","title":"Gov 2","creator_user_id":"alice",
			"created_at":"`+at(1)+`","last_seq":7,"version":19,"last_activity":"`+at(19)+`",
			"preview":{"seq":6,"sender":"alice","text":"@all again"},"owner_user_id":"bob",
			"settings":{"description":"desc","avatar_url":"https://example.com/a.png","announcement_only":false,
				"who_may_add":"members","who_may_mention_all":"admins","who_may_pin":"members","history_visibility":"all","join_requests":false},
			"members":[
				{"user_id":"alice","role":"admin","joined_seq":0,"read_seq":6,"delivered_seq":6},
				{"user_id":"bob","role":"owner","joined_seq":0,"read_seq":5,"delivered_seq":5},
				{"user_id":"carol","role":"member","joined_seq":0,"read_seq":3,"delivered_seq":3},
				{"user_id":"dave","role":"member","joined_seq":0,"read_seq":4,"delivered_seq":4,"muted":true,"muted_until":"2100-01-01T00:00:00Z"},
				{"user_id":"erin","role":"member","joined_seq":7,"read_seq":7,"delivered_seq":7}]}`)
		if got != want {
			t.Errorf("conversation\n got %s\nwant %s", got, want)
		}
	})

	t.Run("UnreadMentions", func(t *testing.T) {
		// Above each read mark: carol 4 (named) and 6 (@all); bob and dave
		// the @all at 6; alice's are her own; erin joined after them.
		for user, want := range map[string][2]int64{"carol": {4, 2}, "bob": {2, 1}, "alice": {1, 0}, "dave": {3, 1}, "erin": {0, 0}} {
			code, body := f.get(user, "/v1/inbox")
			if code != http.StatusOK {
				t.Fatalf("inbox of %s: %d %s", user, code, body)
			}
			conforms(t, "InboxPage", body)
			var p inboxPage
			if err := json.Unmarshal(body, &p); err != nil || len(p.Conversations) == 0 || p.Conversations[0].ConversationID != conv {
				t.Fatalf("inbox of %s: %s (%v)", user, body, err)
			}
			if it := p.Conversations[0]; it.Unread != want[0] || it.UnreadMentions != want[1] || it.Title != "Gov 2" {
				t.Errorf("inbox of %s: unread %d, mentions %d, title %q; want %d, %d, the new title", user, it.Unread, it.UnreadMentions, it.Title, want[0], want[1])
			}
			if got := getCompact(t, user, "/v1/unread", "UnreadTotals"); got != compact(t, fmt.Sprintf(`{"total":%d,"conversations":%d,"unread_mentions":%d}`,
				want[0], min(want[0], 1), want[1])) {
				t.Errorf("unread of %s: %s", user, got)
			}
		}
	})

	t.Run("Pins", func(t *testing.T) {
		// The recalled message's pin is gone; message 1 shows its edit and
		// reaction, message 3 its reply to it.
		got := getCompact(t, "dave", base+"/pins", "Pins")
		want := compact(t, `{"conversation_id":"`+conv+`","pins":[
			{"seq":3,"pinned_by":"alice","pinned_at":"`+at(9)+`","message":{"seq":3,"type":"MessageSent","sender":"carol","sender_device":"carol-phone",
				"client_msg_id":"c3","content_type":"text/plain","text":"re","occurred_at":"`+at(8)+`",
				"reply_to":{"seq":1,"sender":"bob","snippet":"hello @carol, edited"}}},
			{"seq":1,"pinned_by":"carol","pinned_at":"`+at(6)+`","message":{"seq":1,"type":"MessageSent","sender":"bob","sender_device":"bob-phone",
				"client_msg_id":"c1","content_type":"text/plain","text":"hello @carol, edited","occurred_at":"`+at(2)+`",
				"edit_count":1,"edited_at":"`+at(3)+`","reactions":[{"emoji":"+1","count":1,"user_ids":["carol"]}]}}]}`)
		if got != want {
			t.Errorf("pins\n got %s\nwant %s", got, want)
		}
		f.wantError(f.token("alice"), "/v1/conversations/"+gid("nopins")+"/pins", http.StatusForbidden, "NOT_MEMBER")
		// No pins: an empty list.
		if got := getCompact(t, "bob", "/v1/conversations/"+direct+"/pins", "Pins"); got != `{"conversation_id":"`+direct+`","pins":[]}` {
			t.Errorf("no pins: %s", got)
		}
	})

	t.Run("Mentions", func(t *testing.T) {
		all := func(seq int, v int) string {
			return fmt.Sprintf(`{"seq":%d,"sender":"alice","occurred_at":"%s","all":true}`, seq, at(v))
		}
		named := func(seq int, sender string, v int) string {
			return fmt.Sprintf(`{"seq":%d,"sender":"%s","occurred_at":"%s","all":false}`, seq, sender, at(v))
		}
		page := func(more bool, items ...string) string {
			return compact(t, fmt.Sprintf(`{"conversation_id":"%s","mentions":[%s],"has_more":%v}`, conv, strings.Join(items, ","), more))
		}
		for _, c := range []struct{ user, query, want string }{
			// The recalled message 5 mentions nobody any more.
			{"carol", "", page(false, all(6, 18), named(4, "dave", 11), all(2, 5), named(1, "bob", 2))},
			{"carol", "?limit=2", page(true, all(6, 18), named(4, "dave", 11))},
			{"carol", "?after=3", page(false, all(6, 18), named(4, "dave", 11))},
			{"carol", "?after=4&limit=1", page(false, all(6, 18))},
			{"bob", "", page(false, all(6, 18), named(4, "dave", 11), all(2, 5))},
			// alice's @all messages are her own; erin joined after both.
			{"alice", "", page(false)},
			{"alice", "?limit=1", page(false)},
			{"erin", "", page(false)},
		} {
			if got := getCompact(t, c.user, base+"/mentions"+c.query, "MentionPage"); got != c.want {
				t.Errorf("%s %s\n got %s\nwant %s", c.user, c.query, got, c.want)
			}
		}
		alice := f.token("alice")
		for _, q := range []string{"after=-1", "after=x", "after=9223372036854775808"} {
			f.wantError(alice, base+"/mentions?"+q, http.StatusBadRequest, "INVALID_CURSOR")
		}
		for _, q := range []string{"limit=0", "limit=201", "limit=x"} {
			f.wantError(alice, base+"/mentions?"+q, http.StatusBadRequest, "INVALID_ARGUMENT")
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		for _, tok := range []string{f.token("mallory"), ""} {
			status, code := http.StatusForbidden, "NOT_MEMBER"
			if tok == "" {
				status, code = http.StatusUnauthorized, "UNAUTHENTICATED"
			}
			for _, p := range []string{base + "/pins", base + "/mentions", base} {
				f.wantError(tok, p, status, code)
			}
		}
		f.wantError(f.token("alice"), "/v1/conversations/g:nope/mentions", http.StatusBadRequest, "INVALID_ID")
		f.wantError(f.token("alice"), "/v1/conversations/g:nope/pins", http.StatusBadRequest, "INVALID_ID")
	})
}

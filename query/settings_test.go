package query

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
)

func groupOf(creator string, others ...string) *parleyv1.Event {
	return &parleyv1.Event{ActorUserId: creator, ActorDeviceId: creator + "-phone", Body: &parleyv1.Event_ConversationCreated{
		ConversationCreated: &parleyv1.ConversationCreated{Kind: parleyv1.ConversationKind_CONVERSATION_KIND_GROUP, Title: "T",
			MemberUserIds: append([]string{creator}, others...)}}}
}

func ofStream(user string, body func(e *parleyv1.Event)) *parleyv1.Event {
	e := &parleyv1.Event{ActorUserId: user, ActorDeviceId: user + "-phone"}
	body(e)
	return e
}

func prefs(user string, p *parleyv1.ConversationPrefsChanged) *parleyv1.Event {
	return ofStream(user, func(e *parleyv1.Event) {
		e.Body = &parleyv1.Event_ConversationPrefsChanged{ConversationPrefsChanged: p}
	})
}

// TestUserSettings has the projector apply three conversations of alice's
// and her user stream (B pinned, C muted for good and archived, A marked
// unread, a message of A hidden and A's history cleared up to 1, bob
// blocked), and checks the inbox (the prefs of each item, pinned first,
// the filters and their refusals, paging across the pin), what alice sees
// of A's history, versions, pins, mentions and replies (and what bob, who
// hid nothing, sees), a forwarded message's origin, and /v1/me/settings.
func TestUserSettings(t *testing.T) {
	f := newFixture(t)
	a, b, c := gid("prefs-a"), gid("prefs-b"), gid("prefs-c")
	fwd := sent("alice", "c4", "look", "text/plain", 4, 0)
	fwd.GetMessageSent().ForwardedFrom = &parleyv1.ForwardOrigin{ConversationId: gid("else"), Seq: 9, SenderUserId: "dave",
		SentAt: timestamppb.New(t0.Add(-time.Hour))}
	mention := sent("bob", "c5", "@alice a3", "text/plain", 5, 1)
	mention.GetMessageSent().MentionUserIds = []string{"alice"}
	f.project(a, groupOf("alice", "bob"),
		/* v2 */ sent("alice", "c1", "q", "text/plain", 1, 0),
		/* v3 */ sent("bob", "c2", "a1", "text/plain", 2, 1),
		/* v4 */ sent("bob", "c3", "a2", "text/plain", 3, 1),
		/* v5 */ fwd,
		/* v6 */ mention,
		/* v7 */ pinnedBy("bob", 3))
	f.project(b, groupOf("alice", "bob"), sent("bob", "c1", "hi", "text/plain", 1, 0))
	f.project(c, groupOf("alice", "carol"), sent("carol", "c1", "hey", "text/plain", 1, 0),
		ofStream("alice", func(e *parleyv1.Event) { e.Body = &parleyv1.Event_ReadUpTo{ReadUpTo: &parleyv1.ReadUpTo{UpToSeq: 1}} }))
	stream := schemas.UserStreamID("alice")
	f.project(stream,
		/* v1 */ prefs("alice", &parleyv1.ConversationPrefsChanged{ConversationId: b, Pinned: proto.Bool(true)}),
		/* v2 */ prefs("alice", &parleyv1.ConversationPrefsChanged{ConversationId: c, Mute: &parleyv1.Mute{Forever: true},
			ArchivedUpToSeq: proto.Int64(1)}),
		/* v3 */ prefs("alice", &parleyv1.ConversationPrefsChanged{ConversationId: a, UnreadMarkedAtSeq: proto.Int64(5)}),
		/* v4 */ ofStream("alice", func(e *parleyv1.Event) {
			e.Body = &parleyv1.Event_MessagesHidden{MessagesHidden: &parleyv1.MessagesHidden{ConversationId: a, Seqs: []int64{3}}}
		}),
		/* v5 */ ofStream("alice", func(e *parleyv1.Event) {
			e.Body = &parleyv1.Event_MessagesHidden{MessagesHidden: &parleyv1.MessagesHidden{ConversationId: a, UpToSeq: 1}}
		}),
		/* v6 */ ofStream("alice", func(e *parleyv1.Event) {
			e.Body = &parleyv1.Event_UserBlocked{UserBlocked: &parleyv1.UserBlocked{UserId: "bob"}}
		}),
	)
	getCompact := func(t *testing.T, user, path, schema string) string {
		t.Helper()
		code, body := f.get(user, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s as %s: %d %s", path, user, code, body)
		}
		conforms(t, schema, body)
		return compact(t, string(body))
	}
	ids := func(p inboxPage) []string {
		var out []string
		for _, it := range p.Conversations {
			out = append(out, it.ConversationID)
		}
		return out
	}

	t.Run("Inbox", func(t *testing.T) {
		getCompact(t, "alice", "/v1/inbox", "InboxPage")
		var p inboxPage
		f.getJSON("alice", "/v1/inbox", &p)
		if got := ids(p); !slices.Equal(got, []string{b, a, c}) {
			t.Fatalf("inbox order %v, want the pinned B, then A (newest activity), then C", got)
		}
		ib, ia, ic := p.Conversations[0], p.Conversations[1], p.Conversations[2]
		if !ib.Pinned || !ib.PinnedAt.Equal(t0.Add(time.Second)) || ib.Muted || ib.Archived || ib.MarkedUnread || ib.Unread != 1 {
			t.Errorf("B %+v: want pinned at t0+1s, unread 1", ib)
		}
		if ia.Pinned || ia.Muted || ia.Archived || !ia.MarkedUnread || ia.Unread != 1 || ia.ReadSeq != 4 || ia.UnreadMentions != 1 {
			t.Errorf("A %+v: want marked unread, unread 1 (hiding changes no count), 1 unread mention", ia)
		}
		if !ic.Muted || !ic.MutedForever || !ic.MutedUntil.IsZero() || !ic.Archived || ic.MarkedUnread || ic.Unread != 0 {
			t.Errorf("C %+v: want muted forever and archived", ic)
		}
		for query, want := range map[string][]string{
			"archived=exclude": {b, a}, "archived=only": {c}, "archived=include": {b, a, c},
			"muted=only": {c}, "muted=exclude": {b, a},
			"unread=only": {b, a}, "unread=include": {b, a, c},
			"unread=only&archived=only": nil,
		} {
			var p inboxPage
			f.getJSON("alice", "/v1/inbox?"+query, &p)
			if got := ids(p); !slices.Equal(got, want) {
				t.Errorf("inbox?%s: %v, want %v", query, got, want)
			}
		}
		for _, bad := range []string{"archived=maybe", "muted=yes", "unread=exclude", "archived="} {
			if bad == "archived=" {
				continue // empty is the default
			}
			f.wantError(f.token("alice"), "/v1/inbox?"+bad, http.StatusBadRequest, codeInvalidArgument)
		}
		// Paging across the pin visits each once.
		var seen []string
		next := "/v1/inbox?limit=1"
		for next != "" {
			var p inboxPage
			f.getJSON("alice", next, &p)
			seen = append(seen, ids(p)...)
			next = ""
			if p.NextCursor != "" {
				next = "/v1/inbox?limit=1&cursor=" + p.NextCursor
			}
		}
		if !slices.Equal(seen, []string{b, a, c}) {
			t.Errorf("paged inbox %v", seen)
		}
		// bob set nothing.
		var pb inboxPage
		f.getJSON("bob", "/v1/inbox", &pb)
		for _, it := range pb.Conversations {
			if it.Pinned || it.Muted || it.Archived || it.MarkedUnread {
				t.Errorf("bob's %s shows alice's prefs: %+v", it.ConversationID, it)
			}
		}
	})

	t.Run("History", func(t *testing.T) {
		// alice cleared up to 1 and hid 3: 5, 4, 2; the replies to 1 quote
		// its seq alone.
		got := getCompact(t, "alice", "/v1/conversations/"+a+"/messages", "MessagePage")
		want := compact(t, `{"messages":[
			{"seq":5,"type":"MessageSent","sender":"bob","sender_device":"bob-phone","client_msg_id":"c5","content_type":"text/plain","text":"@alice a3","occurred_at":"`+at(6)+`","reply_to":{"seq":1}},
			{"seq":4,"type":"MessageSent","sender":"alice","sender_device":"alice-phone","client_msg_id":"c4","content_type":"text/plain","text":"look","occurred_at":"`+at(5)+`",
				"forwarded_from":{"conversation_id":"`+gid("else")+`","seq":9,"sender_user_id":"dave","sent_at":"`+t0.Add(-time.Hour).Format(time.RFC3339)+`"}},
			{"seq":2,"type":"MessageSent","sender":"bob","sender_device":"bob-phone","client_msg_id":"c2","content_type":"text/plain","text":"a1","occurred_at":"`+at(3)+`","reply_to":{"seq":1}}],
			"has_more":false}`)
		if got != want {
			t.Errorf("alice's history\n got %s\nwant %s", got, want)
		}
		// Paging by two: the cursors step over the hidden seq.
		var p messagePage
		f.getJSON("alice", "/v1/conversations/"+a+"/messages?limit=2", &p)
		if len(p.Messages) != 2 || !p.HasMore || p.NextBefore != 4 {
			t.Fatalf("first page of 2: %+v", p)
		}
		f.getJSON("alice", fmt.Sprintf("/v1/conversations/%s/messages?limit=2&before=%d", a, p.NextBefore), &p)
		if len(p.Messages) != 1 || p.Messages[0].Seq != 2 || p.HasMore {
			t.Errorf("second page: %+v, want 2 alone (3 hidden, 1 cleared), the last", p)
		}
		f.getJSON("alice", "/v1/conversations/"+a+"/messages?after=0", &p)
		if len(p.Messages) != 3 || p.Messages[0].Seq != 2 {
			t.Errorf("after page: %+v", p)
		}
		// bob hid nothing.
		f.getJSON("bob", "/v1/conversations/"+a+"/messages", &p)
		if len(p.Messages) != 5 || p.Messages[0].ReplyTo == nil || p.Messages[0].ReplyTo.Snippet == nil || *p.Messages[0].ReplyTo.Snippet != "q" {
			t.Errorf("bob's history: %+v", p)
		}
		for _, seq := range []int64{1, 3} {
			f.wantError(f.token("alice"), fmt.Sprintf("/v1/conversations/%s/messages/%d/versions", a, seq), http.StatusNotFound, codeNotFound)
		}
		getCompact(t, "bob", "/v1/conversations/"+a+"/messages/3/versions", "MessageVersions")
		if got := getCompact(t, "alice", "/v1/conversations/"+a+"/pins", "Pins"); got != `{"conversation_id":"`+a+`","pins":[]}` {
			t.Errorf("alice's pins %s: the pin of a message she hid is not hers to see", got)
		}
		var pins pinsView
		f.getJSON("bob", "/v1/conversations/"+a+"/pins", &pins)
		if len(pins.Pins) != 1 || pins.Pins[0].Message == nil {
			t.Errorf("bob's pins %+v", pins)
		}
		var ms mentionsPage
		f.getJSON("alice", "/v1/conversations/"+a+"/mentions", &ms)
		if len(ms.Mentions) != 1 || ms.Mentions[0].Seq != 5 {
			t.Errorf("alice's mentions %+v", ms)
		}
	})

	t.Run("Replies", func(t *testing.T) {
		base := "/v1/conversations/" + a + "/messages/"
		f.wantError(f.token("alice"), base+"1/replies", http.StatusNotFound, codeNotFound) // cleared
		f.wantError(f.token("carol"), base+"1/replies", http.StatusForbidden, codeNotMember)
		f.wantError(f.token("bob"), base+"1/replies?limit=0", http.StatusBadRequest, codeInvalidArgument)
		f.wantError(f.token("bob"), base+"1/replies?after=x", http.StatusBadRequest, codeInvalidCursor)
		var p repliesPage
		getCompact(t, "bob", base+"1/replies", "Replies")
		f.getJSON("bob", base+"1/replies", &p)
		var seqs []int64
		for _, it := range p.Replies {
			seqs = append(seqs, it.Seq)
		}
		if p.Seq != 1 || !slices.Equal(seqs, []int64{2, 3, 5}) || p.HasMore {
			t.Errorf("replies to 1: %+v", p)
		}
		f.getJSON("bob", base+"1/replies?limit=2", &p)
		if len(p.Replies) != 2 || !p.HasMore || p.NextAfter != 3 {
			t.Errorf("replies to 1, limit 2: %+v", p)
		}
		f.getJSON("bob", base+"1/replies?after=3", &p)
		if len(p.Replies) != 1 || p.Replies[0].Seq != 5 || p.HasMore {
			t.Errorf("replies to 1 after 3: %+v", p)
		}
		if got := getCompact(t, "alice", base+"2/replies", "Replies"); got != `{"seq":2,"replies":[],"has_more":false}` {
			t.Errorf("replies to 2: %s", got)
		}
	})

	t.Run("Settings", func(t *testing.T) {
		got := getCompact(t, "alice", "/v1/me/settings", "Settings")
		conv := func(id, fields string) string {
			return `{"conversation_id":"` + id + `",` + fields + `}`
		}
		want := compact(t, `{"user_stream_id":"`+stream+`","version":6,"conversations":[`+
			conv(a, `"muted":false,"muted_forever":false,"pinned":false,"archived_up_to_seq":0,"unread_marked_at_seq":5,"hidden_up_to_seq":1,"hidden_seqs":[3]`)+`,`+
			conv(b, `"muted":false,"muted_forever":false,"pinned":true,"pinned_at":"`+at(1)+`","archived_up_to_seq":0,"unread_marked_at_seq":0,"hidden_up_to_seq":0,"hidden_seqs":[]`)+`,`+
			conv(c, `"muted":true,"muted_forever":true,"pinned":false,"archived_up_to_seq":1,"unread_marked_at_seq":0,"hidden_up_to_seq":0,"hidden_seqs":[]`)+
			`],"blocks":[{"user_id":"bob","blocked_at":"`+at(6)+`"}]}`)
		if got != want {
			t.Errorf("alice's settings\n got %s\nwant %s", got, want)
		}
		if got := getCompact(t, "carol", "/v1/me/settings", "Settings"); got != `{"user_stream_id":"`+schemas.UserStreamID("carol")+`","version":0,"conversations":[],"blocks":[]}` {
			t.Errorf("carol's settings %s", got)
		}
		f.wantError("", "/v1/me/settings", http.StatusUnauthorized, codeUnauthenticated)
	})
}

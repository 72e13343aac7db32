package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/schemas/parleyv1"
)

// A group's history visibility as query applies it, on rows the projector
// wrote from a log in which members are added after the creation.

func visibilitySet(v parleyv1.HistoryVisibility) *parleyv1.Event {
	return governed("alice", func(e *parleyv1.Event) {
		e.Body = &parleyv1.Event_GroupSettingsChanged{GroupSettingsChanged: &parleyv1.GroupSettingsChanged{
			Settings: &parleyv1.GroupSettings{HistoryVisibility: v.Enum()}}}
	})
}

func addedBy(user string, seq int64, users ...string) *parleyv1.Event {
	return &parleyv1.Event{Seq: seq, ActorUserId: user, ActorDeviceId: user + "-phone",
		Body: &parleyv1.Event_MembersAdded{MembersAdded: &parleyv1.MembersAdded{UserIds: users}}}
}

// visibilityLog: alice, bob, carol and dave create the group; dave is
// mentioned, leaves and is added back with erin at seq 6, after which the
// visibility becomes since_join (by version; each event at t0 + its
// version in seconds).
func visibilityLog() []*parleyv1.Event {
	return []*parleyv1.Event{
		/* 1 */ {ActorUserId: "alice", ActorDeviceId: "alice-phone", Body: &parleyv1.Event_ConversationCreated{ConversationCreated: &parleyv1.ConversationCreated{
			Kind: parleyv1.ConversationKind_CONVERSATION_KIND_GROUP, Title: "Vis", MemberUserIds: []string{"alice", "bob", "carol", "dave"}}}},
		/* 2 */ sent("bob", "c1", "one", "text/plain", 1, 0),
		/* 3 */ edited("bob", 1, 1, "one, edited", "text/plain"),
		/* 4 */ reacted("carol", 1, "+1"),
		/* 5 */ pinnedBy("alice", 1),
		/* 6 */ mentioning("alice", "c2", "@dave hi", 2, false, "dave"),
		/* 7 */ mentioning("carol", "c3", "@all early", 3, true),
		/* 8 */ {Seq: 4, ActorUserId: "dave", ActorDeviceId: "dave-phone", Body: &parleyv1.Event_MemberRemoved{MemberRemoved: &parleyv1.MemberRemoved{
			UserId: "dave", Reason: parleyv1.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT}}},
		/* 9 */ sent("bob", "c5", "two", "text/plain", 5, 0),
		/* 10 */ addedBy("alice", 6, "erin", "dave"),
		/* 11 */ sent("alice", "c7", "re one", "text/plain", 7, 1), // quotes a message from before the join
		/* 12 */ mentioning("bob", "c8", "@dave @erin welcome", 8, false, "dave", "erin"),
		/* 13 */ pinnedBy("alice", 8),
		/* 14 */ reacted("erin", 8, "🎉"),
		/* 15 */ reacted("erin", 1, "👀"), // on a message erin does not see
		/* 16 */ visibilitySet(parleyv1.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN),
		/* 17 */ mentioning("carol", "c9", "@all now", 9, true),
	}
}

func TestHistoryVisibility(t *testing.T) {
	f := newFixture(t)
	conv := gid("vis")
	f.project(conv, visibilityLog()...)
	base := "/v1/conversations/" + conv
	// A group whose last message is older than erin's join.
	quiet := gid("vis-quiet")
	f.project(quiet,
		&parleyv1.Event{ActorUserId: "alice", ActorDeviceId: "alice-phone", Body: &parleyv1.Event_ConversationCreated{ConversationCreated: &parleyv1.ConversationCreated{
			Kind: parleyv1.ConversationKind_CONVERSATION_KIND_GROUP, Title: "Quiet", MemberUserIds: []string{"alice", "bob"}}}},
		sent("alice", "q1", "before erin", "text/plain", 1, 0),
		visibilitySet(parleyv1.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN),
		addedBy("alice", 2, "erin"))

	// page requests a history page as user, checks it against the spec and
	// returns its seqs, has_more and the cursor it gives.
	page := func(t *testing.T, user, query string) string {
		t.Helper()
		code, body := f.get(user, base+"/messages"+query)
		if code != http.StatusOK {
			t.Fatalf("history %s as %s: %d %s", query, user, code, body)
		}
		conforms(t, "MessagePage", body)
		var p messagePage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		var seqs []string
		for _, m := range p.Messages {
			seqs = append(seqs, itoa(m.Seq))
		}
		return fmt.Sprintf("%s more=%v before=%d after=%d", strings.Join(seqs, ","), p.HasMore, p.NextBefore, p.NextAfter)
	}
	// item is the history item at seq as user sees it in the newest page.
	item := func(t *testing.T, user string, seq int64) string {
		t.Helper()
		for _, it := range f.rawItems(user, base+"/messages") {
			if strings.HasPrefix(it, fmt.Sprintf(`{"seq":%d,`, seq)) {
				return it
			}
		}
		return ""
	}
	pins := func(t *testing.T, user string) []int64 {
		t.Helper()
		code, body := f.get(user, base+"/pins")
		if code != http.StatusOK {
			t.Fatalf("pins as %s: %d %s", user, code, body)
		}
		conforms(t, "Pins", body)
		var v pinsView
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, p := range v.Pins {
			out = append(out, p.Seq)
		}
		return out
	}
	mentions := func(t *testing.T, user, query string) string {
		t.Helper()
		code, body := f.get(user, base+"/mentions"+query)
		if code != http.StatusOK {
			t.Fatalf("mentions as %s: %d %s", user, code, body)
		}
		conforms(t, "MentionPage", body)
		var p mentionsPage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range p.Mentions {
			out = append(out, fmt.Sprintf("%d%s", m.Seq, map[bool]string{true: "@all", false: ""}[m.All]))
		}
		return fmt.Sprintf("%s more=%v", strings.Join(out, ","), p.HasMore)
	}
	versions := func(user string, seq int64) int {
		code, body := f.get(user, fmt.Sprintf("%s/messages/%d/versions", base, seq))
		if code == http.StatusOK {
			conforms(t, "MessageVersions", body)
		}
		return code
	}
	settings := func(t *testing.T, user, conv string) (string, *preview) {
		t.Helper()
		code, body := f.get(user, "/v1/conversations/"+conv)
		if code != http.StatusOK {
			t.Fatalf("conversation as %s: %d %s", user, code, body)
		}
		conforms(t, "Conversation", body)
		var v conversationView
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		return v.Settings.HistoryVisibility, v.Preview
	}

	t.Run("SinceJoin", func(t *testing.T) {
		for _, user := range []string{"erin", "dave", "alice"} {
			if got, _ := settings(t, user, conv); got != visibilitySinceJoin {
				t.Errorf("%s: history_visibility %q", user, got)
			}
		}
		// erin and dave (re-added) joined at 6: nothing below it, in
		// either direction, and backward paging ends there.
		for _, user := range []string{"erin", "dave"} {
			for _, c := range []struct{ query, want string }{
				{"", "9,8,7,6 more=false before=0 after=0"},
				{"?limit=2", "9,8 more=true before=8 after=0"},
				{"?before=8&limit=2", "7,6 more=false before=0 after=0"},
				{"?before=7&limit=1", "6 more=false before=0 after=0"},
				{"?before=6", " more=false before=0 after=0"},
				{"?before=3", " more=false before=0 after=0"},
				{"?after=0", "6,7,8,9 more=false before=0 after=0"},
				{"?after=0&limit=2", "6,7 more=true before=0 after=7"},
				{"?after=3&limit=1", "6 more=true before=0 after=6"},
				{"?after=7", "8,9 more=false before=0 after=0"},
			} {
				if got := page(t, user, c.query); got != c.want {
					t.Errorf("%s history %q: %s, want %s", user, c.query, got, c.want)
				}
			}
			// The reply to message 1 shows its seq alone; message 8 its
			// reactions.
			if got, want := item(t, user, 7), compact(t, `{"seq":7,"type":"MessageSent","sender":"alice","sender_device":"alice-phone",
				"client_msg_id":"c7","content_type":"text/plain","text":"re one","occurred_at":"`+at(11)+`","reply_to":{"seq":1}}`); got != want {
				t.Errorf("%s: item 7\n got %s\nwant %s", user, got, want)
			}
			if got := item(t, user, 8); !strings.Contains(got, `"reactions":[{"emoji":"🎉","count":1,"user_ids":["erin"]}]`) {
				t.Errorf("%s: item 8 %s", user, got)
			}
			if got := pins(t, user); !slices.Equal(got, []int64{8}) {
				t.Errorf("%s: pins %v, want [8]", user, got)
			}
			for seq, want := range map[int64]int{1: http.StatusNotFound, 5: http.StatusNotFound, 7: http.StatusOK, 8: http.StatusOK} {
				if got := versions(user, seq); got != want {
					t.Errorf("%s: versions of %d: %d, want %d", user, seq, got, want)
				}
			}
			if _, p := settings(t, user, conv); p == nil || p.Seq != 9 {
				t.Errorf("%s: preview %+v, want seq 9", user, p)
			}
		}
		f.wantError(f.token("erin"), base+"/messages/1/versions", http.StatusNotFound, "NOT_FOUND")
		// dave was named at 2, before its latest join: not shown; nor the
		// @all at 3.
		for _, c := range []struct{ user, query, want string }{
			{"dave", "", "9@all,8 more=false"},
			{"dave", "?limit=1", "9@all more=true"},
			{"dave", "?after=1", "9@all,8 more=false"},
			{"erin", "", "9@all,8 more=false"},
			{"erin", "?after=8", "9@all more=false"},
		} {
			if got := mentions(t, c.user, c.query); got != c.want {
				t.Errorf("%s mentions %q: %s, want %s", c.user, c.query, got, c.want)
			}
		}

		// The members present at the creation see everything.
		for _, user := range []string{"alice", "bob"} {
			if got := page(t, user, "?after=0"); got != "1,2,3,4,5,6,7,8,9 more=false before=0 after=0" {
				t.Errorf("%s history: %s", user, got)
			}
			if got := item(t, user, 7); !strings.Contains(got, `"reply_to":{"seq":1,"sender":"bob","snippet":"one, edited"}`) {
				t.Errorf("%s: item 7 %s", user, got)
			}
			if got := item(t, user, 1); !strings.Contains(got, `"reactions":[{"emoji":"+1","count":1,"user_ids":["carol"]},{"emoji":"👀","count":1,"user_ids":["erin"]}]`) {
				t.Errorf("%s: item 1 %s", user, got)
			}
			if got := pins(t, user); !slices.Equal(got, []int64{8, 1}) {
				t.Errorf("%s: pins %v, want [8 1]", user, got)
			}
			if got := versions(user, 1); got != http.StatusOK {
				t.Errorf("%s: versions of 1: %d", user, got)
			}
		}
		// The last message before the join is no preview for erin, in the
		// inbox and the conversation; alice sees it.
		if _, p := settings(t, "erin", quiet); p != nil {
			t.Errorf("erin: preview %+v of a message before the join", p)
		}
		if _, p := settings(t, "alice", quiet); p == nil || p.Seq != 1 {
			t.Errorf("alice: preview %+v, want seq 1", p)
		}
		var inbox inboxPage
		f.getJSON("erin", "/v1/inbox", &inbox)
		for _, it := range inbox.Conversations {
			switch {
			case it.ConversationID == quiet && it.Preview != nil:
				t.Errorf("erin's inbox: preview %+v of a message before the join", it.Preview)
			case it.ConversationID == conv && (it.Preview == nil || it.Preview.Seq != 9):
				t.Errorf("erin's inbox: preview %+v, want seq 9", it.Preview)
			}
		}
		if code, body := f.get("erin", "/v1/conversations/"+quiet+"/messages"); code != http.StatusOK || !strings.Contains(string(body), `"messages":[{"seq":2,`) ||
			strings.Contains(string(body), `"seq":1,`) {
			t.Errorf("erin's history of the quiet group: %d %s", code, body)
		}
	})

	// The setting in force when reading applies: back to all, erin and
	// dave see everything again (dave its mention from before its latest
	// join too; an @all from before a join is still none).
	f.project(conv, append(visibilityLog(), visibilitySet(parleyv1.HistoryVisibility_HISTORY_VISIBILITY_ALL))...)
	t.Run("BackToAll", func(t *testing.T) {
		for _, user := range []string{"erin", "dave"} {
			if got, _ := settings(t, user, conv); got != visibilityAll {
				t.Errorf("%s: history_visibility %q", user, got)
			}
			if got := page(t, user, ""); got != "9,8,7,6,5,4,3,2,1 more=false before=0 after=0" {
				t.Errorf("%s history: %s", user, got)
			}
			if got := item(t, user, 7); !strings.Contains(got, `"reply_to":{"seq":1,"sender":"bob","snippet":"one, edited"}`) {
				t.Errorf("%s: item 7 %s", user, got)
			}
			if got := pins(t, user); !slices.Equal(got, []int64{8, 1}) {
				t.Errorf("%s: pins %v, want [8 1]", user, got)
			}
			if got := versions(user, 1); got != http.StatusOK {
				t.Errorf("%s: versions of 1: %d", user, got)
			}
		}
		if got := mentions(t, "dave", ""); got != "9@all,8,2 more=false" {
			t.Errorf("dave mentions: %s", got)
		}
	})
}

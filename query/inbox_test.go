package query

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
)

func TestInbox(t *testing.T) {
	f := newFixture(t)
	dd := schemas.DirectConversationID("alice", "carol")
	// alice is in five conversations; their activity (t0 + last seq
	// seconds) orders them d, b, c (tie with b's neighbour e, broken by
	// id), a with no timeline, and a removed one that must not show.
	f.conversation(gid("a"), "group", "A", "alice", "bob")
	f.conversation(gid("b"), "group", "B", "bob", "alice")
	f.conversation(gid("c"), "group", "C", "alice")
	f.conversation(dd, "direct", "", "alice", "carol")
	f.conversation(gid("e"), "group", "E", "alice", "bob")
	f.conversation(gid("gone"), "group", "Gone", "alice", "bob")
	f.timeline(gid("b"), 1, 7, "bob", nil)
	f.timeline(gid("c"), 1, 5, "alice", nil)
	f.timeline(dd, 1, 9, "carol", nil)
	f.timeline(gid("e"), 1, 5, "bob", nil)
	f.timeline(gid("gone"), 1, 20, "bob", nil)
	f.marks(gid("b"), "alice", 3, 7)
	f.marks(gid("c"), "alice", 5, 5)
	f.marks(dd, "alice", 0, 9)
	f.marks(gid("e"), "alice", 6, 6) // beyond last_seq: never negative
	f.remove(gid("gone"), "alice", 21)

	var page inboxPage
	f.getJSON("alice", "/v1/inbox", &page)
	var ids []string
	for _, c := range page.Conversations {
		ids = append(ids, c.ConversationID)
	}
	want := []string{dd, gid("b"), gid("c"), gid("e"), gid("a")}
	if !slices.Equal(ids, want) || page.NextCursor != "" {
		t.Fatalf("inbox order %v (cursor %q), want %v and no cursor", ids, page.NextCursor, want)
	}
	byID := map[string]inboxItem{}
	for _, c := range page.Conversations {
		byID[c.ConversationID] = c
	}
	wantUnread := map[string]int64{dd: 9, gid("b"): 4, gid("c"): 0, gid("e"): 0, gid("a"): 0}
	for id, n := range wantUnread {
		if byID[id].Unread != n {
			t.Errorf("%s: unread %d, want %d (%+v)", id, byID[id].Unread, n, byID[id])
		}
	}
	b := byID[gid("b")]
	if b.Kind != "group" || b.Title != "B" || b.LastSeq != 7 || b.ReadSeq != 3 ||
		!b.LastActivity.Equal(t0.Add(7*time.Second)) || b.Preview == nil || *b.Preview != (preview{Seq: 7, Sender: "bob", Text: "m7"}) {
		t.Errorf("g:b item %+v preview %+v", b, b.Preview)
	}
	if a := byID[gid("a")]; a.Preview != nil || !a.LastActivity.Equal(t0) || a.LastSeq != 0 {
		t.Errorf("g:a (no timeline) item %+v", a)
	}
	// The preview is omitted, not null, when there is no message.
	_, raw := f.get("alice", "/v1/inbox")
	if want := `"conversation_id":"` + gid("a") + `","kind":"group","title":"A","last_seq":0,"version":1,"last_activity":"2025-03-01T12:00:00Z","read_seq":0,"unread":0,"unread_mentions":0,"muted":false,"muted_forever":false,"pinned":false,"archived":false,"marked_unread":false}`; !bytes.Contains(raw, []byte(want)) {
		t.Errorf("inbox JSON %s lacks %s", raw, want)
	}

	t.Run("Pages", func(t *testing.T) {
		for _, limit := range []int{1, 2, 3, 5} {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatalf("limit %d: pagination does not end", limit)
				}
				var p inboxPage
				f.getJSON("alice", fmt.Sprintf("/v1/inbox?limit=%d&cursor=%s", limit, url.QueryEscape(cursor)), &p)
				if len(p.Conversations) > limit || (p.NextCursor != "" && len(p.Conversations) != limit) {
					t.Fatalf("limit %d: page of %d, cursor %q", limit, len(p.Conversations), p.NextCursor)
				}
				for _, c := range p.Conversations {
					got = append(got, c.ConversationID)
				}
				if cursor = p.NextCursor; cursor == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("limit %d: walked %v, want %v", limit, got, want)
			}
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		tok := f.token("alice")
		for _, q := range []string{"limit=0", "limit=201", "limit=x"} {
			f.wantError(tok, "/v1/inbox?"+q, http.StatusBadRequest, "INVALID_ARGUMENT")
		}
		for _, q := range []string{"cursor=%21%21", "cursor=e30", "cursor=" + strings.Repeat("e", 300),
			"cursor=" + inboxCursor{ActivityMS: 1, ID: "g:club"}.encode()} {
			f.wantError(tok, "/v1/inbox?"+q, http.StatusBadRequest, "INVALID_CURSOR")
		}
		var p inboxPage
		f.getJSON("alice", "/v1/inbox?limit=200", &p)
	})

	t.Run("Unread", func(t *testing.T) {
		var u unreadTotals
		f.getJSON("alice", "/v1/unread", &u)
		if u != (unreadTotals{Total: 13, Conversations: 2}) {
			t.Errorf("alice unread %+v, want 13 in 2", u)
		}
		// bob never read anything: a 0, b 7 (his own messages do not move
		// his mark in this fixture), e 5, gone 20.
		f.getJSON("bob", "/v1/unread", &u)
		if u != (unreadTotals{Total: 32, Conversations: 3}) {
			t.Errorf("bob unread %+v, want 32 in 3", u)
		}
		f.getJSON("nobody", "/v1/unread", &u)
		if u != (unreadTotals{}) {
			t.Errorf("nobody unread %+v", u)
		}
		var p inboxPage
		f.getJSON("nobody", "/v1/inbox", &p)
		if p.Conversations == nil || len(p.Conversations) != 0 {
			t.Errorf("empty inbox %+v, want an empty list", p)
		}
	})
}

package query

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
)

func seqsOf(p messagePage) []int64 {
	var s []int64
	for _, m := range p.Messages {
		s = append(s, m.Seq)
	}
	return s
}

func TestHistory(t *testing.T) {
	if schemas.MessagesPerBucket != 1000 {
		t.Skipf("written for 1000 seqs per bucket, have %d", schemas.MessagesPerBucket)
	}
	f := newFixture(t)
	const n = 1500
	f.conversation(gid("big"), "group", "Big", "alice", "bob")
	start := time.Now()
	f.timeline(gid("big"), 1, n, "bob", nil)
	t.Logf("wrote %d messages in %v", n, time.Since(start))

	t.Run("Backward", func(t *testing.T) {
		seen := make([]int, n+1)
		next, pages := int64(0), 0
		for {
			path := "/v1/conversations/" + gid("big") + "/messages?limit=200"
			if next != 0 {
				path += fmt.Sprintf("&before=%d", next)
			}
			var p messagePage
			f.getJSON("alice", path, &p)
			pages++
			for i, m := range p.Messages {
				seen[m.Seq]++
				if i > 0 && m.Seq != p.Messages[i-1].Seq-1 {
					t.Fatalf("page %d not newest first and dense: %v", pages, seqsOf(p))
				}
			}
			if !p.HasMore {
				if p.NextBefore != 0 {
					t.Errorf("last page has next_before %d", p.NextBefore)
				}
				break
			}
			if len(p.Messages) != 200 || p.NextBefore != p.Messages[199].Seq {
				t.Fatalf("page %d: %d items, next_before %d", pages, len(p.Messages), p.NextBefore)
			}
			next = p.NextBefore
		}
		checkOnce(t, seen)
		if pages != 8 {
			t.Errorf("%d pages, want 8", pages)
		}
	})

	t.Run("Forward", func(t *testing.T) {
		seen := make([]int, n+1)
		after, pages := int64(0), 0
		for {
			var p messagePage
			f.getJSON("alice", fmt.Sprintf("/v1/conversations/"+gid("big")+"/messages?limit=200&after=%d", after), &p)
			pages++
			for i, m := range p.Messages {
				seen[m.Seq]++
				if m.Seq != after+int64(i)+1 {
					t.Fatalf("page %d after %d not oldest first and dense: %v", pages, after, seqsOf(p))
				}
			}
			if !p.HasMore {
				break
			}
			if p.NextAfter != p.Messages[len(p.Messages)-1].Seq {
				t.Fatalf("next_after %d, last %d", p.NextAfter, p.Messages[len(p.Messages)-1].Seq)
			}
			after = p.NextAfter
		}
		checkOnce(t, seen)
		if pages != 8 {
			t.Errorf("%d pages, want 8", pages)
		}
	})

	t.Run("Edges", func(t *testing.T) {
		cases := []struct {
			query   string
			want    []int64
			hasMore bool
		}{
			{"before=1001&limit=3", []int64{1000, 999, 998}, true},
			{"before=1002&limit=3", []int64{1001, 1000, 999}, true},
			{"after=998&limit=3", []int64{999, 1000, 1001}, true},
			{"after=1497&limit=3", []int64{1498, 1499, 1500}, false},
			{"after=1500", nil, false},
			{"after=99999999999", nil, false},
			{"before=4&limit=3", []int64{3, 2, 1}, false},
			{"before=1", nil, false},
			{"before=9223372036854775807&limit=2", []int64{1500, 1499}, true},
			{"limit=2", []int64{1500, 1499}, true},
			{"after=0&limit=2", []int64{1, 2}, true},
		}
		for _, c := range cases {
			var p messagePage
			f.getJSON("alice", "/v1/conversations/"+gid("big")+"/messages?"+c.query, &p)
			if fmt.Sprint(seqsOf(p)) != fmt.Sprint(c.want) || p.HasMore != c.hasMore {
				t.Errorf("%s: %v has_more %v, want %v %v", c.query, seqsOf(p), p.HasMore, c.want, c.hasMore)
			}
		}
		var p messagePage
		f.getJSON("alice", "/v1/conversations/"+gid("big")+"/messages", &p)
		if len(p.Messages) != 200 || p.Messages[0].Seq != n || !p.HasMore || p.NextBefore != n-199 {
			t.Errorf("default page: %d items from %d, has_more %v next_before %d", len(p.Messages), p.Messages[0].Seq, p.HasMore, p.NextBefore)
		}
		m := p.Messages[0]
		want := messageItem{Seq: n, Type: "MessageSent", Sender: "bob", SenderDevice: "bob-phone", ClientMsgID: "c1500",
			ContentType: "text/plain", OccurredAt: t0.Add(n * time.Second)}
		text := m.Text
		m.Text = nil
		if fmt.Sprint(m) != fmt.Sprint(want) || text == nil || *text != "m1500" {
			t.Errorf("item %+v (text %v), want %+v", m, text, want)
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		tok := f.token("alice")
		for _, q := range []string{"limit=201", "limit=0", "limit=-1", "limit=x", "limit=" + strings.Repeat("9", 70000)} {
			f.wantError(tok, "/v1/conversations/"+gid("big")+"/messages?"+q, http.StatusBadRequest, "INVALID_ARGUMENT")
		}
		for _, q := range []string{"before=0", "before=-3", "before=x", "before=1.5", "after=-1", "after=0x10",
			"before=5&after=2", "after=99999999999999999999", "before=" + strings.Repeat("1", 70000)} {
			f.wantError(tok, "/v1/conversations/"+gid("big")+"/messages?"+q, http.StatusBadRequest, "INVALID_CURSOR")
		}
	})

	t.Run("Notices", func(t *testing.T) {
		f.conversation(gid("n"), "group", "N", "alice", "bob")
		added := &parleyv1.Event{ActorUserId: "alice", ActorDeviceId: "alice-phone",
			Body: &parleyv1.Event_MembersAdded{MembersAdded: &parleyv1.MembersAdded{UserIds: []string{"carol", "dave"}}}}
		left := &parleyv1.Event{ActorUserId: "dave", ActorDeviceId: "dave-phone",
			Body: &parleyv1.Event_MemberRemoved{MemberRemoved: &parleyv1.MemberRemoved{UserId: "dave", Reason: parleyv1.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT}}}
		f.timeline(gid("n"), 1, 3, "bob", map[int64]*parleyv1.Event{2: added, 3: left})
		var p messagePage
		f.getJSON("alice", "/v1/conversations/"+gid("n")+"/messages", &p)
		if len(p.Messages) != 3 || p.HasMore {
			t.Fatalf("page %+v", p)
		}
		gone, add, msg := p.Messages[0], p.Messages[1], p.Messages[2]
		if gone.Type != "MemberRemoved" || fmt.Sprint(gone.MemberIDs) != "[dave]" || gone.RemovedReason != "left" || gone.Sender != "dave" || gone.Text != nil {
			t.Errorf("removal notice %+v", gone)
		}
		if add.Type != "MembersAdded" || fmt.Sprint(add.MemberIDs) != "[carol dave]" || add.Sender != "alice" || add.ClientMsgID != "" {
			t.Errorf("added notice %+v", add)
		}
		if msg.Type != "MessageSent" || msg.MemberIDs != nil || msg.Text == nil {
			t.Errorf("message %+v", msg)
		}
	})
}

func checkOnce(t *testing.T, seen []int) {
	t.Helper()
	for seq := 1; seq < len(seen); seq++ {
		if seen[seq] != 1 {
			t.Fatalf("seq %d seen %d times", seq, seen[seq])
		}
	}
}

package projector

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func closedEv(conv, actor, service, reason string, seq int64) *pb.Event {
	e := base(conv, 0, actor)
	e.ActorService, e.OccurredAt = service, at(seq)
	e.Body = &pb.Event_ConversationClosed{ConversationClosed: &pb.ConversationClosed{Reason: reason}}
	return e
}

func reopenedEv(conv, actor string, seq int64) *pb.Event {
	e := base(conv, 0, actor)
	e.OccurredAt = at(seq)
	e.Body = &pb.Event_ConversationReopened{ConversationReopened: &pb.ConversationReopened{}}
	return e
}

func deletedEv(conv string, seq int64, members ...string) *pb.Event {
	e := base(conv, 0, "ops")
	e.ActorService, e.OccurredAt = "ops", at(seq)
	e.Body = &pb.Event_ConversationDeleted{ConversationDeleted: &pb.ConversationDeleted{Reason: "legal", MemberUserIds: members}}
	return e
}

// closeLog: g is closed by its owner, reopened, closed by a service and
// deleted, after carol left.
func closeLog(g string) func() []*pb.Event {
	return func() []*pb.Event {
		return commandIDs(versioned(
			/* 1 */ group(g, "alice", "team", "bob", "carol"),
			/* 2 */ sent(g, 1, "alice", "hello"),
			/* 3 */ removed(g, 2, "carol", "carol"),
			/* 4 */ closedEv(g, "alice", "", "quiet", 3),
			/* 5 */ reopenedEv(g, "alice", 4),
			/* 6 */ closedEv(g, "ops", "ops", "archived", 5),
			/* 7 */ deletedEv(g, 6, "alice", "bob"),
		))
	}
}

// reopenLog: h is closed and reopened.
func reopenLog(h string) func() []*pb.Event {
	return func() []*pb.Event {
		return commandIDs(versioned(
			/* 1 */ group(h, "alice", "other", "bob"),
			/* 2 */ closedEv(h, "alice", "", "", 7),
			/* 3 */ reopenedEv(h, "alice", 8),
		))
	}
}

func commandIDs(evs []*pb.Event) []*pb.Event {
	for _, ev := range evs {
		ev.CommandId = fmt.Sprintf("cmd-%s-%d", ev.GetConversationId(), ev.GetVersion())
	}
	return evs
}

// TestViewsCloseDelete applies closings, a reopening and a deletion
// forwards, backwards and as a log-order batch, twice each: the
// conversations row has the newest closing state and the deletion, the
// final members' inbox rows are deleted (not carol's, removed before),
// and the readers leave the deleted conversation out.
func TestViewsCloseDelete(t *testing.T) {
	e := newEnv(t, true)
	g, h := "g:00000000000000000000000000000c01", "g:00000000000000000000000000000c02"
	e.applyEachWay(t, h, reopenLog(h), func(t *testing.T, ks string) {
		hc := e.rows(ks, "conversations", "conversation_id = ?", h)
		if len(hc) != 1 {
			t.Fatalf("conversations rows: %v", hc)
		}
		compare(t, h, "conversations", hc[0], row{"closed": false, "closed_at": nil, "closed_by": nil, "closed_reason": nil,
			"deleted": nil, "deleted_at": nil, "last_version": 3})
		tables, err := NewTables(e.s, ks)
		if err != nil {
			t.Fatal(err)
		}
		if c, _, err := tables.Conversation(t.Context(), h); err != nil || c.Closed || c.Deleted || !c.ClosedAt.IsZero() || c.ClosedBy != "" {
			t.Fatalf("Conversation(%s) = %+v, %v", h, c, err)
		}
	})
	e.applyEachWay(t, g, closeLog(g), func(t *testing.T, ks string) {
		gc := e.rows(ks, "conversations", "conversation_id = ?", g)
		if len(gc) != 1 {
			t.Fatalf("conversations rows: %v", gc)
		}
		compare(t, g, "conversations", gc[0], row{"closed": true, "closed_at": ts(5), "closed_by": "ops", "closed_reason": "archived",
			"deleted": true, "deleted_at": ts(6), "last_version": 7})
		for _, u := range []string{"alice", "bob", "carol"} {
			in := e.rows(ks, "inbox", "user_id = ? AND conversation_id = ?", u, g)
			if len(in) != 1 {
				t.Fatalf("inbox of %s: %v", u, in)
			}
			var want any = true
			if u == "carol" {
				want = nil
			}
			compare(t, g, "inbox of "+u, in[0], row{"deleted": want})
		}

		tables, err := NewTables(e.s, ks)
		if err != nil {
			t.Fatal(err)
		}
		c, found, err := tables.Conversation(t.Context(), g)
		if err != nil || !found || !c.Deleted || !c.Closed || c.ClosedBy != "ops" || c.ClosedReason != "archived" || !c.ClosedAt.Equal(at(5).AsTime()) {
			t.Fatalf("Conversation(%s) = %+v, %v, %v", g, c, found, err)
		}
		entries, err := tables.Inbox(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || !entries[0].Deleted || !entries[0].Gone() {
			t.Fatalf("bob's inbox %+v: want g's row, deleted", entries)
		}
		// bob has alice's message unread in g: a deleted conversation
		// counts for nothing.
		if n, err := tables.UnreadTotal(t.Context(), "bob"); err != nil || n != 0 {
			t.Fatalf("UnreadTotal(bob) = %d, %v", n, err)
		}
	})
}

// TestDecodeCloseDelete: the poison check of a deletion's members.
func TestDecodeCloseDelete(t *testing.T) {
	c := "g:decode"
	for _, tc := range []struct {
		ev     *pb.Event
		poison string
	}{
		{deletedEv(c, 1, "alice", "bob"), ""},
		{deletedEv(c, 1), ""}, // everyone had left
		{deletedEv(c, 1, "alice", ""), "empty member_user_ids"},
		{closedEv(c, "alice", "", "", 1), ""},
		{reopenedEv(c, "ops", 1), ""},
	} {
		raw, _ := proto.Marshal(tc.ev)
		_, err := decode([]byte(c), raw)
		switch {
		case tc.poison == "" && err != nil:
			t.Errorf("%v: %v", tc.ev, err)
		case tc.poison != "" && (!errors.Is(err, ErrPoison) || !strings.Contains(err.Error(), tc.poison)):
			t.Errorf("%v: %v, want poison %q", tc.ev, err, tc.poison)
		}
	}
}

package projector

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Builders of user stream events: on the actor's stream, at a time of their
// own (set by userLog from the version).

func onStream(user string) *pb.Event {
	e := base(schemas.UserStreamID(user), 0, user)
	return e
}

func prefsChanged(user string, p *pb.ConversationPrefsChanged) *pb.Event {
	e := onStream(user)
	e.Body = &pb.Event_ConversationPrefsChanged{ConversationPrefsChanged: p}
	return e
}

func hid(user, conv string, upTo int64, seqs ...int64) *pb.Event {
	e := onStream(user)
	e.Body = &pb.Event_MessagesHidden{MessagesHidden: &pb.MessagesHidden{ConversationId: conv, Seqs: seqs, UpToSeq: upTo}}
	return e
}

func blocked(user, other string, block bool) *pb.Event {
	e := onStream(user)
	if block {
		e.Body = &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{UserId: other}}
	} else {
		e.Body = &pb.Event_UserUnblocked{UserUnblocked: &pb.UserUnblocked{UserId: other}}
	}
	return e
}

// userLog is alice's stream: g:a muted until t0+900s, pinned, archived and
// marked unread, then unmuted and unpinned; messages of g:a hidden (two
// seqs, then clears up to 3 and, later, up to 1); bob and carol blocked, bob
// unblocked; g:b muted for good. Event v happens at t0+100+v seconds.
func userLog() []*pb.Event {
	evs := versioned(
		/* 1 */ prefsChanged("alice", &pb.ConversationPrefsChanged{ConversationId: "g:a", Mute: &pb.Mute{Until: at(900)}}),
		/* 2 */ prefsChanged("alice", &pb.ConversationPrefsChanged{ConversationId: "g:a", Pinned: proto.Bool(true)}),
		/* 3 */ prefsChanged("alice", &pb.ConversationPrefsChanged{ConversationId: "g:a", ArchivedUpToSeq: proto.Int64(5),
			UnreadMarkedAtSeq: proto.Int64(3)}),
		/* 4 */ hid("alice", "g:a", 0, 2, 4),
		/* 5 */ hid("alice", "g:a", 3),
		/* 6 */ hid("alice", "g:a", 1, 4, 7),
		/* 7 */ blocked("alice", "bob", true),
		/* 8 */ blocked("alice", "carol", true),
		/* 9 */ blocked("alice", "bob", false),
		/* 10 */ prefsChanged("alice", &pb.ConversationPrefsChanged{ConversationId: "g:a", Mute: &pb.Mute{}, Pinned: proto.Bool(false)}),
		/* 11 */ prefsChanged("alice", &pb.ConversationPrefsChanged{ConversationId: "g:b", Mute: &pb.Mute{Forever: true},
			Pinned: proto.Bool(true)}),
	)
	for _, ev := range evs {
		ev.OccurredAt = at(100 + ev.GetVersion())
		ev.CommandId = fmt.Sprintf("cmd-u-%d", ev.GetVersion())
	}
	return evs
}

// TestViewsUserStream applies alice's stream forwards, backwards, and as a
// log-order batch, twice each (on keyspaces of their own): the prefs as the
// newest change of each field left them, the hidden seqs and clears, the
// blocks, the stream's changes rows and last_version, and nothing else —
// no conversations kind or title, no members or inbox rows for the stream.
func TestViewsUserStream(t *testing.T) {
	e := newEnv(t, true)
	stream := schemas.UserStreamID("alice")
	e.applyEachWay(t, stream, userLog, func(t *testing.T, ks string) {
		prefs := map[string]map[string]any{}
		for _, r := range e.rows(ks, "conversation_prefs", "user_id = ?", "alice") {
			prefs[r["conversation_id"].(string)] = r
		}
		compare(t, stream, "conversation_prefs", prefs["g:a"], row{"muted_forever": false, "muted_until": nil, "pinned": false,
			"pinned_at": nil, "archived_up_to_seq": 5, "unread_marked_at_seq": 3, "updated_at": ts(110)})
		compare(t, stream, "conversation_prefs", prefs["g:b"], row{"muted_forever": true, "muted_until": nil, "pinned": true,
			"pinned_at": ts(111), "archived_up_to_seq": nil, "unread_marked_at_seq": nil, "updated_at": ts(111)})
		if len(prefs) != 2 {
			t.Errorf("conversation_prefs %v: want g:a and g:b", prefs)
		}
		var hidden []string
		for _, r := range e.rows(ks, "hidden_messages", "user_id = ? AND conversation_id = ?", "alice", "g:a") {
			hidden = append(hidden, fmt.Sprintf("%v@%v", r["seq"], r["hidden_at"]))
		}
		if want := []string{"2@" + ts(104), "4@" + ts(106), "7@" + ts(106)}; !slices.Equal(hidden, want) {
			t.Errorf("hidden_messages %v, want %v (a seq hidden again at its newest hide)", hidden, want)
		}
		var cleared []string
		for _, r := range e.rows(ks, "history_cleared", "user_id = ? AND conversation_id = ?", "alice", "g:a") {
			cleared = append(cleared, fmt.Sprintf("%v@%v", r["up_to_seq"], r["cleared_at"]))
		}
		if want := []string{"3@" + ts(105), "1@" + ts(106)}; !slices.Equal(cleared, want) {
			t.Errorf("history_cleared %v, want %v", cleared, want)
		}
		var blocks []string
		for _, r := range e.rows(ks, "blocks", "user_id = ?", "alice") {
			blocks = append(blocks, fmt.Sprintf("%v@%v", r["blocked_user_id"], r["blocked_at"]))
		}
		if want := []string{"carol@" + ts(108)}; !slices.Equal(blocks, want) {
			t.Errorf("blocks %v, want %v", blocks, want)
		}
		convs := e.rows(ks, "conversations", "conversation_id = ?", stream)
		if len(convs) != 1 {
			t.Fatalf("conversations rows of the stream: %v", convs)
		}
		compare(t, stream, "conversations", convs[0], row{"last_version": 11, "kind": nil, "title": nil, "last_seq": nil})
		if rs := e.rows(ks, "members", "conversation_id = ?", stream); len(rs) != 0 {
			t.Errorf("members rows of a user stream: %v", rs)
		}
		if rs := e.rows(ks, "inbox", "conversation_id = ?", stream); len(rs) != 0 {
			t.Errorf("inbox rows of a user stream: %v", rs)
		}
		if rs := e.rows(ks, "messages", "conversation_id = ?", stream); len(rs) != 0 {
			t.Errorf("messages rows of a user stream: %v", rs)
		}

		tables, err := NewTables(e.s, ks)
		if err != nil {
			t.Fatal(err)
		}
		changes, err := tables.ChangesAfter(t.Context(), stream, 0, 11, 100)
		if err != nil || len(changes) != 11 {
			t.Fatalf("changes of the stream: %d, %v", len(changes), err)
		}
		p, err := tables.ConversationPrefs(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if a, b := p["g:a"], p["g:b"]; a.MutedAt(t0) || a.Pinned || a.ArchivedUpToSeq != 5 || !a.Archived(5, t0) || a.Archived(6, t0) ||
			!a.MarkedUnread(3) || a.MarkedUnread(4) || !b.MutedAt(t0) || !b.Pinned || !b.PinnedAt.Equal(at(111).AsTime()) {
			t.Errorf("ConversationPrefs: %+v", p)
		}
		h, err := tables.Hidden(t.Context(), "alice", "g:a")
		if err != nil || h.UpToSeq != 3 || !slices.Equal(h.Seqs, []int64{4, 7}) {
			t.Errorf("Hidden(all) = %+v, %v: want up to 3, and 4 and 7", h, err)
		}
		if seqs, err := tables.HiddenSeqs(t.Context(), "alice", "g:a", 3, 6); err != nil || !slices.Equal(seqs, []int64{4}) {
			t.Errorf("HiddenSeqs(3..6) = %v, %v", seqs, err)
		}
		bs, err := tables.Blocks(t.Context(), "alice")
		if err != nil || len(bs) != 1 || bs[0].UserID != "carol" {
			t.Errorf("Blocks = %v, %v", bs, err)
		}
		for other, want := range map[string]bool{"bob": false, "carol": true} {
			if got, err := tables.Blocked(t.Context(), "alice", other); err != nil || got != want {
				t.Errorf("Blocked(alice, %s) = %v, %v", other, got, err)
			}
		}
	})
}

// TestViewsUserStreamLate: a block after its unblock, or a mute after
// the unmute that followed it, applied late, stays below.
func TestViewsUserStreamLate(t *testing.T) {
	e := newEnv(t, true)
	evs := userLog()
	e.applyAll(e.keyspace, evs)
	e.applyAll(e.keyspace, []*pb.Event{evs[6], evs[0], evs[1]})
	if rs := e.rows(e.keyspace, "blocks", "user_id = ? AND blocked_user_id = ?", "alice", "bob"); len(rs) != 0 {
		t.Errorf("bob blocked again by a late replay: %v", rs)
	}
	rs := e.rows(e.keyspace, "conversation_prefs", "user_id = ? AND conversation_id = ?", "alice", "g:a")
	if len(rs) != 1 {
		t.Fatal(rs)
	}
	compare(t, "alice", "conversation_prefs", rs[0], row{"muted_until": nil, "pinned": false, "updated_at": ts(110)})
}

// TestDecodeUserStream: user stream events not on their actor's stream,
// without a version or without what they are about are poison; the
// decision records of two-stream decisions write nothing.
func TestDecodeUserStream(t *testing.T) {
	good := userLog()[0]
	cases := map[string]func(e *pb.Event){
		"another user's stream": func(e *pb.Event) { e.ActorUserId = "bob" },
		"a conversation":        func(e *pb.Event) { e.ConversationId = "g:a" },
		"no actor":              func(e *pb.Event) { e.ActorUserId = "" },
		"no version":            func(e *pb.Event) { e.Version = 0 },
		"no conversation":       func(e *pb.Event) { e.GetConversationPrefsChanged().ConversationId = "" },
		"hidden seq 0": func(e *pb.Event) {
			e.Body = &pb.Event_MessagesHidden{MessagesHidden: &pb.MessagesHidden{ConversationId: "g:a", Seqs: []int64{0}}}
		},
		"block of nobody": func(e *pb.Event) { e.Body = &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{}} },
		"forwarded from nothing": func(e *pb.Event) {
			*e = *sent("g:a", 1, "alice", "x")
			e.GetMessageSent().ForwardedFrom = &pb.ForwardOrigin{Seq: 1}
		},
	}
	for name, mutate := range cases {
		ev := proto.Clone(good).(*pb.Event)
		mutate(ev)
		b, _ := proto.Marshal(ev)
		if _, err := decode([]byte(ev.GetConversationId()), b); !errors.Is(err, ErrPoison) {
			t.Errorf("%s: decode = %v, want ErrPoison", name, err)
		}
	}
	b, _ := proto.Marshal(good)
	if _, err := decode([]byte(good.GetConversationId()), b); err != nil {
		t.Errorf("decode(good) = %v", err)
	}
	if projected(schemas.TypeDirectBlockChanged) || projected(schemas.TypeMessageForwarded) {
		t.Error("decision records are projected")
	}
}

// TestViewsRepliesAndForwards: replies rows follow MessageSent.reply_to_seq
// and stay after a recall of the reply; a forwarded message keeps its
// origin in its messages row; in any order, twice; the decision records
// (DirectBlockChanged, MessageForwarded) write no row, not even a change.
func TestViewsRepliesAndForwards(t *testing.T) {
	e := newEnv(t, true)
	for _, order := range []string{"forwards", "backwards"} {
		c := "g:replies-" + order
		fwd := reply(c, 3, "carol", "look", 1)
		fwd.GetMessageSent().ForwardedFrom = &pb.ForwardOrigin{ConversationId: "g:elsewhere", Seq: 42, SenderUserId: "dave",
			SentAt: timestamppb.New(t0.Add(-time.Hour))}
		evs := versioned(
			group(c, "alice", "T", "bob", "carol"),
			sent(c, 1, "alice", "question"),
			reply(c, 2, "bob", "answer", 1),
			fwd,
			reply(c, 4, "alice", "thanks", 2),
			recalled(c, 2, "bob", "bob"),
		)
		decision := base(c, 0, "alice")
		decision.Body = &pb.Event_MessageForwarded{MessageForwarded: &pb.MessageForwarded{Seq: 1, TargetConversationId: "g:x", ClientMsgId: "f1"}}
		direct := base("d:"+fmt.Sprintf("%032x", 7), 0, "alice")
		direct.Body = &pb.Event_DirectBlockChanged{DirectBlockChanged: &pb.DirectBlockChanged{BlockerUserId: "alice", BlockedUserId: "bob", Blocked: true}}
		evs = append(evs, decision, direct)
		if order == "backwards" {
			slices.Reverse(evs)
		}
		e.applyAll(e.keyspace, evs)
		e.applyAll(e.keyspace, evs)
		var got []string
		for _, r := range e.rows(e.keyspace, "replies", "conversation_id = ?", c) {
			got = append(got, fmt.Sprintf("%v<-%v:%v@%v", r["reply_to_seq"], r["seq"], r["sender_user_id"], r["occurred_at"]))
		}
		slices.Sort(got)
		if want := []string{"1<-2:bob@" + ts(2), "1<-3:carol@" + ts(3), "2<-4:alice@" + ts(4)}; !slices.Equal(got, want) {
			t.Errorf("%s: replies %v, want %v", order, got, want)
		}
		e.check(t, c, want{
			conversation: row{"last_seq": 4, "last_version": 6},
			members:      map[string]row{"alice": {}, "bob": {}, "carol": {}},
			inbox:        map[string]row{"alice": {}, "bob": {}, "carol": {}},
			messages: map[int64]row{
				1: {"forwarded_conversation_id": nil, "forwarded_seq": nil},
				2: {"recalled_by": "bob"},
				3: {"forwarded_conversation_id": "g:elsewhere", "forwarded_seq": 42, "forwarded_sender": "dave",
					"forwarded_sent_at": t0.Add(-time.Hour).Format("2006-01-02 15:04:05.000Z")},
				4: {},
			},
		})
		if rs := e.rows(e.keyspace, "conversations", "conversation_id = ?", direct.GetConversationId()); len(rs) != 0 {
			t.Errorf("DirectBlockChanged wrote %v", rs)
		}
		tables, err := NewTables(e.s, e.keyspace)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := tables.Replies(t.Context(), c, 1, 2, 10)
		if err != nil || len(rs) != 1 || rs[0].Seq != 3 || rs[0].Sender != "carol" {
			t.Errorf("Replies(1, after 2) = %v, %v", rs, err)
		}
		m, _, err := tables.MessageAt(t.Context(), c, 3)
		if err != nil || m.ForwardedFrom.ConversationID != "g:elsewhere" || m.ForwardedFrom.Seq != 42 || !m.ForwardedFrom.SentAt.Equal(t0.Add(-time.Hour)) {
			t.Errorf("MessageAt(3).ForwardedFrom = %+v, %v", m.ForwardedFrom, err)
		}
		if changes, err := tables.ChangesAfter(t.Context(), c, 0, 10, 100); err != nil || len(changes) != 6 {
			t.Errorf("changes: %d, %v: want the 6 versioned events only", len(changes), err)
		}
	}
}

package projector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// versioned numbers evs 1, 2, 3 … as the decider does.
func versioned(evs ...*pb.Event) []*pb.Event {
	for i, ev := range evs {
		ev.Version = int64(i + 1)
	}
	return evs
}

func edited(conv string, seq int64, sender, text string, n int32) *pb.Event {
	e := base(conv, 0, sender)
	e.CommandId = fmt.Sprintf("cmd-%s-edit-%d-%d", conv, seq, n)
	e.OccurredAt = at(seq*10 + int64(n))
	e.Body = &pb.Event_MessageEdited{MessageEdited: &pb.MessageEdited{MessageSeq: seq, Text: text, ContentType: "text/plain",
		ClientMsgId: fmt.Sprintf("e%d-%d", seq, n), EditNumber: n}}
	return e
}

func recalled(conv string, seq int64, actor, sender string) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-recall-%d", conv, seq)
	e.OccurredAt = at(seq*10 + 9)
	e.Body = &pb.Event_MessageRecalled{MessageRecalled: &pb.MessageRecalled{MessageSeq: seq, SenderUserId: sender}}
	return e
}

func reaction(conv string, seq int64, user, emoji string, add bool) *pb.Event {
	e := base(conv, 0, user)
	e.CommandId = fmt.Sprintf("cmd-%s-react-%d-%s-%s-%v", conv, seq, user, emoji, add)
	if add {
		e.Body = &pb.Event_ReactionAdded{ReactionAdded: &pb.ReactionAdded{MessageSeq: seq, Emoji: emoji}}
	} else {
		e.Body = &pb.Event_ReactionRemoved{ReactionRemoved: &pb.ReactionRemoved{MessageSeq: seq, Emoji: emoji}}
	}
	return e
}

func reply(conv string, seq int64, sender, text string, to int64) *pb.Event {
	e := sent(conv, seq, sender, text)
	e.GetMessageSent().ReplyToSeq = to
	return e
}

// actionsLog is a group where bob's message 1 is edited twice, reacted to
// and replied to, and alice's message 2 is edited, reacted to and then
// recalled by its sender; message 3 replies to 1.
func actionsLog(c string) []*pb.Event {
	return versioned(
		group(c, "alice", "T", "bob", "carol"),
		sent(c, 1, "bob", "helo"),
		sent(c, 2, "alice", "secret plan"),
		edited(c, 1, "bob", "hello", 1),
		edited(c, 2, "alice", "secret plan v2", 1),
		reaction(c, 1, "alice", "+1", true),
		reaction(c, 1, "carol", "+1", true),
		reaction(c, 1, "carol", "🎉", true),
		reaction(c, 1, "carol", "🎉", false),
		reaction(c, 2, "bob", "😮", true),
		edited(c, 1, "bob", "hello all", 2),
		recalled(c, 2, "alice", "alice"),
		reply(c, 3, "carol", "hi bob", 1),
	)
}

// TestViewsMessageActions applies edits, reactions, a reply and a recall
// in log order, one by one and as one log-order batch, twice each, and
// replays the recalled message's edit after the recall: the rows are the
// newest edit, the current reactions, and no trace of the recalled content
// in any table.
func TestViewsMessageActions(t *testing.T) {
	e := newEnv(t, true)
	w, err := NewWriter(e.s, WriterConfig{Keyspace: e.keyspace, LogOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"apply", "batch"} {
		t.Run(mode, func(t *testing.T) {
			c := "g:actions-" + mode
			evs := actionsLog(c)
			for range 2 {
				if mode == "apply" {
					e.applyAll(e.keyspace, evs)
					continue
				}
				recs := make([]Record, len(evs))
				for i, ev := range evs {
					b, _ := proto.Marshal(ev)
					recs[i] = Record{Key: []byte(c), Value: b}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if _, err := w.Apply(ctx, recs); err != nil {
					t.Fatal(err)
				}
				cancel()
			}
			// An edit of the recalled message replayed late changes nothing.
			e.applyAll(e.keyspace, []*pb.Event{evs[4]})
			e.check(t, c, want{
				conversation: row{"last_seq": 3, "last_message_seq": 3, "last_message_preview": "hi bob", "last_version": 13},
				members:      map[string]row{"alice": {}, "bob": {}, "carol": {}},
				inbox:        map[string]row{"alice": {}, "bob": {}, "carol": {}},
				messages: map[int64]row{
					1: {"text": "hello all", "content_type": "text/plain", "edit_count": 2, "edited_at": ts(12), "recalled_by": nil, "reply_to_seq": nil},
					2: {"text": nil, "content_type": nil, "edit_count": 1, "recalled_by": "alice", "recalled_at": ts(29)},
					3: {"text": "hi bob", "reply_to_seq": 1},
				},
			})
			edits := e.rows(e.keyspace, "message_edits", "conversation_id = ?", c)
			if len(edits) != 2 || edits[0]["message_seq"].(float64) != 1 || edits[1]["text"] != "hello all" || edits[1]["version"].(float64) != 11 {
				t.Errorf("message_edits %v: want message 1's two edits, none of the recalled message", edits)
			}
			var got []string
			for _, r := range e.rows(e.keyspace, "reactions", "conversation_id = ?", c) {
				got = append(got, fmt.Sprintf("%v:%v:%v", r["message_seq"], r["emoji"], r["user_id"]))
			}
			if fmt.Sprint(got) != "[1:+1:alice 1:+1:carol]" {
				t.Errorf("reactions %v: want alice's and carol's +1 on message 1 only", got)
			}
			// No row of any table holds the recalled text.
			tables, err := NewTables(e.s, e.keyspace)
			if err != nil {
				t.Fatal(err)
			}
			m, found, err := tables.MessageAt(t.Context(), c, 2)
			if err != nil || !found {
				t.Fatalf("message 2: found %v, %v", found, err)
			}
			var stored pb.Event
			if err := proto.Unmarshal(m.Event, &stored); err != nil || stored.GetMessageSent() == nil ||
				stored.GetMessageSent().GetText() != "" || stored.GetVersion() != 3 || stored.GetMessageSent().GetClientMsgId() != "c2" {
				t.Errorf("recalled message's stored event %v (%v): want the MessageSent at version 3 without its text", &stored, err)
			}
			changes, err := tables.ChangesAfter(t.Context(), c, 0, 13, 100)
			if err != nil || len(changes) != 13 {
				t.Fatalf("changes: %d rows, %v", len(changes), err)
			}
			for _, ch := range changes {
				var ev pb.Event
				if err := proto.Unmarshal(ch.Event, &ev); err != nil {
					t.Fatal(err)
				}
				switch {
				case ev.GetMessageSent() != nil && ev.GetSeq() == 2, ev.GetMessageEdited().GetMessageSeq() == 2:
					if ev.GetMessageSent().GetText()+ev.GetMessageEdited().GetText() != "" || ev.GetVersion() != ch.Version {
						t.Errorf("changes version %d still holds recalled content: %v", ch.Version, &ev)
					}
				case ch.Version == 4 && ev.GetMessageEdited().GetText() != "hello":
					t.Errorf("changes version 4: %v, want the first edit of message 1 as it was", &ev)
				}
			}
			if edits, err := tables.Edits(t.Context(), c, 1); err != nil || len(edits) != 2 || edits[0].Text != "hello" {
				t.Errorf("Edits(1) = %v, %v", edits, err)
			}
			if rs, err := tables.Reactions(t.Context(), c, 1, 3); err != nil || len(rs) != 2 {
				t.Errorf("Reactions(1..3) = %v, %v", rs, err)
			}
		})
	}
}

// TestViewsPreviewFollowsItsMessage: an edit or recall of the newest
// message changes the preview; one of an older message never does.
func TestViewsPreviewFollowsItsMessage(t *testing.T) {
	e := newEnv(t, true)
	c := "g:preview"
	e.applyAll(e.keyspace, versioned(
		group(c, "alice", "T", "bob"),
		sent(c, 1, "bob", "first"),
		sent(c, 2, "bob", "second"),
		edited(c, 1, "bob", "first, edited", 1),
	))
	e.check(t, c, want{conversation: row{"last_message_seq": 2, "last_message_preview": "second"},
		members: map[string]row{"alice": {}, "bob": {}}, inbox: map[string]row{"alice": {}, "bob": {}},
		messages: map[int64]row{1: {"text": "first, edited"}, 2: {"text": "second"}}})
	more := []*pb.Event{edited(c, 2, "bob", "second, edited", 1), recalled(c, 1, "alice", "bob")}
	more[0].Version, more[1].Version = 5, 6
	e.applyAll(e.keyspace, more[:1])
	e.check(t, c, want{conversation: row{"last_message_preview": "second, edited"},
		members: map[string]row{"alice": {}, "bob": {}}, inbox: map[string]row{"alice": {}, "bob": {}},
		messages: map[int64]row{1: {}, 2: {"text": "second, edited"}}})
	e.applyAll(e.keyspace, more[1:])
	last := recalled(c, 2, "bob", "bob")
	last.Version = 7
	e.check(t, c, want{conversation: row{"last_message_preview": "second, edited"},
		members: map[string]row{"alice": {}, "bob": {}}, inbox: map[string]row{"alice": {}, "bob": {}},
		messages: map[int64]row{1: {"text": nil, "recalled_by": "alice"}, 2: {}}})
	e.applyAll(e.keyspace, []*pb.Event{last})
	e.check(t, c, want{conversation: row{"last_message_seq": 2, "last_message_preview": nil},
		members: map[string]row{"alice": {}, "bob": {}}, inbox: map[string]row{"alice": {}, "bob": {}},
		messages: map[int64]row{1: {}, 2: {"text": nil, "recalled_by": "bob"}}})
}

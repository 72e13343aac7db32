package replay

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestVerifyLogCheck: broken logs in, the broken invariant named out.
func TestVerifyLogCheck(t *testing.T) {
	const c = "g:1"
	ev := func(cmd string, seq int64, actor string, body any) *pb.Event {
		e := &pb.Event{ConversationId: c, Seq: seq, CommandId: cmd, ActorUserId: actor}
		switch b := body.(type) {
		case *pb.ConversationCreated:
			e.Body = &pb.Event_ConversationCreated{ConversationCreated: b}
		case *pb.MessageSent:
			e.Body = &pb.Event_MessageSent{MessageSent: b}
		case *pb.ReadUpTo:
			e.Body = &pb.Event_ReadUpTo{ReadUpTo: b}
		case *pb.DeliveredUpTo:
			e.Body = &pb.Event_DeliveredUpTo{DeliveredUpTo: b}
		case *pb.MembersAdded:
			e.Body = &pb.Event_MembersAdded{MembersAdded: b}
		case *pb.MemberRemoved:
			e.Body = &pb.Event_MemberRemoved{MemberRemoved: b}
		case *pb.CommandRejected:
			e.Body = &pb.Event_CommandRejected{CommandRejected: b}
		}
		return e
	}
	create := ev("c0", 0, "a", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, MemberUserIds: []string{"a", "b"}})
	send := func(cmd string, seq int64, actor string) *pb.Event {
		return ev(cmd, seq, actor, &pb.MessageSent{Text: "x"})
	}
	read := func(cmd, actor string, up int64) *pb.Event { return ev(cmd, 0, actor, &pb.ReadUpTo{UpToSeq: up}) }
	cmd := func(id string, body any) *pb.Command {
		c := &pb.Command{CommandId: id, ConversationId: c, UserId: "a"}
		switch body.(type) {
		case *pb.MarkRead:
			c.Body = &pb.Command_MarkRead{MarkRead: &pb.MarkRead{UpToSeq: 1}}
		default:
			c.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: id, Text: "x"}}
		}
		return c
	}
	send1, send2 := cmd("s1", nil), cmd("s2", nil)
	// v returns a copy of e with version n.
	v := func(n int64, e *pb.Event) *pb.Event {
		c := proto.Clone(e).(*pb.Event)
		c.Version = n
		return c
	}
	for _, tc := range []struct {
		name     string
		events   []*pb.Event
		commands []*pb.Command // all decided, commands topic complete
		want     string        // "" = no problem
	}{
		{"valid", []*pb.Event{create, send("s1", 1, "a"), read("r1", "b", 1), send("s2", 2, "b"),
			ev("x1", 0, "z", &pb.CommandRejected{})},
			[]*pb.Command{cmd("c0", nil), send1, cmd("r1", nil), send2, cmd("x1", nil), cmd("r2", &pb.MarkRead{})}, ""},
		{"versioned", []*pb.Event{v(1, create), v(2, send("s1", 1, "a")), v(3, read("r1", "b", 1)),
			ev("x1", 0, "z", &pb.CommandRejected{}), v(4, send("s2", 2, "b"))}, nil, ""},
		{"version gap", []*pb.Event{v(1, create), v(2, send("s1", 1, "a")), v(4, read("r1", "b", 1))}, nil,
			"version 4 after version 2 (versions must be dense)"},
		{"receipt without a version", []*pb.Event{v(1, create), v(2, send("s1", 1, "a")), read("r1", "b", 1)}, nil,
			"version 0 after version 2"},
		{"first version", []*pb.Event{v(2, create)}, nil, "version 2, want 1"},
		{"versioned rejection", []*pb.Event{v(1, create), v(2, ev("x1", 0, "z", &pb.CommandRejected{}))}, nil,
			"version 2, want 0 (an answer to the sender only)"},
		{"version in an old conversation", []*pb.Event{create, v(2, send("s1", 1, "a"))}, nil,
			"version 2 in a conversation created without versions"},
		{"gap", []*pb.Event{create, send("s1", 1, "a"), send("s2", 3, "a")}, nil, "seq 3 after seq 1 (seqs must be dense)"},
		{"duplicate seq", []*pb.Event{create, send("s1", 1, "a"), send("s2", 1, "a")}, nil, "seq 1 after seq 1"},
		{"receipt with a seq", []*pb.Event{create, send("s1", 1, "a"), ev("r1", 1, "b", &pb.ReadUpTo{UpToSeq: 1})}, nil, "seq 1, want 0 (not a timeline event)"},
		{"mark backwards", []*pb.Event{create, send("s1", 1, "a"), send("s2", 2, "a"), read("r1", "b", 2), read("r2", "b", 1)}, nil,
			"read mark of b moves from 2 to 1"},
		{"mark past the end", []*pb.Event{create, send("s1", 1, "a"), read("r1", "b", 5)}, nil, "moves from 0 to 5 (last seq 1)"},
		{"delivered backwards", []*pb.Event{create, send("s1", 1, "a"), read("r1", "b", 1), ev("d1", 0, "b", &pb.DeliveredUpTo{UpToSeq: 1})}, nil,
			"delivered mark of b moves from 1 to 1"},
		{"non-member", []*pb.Event{create, send("s1", 1, "mallory")}, nil, "mallory is not a member"},
		{"removed member reads", []*pb.Event{create, send("s1", 1, "a"),
			ev("m1", 2, "a", &pb.MemberRemoved{UserId: "b"}), read("r1", "b", 2)}, nil, "b is not a member"},
		{"before creation", []*pb.Event{send("s1", 1, "a")}, nil, "comes before the conversation's ConversationCreated"},
		{"created twice", []*pb.Event{create, create}, nil, "the conversation was created before"},
		{"two outcomes", []*pb.Event{create, send("s1", 1, "a"), send("s1", 2, "a")}, nil, "command s1 has 2 outcome events"},
		{"no outcome", []*pb.Event{create}, []*pb.Command{cmd("c0", nil), send1}, "command s1 (SendMessage of g:1 at partition 0 offset 1) was decided but has no outcome event"},
		{"unknown command", []*pb.Event{create, send("s9", 1, "a")}, []*pb.Command{cmd("c0", nil)}, "names command s9, which is not in the commands topic"},
		{"no command id", []*pb.Event{create, send("", 1, "a")}, nil, "has no command_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := newLogCheck()
			for i, e := range tc.events {
				check.event(0, int64(i), e)
			}
			for i, c := range tc.commands {
				check.command(0, int64(i), c, true)
			}
			problems := check.finish(tc.commands != nil)
			got := strings.Join(problems, "\n")
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems in a valid log:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("problems:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
	// Unread is last_seq − read_seq by the log.
	check := newLogCheck()
	for i, e := range []*pb.Event{create, send("s1", 1, "a"), send("s2", 2, "a"), send("s3", 3, "b"), read("r1", "a", 3)} {
		check.event(0, int64(i), e)
	}
	for _, u := range []struct {
		user       string
		last, read int64
	}{{"a", 3, 3}, {"b", 3, 3}} {
		if last, read, ok := check.unread(c, u.user); !ok || last != u.last || read != u.read {
			t.Errorf("unread of %s: %d − %d (member %v), want %d − %d", u.user, last, read, ok, u.last, u.read)
		}
	}
	if _, _, ok := check.unread(c, "mallory"); ok {
		t.Error("mallory counted as a member")
	}
}

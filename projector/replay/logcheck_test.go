package replay

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// testConv is the conversation of the hand-made logs.
const testConv = "g:1"

// testEvent is an event of testConv with body.
func testEvent(cmd string, seq int64, actor string, body any) *pb.Event {
	e := &pb.Event{ConversationId: testConv, Seq: seq, CommandId: cmd, ActorUserId: actor}
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
	case *pb.MessageEdited:
		e.Body = &pb.Event_MessageEdited{MessageEdited: b}
	case *pb.MessageRecalled:
		e.Body = &pb.Event_MessageRecalled{MessageRecalled: b}
	case *pb.ReactionAdded:
		e.Body = &pb.Event_ReactionAdded{ReactionAdded: b}
	case *pb.ReactionRemoved:
		e.Body = &pb.Event_ReactionRemoved{ReactionRemoved: b}
	case *pb.MessageDeduplicated:
		e.Body = &pb.Event_MessageDeduplicated{MessageDeduplicated: b}
	case *pb.MemberRoleChanged:
		e.Body = &pb.Event_MemberRoleChanged{MemberRoleChanged: b}
	case *pb.OwnershipTransferred:
		e.Body = &pb.Event_OwnershipTransferred{OwnershipTransferred: b}
	case *pb.GroupSettingsChanged:
		e.Body = &pb.Event_GroupSettingsChanged{GroupSettingsChanged: b}
	case *pb.MemberMuted:
		e.Body = &pb.Event_MemberMuted{MemberMuted: b}
	case *pb.MemberUnmuted:
		e.Body = &pb.Event_MemberUnmuted{MemberUnmuted: b}
	case *pb.MessagePinned:
		e.Body = &pb.Event_MessagePinned{MessagePinned: b}
	case *pb.MessageUnpinned:
		e.Body = &pb.Event_MessageUnpinned{MessageUnpinned: b}
	case *pb.ConversationPrefsChanged:
		e.Body = &pb.Event_ConversationPrefsChanged{ConversationPrefsChanged: b}
	case *pb.MessagesHidden:
		e.Body = &pb.Event_MessagesHidden{MessagesHidden: b}
	case *pb.UserBlocked:
		e.Body = &pb.Event_UserBlocked{UserBlocked: b}
	case *pb.UserUnblocked:
		e.Body = &pb.Event_UserUnblocked{UserUnblocked: b}
	case *pb.DirectBlockChanged:
		e.Body = &pb.Event_DirectBlockChanged{DirectBlockChanged: b}
	case *pb.MessageForwarded:
		e.Body = &pb.Event_MessageForwarded{MessageForwarded: b}
	case *pb.Withheld:
		e.Body = &pb.Event_Withheld{Withheld: b}
	case *pb.AttachmentUploaded:
		e.Body = &pb.Event_AttachmentUploaded{AttachmentUploaded: b}
	case *pb.AttachmentDeleted:
		e.Body = &pb.Event_AttachmentDeleted{AttachmentDeleted: b}
	}
	return e
}

// TestVerifyLogCheckStreams: user streams, blocks and forwards, valid and
// broken, across streams.
func TestVerifyLogCheckStreams(t *testing.T) {
	ua, ub := schemas.UserStreamID("a"), schemas.UserStreamID("b")
	direct := schemas.DirectConversationID("a", "b")
	g1, g2 := fmt.Sprintf("g:%032x", 1), fmt.Sprintf("g:%032x", 2)
	// in returns e in conversation conv with version v.
	in := func(conv string, v int64, e *pb.Event) *pb.Event {
		e.ConversationId, e.Version = conv, v
		return e
	}
	ev := testEvent
	group := func(conv, cmd string) *pb.Event {
		return in(conv, 1, ev(cmd, 0, "a", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, MemberUserIds: []string{"a", "b"}}))
	}
	createDirect := in(direct, 1, ev("cd", 0, "a", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{"a", "b"}}))
	prefs := func(cmd string, v int64, actor string) *pb.Event {
		return in(schemas.UserStreamID(actor), v, ev(cmd, 0, actor, &pb.ConversationPrefsChanged{ConversationId: g1, Pinned: proto.Bool(true)}))
	}
	block := func(cmd string, v int64, by, whom string, on bool) []*pb.Event {
		var first *pb.Event
		if on {
			first = ev(cmd, 0, by, &pb.UserBlocked{UserId: whom})
		} else {
			first = ev(cmd, 0, by, &pb.UserUnblocked{UserId: whom})
		}
		return []*pb.Event{in(schemas.UserStreamID(by), v, first),
			in(schemas.DirectConversationID(by, whom), 0, ev(cmd, 0, by, &pb.DirectBlockChanged{BlockerUserId: by, BlockedUserId: whom, Blocked: on}))}
	}
	send := func(conv, cmd string, seq, v int64, actor string) *pb.Event {
		return in(conv, v, ev(cmd, seq, actor, &pb.MessageSent{Text: "x"}))
	}
	forwarded := func(cmd string, seq int64, target string) *pb.Event {
		return in(g1, 0, ev(cmd, 0, "a", &pb.MessageForwarded{Seq: seq, TargetConversationId: target, ClientMsgId: "f"}))
	}
	forwardSent := func(cmd string, seq, v int64, from string, fromSeq int64) *pb.Event {
		e := send(g2, cmd, seq, v, "a")
		e.GetMessageSent().ForwardedFrom = &pb.ForwardOrigin{ConversationId: from, Seq: fromSeq, SenderUserId: "a"}
		return e
	}
	cat := func(parts ...any) []*pb.Event {
		var out []*pb.Event
		for _, p := range parts {
			switch p := p.(type) {
			case *pb.Event:
				out = append(out, p)
			case []*pb.Event:
				out = append(out, p...)
			}
		}
		return out
	}
	rejected := func(conv, cmd, actor string) *pb.Event { return in(conv, 0, ev(cmd, 0, actor, &pb.CommandRejected{})) }
	cmd := func(id, conv string, body any) *pb.Command {
		c := &pb.Command{CommandId: id, ConversationId: conv, UserId: "a"}
		switch b := body.(type) {
		case *pb.BlockUser:
			c.Body = &pb.Command_BlockUser{BlockUser: b}
		case *pb.DirectBlock:
			c.Body = &pb.Command_DirectBlock{DirectBlock: b}
		case *pb.ForwardMessage:
			c.Body = &pb.Command_ForwardMessage{ForwardMessage: b}
		case *pb.ForwardedMessage:
			c.Body = &pb.Command_ForwardedMessage{ForwardedMessage: b}
		case *pb.UnblockUser:
			c.Body = &pb.Command_UnblockUser{UnblockUser: b}
		default:
			c.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: id, Text: "x"}}
		}
		return c
	}
	valid := cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"),
		prefs("p1", 1, "a"), rejected(ub, "p2", "b"), // a's command on b's stream, refused there as b
		block("b1", 2, "a", "b", true), createDirect, // the block stands before the conversation is created
		block("b2", 1, "b", "a", true), block("b3", 3, "a", "b", false), block("b4", 2, "b", "a", false),
		send(direct, "s2", 1, 2, "b"),
		forwarded("f1", 1, g2), forwardSent("f1", 1, 2, g1, 1),
		forwardSent("f2", 2, 3, g1, 1), // …
		forwarded("f2", 1, g2))         // … whose MessageForwarded is read after it, from another partition
	for _, tc := range []struct {
		name     string
		events   []*pb.Event
		commands []*pb.Command // all decided, commands topic complete
		want     string        // "" = no problem
	}{
		{"valid", valid, nil, ""},
		{"valid with commands", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"), block("b1", 1, "a", "b", true),
			forwarded("f1", 1, g2), forwardSent("f1", 1, 2, g1, 1)),
			[]*pb.Command{cmd("c1", g1, nil), cmd("c2", g2, nil), cmd("s1", g1, nil), cmd("b1", ua, &pb.BlockUser{UserId: "b"}),
				cmd("b0", ua, &pb.BlockUser{UserId: "b"}), // redundant: no event
				cmd("b1", direct, &pb.DirectBlock{BlockerUserId: "a", BlockedUserId: "b", Blocked: true}),
				cmd("f1", g1, &pb.ForwardMessage{Seq: 1, TargetConversationId: g2}), cmd("f1", g2, &pb.ForwardedMessage{})}, ""},
		{"user stream version gap", cat(prefs("p1", 1, "a"), prefs("p2", 3, "a")), nil, "version 3 after version 1 (versions must be dense)"},
		{"user stream first version", cat(prefs("p1", 0, "a")), nil, "version 0 after version 0"},
		{"versioned answer on a user stream", cat(in(ua, 1, rejected(ua, "p1", "a"))), nil, "version 1, want 0 (an answer to the sender only)"},
		{"seq on a user stream", cat(in(ua, 1, ev("p1", 1, "a", &pb.MessagesHidden{ConversationId: g1, UpToSeq: 1}))), nil,
			"seq 1, want 0 (a user stream has no timeline)"},
		{"another user's stream", cat(in(ub, 1, ev("p1", 0, "a", &pb.MessagesHidden{ConversationId: g1, Seqs: []int64{1}}))), nil,
			"actor a does not own the user stream"},
		{"a conversation event on a user stream", cat(send(ua, "s1", 1, 1, "a")), nil, "not an event of a user stream"},
		{"a per-user event in a conversation", cat(group(g1, "c1"), in(g1, 2, ev("p1", 0, "a", &pb.UserBlocked{UserId: "b"}))), nil,
			"a per-user event outside a user stream"},
		{"blocked twice", cat(prefs("p1", 1, "a"), in(ua, 2, ev("b1", 0, "a", &pb.UserBlocked{UserId: "b"})), in(ua, 3, ev("b2", 0, "a", &pb.UserBlocked{UserId: "b"}))), nil,
			"b is blocked already"},
		{"unblock of one not blocked", cat(in(ua, 1, ev("b1", 0, "a", &pb.UserUnblocked{UserId: "b"}))), nil, "b is not blocked"},
		{"send while blocked", cat(createDirect, block("b1", 1, "a", "b", true), send(direct, "s1", 1, 2, "b")), nil,
			"b sends while [a] block(s) stand in the direct conversation"},
		{"send while the other's block stands", cat(block("b1", 1, "a", "b", true), block("b2", 1, "b", "a", true), createDirect,
			block("b3", 2, "a", "b", false), send(direct, "s1", 1, 2, "a")), nil, "a sends while [b] block(s) stand"},
		{"versioned block", cat(in(direct, 1, ev("b1", 0, "a", &pb.DirectBlockChanged{BlockerUserId: "a", BlockedUserId: "b", Blocked: true}))), nil,
			"version 1, want 0 (neither projected nor delivered)"},
		{"block in the wrong conversation", cat(in(g1, 0, ev("b1", 0, "a", &pb.DirectBlockChanged{BlockerUserId: "a", BlockedUserId: "b", Blocked: true}))), nil,
			"stands in their direct conversation " + direct + " only"},
		{"block by another", cat(in(direct, 0, ev("b1", 0, "b", &pb.DirectBlockChanged{BlockerUserId: "a", BlockedUserId: "b", Blocked: true}))), nil,
			"actor b, but the blocker is a"},
		{"block that changes nothing", cat(block("b1", 1, "a", "b", false)), nil, "the block by a is false already"},
		{"forward without its MessageForwarded", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"), forwardSent("f1", 1, 2, g1, 1)), nil,
			"but " + g1 + " has no MessageForwarded of command f1"},
		{"forward of another seq", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"), send(g1, "s2", 2, 3, "a"),
			forwarded("f1", 2, g2), forwardSent("f1", 1, 2, g1, 1)), nil, "forwarded from " + g1 + " seq 1, but its MessageForwarded names seq 2"},
		{"forward to another target", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"),
			forwarded("f1", 1, fmt.Sprintf("g:%032x", 3)), forwardSent("f1", 1, 2, g1, 1)), nil, "its MessageForwarded names seq 1 to g:"},
		{"versioned MessageForwarded", cat(group(g1, "c1"), send(g1, "s1", 1, 2, "a"), in(g1, 3, forwarded("f1", 1, g2))), nil,
			"version 3, want 0 (neither projected nor delivered)"},
		{"forward of a notice", cat(group(g1, "c1"), in(g1, 2, ev("n1", 1, "a", &pb.MembersAdded{UserIds: []string{"c"}})), forwarded("f1", 1, g2)), nil,
			"seq 1 is not a MessageSent of the conversation"},
		{"forward to itself", cat(group(g1, "c1"), send(g1, "s1", 1, 2, "a"), forwarded("f1", 1, g1)), nil, "is not another conversation"},
		{"a Withheld on the log", cat(group(g1, "c1"), in(g1, 2, ev("w1", 0, "a", &pb.Withheld{}))), nil, "never an event of the log"},
		{"forward by a stranger", cat(group(g1, "c1"), send(g1, "s1", 1, 2, "a"), in(g1, 0, ev("f1", 0, "z", &pb.MessageForwarded{Seq: 1, TargetConversationId: g2}))), nil,
			"z is not a member"},
		{"two outcomes in one stream", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"), forwarded("f1", 1, g2), forwarded("f1", 1, g2)), nil,
			"command f1 has 2 outcome events"},
		{"three outcomes", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"), forwarded("f1", 1, g2),
			forwardSent("f1", 1, 2, g1, 1), rejected(g2, "f1", "a")), nil, "command f1 has 3 outcome events"},
		{"derived without an outcome", cat(group(g1, "c1"), group(g2, "c2"), send(g1, "s1", 1, 2, "a"), forwarded("f1", 1, g2)),
			[]*pb.Command{cmd("c1", g1, nil), cmd("c2", g2, nil), cmd("s1", g1, nil),
				cmd("f1", g1, &pb.ForwardMessage{Seq: 1, TargetConversationId: g2}), cmd("f1", g2, &pb.ForwardedMessage{})},
			"derived command f1 (ForwardedMessage of " + g2 + " at partition 0 offset 4) was decided but has no outcome event in " + g2},
		{"derived without a first step", cat(block("b1", 1, "a", "b", true)),
			[]*pb.Command{cmd("b1", direct, &pb.DirectBlock{BlockerUserId: "a", BlockedUserId: "b", Blocked: true})},
			"derived command b1 (DirectBlock of " + direct + " at partition 0 offset 0) has no first step"},
		// A check of some streams reads one side only of a two-stream
		// decision: nothing is asked of the other.
		{"the direct conversation of a block only", cat(block("b1", 1, "a", "b", true)[1], createDirect, rejected(direct, "s1", "a"),
			block("b2", 1, "a", "b", false)[1], send(direct, "s2", 1, 2, "a")),
			[]*pb.Command{cmd("b1", direct, &pb.DirectBlock{BlockerUserId: "a", BlockedUserId: "b", Blocked: true}),
				cmd("cd", direct, nil), cmd("s1", direct, nil),
				cmd("b2", direct, &pb.DirectBlock{BlockerUserId: "a", BlockedUserId: "b"}), cmd("s2", direct, nil)}, ""},
		{"the blocker's stream only", cat(block("b1", 1, "a", "b", true)[0], block("b2", 2, "a", "b", false)[0]),
			[]*pb.Command{cmd("b1", ua, &pb.BlockUser{UserId: "b"}), cmd("b2", ua, &pb.UnblockUser{UserId: "b"})}, ""},
		{"the target of a forward only", cat(group(g2, "c2"), forwardSent("f1", 1, 2, g1, 1)),
			[]*pb.Command{cmd("c2", g2, nil), cmd("f1", g2, &pb.ForwardedMessage{})}, ""},
		{"the source of a forward only", cat(group(g1, "c1"), send(g1, "s1", 1, 2, "a"), forwarded("f1", 1, g2)),
			[]*pb.Command{cmd("c1", g1, nil), cmd("s1", g1, nil), cmd("f1", g1, &pb.ForwardMessage{Seq: 1, TargetConversationId: g2})}, ""},
		{"derived twice", cat(block("b1", 1, "a", "b", true)),
			[]*pb.Command{cmd("b1", ua, &pb.BlockUser{UserId: "b"}), cmd("b1", direct, &pb.DirectBlock{BlockerUserId: "a", BlockedUserId: "b", Blocked: true}),
				cmd("b1", direct, &pb.DirectBlock{BlockerUserId: "a", BlockedUserId: "b", Blocked: true})},
			"command b1 is derived twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, tc.commands, tc.want, false)
		})
	}
}

// TestVerifyLogCheck: broken logs in, the broken invariant named out.
func TestVerifyLogCheck(t *testing.T) {
	const c = testConv
	ev := testEvent
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
			checkLog(t, tc.events, tc.commands, tc.want, false)
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

// actionLog builds hand-made logs of message actions in testConv.
type actionLog struct{}

func (actionLog) group(members ...string) *pb.Event {
	return testEvent("c0", 0, members[0], &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, MemberUserIds: members})
}

func (actionLog) direct(a, b string) *pb.Event {
	return testEvent("c0", 0, a, &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{a, b}})
}

func (actionLog) send(cmd string, seq int64, actor string) *pb.Event {
	return testEvent(cmd, seq, actor, &pb.MessageSent{ClientMsgId: cmd, Text: "text of " + cmd, ContentType: "text/plain"})
}

func (actionLog) reply(cmd string, seq int64, actor string, to int64) *pb.Event {
	return testEvent(cmd, seq, actor, &pb.MessageSent{ClientMsgId: cmd, Text: "reply " + cmd, ContentType: "text/plain", ReplyToSeq: to})
}

func (actionLog) edit(cmd, actor string, seq int64, n int32) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MessageEdited{MessageSeq: seq, Text: "edit " + cmd, ContentType: "text/plain", ClientMsgId: cmd, EditNumber: n})
}

func (actionLog) recall(cmd, actor string, seq int64, sender string) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MessageRecalled{MessageSeq: seq, SenderUserId: sender})
}

func (actionLog) react(cmd, actor string, seq int64, emoji string) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.ReactionAdded{MessageSeq: seq, Emoji: emoji})
}

func (actionLog) unreact(cmd, actor string, seq int64, emoji string) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.ReactionRemoved{MessageSeq: seq, Emoji: emoji})
}

// versions copies evs, numbering the events that change a view 1, 2, 3 …
// as the decider does.
func (actionLog) versions(evs ...*pb.Event) []*pb.Event {
	var out []*pb.Event
	n := int64(0)
	for _, e := range evs {
		e = proto.Clone(e).(*pb.Event)
		if e.GetCommandRejected() == nil && e.GetMessageDeduplicated() == nil && e.GetMessageForwarded() == nil &&
			e.GetAttachmentUploaded() == nil && e.GetAttachmentDeleted() == nil {
			n++
			e.Version = n
		}
		out = append(out, e)
	}
	return out
}

// command is a command of testConv of type typ.
func (actionLog) command(id, typ string) *pb.Command {
	c := &pb.Command{CommandId: id, ConversationId: testConv, UserId: "a"}
	switch typ {
	case "CreateConversation":
		c.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP}}
	case "EditMessage":
		c.Body = &pb.Command_EditMessage{EditMessage: &pb.EditMessage{Seq: 1, Text: "y", ClientMsgId: id}}
	case "RecallMessage":
		c.Body = &pb.Command_RecallMessage{RecallMessage: &pb.RecallMessage{Seq: 1}}
	case "AddReaction":
		c.Body = &pb.Command_AddReaction{AddReaction: &pb.AddReaction{Seq: 1, Emoji: "👍"}}
	case "RemoveReaction":
		c.Body = &pb.Command_RemoveReaction{RemoveReaction: &pb.RemoveReaction{Seq: 1, Emoji: "👍"}}
	case "AddMembers":
		c.Body = &pb.Command_AddMembers{AddMembers: &pb.AddMembers{UserIds: []string{"b"}}}
	case "RemoveMember":
		c.Body = &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMember{UserId: "b"}}
	case "LeaveConversation":
		c.Body = &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}
	case "MarkRead":
		c.Body = &pb.Command_MarkRead{MarkRead: &pb.MarkRead{UpToSeq: 1}}
	case "SetMemberRole":
		c.Body = &pb.Command_SetMemberRole{SetMemberRole: &pb.SetMemberRole{UserId: "b", Role: pb.MemberRole_MEMBER_ROLE_ADMIN}}
	case "TransferOwnership":
		c.Body = &pb.Command_TransferOwnership{TransferOwnership: &pb.TransferOwnership{UserId: "b"}}
	case "UpdateGroupSettings":
		c.Body = &pb.Command_UpdateGroupSettings{UpdateGroupSettings: &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{Title: proto.String("t")}}}
	case "MuteMember":
		c.Body = &pb.Command_MuteMember{MuteMember: &pb.MuteMember{UserId: "b"}}
	case "UnmuteMember":
		c.Body = &pb.Command_UnmuteMember{UnmuteMember: &pb.UnmuteMember{UserId: "b"}}
	case "PinMessage":
		c.Body = &pb.Command_PinMessage{PinMessage: &pb.PinMessage{Seq: 1}}
	case "UnpinMessage":
		c.Body = &pb.Command_UnpinMessage{UnpinMessage: &pb.UnpinMessage{Seq: 1}}
	default:
		c.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: id, Text: "x"}}
	}
	return c
}

// TestVerifyLogCheckActions: edits, recalls, reactions and replies, in
// logs that keep the rules and in logs that break one each.
func TestVerifyLogCheckActions(t *testing.T) {
	var l actionLog
	g := l.group("a", "b", "c") // a owns it
	valid := l.versions(g,
		l.send("s1", 1, "a"),
		l.reply("s2", 2, "b", 1),
		l.edit("e1", "a", 1, 1),
		testEvent("e1-again", 0, "a", &pb.MessageDeduplicated{ClientMsgId: "e1", OriginalSeq: 1}), // a retried edit
		l.edit("e2", "a", 1, 2),
		l.react("r1", "b", 1, "👍"),
		l.react("r2", "a", 1, "👍"),
		l.unreact("u1", "b", 1, "👍"),
		l.react("r3", "b", 1, "👍"), // added again after its removal
		l.edit("e3", "b", 2, 1),
		l.react("r4", "c", 2, "🎉"),
		l.recall("x1", "a", 2, "b"), // the owner recalls b's message
		l.send("s3", 3, "c"),
		l.recall("x2", "c", 3, "c"), // a plain member recalls its own
		l.react("r5", "c", 1, "❤️"),
		l.reply("s4", 4, "c", 1), // a reply to an edited message
	)
	var validCommands []*pb.Command
	for i, e := range valid {
		validCommands = append(validCommands, l.command(e.GetCommandId(), []string{"CreateConversation", "SendMessage", "SendMessage",
			"EditMessage", "EditMessage", "EditMessage", "AddReaction", "AddReaction", "RemoveReaction", "AddReaction", "EditMessage",
			"AddReaction", "RecallMessage", "SendMessage", "RecallMessage", "AddReaction", "SendMessage"}[i]))
	}
	// Decided, without an event: a recall of a recalled message, a reaction
	// already there, one already gone.
	validCommands = append(validCommands, l.command("x3", "RecallMessage"), l.command("r6", "AddReaction"), l.command("u2", "RemoveReaction"))

	for _, tc := range []struct {
		name     string
		events   []*pb.Event
		commands []*pb.Command // all decided, commands topic complete
		want     string        // "" = no problem, else the one problem
	}{
		{"valid", valid, validCommands, ""},
		{"valid without versions", []*pb.Event{g, l.send("s1", 1, "a"), l.edit("e1", "a", 1, 1), l.react("r1", "b", 1, "👍"),
			l.recall("x1", "a", 1, "a")}, nil, ""},
		{"action with a seq", l.versions(g, l.send("s1", 1, "a"), testEvent("e1", 1, "a", &pb.MessageEdited{MessageSeq: 1, EditNumber: 1})), nil,
			"MessageEdited of g:1 at partition 0 offset 2: seq 1, want 0 (not a timeline event)"},
		{"action without a version", append(l.versions(g, l.send("s1", 1, "a")), l.react("r1", "b", 1, "👍")), nil,
			"ReactionAdded of g:1 at partition 0 offset 2: version 0 after version 2 (versions must be dense)"},
		{"edit of no message", l.versions(g, l.send("s1", 1, "a"), l.edit("e1", "a", 5, 1)), nil,
			"message_seq 5 is not a MessageSent of the conversation"},
		{"reaction to a notice", l.versions(g, testEvent("m1", 1, "a", &pb.MembersAdded{UserIds: []string{"d"}}), l.react("r1", "d", 1, "👍")), nil,
			"ReactionAdded of g:1 at partition 0 offset 2: message_seq 1 is not a MessageSent of the conversation"},
		{"recall of no message", l.versions(g, l.recall("x1", "a", 1, "a")), nil, "message_seq 1 is not a MessageSent"},
		{"reaction by a non-member", l.versions(g, l.send("s1", 1, "a"), l.react("r1", "mallory", 1, "👍")), nil,
			"ReactionAdded of g:1 at partition 0 offset 2: mallory is not a member"},
		{"edit by a removed sender", l.versions(g, l.send("s1", 1, "b"), testEvent("m1", 2, "a", &pb.MemberRemoved{UserId: "b"}),
			l.edit("e1", "b", 1, 1)), nil, "MessageEdited of g:1 at partition 0 offset 3: b is not a member"},
		{"edit by another", l.versions(g, l.send("s1", 1, "a"), l.edit("e1", "b", 1, 1)), nil,
			"b edits message 1 of a: only the sender edits"},
		{"edit by the owner", l.versions(g, l.send("s1", 1, "b"), l.edit("e1", "a", 1, 1)), nil,
			"a edits message 1 of b: only the sender edits"},
		{"first edit numbered 2", l.versions(g, l.send("s1", 1, "a"), l.edit("e1", "a", 1, 2)), nil,
			"edit_number 2 of message 1 after 0 edit(s) (edit numbers must be dense per message)"},
		{"edit number repeated", l.versions(g, l.send("s1", 1, "a"), l.edit("e1", "a", 1, 1), l.edit("e2", "a", 1, 1)), nil,
			"MessageEdited of g:1 at partition 0 offset 3: edit_number 1 of message 1 after 1 edit(s)"},
		{"edit numbers per message", l.versions(g, l.send("s1", 1, "a"), l.send("s2", 2, "a"), l.edit("e1", "a", 1, 1), l.edit("e2", "a", 2, 2)), nil,
			"edit_number 2 of message 2 after 0 edit(s)"},
		{"edit after the recall", l.versions(g, l.send("s1", 1, "a"), l.recall("x1", "a", 1, "a"), l.edit("e1", "a", 1, 1)), nil,
			"MessageEdited of g:1 at partition 0 offset 3: message 1 was recalled by a before: no edit or reaction after a recall"},
		{"reaction after the recall", l.versions(g, l.send("s1", 1, "b"), l.recall("x1", "a", 1, "b"), l.react("r1", "c", 1, "👍")), nil,
			"ReactionAdded of g:1 at partition 0 offset 3: message 1 was recalled by a before"},
		{"removal after the recall", l.versions(g, l.send("s1", 1, "a"), l.react("r1", "c", 1, "👍"), l.recall("x1", "a", 1, "a"),
			l.unreact("u1", "c", 1, "👍")), nil, "ReactionRemoved of g:1 at partition 0 offset 4: message 1 was recalled by a before"},
		{"recalled twice", l.versions(g, l.send("s1", 1, "b"), l.recall("x1", "b", 1, "b"), l.recall("x2", "a", 1, "b")), nil,
			"MessageRecalled of g:1 at partition 0 offset 3: message 1 recalled a second time (first by b)"},
		{"recall by a plain member", l.versions(g, l.send("s1", 1, "a"), l.recall("x1", "b", 1, "a")), nil,
			"b recalls message 1 of a: only its sender, the owner or an admin recalls"},
		{"recall by the creator of a direct conversation", l.versions(l.direct("a", "b"), l.send("s1", 1, "b"), l.recall("x1", "a", 1, "b")), nil,
			"a recalls message 1 of b: only its sender, the owner or an admin recalls"},
		{"recall by a former owner added back", l.versions(g, l.send("s1", 1, "b"), l.remove("m1", 2, "a", "a"), l.ownerLeft("m1", "a", "b"),
			l.add("m2", 3, "b", "a"), l.recall("x1", "a", 1, "b")), nil,
			"a recalls message 1 of b: only its sender, the owner or an admin recalls"},
		{"recall by an admin", l.versions(g, l.role("o1", "a", "c", pb.MemberRole_MEMBER_ROLE_ADMIN), l.send("s1", 1, "b"),
			l.recall("x1", "c", 1, "b")), nil, ""},
		{"recall by an admin made a member again", l.versions(g, l.role("o1", "a", "c", pb.MemberRole_MEMBER_ROLE_ADMIN),
			l.role("o2", "a", "c", pb.MemberRole_MEMBER_ROLE_MEMBER), l.send("s1", 1, "b"), l.recall("x1", "c", 1, "b")), nil,
			"c recalls message 1 of b: only its sender, the owner or an admin recalls"},
		{"recall by a former owner after a transfer", l.versions(g, l.transfer("t1", "a", "a", "b"), l.role("o1", "b", "a", pb.MemberRole_MEMBER_ROLE_MEMBER),
			l.send("s1", 1, "c"), l.recall("x1", "a", 1, "c")), nil,
			"a recalls message 1 of c: only its sender, the owner or an admin recalls"},
		{"recall naming another sender", l.versions(g, l.send("s1", 1, "a"), l.recall("x1", "a", 1, "b")), nil,
			"sender_user_id b, but message 1 was sent by a"},
		{"reaction added twice", l.versions(g, l.send("s1", 1, "a"), l.react("r1", "b", 1, "👍"), l.react("r2", "b", 1, "👍")), nil,
			`ReactionAdded of g:1 at partition 0 offset 3: b has reacted "👍" to message 1 already (an add only when new)`},
		{"removal of no reaction", l.versions(g, l.send("s1", 1, "a"), l.unreact("u1", "b", 1, "👍")), nil,
			`b has no reaction "👍" on message 1 to remove (a removal only when there)`},
		{"removal of another's reaction", l.versions(g, l.send("s1", 1, "a"), l.react("r1", "b", 1, "👍"), l.unreact("u1", "a", 1, "👍")), nil,
			`a has no reaction "👍" on message 1 to remove`},
		{"removal of another emoji", l.versions(g, l.send("s1", 1, "a"), l.react("r1", "b", 1, "👍"), l.unreact("u1", "b", 1, "🎉")), nil,
			`b has no reaction "🎉" on message 1 to remove`},
		{"removed twice", l.versions(g, l.send("s1", 1, "a"), l.react("r1", "b", 1, "👍"), l.unreact("u1", "b", 1, "👍"), l.unreact("u2", "b", 1, "👍")), nil,
			`ReactionRemoved of g:1 at partition 0 offset 4: b has no reaction "👍" on message 1 to remove`},
		{"reply to no message", l.versions(g, l.reply("s1", 1, "a", 5)), nil,
			"MessageSent of g:1 at partition 0 offset 1: reply_to_seq 5 is not an earlier MessageSent of the conversation"},
		{"reply to itself", l.versions(g, l.reply("s1", 1, "a", 1)), nil, "reply_to_seq 1 is not an earlier MessageSent"},
		{"reply to a notice", l.versions(g, testEvent("m1", 1, "a", &pb.MembersAdded{UserIds: []string{"d"}}), l.reply("s1", 2, "a", 1)), nil,
			"reply_to_seq 1 is not an earlier MessageSent"},
		{"reply to a negative seq", l.versions(g, l.send("s1", 1, "a"), l.reply("s2", 2, "a", -1)), nil, "reply_to_seq -1 is not an earlier MessageSent"},
		{"reply to a recalled message", l.versions(g, l.send("s1", 1, "a"), l.recall("x1", "a", 1, "a"), l.reply("s2", 2, "b", 1)), nil,
			"MessageSent of g:1 at partition 0 offset 3: reply to message 1, recalled before by a"},
		{"edit without an outcome", l.versions(g), []*pb.Command{l.command("c0", "CreateConversation"), l.command("e1", "EditMessage")},
			"command e1 (EditMessage of g:1 at partition 0 offset 1) was decided but has no outcome event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, tc.commands, tc.want, true)
		})
	}

	// The model of the valid log: edits, recalls and reactions per message.
	check := newLogCheck()
	for i, e := range valid {
		check.event(0, int64(i), e)
	}
	msgs := check.convs[testConv].messages
	for _, want := range []struct {
		seq                int64
		sender, recalledBy string
		edits              int64
		reactions          []reaction
	}{
		{1, "a", "", 2, []reaction{{"👍", "a"}, {"👍", "b"}, {"❤️", "c"}}},
		{2, "b", "a", 1, nil},
		{3, "c", "c", 0, nil},
		{4, "c", "", 0, nil},
	} {
		m := msgs[want.seq]
		if m == nil {
			t.Errorf("message %d: not in the model", want.seq)
			continue
		}
		if m.sender != want.sender || m.recalledBy != want.recalledBy || m.edits != want.edits || len(m.reactions) != len(want.reactions) {
			t.Errorf("message %d: sender %s, recalled by %q, %d edit(s), reactions %v; want %s, %q, %d, %v",
				want.seq, m.sender, m.recalledBy, m.edits, m.reactions, want.sender, want.recalledBy, want.edits, want.reactions)
		}
		for _, r := range want.reactions {
			if !m.reactions[r] {
				t.Errorf("message %d: no reaction %v in the model", want.seq, r)
			}
		}
	}
	if len(msgs) != 4 {
		t.Errorf("%d messages in the model, want 4", len(msgs))
	}
}

func (actionLog) add(cmd string, seq int64, actor string, users ...string) *pb.Event {
	return testEvent(cmd, seq, actor, &pb.MembersAdded{UserIds: users})
}

// remove: actor removes user, or leaves when it is user.
func (actionLog) remove(cmd string, seq int64, actor, user string) *pb.Event {
	reason := pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED
	if actor == user {
		reason = pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT
	}
	return testEvent(cmd, seq, actor, &pb.MemberRemoved{UserId: user, Reason: reason})
}

func (actionLog) role(cmd, actor, user string, r pb.MemberRole) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MemberRoleChanged{UserId: user, Role: r})
}

// transfer: actor transfers the ownership from from to to (TRANSFERRED).
func (actionLog) transfer(cmd, actor, from, to string) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.OwnershipTransferred{FromUserId: from, ToUserId: to,
		Reason: pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED})
}

// ownerLeft is the OwnershipTransferred decided with the owner's leave.
func (actionLog) ownerLeft(cmd, from, to string) *pb.Event {
	return testEvent(cmd, 0, from, &pb.OwnershipTransferred{FromUserId: from, ToUserId: to,
		Reason: pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT})
}

func (actionLog) settings(cmd, actor string, s *pb.GroupSettings) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.GroupSettingsChanged{Settings: s})
}

// mute: until zero is a mute until unmuted.
func (actionLog) mute(cmd, actor, user string, until time.Time) *pb.Event {
	m := &pb.MemberMuted{UserId: user}
	if !until.IsZero() {
		m.Until = timestamppb.New(until)
	}
	return testEvent(cmd, 0, actor, m)
}

func (actionLog) unmute(cmd, actor, user string) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MemberUnmuted{UserId: user})
}

func (actionLog) pin(cmd, actor string, seq int64) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MessagePinned{MessageSeq: seq})
}

func (actionLog) unpin(cmd, actor string, seq int64) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MessageUnpinned{MessageSeq: seq})
}

// mention is a message that mentions users, or @all.
func (actionLog) mention(cmd string, seq int64, actor string, all bool, users ...string) *pb.Event {
	return testEvent(cmd, seq, actor, &pb.MessageSent{ClientMsgId: cmd, Text: "hey " + cmd, ContentType: "text/plain",
		MentionUserIds: users, MentionAll: all})
}

func (actionLog) read(cmd, actor string, up int64) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.ReadUpTo{UpToSeq: up})
}

// at copies e, occurred at t.
func at(t time.Time, e *pb.Event) *pb.Event {
	e = proto.Clone(e).(*pb.Event)
	e.OccurredAt = timestamppb.New(t)
	return e
}

// commandsOf makes the commands of evs: one per command id, of the type
// that decides into the event.
func (l actionLog) commandsOf(evs []*pb.Event) []*pb.Command {
	var out []*pb.Command
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.GetCommandId()] {
			continue
		}
		seen[e.GetCommandId()] = true
		typ := map[string]string{
			"ConversationCreated": "CreateConversation", "MessageSent": "SendMessage", "MembersAdded": "AddMembers",
			"MemberRemoved": "RemoveMember", "ReadUpTo": "MarkRead", "MessageRecalled": "RecallMessage",
			"MemberRoleChanged": "SetMemberRole", "OwnershipTransferred": "TransferOwnership",
			"GroupSettingsChanged": "UpdateGroupSettings", "MemberMuted": "MuteMember", "MemberUnmuted": "UnmuteMember",
			"MessagePinned": "PinMessage", "MessageUnpinned": "UnpinMessage",
		}[schemas.EventType(e)]
		if r := e.GetMemberRemoved(); r != nil && r.GetUserId() == e.GetActorUserId() {
			typ = "LeaveConversation"
		}
		out = append(out, l.command(e.GetCommandId(), typ))
	}
	return out
}

// TestVerifyLogCheckGovernance: roles, ownership, removals, settings,
// mutes, mentions and pins, in a log that keeps the rules and in logs that
// break one each.
func TestVerifyLogCheckGovernance(t *testing.T) {
	var l actionLog
	const (
		owner  = pb.MemberRole_MEMBER_ROLE_OWNER
		admin  = pb.MemberRole_MEMBER_ROLE_ADMIN
		member = pb.MemberRole_MEMBER_ROLE_MEMBER
	)
	admins, members := pb.GroupPolicy_GROUP_POLICY_ADMINS.Enum(), pb.GroupPolicy_GROUP_POLICY_MEMBERS.Enum()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := l.group("a", "b", "c", "d", "x") // a owns it
	valid := l.versions(g,
		l.role("r1", "a", "b", admin),
		l.mention("s1", 1, "c", false, "b", "d"),
		l.settings("g1", "b", &pb.GroupSettings{Title: proto.String("governed"), WhoMayPin: admins, WhoMayMentionAll: admins,
			HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()}),
		l.pin("p1", "b", 1),
		at(t0, l.mute("m1", "b", "c", t0.Add(time.Hour))), // an admin mutes a member
		at(t0.Add(time.Hour), l.send("s2", 2, "c")),       // at until: no longer muted
		l.mute("m2", "a", "b", time.Time{}),               // the owner mutes an admin
		l.unmute("m3", "a", "b"),
		l.send("s3", 3, "b"),
		l.mention("s4", 4, "b", true), // @all by an admin while who_may_mention_all is ADMINS
		l.recall("x1", "b", 1, "c"),   // an admin recalls another's pinned message: unpinned
		l.pin("p2", "b", 3),
		l.unpin("p3", "a", 3),
		l.remove("k1", 5, "b", "d"), // an admin removes a plain member
		l.add("n1", 6, "c", "d"),
		at(t0, l.mute("m4", "b", "d", time.Time{})),
		l.remove("k2", 7, "a", "d"), // a removal ends the mute
		l.add("n2", 8, "b", "d"),
		at(t0, l.send("s5", 9, "d")),
		l.transfer("t1", "a", "a", "b"), // a becomes an admin
		l.role("r2", "b", "a", member),
		l.role("r3", "b", "x", admin), // joined at 0
		l.role("r4", "b", "d", admin), // joined at 8
		l.settings("g2", "b", &pb.GroupSettings{AnnouncementOnly: proto.Bool(true)}),
		l.send("s6", 10, "x"), // an admin posts in an announcement-only group
		l.settings("g3", "x", &pb.GroupSettings{AnnouncementOnly: proto.Bool(false), WhoMayAdd: admins, Description: proto.String("d")}),
		l.add("n3", 11, "d", "ab"),                                // an admin adds while who_may_add is ADMINS
		l.remove("k3", 12, "b", "b"), l.ownerLeft("k3", "b", "x"), // the admin who joined first, not the first by id
		l.remove("k4", 13, "x", "x"), l.ownerLeft("k4", "x", "d"),
		l.remove("k5", 14, "d", "d"), l.ownerLeft("k5", "d", "a"), // no admin left: the first member to join, ties by id
		l.remove("k6", 15, "a", "a"), l.ownerLeft("k6", "a", "c"), // c joined before ab
		l.mention("s7", 16, "ab", false, "c"),
		l.remove("k7", 17, "c", "c"), l.ownerLeft("k7", "c", "ab"),
		l.remove("k8", 18, "ab", "ab"), // the last member leaves: nobody to own it
	)
	validCommands := l.commandsOf(valid)
	// Decided, without an event: a role or settings that would not change,
	// an unmute of a member not muted, a pin there already, an unpin of none.
	for _, typ := range []string{"SetMemberRole", "UpdateGroupSettings", "UnmuteMember", "PinMessage", "UnpinMessage"} {
		validCommands = append(validCommands, l.command("none-"+typ, typ))
	}
	d := l.direct("a", "b")

	for _, tc := range []struct {
		name     string
		events   []*pb.Event
		commands []*pb.Command // all decided, commands topic complete
		want     string        // "" = no problem, else the one problem
	}{
		{"valid", valid, validCommands, ""},
		{"valid direct", l.versions(d, l.mention("s1", 1, "a", false, "b"), l.pin("p1", "b", 1), l.unpin("p2", "a", 1)), nil, ""},

		// One owner.
		{"a group created without its creator", l.versions(testEvent("c0", 0, "a", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP,
			MemberUserIds: []string{"b", "c"}})), nil,
			"ConversationCreated of g:1 at partition 0 offset 0: 0 owner(s) [] among 2 member(s): a group has exactly one owner while it has members"},
		{"members added to a group nobody is left in", l.versions(l.group("a", "b"), l.remove("k1", 1, "b", "b"), l.remove("k2", 2, "a", "a"),
			l.add("n1", 3, "a", "c")), nil, "MembersAdded of g:1 at partition 0 offset 3: 0 owner(s) [] among 1 member(s)"},
		{"the owner leaves, then something else", l.versions(g, l.remove("k1", 1, "a", "a"), l.send("s1", 2, "b")), nil,
			"MessageSent of g:1 at partition 0 offset 2: the owner a left (MemberRemoved of g:1 at partition 0 offset 1) and members remain, but this is not its OwnershipTransferred (OWNER_LEFT)"},
		{"the owner leaves, then a refusal", l.versions(g, l.remove("k1", 1, "a", "a"), testEvent("x1", 0, "b", &pb.CommandRejected{})), nil,
			"CommandRejected of g:1 at partition 0 offset 2: the owner a left (MemberRemoved of g:1 at partition 0 offset 1) and members remain, but this is not its OwnershipTransferred"},
		{"the owner leaves at the end of the log", l.versions(g, l.remove("k1", 1, "a", "a")), nil,
			"MemberRemoved of g:1 at partition 0 offset 1: the owner a left and members remain, but no OwnershipTransferred (OWNER_LEFT) follows"},
		{"OWNER_LEFT to a member while there is an admin", l.versions(g, l.role("r1", "a", "d", admin), l.remove("k1", 1, "a", "a"), l.ownerLeft("k1", "a", "b")), nil,
			"OwnershipTransferred of g:1 at partition 0 offset 3: to_user_id b, want d (the admin who joined first, else the member who joined first, ties by user id)"},
		{"OWNER_LEFT to an admin who joined later", l.versions(g, l.add("n1", 1, "a", "e"), l.role("r1", "a", "e", admin), l.role("r2", "a", "d", admin),
			l.remove("k1", 2, "a", "a"), l.ownerLeft("k1", "a", "e")), nil, "to_user_id e, want d"},
		{"OWNER_LEFT to a member who joined later", l.versions(g, l.remove("k1", 1, "a", "c"), l.add("n1", 2, "a", "c"), l.remove("k2", 3, "a", "b"),
			l.remove("k3", 4, "a", "a"), l.ownerLeft("k3", "a", "c")), nil, "to_user_id c, want d"},
		{"OWNER_LEFT not by user id", l.versions(g, l.remove("k1", 1, "a", "a"), l.ownerLeft("k1", "a", "c")), nil, "to_user_id c, want b"},
		{"OWNER_LEFT from another", l.versions(g, l.remove("k1", 1, "a", "a"), l.ownerLeft("k1", "c", "b")), nil,
			"from_user_id c, but the owner who left is a"},
		{"OWNER_LEFT of another command", l.versions(g, l.remove("k1", 1, "a", "a"), l.ownerLeft("k2", "a", "b")), nil,
			"command_id k2, but the owner's MemberRemoved is of command k1 (both are one decision)"},
		{"OWNER_LEFT out of the blue", l.versions(g, l.ownerLeft("k1", "a", "b")), nil,
			"OwnershipTransferred of g:1 at partition 0 offset 1: reason OWNER_LEFT, but not right after the owner's MemberRemoved"},
		{"OWNER_LEFT after a plain member left", l.versions(g, l.remove("k1", 1, "b", "b"), l.ownerLeft("k2", "b", "c")), nil,
			"reason OWNER_LEFT, but not right after the owner's MemberRemoved"},

		// Roles and transfers.
		{"role set by an admin", l.versions(g, l.role("r1", "a", "b", admin), l.role("r2", "b", "c", admin)), nil,
			"MemberRoleChanged of g:1 at partition 0 offset 2: b sets the role of c but is not the owner: only the owner sets roles"},
		{"role set by a non-member", l.versions(g, l.role("r1", "mallory", "b", admin)), nil, "mallory is not a member"},
		{"role of a non-member", l.versions(g, l.role("r1", "a", "mallory", admin)), nil, "mallory is not a member"},
		{"role of the owner", l.versions(g, l.role("r1", "a", "a", admin)), nil,
			"the role of the owner a changes: the owner's role changes only by a transfer"},
		{"role owner", l.versions(g, l.role("r1", "a", "b", owner)), nil, "role MEMBER_ROLE_OWNER, want ADMIN or MEMBER"},
		{"role unspecified", l.versions(g, l.role("r1", "a", "b", pb.MemberRole_MEMBER_ROLE_UNSPECIFIED)), nil,
			"role MEMBER_ROLE_UNSPECIFIED, want ADMIN or MEMBER"},
		{"role unchanged", l.versions(g, l.role("r1", "a", "b", member)), nil, "b is member already (a role change only when it changes)"},
		{"admin twice", l.versions(g, l.role("r1", "a", "b", admin), l.role("r2", "a", "b", admin)), nil, "b is admin already"},
		{"role in a direct conversation", l.versions(d, l.role("r1", "a", "b", admin)), nil, "a sets the role of b but is not the owner"},
		{"role of a re-added admin", l.versions(g, l.role("r1", "a", "b", admin), l.remove("k1", 1, "a", "b"), l.add("n1", 2, "a", "b"),
			l.role("r2", "a", "b", member)), nil, "b is member already"},
		{"transfer by an admin", l.versions(g, l.role("r1", "a", "b", admin), l.transfer("t1", "b", "b", "c")), nil,
			"OwnershipTransferred of g:1 at partition 0 offset 2: b transfers the ownership but is not the owner"},
		{"transfer by the former owner", l.versions(g, l.transfer("t1", "a", "a", "b"), l.transfer("t2", "a", "a", "c")), nil,
			"OwnershipTransferred of g:1 at partition 0 offset 2: a transfers the ownership but is not the owner"},
		{"transfer naming another", l.versions(g, l.transfer("t1", "a", "b", "c")), nil, "from_user_id b, but the owner a transfers"},
		{"transfer to itself", l.versions(g, l.transfer("t1", "a", "a", "a")), nil, "the owner a transfers the ownership to itself"},
		{"transfer to a non-member", l.versions(g, l.transfer("t1", "a", "a", "mallory")), nil,
			"OwnershipTransferred of g:1 at partition 0 offset 1: mallory is not a member"},
		{"transfer without a reason", l.versions(g, testEvent("t1", 0, "a", &pb.OwnershipTransferred{FromUserId: "a", ToUserId: "b"})), nil,
			"reason OWNERSHIP_TRANSFER_REASON_UNSPECIFIED, want TRANSFERRED or OWNER_LEFT"},
		{"transferred, then a role change by the old owner", l.versions(g, l.transfer("t1", "a", "a", "b"), l.role("r1", "a", "c", admin)), nil,
			"a sets the role of c but is not the owner"},

		// Removals.
		{"the owner removed", l.versions(g, l.role("r1", "a", "b", admin), l.remove("k1", 1, "b", "a"), l.ownerLeft("k1", "a", "b")), nil,
			"MemberRemoved of g:1 at partition 0 offset 2: b removes the owner a: nobody removes the owner (it leaves)"},
		{"an admin removes an admin", l.versions(g, l.role("r1", "a", "b", admin), l.role("r2", "a", "c", admin), l.remove("k1", 1, "b", "c")), nil,
			"the admin b removes the admin c: an admin removes plain members only"},
		{"the owner removes an admin", l.versions(g, l.role("r1", "a", "b", admin), l.remove("k1", 1, "a", "b")), nil, ""},
		{"a plain member removes", l.versions(g, l.remove("k1", 1, "b", "c")), nil,
			"b removes c but is a plain member: only the owner and admins remove members"},
		{"a removal by a non-member", l.versions(g, l.remove("k1", 1, "mallory", "c")), nil, "mallory removes c but is not a member"},
		{"a removal in a direct conversation", l.versions(d, l.remove("k1", 1, "a", "b")), nil, "a removes b but is a plain member"},

		// Settings.
		{"settings by a plain member", l.versions(g, l.settings("g1", "b", &pb.GroupSettings{Title: proto.String("x")})), nil,
			"GroupSettingsChanged of g:1 at partition 0 offset 1: b changes the settings but is neither the owner nor an admin"},
		{"settings by a non-member", l.versions(g, l.settings("g1", "mallory", &pb.GroupSettings{Title: proto.String("x")})), nil,
			"mallory is not a member"},
		{"settings of a direct conversation", l.versions(d, l.settings("g1", "a", &pb.GroupSettings{Title: proto.String("x")})), nil,
			"settings of a direct conversation (groups only)"},
		{"settings unchanged", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{Title: proto.String("x"), WhoMayAdd: members})), nil,
			"who_may_add MEMBERS unchanged (it carries only the settings whose value changes)"},
		{"settings set again", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{Title: proto.String("x"), AnnouncementOnly: proto.Bool(true)}),
			l.settings("g2", "a", &pb.GroupSettings{Title: proto.String("x"), AnnouncementOnly: proto.Bool(true), WhoMayPin: admins})), nil,
			`GroupSettingsChanged of g:1 at partition 0 offset 2: title "x", announcement_only true unchanged`},
		{"announcement_only off by default", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{AnnouncementOnly: proto.Bool(false)})), nil,
			"announcement_only false unchanged"},
		{"description cleared while empty", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{Description: proto.String("")})), nil,
			`description "" unchanged`},
		{"no setting", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{})), nil,
			"no setting in it (a change only when something changes)"},
		{"an empty title", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{Title: proto.String("")})), nil, "g:1 at partition 0 offset 1: an empty title"},
		{"a policy unspecified", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{WhoMayPin: pb.GroupPolicy_GROUP_POLICY_UNSPECIFIED.Enum()})), nil,
			"who_may_pin GROUP_POLICY_UNSPECIFIED, want MEMBERS or ADMINS"},
		{"a history visibility alone, changed back and forth", l.versions(g,
			l.settings("g1", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()}),
			l.settings("g2", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_ALL.Enum(), WhoMayPin: admins}),
			l.settings("g3", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()})), nil, ""},
		{"history visibility ALL by default", l.versions(g,
			l.settings("g1", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_ALL.Enum()})), nil,
			"history_visibility ALL unchanged"},
		{"history visibility set again", l.versions(g,
			l.settings("g1", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()}),
			l.settings("g2", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN.Enum()})), nil,
			"GroupSettingsChanged of g:1 at partition 0 offset 2: history_visibility SINCE_JOIN unchanged"},
		{"a history visibility unspecified", l.versions(g,
			l.settings("g1", "a", &pb.GroupSettings{HistoryVisibility: pb.HistoryVisibility_HISTORY_VISIBILITY_UNSPECIFIED.Enum()})), nil,
			"history_visibility HISTORY_VISIBILITY_UNSPECIFIED, want ALL or SINCE_JOIN"},
		{"a send in an announcement-only group", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{AnnouncementOnly: proto.Bool(true)}),
			l.send("s1", 1, "a"), l.send("s2", 2, "b")), nil,
			"MessageSent of g:1 at partition 0 offset 3: b sends in an announcement-only group but is neither the owner nor an admin"},
		{"announcements over", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{AnnouncementOnly: proto.Bool(true)}),
			l.settings("g2", "a", &pb.GroupSettings{AnnouncementOnly: proto.Bool(false)}), l.send("s1", 1, "b")), nil, ""},
		{"an add by a plain member while who_may_add is ADMINS", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{WhoMayAdd: admins}),
			l.add("n1", 1, "b", "e")), nil,
			"MembersAdded of g:1 at partition 0 offset 2: b adds members while who_may_add is ADMINS, but is neither the owner nor an admin"},
		{"an add by a plain member", l.versions(g, l.add("n1", 1, "b", "e")), nil, ""},

		// Mutes.
		{"a send while muted", l.versions(g, l.mute("m1", "a", "b", time.Time{}), l.send("s1", 1, "b")), nil,
			"MessageSent of g:1 at partition 0 offset 2: b sends while muted (until unmuted)"},
		{"a send before until", l.versions(g, at(t0, l.mute("m1", "a", "b", t0.Add(time.Hour))), at(t0.Add(59*time.Minute), l.send("s1", 1, "b"))), nil,
			"b sends at 2026-01-01T00:59:00Z while muted until 2026-01-01T01:00:00Z"},
		{"a mute replaced", l.versions(g, at(t0, l.mute("m1", "a", "b", time.Time{})), at(t0, l.mute("m2", "a", "b", t0.Add(time.Minute))),
			at(t0.Add(time.Minute), l.send("s1", 1, "b"))), nil, ""},
		{"a mute replaced by a longer one", l.versions(g, at(t0, l.mute("m1", "a", "b", t0.Add(time.Minute))), at(t0, l.mute("m2", "a", "b", time.Time{})),
			at(t0.Add(time.Hour), l.send("s1", 1, "b"))), nil, "b sends while muted (until unmuted)"},
		{"a send after the unmute", l.versions(g, l.mute("m1", "a", "b", time.Time{}), l.unmute("m2", "a", "b"), l.send("s1", 1, "b")), nil, ""},
		{"a send after a re-add", l.versions(g, l.mute("m1", "a", "b", time.Time{}), l.remove("k1", 1, "b", "b"), l.add("n1", 2, "a", "b"),
			l.send("s1", 3, "b")), nil, ""},
		{"a mute by a plain member", l.versions(g, l.mute("m1", "b", "c", time.Time{})), nil,
			"MemberMuted of g:1 at partition 0 offset 1: b mutes c but is neither the owner nor an admin"},
		{"a mute in a direct conversation", l.versions(d, l.mute("m1", "a", "b", time.Time{})), nil, "a mutes b but is neither the owner nor an admin"},
		{"the owner muted", l.versions(g, l.role("r1", "a", "b", admin), l.mute("m1", "b", "a", time.Time{})), nil,
			"b mutes the owner a: nobody mutes the owner"},
		{"the owner mutes itself", l.versions(g, l.mute("m1", "a", "a", time.Time{})), nil, "a mutes the owner a"},
		{"an admin mutes an admin", l.versions(g, l.role("r1", "a", "b", admin), l.role("r2", "a", "c", admin), l.mute("m1", "b", "c", time.Time{})), nil,
			"the admin b mutes the admin c: only the owner mutes an admin"},
		{"a mute of a non-member", l.versions(g, l.mute("m1", "a", "mallory", time.Time{})), nil, "mallory is not a member"},
		{"an unmute of a member not muted", l.versions(g, l.unmute("m1", "a", "b")), nil,
			"MemberUnmuted of g:1 at partition 0 offset 1: b is not muted (an unmute only of a muted member)"},
		{"an unmute twice", l.versions(g, l.mute("m1", "a", "b", time.Time{}), l.unmute("m2", "a", "b"), l.unmute("m3", "a", "b")), nil,
			"MemberUnmuted of g:1 at partition 0 offset 3: b is not muted"},
		{"an unmute after a removal", l.versions(g, l.mute("m1", "a", "b", time.Time{}), l.remove("k1", 1, "a", "b"), l.add("n1", 2, "a", "b"),
			l.unmute("m2", "a", "b")), nil, "b is not muted"},
		{"an unmute by a plain member", l.versions(g, l.mute("m1", "a", "b", time.Time{}), l.unmute("m2", "c", "b")), nil,
			"c unmutes b but is neither the owner nor an admin"},

		// Mentions.
		{"a mention of a non-member", l.versions(g, l.mention("s1", 1, "a", false, "b", "mallory")), nil,
			"MessageSent of g:1 at partition 0 offset 1: mentions mallory, who is not a member"},
		{"a mention of a former member", l.versions(g, l.remove("k1", 1, "a", "b"), l.mention("s1", 2, "a", false, "b")), nil,
			"mentions b, who is not a member"},
		{"a mention twice", l.versions(g, l.mention("s1", 1, "a", false, "b", "c", "b")), nil,
			"mentions b twice (mention_user_ids are deduplicated)"},
		{"a mention of the sender", l.versions(g, l.mention("s1", 1, "a", false, "a")), nil,
			"a mentions itself (a sender's own mention is dropped)"},
		{"@all naming members", l.versions(g, l.mention("s1", 1, "a", true, "b")), nil,
			"mention_all with mention_user_ids [b] (with @all nobody is named)"},
		{"@all in a direct conversation", l.versions(d, l.mention("s1", 1, "a", true)), nil,
			"MessageSent of g:1 at partition 0 offset 1: mention_all in a direct conversation (groups only)"},
		{"@all by a plain member", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{WhoMayMentionAll: admins}), l.mention("s1", 1, "b", true)), nil,
			"b mentions @all while who_may_mention_all is ADMINS, but is neither the owner nor an admin"},
		{"@all by a plain member while everyone may", l.versions(g, l.mention("s1", 1, "b", true)), nil, ""},

		// Pins.
		{"a pin of a notice", l.versions(g, l.add("n1", 1, "a", "e"), l.pin("p1", "a", 1)), nil,
			"MessagePinned of g:1 at partition 0 offset 2: message_seq 1 is not a MessageSent of the conversation"},
		{"a pin of no message", l.versions(g, l.pin("p1", "a", 7)), nil, "message_seq 7 is not a MessageSent"},
		{"a pin twice", l.versions(g, l.send("s1", 1, "b"), l.pin("p1", "a", 1), l.pin("p2", "b", 1)), nil,
			"MessagePinned of g:1 at partition 0 offset 3: message 1 is pinned already (a pin only when new)"},
		{"an unpin of no pin", l.versions(g, l.send("s1", 1, "b"), l.unpin("p1", "a", 1)), nil,
			"MessageUnpinned of g:1 at partition 0 offset 2: message 1 is not pinned (an unpin only of a pinned message)"},
		{"an unpin twice", l.versions(g, l.send("s1", 1, "b"), l.pin("p1", "a", 1), l.unpin("p2", "a", 1), l.unpin("p3", "a", 1)), nil,
			"MessageUnpinned of g:1 at partition 0 offset 4: message 1 is not pinned"},
		{"a pin of a recalled message", l.versions(g, l.send("s1", 1, "b"), l.recall("x1", "b", 1, "b"), l.pin("p1", "a", 1)), nil,
			"message 1 was recalled by b before: a recall unpins, and nothing pins it after"},
		{"an unpin after the recall", l.versions(g, l.send("s1", 1, "b"), l.pin("p1", "a", 1), l.recall("x1", "b", 1, "b"), l.unpin("p2", "a", 1)), nil,
			"MessageUnpinned of g:1 at partition 0 offset 4: message 1 was recalled by b before"},
		{"a pin by a plain member while who_may_pin is ADMINS", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{WhoMayPin: admins}),
			l.send("s1", 1, "b"), l.pin("p1", "b", 1)), nil, "b pins while who_may_pin is ADMINS, but is neither the owner nor an admin"},
		{"an unpin by a plain member while who_may_pin is ADMINS", l.versions(g, l.send("s1", 1, "b"), l.pin("p1", "b", 1),
			l.settings("g1", "a", &pb.GroupSettings{WhoMayPin: admins}), l.unpin("p2", "b", 1)), nil, "b unpins while who_may_pin is ADMINS"},
		{"a pin by a non-member", l.versions(g, l.send("s1", 1, "b"), l.pin("p1", "mallory", 1)), nil, "mallory is not a member"},
		{"a governance action with a seq", l.versions(g, testEvent("r1", 1, "a", &pb.MemberRoleChanged{UserId: "b", Role: admin})), nil,
			"MemberRoleChanged of g:1 at partition 0 offset 1: seq 1, want 0 (not a timeline event)"},
		{"a governance action without a version", append(l.versions(g, l.send("s1", 1, "b")), l.pin("p1", "a", 1)), nil,
			"MessagePinned of g:1 at partition 0 offset 2: version 0 after version 2 (versions must be dense)"},

		// Outcomes.
		{"two role changes of one command", l.versions(g, l.role("r1", "a", "b", admin), l.role("r1", "a", "c", admin)), nil,
			"command r1 has 2 outcome events"},
		{"a transfer without an outcome", l.versions(g), []*pb.Command{l.command("c0", "CreateConversation"), l.command("t1", "TransferOwnership")},
			"command t1 (TransferOwnership of g:1 at partition 0 offset 1) was decided but has no outcome event"},
		{"a mute without an outcome", l.versions(g), []*pb.Command{l.command("c0", "CreateConversation"), l.command("m1", "MuteMember")},
			"command m1 (MuteMember of g:1 at partition 0 offset 1) was decided but has no outcome event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, tc.commands, tc.want, true)
		})
	}

	// The model of the valid log: owners along the way, and the end.
	check := newLogCheck()
	for i, e := range valid {
		check.event(0, int64(i), e)
		if e.GetCommandId() == "t1" {
			conv := check.convs[testConv]
			if o := conv.owners(); !slices.Equal(o, []string{"b"}) || conv.members["a"].role != admin {
				t.Errorf("after the transfer: owners %v, a is %v; want [b] and an admin", o, conv.members["a"].role)
			}
		}
	}
	conv := check.convs[testConv]
	if o := conv.owners(); len(o) != 0 || conv.size() != 0 {
		t.Errorf("at the end: owners %v among %d members, want none", o, conv.size())
	}
	if m := conv.messages[1]; m.pinned || m.recalledBy != "b" {
		t.Errorf("message 1: pinned %v, recalled by %q; want a recall that unpinned it", m.pinned, m.recalledBy)
	}
	if s := conv.settings; s.title != "governed" || s.description != "d" || s.announcementOnly || s.whoMayAdd != *admins ||
		s.whoMayMentionAll != *admins || s.whoMayPin != *admins || s.historyVisibility != pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN {
		t.Errorf("settings %+v", s)
	}
}

// TestVerifyLogCheckMentions: the log's count of a member's unread mentions.
func TestVerifyLogCheckMentions(t *testing.T) {
	var l actionLog
	log := l.versions(l.group("a", "b", "c"),
		l.mention("s1", 1, "a", false, "b"),
		l.mention("s2", 2, "a", true), // @all: b and c, not its sender
		l.mention("s3", 3, "c", false, "a", "b"),
		l.read("r1", "b", 1),
		l.mention("s4", 4, "a", false, "c"),
		l.recall("x1", "c", 3, "c"), // a recalled mention counts no more
		l.add("n1", 5, "a", "d"),
		l.mention("s5", 6, "a", true), // d is mentioned too
		l.mention("s6", 7, "c", false, "d"),
		l.remove("k1", 8, "a", "c"),
	)
	check := newLogCheck()
	for i, e := range log {
		check.event(0, int64(i), e)
	}
	if p := check.finish(false); len(p) > 0 {
		t.Fatalf("problems in the log:\n%s", strings.Join(p, "\n"))
	}
	conv := check.convs[testConv]
	for _, want := range []struct {
		user    string
		n, read int64
		member  bool
	}{
		{"a", 0, 6, true}, // its own sends move its read mark
		{"b", 2, 1, true}, // s2 and s5 (@all); s3 recalled
		{"c", 0, 0, false},
		{"d", 2, 5, true}, // s5 (@all after it joined) and s6
		{"mallory", 0, 0, false},
	} {
		n, read, ok := conv.unreadMentions(want.user)
		if n != want.n || read != want.read || ok != want.member {
			t.Errorf("%s: %d unread mention(s) above %d (member %v), want %d above %d (%v)", want.user, n, read, ok, want.n, want.read, want.member)
		}
	}
}

// checkLog runs the log check over events and commands (nil: the commands
// topic is not read) and holds it to want: no problem when want is empty,
// else a problem containing want — the only one, when one is set.
func checkLog(t *testing.T, events []*pb.Event, commands []*pb.Command, want string, one bool) {
	t.Helper()
	check := newLogCheck()
	for i, e := range events {
		check.event(0, int64(i), e)
	}
	for i, c := range commands {
		check.command(0, int64(i), c, true)
	}
	problems := check.finish(commands != nil)
	got := strings.Join(problems, "\n")
	switch {
	case want == "" && len(problems) > 0:
		t.Errorf("problems in a valid log:\n%s", got)
	case want != "" && !strings.Contains(got, want):
		t.Errorf("problems:\n%s\nwant one containing %q", got, want)
	case want != "" && one && len(problems) != 1:
		t.Errorf("problems:\n%s\nwant only one, containing %q", got, want)
	}
}

package replay

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

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
	}
	return e
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
		if e.GetCommandRejected() == nil && e.GetMessageDeduplicated() == nil {
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
			"b recalls message 1 of a: only its sender or a group owner recalls"},
		{"recall by the creator of a direct conversation", l.versions(l.direct("a", "b"), l.send("s1", 1, "b"), l.recall("x1", "a", 1, "b")), nil,
			"a recalls message 1 of b: only its sender or a group owner recalls"},
		{"recall by a former owner added back", l.versions(g, l.send("s1", 1, "b"),
			testEvent("m1", 2, "a", &pb.MemberRemoved{UserId: "a", Reason: pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT}),
			testEvent("m2", 3, "b", &pb.MembersAdded{UserIds: []string{"a"}}), l.recall("x1", "a", 1, "b")), nil,
			"a recalls message 1 of b: only its sender or a group owner recalls"},
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
			case tc.want != "" && (len(problems) != 1 || !strings.Contains(got, tc.want)):
				t.Errorf("problems:\n%s\nwant one, containing %q", got, tc.want)
			}
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

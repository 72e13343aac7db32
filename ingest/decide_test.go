package ingest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// run feeds commands through decide in order, as the decider does for one
// conversation, and returns every event.
func run(t *testing.T, l Limits, cmds ...*pb.Command) (*convState, []*pb.Event) {
	t.Helper()
	var st *convState
	var all []*pb.Event
	now := time.Unix(1_700_000_000, 0)
	for _, c := range cmds {
		var evs []*pb.Event
		st, evs, _ = decide(l.withDefaults(), st, c, now, now)
		all = append(all, evs...)
	}
	return st, all
}

var n int

func cmd(user, conv string, body any) *pb.Command {
	n++
	c := &pb.Command{CommandId: fmt.Sprintf("cmd-%d", n), UserId: user, DeviceId: user + "-phone", ConversationId: conv}
	switch b := body.(type) {
	case *pb.CreateConversation:
		c.Body = &pb.Command_CreateConversation{CreateConversation: b}
	case *pb.SendMessage:
		c.Body = &pb.Command_SendMessage{SendMessage: b}
	case *pb.MarkRead:
		c.Body = &pb.Command_MarkRead{MarkRead: b}
	case *pb.MarkDelivered:
		c.Body = &pb.Command_MarkDelivered{MarkDelivered: b}
	case *pb.AddMembers:
		c.Body = &pb.Command_AddMembers{AddMembers: b}
	case *pb.RemoveMember:
		c.Body = &pb.Command_RemoveMember{RemoveMember: b}
	case *pb.LeaveConversation:
		c.Body = &pb.Command_LeaveConversation{LeaveConversation: b}
	}
	return c
}

var direct = schemas.DirectConversationID("alice", "bob")

func createDirect() *pb.Command {
	return cmd("alice", direct, &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{"bob"}})
}

func createGroup(members ...string) *pb.Command {
	return cmd("alice", "g:1", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "team", MemberUserIds: members})
}

func send(user, conv, id string) *pb.Command {
	return cmd(user, conv, &pb.SendMessage{ClientMsgId: id, Text: "hi " + id})
}

// summary renders events compactly: "Type@seq" or "CommandRejected:CODE".
func summary(evs []*pb.Event) []string {
	var out []string
	for _, e := range evs {
		s := fmt.Sprintf("%s@%d", schemas.EventType(e), e.GetSeq())
		switch {
		case e.GetCommandRejected() != nil:
			s = "Rejected:" + e.GetCommandRejected().GetCode().String()
		case e.GetMessageDeduplicated() != nil:
			s = fmt.Sprintf("Dedup->%d", e.GetMessageDeduplicated().GetOriginalSeq())
		case e.GetReadUpTo() != nil:
			s = fmt.Sprintf("Read:%s:%d", e.GetActorUserId(), e.GetReadUpTo().GetUpToSeq())
		case e.GetDeliveredUpTo() != nil:
			s = fmt.Sprintf("Delivered:%s:%d", e.GetActorUserId(), e.GetDeliveredUpTo().GetUpToSeq())
		}
		out = append(out, s)
	}
	return out
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"direct: first message is seq 1", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("bob", direct, "m2")},
			[]string{"ConversationCreated@0", "MessageSent@1", "MessageSent@2"}},
		{"retry of a send yields the original seq", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("alice", direct, "m2"), send("alice", direct, "m1")},
			[]string{"ConversationCreated@0", "MessageSent@1", "MessageSent@2", "Dedup->1"}},
		{"same client id from another sender is another message", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("bob", direct, "m1")},
			[]string{"ConversationCreated@0", "MessageSent@1", "MessageSent@2"}},
		{"retry beyond the sender's own last DedupPerSender sends is a new message", Limits{DedupPerSender: 2},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("alice", direct, "m2"), send("alice", direct, "m3"), send("alice", direct, "m1")},
			[]string{"ConversationCreated@0", "MessageSent@1", "MessageSent@2", "MessageSent@3", "MessageSent@4"}},
		{"other senders' traffic never pushes a sender's id out", Limits{DedupPerSender: 2},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("bob", direct, "b1"), send("bob", direct, "b2"),
				send("bob", direct, "b3"), send("bob", direct, "b4"), send("alice", direct, "m1")},
			[]string{"ConversationCreated@0", "MessageSent@1", "MessageSent@2", "MessageSent@3", "MessageSent@4", "MessageSent@5", "Dedup->1"}},
		{"non-member send and read are refused", Limits{},
			[]*pb.Command{createDirect(), send("mallory", direct, "x"), cmd("mallory", direct, &pb.MarkRead{UpToSeq: 1})},
			[]string{"ConversationCreated@0", "Rejected:ERROR_CODE_NOT_MEMBER", "Rejected:ERROR_CODE_NOT_MEMBER"}},
		{"unknown conversation looks like not a member", Limits{},
			[]*pb.Command{send("alice", "g:nope", "x")},
			[]string{"Rejected:ERROR_CODE_NOT_MEMBER"}},
		{"marks move forward only, clamp to the end, read implies delivered", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("alice", direct, "m2"),
				cmd("bob", direct, &pb.MarkDelivered{UpToSeq: 1}), cmd("bob", direct, &pb.MarkRead{UpToSeq: 9}),
				cmd("bob", direct, &pb.MarkRead{UpToSeq: 1}), cmd("bob", direct, &pb.MarkDelivered{UpToSeq: 2})},
			[]string{"ConversationCreated@0", "MessageSent@1", "MessageSent@2", "Delivered:bob:1", "Read:bob:2"}},
		{"bad marks", Limits{},
			[]*pb.Command{createDirect(), cmd("bob", direct, &pb.MarkRead{UpToSeq: 0})},
			[]string{"ConversationCreated@0", "Rejected:ERROR_CODE_INVALID_ARGUMENT"}},
		{"direct id must match the pair", Limits{},
			[]*pb.Command{cmd("alice", "d:wrong", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{"bob"}})},
			[]string{"Rejected:ERROR_CODE_INVALID_ARGUMENT"}},
		{"create twice", Limits{},
			[]*pb.Command{createDirect(), createDirect()},
			[]string{"ConversationCreated@0", "Rejected:ERROR_CODE_CONVERSATION_EXISTS"}},
		{"group size limit on create and add", Limits{MaxGroupMembers: 3},
			[]*pb.Command{createGroup("b", "c", "d"), createGroup("b", "c"),
				cmd("alice", "g:1", &pb.AddMembers{UserIds: []string{"d"}})},
			[]string{"Rejected:ERROR_CODE_GROUP_FULL", "ConversationCreated@0", "Rejected:ERROR_CODE_GROUP_FULL"}},
		{"group membership takes seqs; removed member cannot send", Limits{},
			[]*pb.Command{createGroup("b", "c"), send("b", "g:1", "x"),
				cmd("alice", "g:1", &pb.AddMembers{UserIds: []string{"d", "b"}}),
				cmd("c", "g:1", &pb.RemoveMember{UserId: "b"}),
				cmd("alice", "g:1", &pb.RemoveMember{UserId: "b"}),
				send("b", "g:1", "y"),
				cmd("d", "g:1", &pb.LeaveConversation{}),
				cmd("alice", "g:1", &pb.AddMembers{UserIds: []string{"c"}})},
			[]string{"ConversationCreated@0", "MessageSent@1", "MembersAdded@2",
				"Rejected:ERROR_CODE_PERMISSION_DENIED", "MemberRemoved@3", "Rejected:ERROR_CODE_NOT_MEMBER",
				"MemberRemoved@4", "Rejected:ERROR_CODE_INVALID_ARGUMENT"}},
		{"direct conversations cannot change members", Limits{},
			[]*pb.Command{createDirect(), cmd("alice", direct, &pb.LeaveConversation{})},
			[]string{"ConversationCreated@0", "Rejected:ERROR_CODE_UNSUPPORTED"}},
		{"message limits", Limits{MaxMessageBytes: 4},
			[]*pb.Command{createDirect(), cmd("alice", direct, &pb.SendMessage{ClientMsgId: "m", Text: "hello"}),
				cmd("alice", direct, &pb.SendMessage{Text: "hi"}), cmd("alice", direct, &pb.SendMessage{ClientMsgId: "m", Text: "\xff"})},
			[]string{"ConversationCreated@0", "Rejected:ERROR_CODE_MESSAGE_TOO_LARGE", "Rejected:ERROR_CODE_INVALID_ARGUMENT", "Rejected:ERROR_CODE_INVALID_ARGUMENT"}},
		{"command without a body", Limits{},
			[]*pb.Command{createDirect(), {CommandId: "x", UserId: "alice", ConversationId: direct}},
			[]string{"ConversationCreated@0", "Rejected:ERROR_CODE_UNSUPPORTED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := run(t, tc.l, tc.cmds...)
			got := summary(evs)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			for _, e := range evs {
				if e.GetCommandId() == "" || e.GetOccurredAt() == nil || e.GetConversationId() == "" {
					t.Fatalf("event without envelope: %v", e)
				}
			}
		})
	}
}

func TestDecideUnread(t *testing.T) {
	st, _ := run(t, Limits{}, createDirect(), send("alice", direct, "m1"), send("alice", direct, "m2"),
		cmd("bob", direct, &pb.MarkRead{UpToSeq: 1}))
	if got := st.lastSeq - st.members["bob"].readSeq; got != 1 {
		t.Fatalf("bob's unread = %d, want 1", got)
	}
	if got := st.lastSeq - st.members["alice"].readSeq; got != 0 {
		t.Fatalf("sender's unread = %d, want 0 (sending reads)", got)
	}
}

func TestDecideRejectionCarriesClientMsgID(t *testing.T) {
	_, evs := run(t, Limits{}, send("x", "g:none", "cm-1"))
	r := evs[0].GetCommandRejected()
	if r.GetClientMsgId() != "cm-1" || r.GetCommandType() != schemas.TypeSendMessage || evs[0].GetSeq() != 0 {
		t.Fatalf("rejection = %v", evs[0])
	}
}

// TestDecideContentTypes: documented content types are checked against
// their form, unknown ones pass through untouched, the media type is
// lower-cased and an empty one is text/plain.
func TestDecideContentTypes(t *testing.T) {
	typed := func(id, ct, text string) *pb.Command {
		return cmd("alice", direct, &pb.SendMessage{ClientMsgId: id, Text: text, ContentType: ct})
	}
	_, evs := run(t, Limits{MaxCustomBytes: 64},
		createDirect(),
		typed("a", "", "plain"),
		typed("b", "Text/Markdown", "**bold**"),
		typed("c", schemas.ContentCustom, `{"type":"approval.request","id":"PO-1"}`),
		typed("d", "application/x-vendor-card", "\x01opaque\x02"),
		typed("e", schemas.ContentCustom, `{"id":"no type"}`),
		typed("f", schemas.ContentCustom, `{"type":"big","pad":"`+strings.Repeat("p", 64)+`"}`),
		typed("g", "not-a-type", "x"),
	)
	var got []string
	for _, ev := range evs[1:] {
		if m := ev.GetMessageSent(); m != nil {
			got = append(got, m.GetClientMsgId()+"="+m.GetContentType())
			continue
		}
		got = append(got, ev.GetCommandRejected().GetClientMsgId()+":"+ev.GetCommandRejected().GetCode().String())
	}
	want := []string{"a=text/plain", "b=text/markdown", "c=" + schemas.ContentCustom, "d=application/x-vendor-card",
		"e:ERROR_CODE_INVALID_ARGUMENT", "f:ERROR_CODE_INVALID_ARGUMENT", "g:ERROR_CODE_INVALID_ARGUMENT"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if text := evs[4].GetMessageSent().GetText(); text != "\x01opaque\x02" {
		t.Fatalf("an unknown type's text was changed: %q", text)
	}
}

package ingest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

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
	case *pb.EditMessage:
		c.Body = &pb.Command_EditMessage{EditMessage: b}
	case *pb.RecallMessage:
		c.Body = &pb.Command_RecallMessage{RecallMessage: b}
	case *pb.AddReaction:
		c.Body = &pb.Command_AddReaction{AddReaction: b}
	case *pb.RemoveReaction:
		c.Body = &pb.Command_RemoveReaction{RemoveReaction: b}
	case proto.Message:
		if err := schemas.SetBody(c, b); err != nil {
			panic(err)
		}
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
		case e.GetMessageEdited() != nil:
			s = fmt.Sprintf("Edited:%d#%d", e.GetMessageEdited().GetMessageSeq(), e.GetMessageEdited().GetEditNumber())
		case e.GetMessageRecalled() != nil:
			s = fmt.Sprintf("Recalled:%d", e.GetMessageRecalled().GetMessageSeq())
		case e.GetReactionAdded() != nil:
			s = fmt.Sprintf("React+:%d:%s", e.GetReactionAdded().GetMessageSeq(), e.GetReactionAdded().GetEmoji())
		case e.GetReactionRemoved() != nil:
			s = fmt.Sprintf("React-:%d:%s", e.GetReactionRemoved().GetMessageSeq(), e.GetReactionRemoved().GetEmoji())
		case e.GetMemberRoleChanged() != nil:
			r := e.GetMemberRoleChanged()
			s = fmt.Sprintf("Role:%s:%s", r.GetUserId(), strings.TrimPrefix(r.GetRole().String(), "MEMBER_ROLE_"))
		case e.GetOwnershipTransferred() != nil:
			o := e.GetOwnershipTransferred()
			s = fmt.Sprintf("Owner:%s->%s:%s", o.GetFromUserId(), o.GetToUserId(), strings.TrimPrefix(o.GetReason().String(), "OWNERSHIP_TRANSFER_REASON_"))
		case e.GetGroupSettingsChanged() != nil:
			var names []string
			e.GetGroupSettingsChanged().GetSettings().ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
				names = append(names, string(fd.Name()))
				return true
			})
			slices.Sort(names)
			s = "Settings:" + strings.Join(names, ",")
		case e.GetMemberMuted() != nil:
			s = "Muted:" + e.GetMemberMuted().GetUserId()
		case e.GetMemberUnmuted() != nil:
			s = "Unmuted:" + e.GetMemberUnmuted().GetUserId()
		case e.GetMessagePinned() != nil:
			s = fmt.Sprintf("Pin:%d", e.GetMessagePinned().GetMessageSeq())
		case e.GetMessageUnpinned() != nil:
			s = fmt.Sprintf("Unpin:%d", e.GetMessageUnpinned().GetMessageSeq())
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

// timed is a command and how long after the first one it is received.
type timed struct {
	after time.Duration
	c     *pb.Command
}

// runAt is run with a receive time per command: the decider's clock (now)
// and the command's receive time both advance.
func runAt(t *testing.T, l Limits, steps ...timed) (*convState, []*pb.Event) {
	t.Helper()
	var st *convState
	var all []*pb.Event
	t0 := time.Unix(1_700_000_000, 0)
	for _, s := range steps {
		var evs []*pb.Event
		at := t0.Add(s.after)
		st, evs, _ = decide(l.withDefaults(), st, s.c, at, at)
		all = append(all, evs...)
	}
	return st, all
}

func editCmd(user, conv string, seq int64, id, text string) *pb.Command {
	return cmd(user, conv, &pb.EditMessage{Seq: seq, ClientMsgId: id, Text: text})
}

func editTyped(user, conv string, seq int64, id, text, ct string) *pb.Command {
	return cmd(user, conv, &pb.EditMessage{Seq: seq, ClientMsgId: id, Text: text, ContentType: ct})
}

func recallCmd(user, conv string, seq int64) *pb.Command {
	return cmd(user, conv, &pb.RecallMessage{Seq: seq})
}

func reactCmd(user, conv string, seq int64, emoji string) *pb.Command {
	return cmd(user, conv, &pb.AddReaction{Seq: seq, Emoji: emoji})
}

func unreactCmd(user, conv string, seq int64, emoji string) *pb.Command {
	return cmd(user, conv, &pb.RemoveReaction{Seq: seq, Emoji: emoji})
}

func replyCmd(user, conv, id string, to int64) *pb.Command {
	return cmd(user, conv, &pb.SendMessage{ClientMsgId: id, Text: "re " + id, ReplyToSeq: to})
}

func sendTyped(user, conv, id, ct, text string) *pb.Command {
	return cmd(user, conv, &pb.SendMessage{ClientMsgId: id, Text: text, ContentType: ct})
}

const (
	rejNotFound    = "Rejected:ERROR_CODE_NOT_FOUND"
	rejInvalid     = "Rejected:ERROR_CODE_INVALID_ARGUMENT"
	rejDenied      = "Rejected:ERROR_CODE_PERMISSION_DENIED"
	rejWindow      = "Rejected:ERROR_CODE_WINDOW_PASSED"
	rejRecalled    = "Rejected:ERROR_CODE_MESSAGE_RECALLED"
	rejNotEditable = "Rejected:ERROR_CODE_NOT_EDITABLE"
	rejTooMany     = "Rejected:ERROR_CODE_TOO_MANY_REACTIONS"
	created        = "ConversationCreated@0"
)

// TestDecideMessageActions: edits, recalls, reactions and replies, each
// rule and each refusal.
func TestDecideMessageActions(t *testing.T) {
	g := "g:1"
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"edits are numbered 1, 2, 3", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), editCmd("alice", direct, 1, "e1", "a"),
				editCmd("alice", direct, 1, "e2", "b"), editCmd("alice", direct, 1, "e3", "c"), send("bob", direct, "m2")},
			[]string{created, "MessageSent@1", "Edited:1#1", "Edited:1#2", "Edited:1#3", "MessageSent@2"}},
		{"an edit's retry is answered MessageDeduplicated and edits nothing", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), editCmd("alice", direct, 1, "e1", "a"),
				editCmd("alice", direct, 1, "e1", "a"), editCmd("alice", direct, 1, "e2", "b")},
			[]string{created, "MessageSent@1", "Edited:1#1", "Dedup->1", "Edited:1#2"}},
		{"an edit's client id and body are checked like a send's", Limits{MaxMessageBytes: 8},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"),
				editCmd("alice", direct, 1, "", "a"),
				editCmd("alice", direct, 1, strings.Repeat("i", 129), "a"),
				editCmd("alice", direct, 1, "e1", ""),
				editCmd("alice", direct, 1, "e1", "too long!"),
				editCmd("alice", direct, 1, "e1", "\xff"),
				editTyped("alice", direct, 1, "e1", "a", "not-a-type"),
				editTyped("alice", direct, 1, "e1", "{}", "application/json"),
				editTyped("alice", direct, 1, "e1", "a", "application/x-card"),
				editTyped("alice", direct, 1, "e1", "*a*", "Text/Markdown"),
				editTyped("alice", direct, 1, "e2", "a", "text/plain; charset=utf-8")},
			[]string{created, "MessageSent@1", rejInvalid, rejInvalid, rejInvalid, "Rejected:ERROR_CODE_MESSAGE_TOO_LARGE", rejInvalid, rejInvalid,
				rejNotEditable, rejNotEditable, "Edited:1#1", "Edited:1#2"}},
		{"only the sender edits", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), send("alice", g, "m1"), editCmd("bob", g, 1, "e1", "mine now"),
				editCmd("mallory", g, 1, "e1", "x")},
			[]string{created, "MessageSent@1", rejDenied, "Rejected:ERROR_CODE_NOT_MEMBER"}},
		{"only text/plain and text/markdown messages are edited", Limits{},
			[]*pb.Command{createDirect(), sendTyped("alice", direct, "m1", schemas.ContentCustom, `{"type":"poll"}`),
				sendTyped("alice", direct, "m2", "application/x-card", "opaque"), sendTyped("alice", direct, "m3", "text/markdown", "*hi*"),
				editCmd("alice", direct, 1, "e1", "x"), editCmd("alice", direct, 2, "e2", "x"), editCmd("alice", direct, 3, "e3", "x")},
			[]string{created, "MessageSent@1", "MessageSent@2", "MessageSent@3", rejNotEditable, rejNotEditable, "Edited:3#1"}},
		{"at most MaxEditsPerMessage edits; a retry is still recognised", Limits{MaxEditsPerMessage: 2},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), editCmd("alice", direct, 1, "e1", "a"),
				editCmd("alice", direct, 1, "e2", "b"), editCmd("alice", direct, 1, "e3", "c"), editCmd("alice", direct, 1, "e2", "b")},
			[]string{created, "MessageSent@1", "Edited:1#1", "Edited:1#2", rejNotEditable, "Dedup->1"}},
		{"a notice, a seq past the end or before the start, a recalled message are not edited", Limits{},
			[]*pb.Command{createGroup("bob"), cmd("alice", g, &pb.AddMembers{UserIds: []string{"carol"}}), send("alice", g, "m1"),
				editCmd("alice", g, 1, "e1", "x"), editCmd("alice", g, 3, "e1", "x"), editCmd("alice", g, 0, "e1", "x"),
				editCmd("alice", g, -2, "e1", "x"), recallCmd("alice", g, 2), editCmd("alice", g, 2, "e1", "x")},
			[]string{created, "MembersAdded@1", "MessageSent@2", rejNotFound, rejNotFound, rejNotFound, rejNotFound, "Recalled:2", rejRecalled}},
		{"a send no longer remembered is past the edit window", Limits{DedupPerSender: 1},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("alice", direct, "m2"), editCmd("alice", direct, 1, "e1", "x"),
				editCmd("alice", direct, 2, "e2", "x")},
			[]string{created, "MessageSent@1", "MessageSent@2", rejWindow, "Edited:2#1"}},
		{"the sender or the group's owner recalls; nobody else", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), send("alice", g, "m1"), send("bob", g, "m2"), send("carol", g, "m3"),
				recallCmd("carol", g, 1), recallCmd("bob", g, 1), recallCmd("alice", g, 2), recallCmd("carol", g, 3), recallCmd("alice", g, 1)},
			[]string{created, "MessageSent@1", "MessageSent@2", "MessageSent@3", rejDenied, rejDenied, "Recalled:2", "Recalled:3", "Recalled:1"}},
		{"recalling twice yields one event", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), recallCmd("alice", direct, 1), recallCmd("alice", direct, 1),
				recallCmd("bob", direct, 1)},
			[]string{created, "MessageSent@1", "Recalled:1"}},
		{"a direct conversation has no owner: only the sender recalls", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), recallCmd("bob", direct, 1), recallCmd("alice", direct, 1)},
			[]string{created, "MessageSent@1", rejDenied, "Recalled:1"}},
		{"a notice or a seq outside the timeline is not recalled", Limits{},
			[]*pb.Command{createGroup("bob"), cmd("alice", g, &pb.AddMembers{UserIds: []string{"carol"}}), cmd("carol", g, &pb.LeaveConversation{}),
				recallCmd("alice", g, 1), recallCmd("alice", g, 2), recallCmd("alice", g, 3), recallCmd("alice", g, 0)},
			[]string{created, "MembersAdded@1", "MemberRemoved@2", rejNotFound, rejNotFound, rejNotFound, rejNotFound}},
		{"a send no longer remembered: its sender is unknown, so WINDOW_PASSED; the owner still recalls", Limits{DedupPerSender: 1},
			[]*pb.Command{createGroup("bob"), send("bob", g, "m1"), send("bob", g, "m2"), recallCmd("bob", g, 1), recallCmd("alice", g, 1)},
			[]string{created, "MessageSent@1", "MessageSent@2", rejWindow, "Recalled:1"}},
		{"reactions act once", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), reactCmd("bob", direct, 1, "👍"), reactCmd("bob", direct, 1, "👍"),
				reactCmd("alice", direct, 1, "👍"), unreactCmd("bob", direct, 1, "👍"), unreactCmd("bob", direct, 1, "👍"),
				unreactCmd("bob", direct, 1, "🎉"), reactCmd("bob", direct, 1, "👍")},
			[]string{created, "MessageSent@1", "React+:1:👍", "React+:1:👍", "React-:1:👍", "React+:1:👍"}},
		{"at most MaxReactionsPerMessage distinct emoji", Limits{MaxReactionsPerMessage: 2},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"), send("alice", direct, "m2"), reactCmd("bob", direct, 1, "a"),
				reactCmd("bob", direct, 1, "b"), reactCmd("bob", direct, 1, "c"), reactCmd("alice", direct, 1, "b"),
				reactCmd("bob", direct, 2, "c"), unreactCmd("bob", direct, 1, "a"), reactCmd("bob", direct, 1, "c")},
			[]string{created, "MessageSent@1", "MessageSent@2", "React+:1:a", "React+:1:b", rejTooMany, "React+:1:b", "React+:2:c",
				"React-:1:a", "React+:1:c"}},
		{"an emoji is 1 to 64 bytes of UTF-8 without spaces or control characters", Limits{},
			[]*pb.Command{createDirect(), send("alice", direct, "m1"),
				reactCmd("bob", direct, 1, ""), reactCmd("bob", direct, 1, "thumbs up"), reactCmd("bob", direct, 1, "\t"),
				reactCmd("bob", direct, 1, "a\x01"), reactCmd("bob", direct, 1, "\u00a0"), reactCmd("bob", direct, 1, "\u2028"),
				reactCmd("bob", direct, 1, "\xff"), reactCmd("bob", direct, 1, strings.Repeat("x", 65)), unreactCmd("bob", direct, 1, ""),
				reactCmd("bob", direct, 1, strings.Repeat("x", 64)), reactCmd("bob", direct, 1, "👨\u200d👩\u200d👧"),
				reactCmd("bob", direct, 1, "❤\ufe0f"), reactCmd("bob", direct, 1, ":shipit:")},
			[]string{created, "MessageSent@1", rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid,
				"React+:1:" + strings.Repeat("x", 64), "React+:1:👨\u200d👩\u200d👧", "React+:1:❤\ufe0f", "React+:1::shipit:"}},
		{"reactions need a message that is not recalled", Limits{},
			[]*pb.Command{createGroup("bob"), cmd("alice", g, &pb.AddMembers{UserIds: []string{"carol"}}), send("bob", g, "m1"),
				reactCmd("bob", g, 1, "👍"), reactCmd("bob", g, 3, "👍"), reactCmd("bob", g, 0, "👍"), reactCmd("carol", g, 2, "👍"),
				recallCmd("bob", g, 2), reactCmd("alice", g, 2, "👍"), unreactCmd("carol", g, 2, "👍")},
			[]string{created, "MembersAdded@1", "MessageSent@2", rejNotFound, rejNotFound, rejNotFound, "React+:2:👍", "Recalled:2",
				rejRecalled, rejRecalled}},
		{"a reply answers a message that is not recalled", Limits{},
			[]*pb.Command{createGroup("bob"), cmd("alice", g, &pb.AddMembers{UserIds: []string{"carol"}}), send("bob", g, "m1"),
				replyCmd("carol", g, "r1", 2), replyCmd("carol", g, "r2", 1), replyCmd("carol", g, "r3", 9), replyCmd("carol", g, "r4", -1),
				recallCmd("bob", g, 2), replyCmd("carol", g, "r5", 2), replyCmd("carol", g, "r1", 2), replyCmd("carol", g, "r6", 3)},
			[]string{created, "MembersAdded@1", "MessageSent@2", "MessageSent@3", rejNotFound, rejNotFound, rejNotFound, "Recalled:2",
				rejRecalled, "Dedup->3", "MessageSent@4"}},
		{"a member notice from a removal is no message either", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), cmd("alice", g, &pb.RemoveMember{UserId: "carol"}), reactCmd("bob", g, 1, "👍"),
				replyCmd("bob", g, "r1", 1)},
			[]string{created, "MemberRemoved@1", rejNotFound, rejNotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := run(t, tc.l, tc.cmds...)
			got := summary(evs)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			for _, e := range evs {
				switch e.GetBody().(type) {
				case *pb.Event_MessageEdited, *pb.Event_MessageRecalled, *pb.Event_ReactionAdded, *pb.Event_ReactionRemoved:
					if e.GetSeq() != 0 {
						t.Errorf("%s has seq %d, want 0", schemas.EventType(e), e.GetSeq())
					}
				}
			}
		})
	}
}

// TestDecideMessageActionBodies: what the new events carry.
func TestDecideMessageActionBodies(t *testing.T) {
	g := "g:1"
	_, evs := run(t, Limits{},
		createGroup("bob"),
		send("bob", g, "m1"),
		replyCmd("alice", g, "r1", 1),
		editTyped("bob", g, 1, "e1", "**new**", "Text/Markdown"),
		editCmd("alice", g, 1, "e2", "not mine"),
		recallCmd("alice", g, 1),
		reactCmd("bob", g, 2, "👍"),
		unreactCmd("bob", g, 2, "👍"),
	)
	if r := evs[2].GetMessageSent(); r.GetReplyToSeq() != 1 || evs[1].GetMessageSent().GetReplyToSeq() != 0 {
		t.Errorf("reply: %v, send: %v", r, evs[1].GetMessageSent())
	}
	if e := evs[3].GetMessageEdited(); e.GetMessageSeq() != 1 || e.GetText() != "**new**" || e.GetContentType() != schemas.ContentMarkdown ||
		e.GetClientMsgId() != "e1" || e.GetEditNumber() != 1 || evs[3].GetActorUserId() != "bob" {
		t.Errorf("edit: %v", evs[3])
	}
	if r := evs[4].GetCommandRejected(); r.GetClientMsgId() != "e2" || r.GetCommandType() != "EditMessage" || r.GetCode() != pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Errorf("rejected edit: %v", r)
	}
	if r := evs[5].GetMessageRecalled(); r.GetMessageSeq() != 1 || r.GetSenderUserId() != "bob" || evs[5].GetActorUserId() != "alice" {
		t.Errorf("owner's recall: %v", evs[5])
	}
	if a, r := evs[6].GetReactionAdded(), evs[7].GetReactionRemoved(); a.GetMessageSeq() != 2 || a.GetEmoji() != "👍" || r.GetMessageSeq() != 2 || r.GetEmoji() != "👍" {
		t.Errorf("reactions: %v %v", a, r)
	}
	// An edit back to text/plain is text/plain, never empty.
	_, evs = run(t, Limits{}, createDirect(), sendTyped("alice", direct, "m1", "text/markdown", "*a*"), editCmd("alice", direct, 1, "e1", "a"))
	if ct := evs[2].GetMessageEdited().GetContentType(); ct != schemas.ContentText {
		t.Errorf("edit without a content type: %q", ct)
	}
	// A recall of a send no longer remembered names no sender.
	_, evs = run(t, Limits{DedupPerSender: 1}, createGroup("bob"), send("bob", g, "m1"), send("bob", g, "m2"), recallCmd("alice", g, 1))
	if r := evs[3].GetMessageRecalled(); r.GetMessageSeq() != 1 || r.GetSenderUserId() != "" {
		t.Errorf("recall of an unremembered send: %v", evs[3])
	}
}

// TestDecideWindows: the sender edits and recalls within the windows, which
// follow the commands' receive times; an edit's retry is recognised past
// the window; the group's owner recalls at any time.
func TestDecideWindows(t *testing.T) {
	g := "g:1"
	l := Limits{EditWindow: time.Hour, RecallWindow: 2 * time.Hour}
	_, evs := runAt(t, l,
		timed{0, createGroup("bob", "carol")},
		timed{0, send("bob", g, "m1")},
		timed{0, send("bob", g, "m2")},
		timed{0, send("bob", g, "m3")},
		timed{time.Hour, editCmd("bob", g, 1, "e1", "just in time")},
		timed{time.Hour + time.Millisecond, editCmd("bob", g, 1, "e2", "too late")},
		timed{3 * time.Hour, editCmd("bob", g, 1, "e1", "just in time")}, // a retry
		timed{2 * time.Hour, recallCmd("bob", g, 2)},
		timed{2*time.Hour + time.Millisecond, recallCmd("bob", g, 3)},
		timed{30 * 24 * time.Hour, recallCmd("carol", g, 3)}, // still remembered: decide alone sweeps nothing
		timed{30 * 24 * time.Hour, recallCmd("alice", g, 3)},
	)
	want := []string{created, "MessageSent@1", "MessageSent@2", "MessageSent@3", "Edited:1#1", rejWindow, "Dedup->1",
		"Recalled:2", rejWindow, rejDenied, "Recalled:3"}
	if got := summary(evs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

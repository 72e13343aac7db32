package ingest

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Limits are the decider's named limits; each refusal carries its ErrorCode.
type Limits struct {
	// MaxGroupMembers caps a group's size (GROUP_FULL).
	MaxGroupMembers int
	// MaxMessageBytes caps SendMessage.text in bytes (MESSAGE_TOO_LARGE).
	MaxMessageBytes int
	// MaxCustomBytes caps a custom payload (content type
	// schemas.ContentCustom) in bytes (INVALID_ARGUMENT).
	MaxCustomBytes int
	// MaxTitleBytes caps a group title (INVALID_ARGUMENT).
	MaxTitleBytes int
	// MaxClientMsgIDBytes caps client_msg_id (INVALID_ARGUMENT).
	MaxClientMsgIDBytes int
	// DedupWindow is how long after a send was received a resend of it
	// (same sender, conversation and client_msg_id) is still recognised
	// and answered MessageDeduplicated (default 7 days). Time is the
	// command records' timestamps (when the gateway appended them), so a
	// backlog decided late keeps its window.
	DedupWindow time.Duration
	// DedupPerSender caps the sends remembered per (conversation, sender)
	// within the window (default 1,000): a resend is recognised among the
	// sender's own last DedupPerSender sends there, whatever others send.
	DedupPerSender int
	// EditWindow is how long after a send its sender may edit it (default
	// 24 h; WINDOW_PASSED after). RecallWindow is the same for a recall by
	// its sender (a group's owner recalls at any time). Both are at most
	// DedupWindow: the send's remembered entry is what proves who sent it
	// and when (Validate).
	EditWindow, RecallWindow time.Duration
	// MaxEditsPerMessage caps the edits of one message (default 100;
	// NOT_EDITABLE after).
	MaxEditsPerMessage int
	// MaxReactionsPerMessage caps the distinct emoji on one message
	// (default 32; TOO_MANY_REACTIONS).
	MaxReactionsPerMessage int
}

// DefaultLimits are the limits used when a field is zero.
var DefaultLimits = Limits{
	MaxGroupMembers:        1000,
	MaxMessageBytes:        16 << 10,
	MaxCustomBytes:         8 << 10,
	MaxTitleBytes:          256,
	MaxClientMsgIDBytes:    128,
	DedupWindow:            7 * 24 * time.Hour,
	DedupPerSender:         1000,
	EditWindow:             24 * time.Hour,
	RecallWindow:           24 * time.Hour,
	MaxEditsPerMessage:     100,
	MaxReactionsPerMessage: 32,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxGroupMembers > 0 {
		d.MaxGroupMembers = l.MaxGroupMembers
	}
	if l.MaxMessageBytes > 0 {
		d.MaxMessageBytes = l.MaxMessageBytes
	}
	if l.MaxCustomBytes > 0 {
		d.MaxCustomBytes = l.MaxCustomBytes
	}
	if l.MaxTitleBytes > 0 {
		d.MaxTitleBytes = l.MaxTitleBytes
	}
	if l.MaxClientMsgIDBytes > 0 {
		d.MaxClientMsgIDBytes = l.MaxClientMsgIDBytes
	}
	if l.DedupWindow > 0 {
		d.DedupWindow = l.DedupWindow
	}
	if l.DedupPerSender > 0 {
		d.DedupPerSender = l.DedupPerSender
	}
	if l.EditWindow > 0 {
		d.EditWindow = l.EditWindow
	}
	if l.RecallWindow > 0 {
		d.RecallWindow = l.RecallWindow
	}
	if l.MaxEditsPerMessage > 0 {
		d.MaxEditsPerMessage = l.MaxEditsPerMessage
	}
	if l.MaxReactionsPerMessage > 0 {
		d.MaxReactionsPerMessage = l.MaxReactionsPerMessage
	}
	return d
}

// Validate reports limits that contradict each other, with their defaults
// applied: an edit or a recall by its sender is allowed only while the
// send is remembered, so neither window may outlast DedupWindow.
func (l Limits) Validate() error {
	l = l.withDefaults()
	var errs []error
	if l.EditWindow > l.DedupWindow {
		errs = append(errs, fmt.Errorf("ingest: Limits.EditWindow (%v) exceeds Limits.DedupWindow (%v): an edit needs the send's remembered entry, kept for DedupWindow; lower the edit window or raise the dedup window", l.EditWindow, l.DedupWindow))
	}
	if l.RecallWindow > l.DedupWindow {
		errs = append(errs, fmt.Errorf("ingest: Limits.RecallWindow (%v) exceeds Limits.DedupWindow (%v): a recall by its sender needs the send's remembered entry, kept for DedupWindow; lower the recall window or raise the dedup window", l.RecallWindow, l.DedupWindow))
	}
	return errors.Join(errs...)
}

// rejection is a refusal decided for a command.
type rejection struct {
	code pb.ErrorCode
	msg  string
}

func reject(code pb.ErrorCode, format string, args ...any) *rejection {
	return &rejection{code: code, msg: fmt.Sprintf(format, args...)}
}

// decide applies one command to the state of its conversation (st is nil
// when the conversation does not exist) and returns the state after it, the
// events to emit and what changed. It updates st in place (the returned
// state is st itself, or a new one for a create): the caller must drop st
// when the decision is not committed, as the decider does on an aborted
// transaction. It is deterministic and does no I/O: the clock comes in as
// now (stamped on the events) and received (when the command was appended,
// kept with a remembered send), so it is table-tested on its own, and
// deciding the same commands over the same state gives the same events.
func decide(l Limits, st *convState, cmd *pb.Command, now, received time.Time) (*convState, []*pb.Event, delta) {
	base := &pb.Event{
		ConversationId: cmd.GetConversationId(),
		CommandId:      cmd.GetCommandId(),
		ActorUserId:    cmd.GetUserId(),
		ActorDeviceId:  cmd.GetDeviceId(),
		OccurredAt:     timestamppb.New(now),
	}
	st, evs, d, rej := decideBody(l, st, cmd, base, received)
	if rej == nil {
		// Every event that changes a view takes the next version; the
		// sender-only answers (MessageDeduplicated) do not.
		for _, ev := range evs {
			if ev.GetMessageDeduplicated() == nil {
				st.lastVersion++
				ev.Version = st.lastVersion
				d.header = true
			}
		}
	}
	if rej != nil {
		ev := cloneBase(base)
		r := &pb.CommandRejected{Code: rej.code, Message: rej.msg, CommandType: schemas.CommandType(cmd)}
		if sm := cmd.GetSendMessage(); sm != nil {
			r.ClientMsgId = sm.GetClientMsgId()
		}
		ev.Body = &pb.Event_CommandRejected{CommandRejected: r}
		return st, []*pb.Event{ev}, delta{}
	}
	return st, evs, d
}

func cloneBase(b *pb.Event) *pb.Event {
	return &pb.Event{ConversationId: b.ConversationId, CommandId: b.CommandId,
		ActorUserId: b.ActorUserId, ActorDeviceId: b.ActorDeviceId, OccurredAt: b.OccurredAt}
}

func decideBody(l Limits, st *convState, cmd *pb.Command, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	user := cmd.GetUserId()
	if user == "" || cmd.GetConversationId() == "" {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "command without user_id or conversation_id")
	}
	if c := cmd.GetCreateConversation(); c != nil {
		return create(l, st, cmd, c, base)
	}
	if cmd.GetBody() == nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "command has no body this version knows")
	}
	// Every other command needs an existing conversation the sender is in.
	// A missing conversation answers NOT_MEMBER too, so ids cannot be probed.
	if st == nil || st.members[user] == nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "%s is not a member of %s", user, cmd.GetConversationId())
	}
	next := func() *pb.Event {
		st.lastSeq++
		d.header = true
		ev := cloneBase(base)
		ev.Seq = st.lastSeq
		return ev
	}
	switch b := cmd.GetBody().(type) {
	case *pb.Command_SendMessage:
		m := b.SendMessage
		switch id := m.GetClientMsgId(); {
		case id == "":
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "client_msg_id is required")
		case len(id) > l.MaxClientMsgIDBytes:
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "client_msg_id longer than %d bytes", l.MaxClientMsgIDBytes)
		case m.GetText() == "":
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "empty message")
		case len(m.GetText()) > l.MaxMessageBytes:
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE, "message of %d bytes, limit %d", len(m.GetText()), l.MaxMessageBytes)
		case !utf8.ValidString(m.GetText()):
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "text is not UTF-8")
		}
		ct, err := schemas.CheckContent(m.GetContentType(), m.GetText(), l.MaxCustomBytes)
		if err != nil {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
		}
		if orig, ok := st.lookup(user, m.GetClientMsgId()); ok {
			ev := cloneBase(base)
			ev.Body = &pb.Event_MessageDeduplicated{MessageDeduplicated: &pb.MessageDeduplicated{ClientMsgId: m.GetClientMsgId(), OriginalSeq: orig.seq}}
			return st, []*pb.Event{ev}, d, nil
		}
		ev := next()
		ev.Body = &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: m.GetClientMsgId(), Text: m.GetText(), ContentType: ct}}
		ms := st.members[user]
		ms.readSeq, ms.delivered = st.lastSeq, st.lastSeq
		d.member(user)
		d.dedup = append(d.dedup, dedupRef{user, m.GetClientMsgId()})
		for _, old := range st.remember(user, m.GetClientMsgId(), dedupEntry{seq: st.lastSeq, at: received.UnixMilli()}, l.DedupPerSender) {
			d.dedup = append(d.dedup, dedupRef{user, old})
		}
		return st, []*pb.Event{ev}, d, nil

	case *pb.Command_MarkRead, *pb.Command_MarkDelivered:
		up := cmd.GetMarkRead().GetUpToSeq()
		if cmd.GetMarkDelivered() != nil {
			up = cmd.GetMarkDelivered().GetUpToSeq()
		}
		if up < 1 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "up_to_seq must be at least 1")
		}
		up = min(up, st.lastSeq) // a mark never passes the timeline's end
		ms := st.members[user]
		ev := cloneBase(base)
		if cmd.GetMarkRead() != nil {
			if up <= ms.readSeq {
				return st, nil, d, nil // marks only move forward; nothing to say
			}
			ms.readSeq, ms.delivered = up, max(ms.delivered, up) // read implies delivered
			ev.Body = &pb.Event_ReadUpTo{ReadUpTo: &pb.ReadUpTo{UpToSeq: up}}
		} else {
			if up <= ms.delivered {
				return st, nil, d, nil
			}
			ms.delivered = up
			ev.Body = &pb.Event_DeliveredUpTo{DeliveredUpTo: &pb.DeliveredUpTo{UpToSeq: up}}
		}
		d.member(user)
		return st, []*pb.Event{ev}, d, nil

	case *pb.Command_AddMembers:
		if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "members are added to groups only")
		}
		var added []string
		seen := map[string]bool{}
		for _, u := range b.AddMembers.GetUserIds() {
			if u == "" {
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "empty user id")
			}
			if st.members[u] == nil && !seen[u] {
				seen[u] = true
				added = append(added, u)
			}
		}
		if len(added) == 0 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "no new members: every user is already a member")
		}
		if n := len(st.members) + len(added); n > l.MaxGroupMembers {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_GROUP_FULL, "%d members would exceed the limit of %d", n, l.MaxGroupMembers)
		}
		ev := next()
		for _, u := range added {
			st.members[u] = &memberState{role: pb.MemberRole_MEMBER_ROLE_MEMBER, joinedSeq: ev.Seq, readSeq: ev.Seq, delivered: ev.Seq}
			d.member(u)
		}
		ev.Body = &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: added}}
		return st, []*pb.Event{ev}, d, nil

	case *pb.Command_RemoveMember, *pb.Command_LeaveConversation:
		if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "only groups can be left or have members removed")
		}
		target, reason := user, pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT
		if rm := cmd.GetRemoveMember(); rm != nil && rm.GetUserId() != user {
			target, reason = rm.GetUserId(), pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED
			if st.members[target] == nil {
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member", target)
			}
			if st.members[user].role != pb.MemberRole_MEMBER_ROLE_OWNER {
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner removes members")
			}
		}
		ev := next()
		delete(st.members, target)
		d.member(target)
		ev.Body = &pb.Event_MemberRemoved{MemberRemoved: &pb.MemberRemoved{UserId: target, Reason: reason}}
		return st, []*pb.Event{ev}, d, nil
	}
	return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "command %s is not supported", schemas.CommandType(cmd))
}

func create(l Limits, st *convState, cmd *pb.Command, c *pb.CreateConversation, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	user, id := cmd.GetUserId(), cmd.GetConversationId()
	members := []string{user}
	seen := map[string]bool{user: true}
	for _, u := range c.GetMemberUserIds() {
		if u == "" {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "empty user id")
		}
		if !seen[u] {
			seen[u] = true
			members = append(members, u)
		}
	}
	switch c.GetKind() {
	case pb.ConversationKind_CONVERSATION_KIND_DIRECT:
		if len(members) != 2 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a direct conversation has exactly one other member")
		}
		if want := schemas.DirectConversationID(members[0], members[1]); id != want {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "direct conversation id must be %s", want)
		}
		if c.GetTitle() != "" {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "direct conversations have no title")
		}
	case pb.ConversationKind_CONVERSATION_KIND_GROUP:
		if schemas.IsDirectConversationID(id) {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a group cannot take a direct conversation id")
		}
		if len(members) > l.MaxGroupMembers {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_GROUP_FULL, "%d members exceed the limit of %d", len(members), l.MaxGroupMembers)
		}
		if len(c.GetTitle()) > l.MaxTitleBytes || !utf8.ValidString(c.GetTitle()) {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "title must be UTF-8 of at most %d bytes", l.MaxTitleBytes)
		}
	default:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "conversation kind must be direct or group")
	}
	if st != nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_CONVERSATION_EXISTS, "conversation %s exists", id)
	}
	st = newConvState(c.GetKind(), c.GetTitle())
	d.header = true
	for i, u := range members {
		role := pb.MemberRole_MEMBER_ROLE_MEMBER
		if i == 0 && c.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP {
			role = pb.MemberRole_MEMBER_ROLE_OWNER
		}
		st.members[u] = &memberState{role: role}
		d.member(u)
	}
	ev := cloneBase(base)
	ev.Body = &pb.Event_ConversationCreated{ConversationCreated: &pb.ConversationCreated{Kind: c.GetKind(), Title: c.GetTitle(), MemberUserIds: members}}
	return st, []*pb.Event{ev}, d, nil
}

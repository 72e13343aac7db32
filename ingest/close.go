package ingest

import (
	"slices"
	"unicode/utf8"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Closing and deleting a conversation (README.md, "Closing and deleting").
// Both are facts of the conversation's own stream, kept in its header
// record: closed until a ConversationReopened, deleted for good.

// decideLifecycle decides a CloseConversation, ReopenConversation or
// DeleteConversation. A service (Command.service_principal) may do each to
// any conversation; a device only close or reopen a group it owns. A
// retry of a change in place yields no event.
func decideLifecycle(st *convState, cmd *pb.Command, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	user, id := cmd.GetUserId(), cmd.GetConversationId()
	service := cmd.GetServicePrincipal() != ""
	_, deleting := cmd.GetBody().(*pb.Command_DeleteConversation)
	reason := cmd.GetCloseConversation().GetReason()
	if deleting {
		reason = cmd.GetDeleteConversation().GetReason()
	}
	if len(reason) > schemas.MaxCloseReasonBytes || !utf8.ValidString(reason) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "reason must be UTF-8 of at most %d bytes", schemas.MaxCloseReasonBytes)
	}
	switch {
	case !st.exists() && service:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "conversation %s does not exist", id)
	case service:
	case !st.exists() || st.members[user] == nil:
		// As for every member command: a missing conversation is not told
		// apart from one the sender is not in.
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "%s is not a member of %s", user, id)
	case st.deleted:
		return st, nil, d, st.frozen(id)
	case deleting:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only a service deletes a conversation (the admin API)")
	case st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "a member closes and reopens groups only; a direct conversation is closed by a service")
	case st.members[user].role != pb.MemberRole_MEMBER_ROLE_OWNER:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner closes or reopens it")
	}
	if st.deleted {
		if deleting {
			return st, nil, d, nil // deleted already: a retry
		}
		return st, nil, d, st.frozen(id)
	}
	ev := cloneBase(base)
	switch cmd.GetBody().(type) {
	case *pb.Command_CloseConversation:
		if st.closed {
			return st, nil, d, nil // closed already: a retry
		}
		st.closed = true
		ev.Body = &pb.Event_ConversationClosed{ConversationClosed: &pb.ConversationClosed{Reason: reason}}
	case *pb.Command_ReopenConversation:
		if !st.closed {
			return st, nil, d, nil // open: nothing to reopen
		}
		st.closed = false
		ev.Body = &pb.Event_ConversationReopened{ConversationReopened: &pb.ConversationReopened{}}
	default:
		st.deleted = true
		members := make([]string, 0, len(st.members))
		for u := range st.members {
			members = append(members, u)
		}
		slices.Sort(members)
		ev.Body = &pb.Event_ConversationDeleted{ConversationDeleted: &pb.ConversationDeleted{Reason: reason, MemberUserIds: members}}
	}
	d.header = true
	return st, []*pb.Event{ev}, d, nil
}

// frozen is the refusal of a change to a deleted or a closed
// conversation; nil when it is open.
func (s *convState) frozen(conv string) *rejection {
	switch {
	case s == nil:
		return nil
	case s.deleted:
		return reject(pb.ErrorCode_ERROR_CODE_CONVERSATION_DELETED, "conversation %s was deleted", conv)
	case s.closed:
		return reject(pb.ErrorCode_ERROR_CODE_CONVERSATION_CLOSED, "conversation %s is closed: it is read-only until it is reopened", conv)
	}
	return nil
}

// checkOpen refuses a member's command about a closed or deleted
// conversation, but what a closed one still takes: marks (a read) and a
// forward out of it (a read of the source). A send (and a forward's second
// step) is checked after its dedup, in sendMessage: a resend of a message
// accepted before the close is still answered with its seq.
func checkOpen(st *convState, cmd *pb.Command) *rejection {
	switch cmd.GetBody().(type) {
	case *pb.Command_SendMessage, *pb.Command_ForwardedMessage:
		return nil
	case *pb.Command_MarkRead, *pb.Command_MarkDelivered, *pb.Command_ForwardMessage:
		if st.deleted {
			return st.frozen(cmd.GetConversationId())
		}
		return nil
	}
	return st.frozen(cmd.GetConversationId())
}

package replay

import (
	"slices"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// lifecycle checks an event of conv against its closing and deletion, and
// follows them: what a closed or a deleted conversation still has, and who
// closes, reopens and deletes (logCheck, "closing and deleting").
func (c *logCheck) lifecycle(at where, conv *convModel, ev *pb.Event) {
	typ := at.typ
	switch typ {
	case schemas.TypeCommandRejected, schemas.TypeMessageDeduplicated:
		return // answers: any time
	case schemas.TypeAttachmentDeleted:
		if ev.GetAttachmentDeleted().GetReason() == pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED {
			return // the janitor's expiry of an unsent upload: any time
		}
	}
	if conv.deleted {
		c.problem("%s: the conversation was deleted: nothing more is decided in it", at)
		return
	}
	service := ev.GetActorService() != ""
	byOwner := func(verb string) {
		if service {
			return
		}
		m := conv.members[ev.GetActorUserId()]
		if !conv.group || m == nil || !m.current || m.role != pb.MemberRole_MEMBER_ROLE_OWNER {
			c.problem("%s: %s %s it, neither a service nor the group's owner", at, ev.GetActorUserId(), verb)
		}
	}
	switch typ {
	case schemas.TypeConversationClosed:
		byOwner("closes")
		if conv.closed {
			c.problem("%s: closed already", at)
		}
		conv.closed = true
	case schemas.TypeConversationReopened:
		byOwner("reopens")
		if !conv.closed {
			c.problem("%s: reopens a conversation that is not closed", at)
		}
		conv.closed = false
	case schemas.TypeConversationDeleted:
		if !service {
			c.problem("%s: deleted by %s, not a service", at, ev.GetActorUserId())
		}
		var current []string
		for u, m := range conv.members {
			if m.current {
				current = append(current, u)
			}
		}
		slices.Sort(current)
		if got := slices.Sorted(slices.Values(ev.GetConversationDeleted().GetMemberUserIds())); !slices.Equal(got, current) {
			c.problem("%s: names members %v, the current members are %v", at, got, current)
		}
		conv.deleted = true
	case schemas.TypeReadUpTo, schemas.TypeDeliveredUpTo, schemas.TypeMessageForwarded:
		// Reads: a closed conversation takes them.
	default:
		if conv.closed {
			c.problem("%s: the conversation is closed (read-only)", at)
		}
	}
}

// state says what the log says of a conversation's closing and deletion,
// as the conversations view writes it: closed, deleted, known.
func (c *logCheck) state(id string) (closed, deleted, ok bool) {
	conv := c.convs[id]
	if conv == nil {
		return false, false, false
	}
	return conv.closed, conv.deleted, true
}

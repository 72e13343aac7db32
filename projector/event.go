package projector

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// ErrPoison marks a record of parley.events that can never be applied,
// however often it is retried: it does not decode, has no body this version
// knows, or contradicts itself (key other than its conversation_id, a
// timeline event without a seq …). The projector sends such records to the
// dead-letter topic; every other failure is retried.
var ErrPoison = errors.New("projector: event cannot be applied")

func poison(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPoison, fmt.Sprintf(format, args...))
}

// event is one decoded record of parley.events.
type event struct {
	*pb.Event
	typ string
	raw []byte // the record value, stored as is in messages.event
	// recalled: for a MessageRecalled, the stored MessageSent it names, read
	// once for every view that needs it (messagesView.recalledSend).
	recalled     *pb.Event
	recalledRead bool
}

// decode parses and checks one record. Every error it returns is ErrPoison.
func decode(key, value []byte) (*event, error) {
	e := new(pb.Event)
	if err := proto.Unmarshal(value, e); err != nil {
		return nil, poison("undecodable parley.v1.Event: %v", err)
	}
	ev := &event{Event: e, typ: schemas.EventType(e), raw: value}
	if ev.typ == "" {
		return ev, poison("event has no body, or one this version does not know")
	}
	if e.GetConversationId() == "" {
		return ev, poison("%s without conversation_id", ev.typ)
	}
	if string(key) != e.GetConversationId() {
		return ev, poison("record key %q is not the conversation_id %q", key, e.GetConversationId())
	}
	if schemas.IsTimelineEvent(ev.typ) && e.GetSeq() < 1 {
		return ev, poison("timeline event %s with seq %d", ev.typ, e.GetSeq())
	}
	switch b := e.GetBody().(type) {
	case *pb.Event_Withheld:
		return ev, poison("Withheld is the gateway's stand-in for an event a device may not see, never an event of the log")
	case *pb.Event_ConversationCreated:
		if kindName(b.ConversationCreated.GetKind()) == "" {
			return ev, poison("ConversationCreated with unknown kind %v", b.ConversationCreated.GetKind())
		}
		if err := checkUsers(b.ConversationCreated.GetMemberUserIds()); err != nil {
			return ev, poison("ConversationCreated: %v", err)
		}
	case *pb.Event_MembersAdded:
		if err := checkUsers(b.MembersAdded.GetUserIds()); err != nil {
			return ev, poison("MembersAdded: %v", err)
		}
	case *pb.Event_ConversationDeleted:
		// No members is a group everyone left; an empty id names no inbox.
		if slices.Contains(b.ConversationDeleted.GetMemberUserIds(), "") {
			return ev, poison("ConversationDeleted with an empty member_user_ids entry")
		}
	case *pb.Event_MemberRemoved:
		if b.MemberRemoved.GetUserId() == "" {
			return ev, poison("MemberRemoved without user_id")
		}
		if reasonName(b.MemberRemoved.GetReason()) == "" {
			return ev, poison("MemberRemoved with unknown reason %v", b.MemberRemoved.GetReason())
		}
	case *pb.Event_MessageEdited, *pb.Event_MessageRecalled, *pb.Event_ReactionAdded, *pb.Event_ReactionRemoved:
		if e.GetActorUserId() == "" {
			return ev, poison("%s without actor_user_id", ev.typ)
		}
		if messageSeq(e) < 1 {
			return ev, poison("%s without a message_seq", ev.typ)
		}
		if e.GetMessageEdited().GetEditNumber() < 0 || (e.GetMessageEdited() != nil && e.GetMessageEdited().GetEditNumber() == 0) ||
			e.GetMessageEdited().GetEditNumber() >= recallSub {
			return ev, poison("MessageEdited with edit_number %d", e.GetMessageEdited().GetEditNumber())
		}
		if (e.GetReactionAdded() != nil || e.GetReactionRemoved() != nil) && e.GetReactionAdded().GetEmoji()+e.GetReactionRemoved().GetEmoji() == "" {
			return ev, poison("%s without an emoji", ev.typ)
		}
	case *pb.Event_MessageSent, *pb.Event_ReadUpTo, *pb.Event_DeliveredUpTo:
		if e.GetActorUserId() == "" {
			return ev, poison("%s without actor_user_id", ev.typ)
		}
		if e.GetReadUpTo().GetUpToSeq() < 0 || e.GetDeliveredUpTo().GetUpToSeq() < 0 {
			return ev, poison("%s with a negative up_to_seq", ev.typ)
		}
		if slices.Contains(e.GetMessageSent().GetMentionUserIds(), "") {
			return ev, poison("MessageSent with an empty mention_user_ids entry")
		}
		if f := e.GetMessageSent().GetForwardedFrom(); f != nil && (f.GetConversationId() == "" || f.GetSeq() < 1) {
			return ev, poison("MessageSent forwarded from no message (conversation %q, seq %d)", f.GetConversationId(), f.GetSeq())
		}
		for _, a := range e.GetMessageSent().GetAttachments() {
			if err := schemas.CheckAttachment(a); err != nil {
				return ev, poison("MessageSent with a malformed attachment: %v", err)
			}
		}
	case *pb.Event_AttachmentUploaded:
		if err := schemas.CheckAttachment(b.AttachmentUploaded.GetAttachment()); err != nil {
			return ev, poison("AttachmentUploaded: %v", err)
		}
	case *pb.Event_AttachmentDeleted:
		d := b.AttachmentDeleted
		if schemas.CheckAttachmentID("attachment_id", d.GetAttachmentId()) != nil || schemas.CheckSHA256("sha256", d.GetSha256()) != nil ||
			d.GetOwnerUserId() == "" {
			return ev, poison("AttachmentDeleted without a well-formed attachment id, sha256 and owner")
		}
	case *pb.Event_MessagePinned, *pb.Event_MessageUnpinned:
		if e.GetActorUserId() == "" {
			return ev, poison("%s without actor_user_id", ev.typ)
		}
		if messageSeq(e) < 1 {
			return ev, poison("%s without a message_seq", ev.typ)
		}
	case *pb.Event_ConversationPrefsChanged, *pb.Event_MessagesHidden, *pb.Event_UserBlocked, *pb.Event_UserUnblocked,
		*pb.Event_PushTargetRegistered, *pb.Event_PushTargetUnregistered, *pb.Event_UserBanned, *pb.Event_UserUnbanned,
		*pb.Event_DeviceRevoked, *pb.Event_DeviceRestored,
		*pb.Event_WebhookCreated, *pb.Event_WebhookDeleted:
		if err := checkUserStream(ev); err != nil {
			return ev, err
		}
	case *pb.Event_MemberRoleChanged, *pb.Event_MemberMuted, *pb.Event_MemberUnmuted,
		*pb.Event_OwnershipTransferred, *pb.Event_GroupSettingsChanged:
		if e.GetActorUserId() == "" {
			return ev, poison("%s without actor_user_id", ev.typ)
		}
		if targetUser(e) == "" {
			return ev, poison("%s without its user_id", ev.typ)
		}
		if r := e.GetMemberRoleChanged(); r != nil && r.GetRole() != pb.MemberRole_MEMBER_ROLE_ADMIN && r.GetRole() != pb.MemberRole_MEMBER_ROLE_MEMBER {
			return ev, poison("MemberRoleChanged with role %v", r.GetRole())
		}
		if o := e.GetOwnershipTransferred(); o != nil {
			switch o.GetReason() {
			case pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED:
				if o.GetFromUserId() == "" {
					return ev, poison("OwnershipTransferred (transferred) without from_user_id")
				}
			case pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT:
			default:
				return ev, poison("OwnershipTransferred with unknown reason %v", o.GetReason())
			}
		}
	}
	return ev, nil
}

// checkUserStream checks an event of a user stream: it is the stream of its
// actor (the owner of every row it writes), carries a version (the clock of
// those rows), and names what it is about.
func checkUserStream(ev *event) error {
	e, actor := ev.Event, ev.GetActorUserId()
	if actor == "" {
		return poison("%s without actor_user_id", ev.typ)
	}
	if schemas.UserStreamID(actor) != e.GetConversationId() {
		return poison("%s of %q on stream %q, not the actor's user stream %q", ev.typ, actor, e.GetConversationId(), schemas.UserStreamID(actor))
	}
	if e.GetVersion() < 1 {
		return poison("%s without a version", ev.typ)
	}
	switch b := e.GetBody().(type) {
	case *pb.Event_ConversationPrefsChanged:
		p := b.ConversationPrefsChanged
		if p.GetConversationId() == "" {
			return poison("ConversationPrefsChanged without conversation_id")
		}
		if p.GetArchivedUpToSeq() < 0 || p.GetUnreadMarkedAtSeq() < 0 {
			return poison("ConversationPrefsChanged with a negative seq")
		}
	case *pb.Event_MessagesHidden:
		h := b.MessagesHidden
		if h.GetConversationId() == "" {
			return poison("MessagesHidden without conversation_id")
		}
		if h.GetUpToSeq() < 0 || slices.ContainsFunc(h.GetSeqs(), func(s int64) bool { return s < 1 }) {
			return poison("MessagesHidden with a seq below 1")
		}
	case *pb.Event_UserBlocked, *pb.Event_UserUnblocked:
		if e.GetUserBlocked().GetUserId()+e.GetUserUnblocked().GetUserId() == "" {
			return poison("%s without user_id", ev.typ)
		}
	case *pb.Event_PushTargetRegistered:
		t := b.PushTargetRegistered.GetTarget()
		if t.GetDeviceId() == "" || schemas.ProviderName(t.GetProvider()) == "" {
			return poison("PushTargetRegistered without a device id and a known provider")
		}
	case *pb.Event_PushTargetUnregistered:
		if b.PushTargetUnregistered.GetDeviceId() == "" {
			return poison("PushTargetUnregistered without device_id")
		}
	case *pb.Event_UserBanned, *pb.Event_UserUnbanned:
		if e.GetActorService() == "" {
			return poison("%s without actor_service (only a service bans)", ev.typ)
		}
	case *pb.Event_DeviceRevoked, *pb.Event_DeviceRestored:
		if e.GetActorService() == "" || e.GetDeviceRevoked().GetDeviceId()+e.GetDeviceRestored().GetDeviceId() == "" {
			return poison("%s without actor_service or device_id (only a service revokes)", ev.typ)
		}
	case *pb.Event_WebhookCreated:
		if e.GetActorService() == "" || b.WebhookCreated.GetWebhook().GetWebhookId() == "" {
			return poison("WebhookCreated without actor_service or webhook id")
		}
	case *pb.Event_WebhookDeleted:
		if e.GetActorService() == "" || b.WebhookDeleted.GetWebhookId() == "" {
			return poison("WebhookDeleted without actor_service or webhook id")
		}
	}
	return nil
}

// targetUser is the member a governance event is about: MemberRoleChanged,
// MemberMuted and MemberUnmuted name it in user_id, OwnershipTransferred in
// to_user_id (the new owner). GroupSettingsChanged is about no member: its
// actor stands in, so the check above only asks for the actor.
func targetUser(e *pb.Event) string {
	switch b := e.GetBody().(type) {
	case *pb.Event_MemberRoleChanged:
		return b.MemberRoleChanged.GetUserId()
	case *pb.Event_MemberMuted:
		return b.MemberMuted.GetUserId()
	case *pb.Event_MemberUnmuted:
		return b.MemberUnmuted.GetUserId()
	case *pb.Event_OwnershipTransferred:
		return b.OwnershipTransferred.GetToUserId()
	}
	return e.GetActorUserId()
}

// messageSeq is the seq of the message an action event is about (0 for
// other events).
func messageSeq(e *pb.Event) int64 { return schemas.MessageSeq(e) }

func checkUsers(ids []string) error {
	if len(ids) == 0 {
		return errors.New("no user ids")
	}
	for _, u := range ids {
		if u == "" {
			return errors.New("empty user id")
		}
	}
	return nil
}

// projected reports whether events of type t change a view. CommandRejected
// and MessageDeduplicated are for the sender's devices only; DirectBlockChanged
// and MessageForwarded record the first step of a two-stream decision for the
// deciders (the outcome that shows is the UserBlocked or MessageSent).
func projected(t string) bool {
	switch t {
	case schemas.TypeCommandRejected, schemas.TypeMessageDeduplicated, schemas.TypeDirectBlockChanged, schemas.TypeMessageForwarded:
		return false
	}
	return true
}

// occurredAt is the event's time for a timestamp column; nil (null) when the
// event carries none.
func (e *event) occurredAt() any {
	if e.GetOccurredAt() == nil {
		return nil
	}
	return e.GetOccurredAt().AsTime()
}

func kindName(k pb.ConversationKind) string {
	switch k {
	case pb.ConversationKind_CONVERSATION_KIND_DIRECT:
		return "direct"
	case pb.ConversationKind_CONVERSATION_KIND_GROUP:
		return "group"
	}
	return ""
}

// roleName is the members.role value of r: 'owner', 'admin' or 'member'
// ("" for an unknown role).
func roleName(r pb.MemberRole) string {
	switch r {
	case pb.MemberRole_MEMBER_ROLE_OWNER:
		return "owner"
	case pb.MemberRole_MEMBER_ROLE_ADMIN:
		return "admin"
	case pb.MemberRole_MEMBER_ROLE_MEMBER:
		return "member"
	}
	return ""
}

// policyName is the conversations.who_may_* value of p: 'members' or
// 'admins'; nil (null: the setting's default) for GROUP_POLICY_UNSPECIFIED,
// which the decider never sets explicitly.
func policyName(p pb.GroupPolicy) any {
	switch p {
	case pb.GroupPolicy_GROUP_POLICY_MEMBERS:
		return "members"
	case pb.GroupPolicy_GROUP_POLICY_ADMINS:
		return "admins"
	}
	return nil
}

// visibilityName is the conversations.history_visibility value of v: 'all'
// or 'since_join'; nil (null: the default, 'all') for
// HISTORY_VISIBILITY_UNSPECIFIED, which the decider never sets explicitly.
func visibilityName(v pb.HistoryVisibility) any {
	switch v {
	case pb.HistoryVisibility_HISTORY_VISIBILITY_ALL:
		return "all"
	case pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN:
		return "since_join"
	}
	return nil
}

func reasonName(r pb.MemberRemovedReason) string {
	switch r {
	case pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED:
		return "removed"
	case pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT:
		return "left"
	}
	return ""
}

// previewRunes is the length of conversations.last_message_preview.
const previewRunes = 140

// preview returns the first previewRunes runes of text.
func preview(text string) string {
	if utf8.RuneCountInString(text) <= previewRunes {
		return text
	}
	n := 0
	for i := range text {
		if n == previewRunes {
			return text[:i]
		}
		n++
	}
	return text
}

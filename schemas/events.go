package schemas

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-im/parley/schemas/parleyv1"
)

// Event type names: the message name of the Event body, written to the
// HeaderType record header so consumers can route without decoding.
const (
	TypeConversationCreated  = "ConversationCreated"
	TypeMembersAdded         = "MembersAdded"
	TypeMemberRemoved        = "MemberRemoved"
	TypeMessageSent          = "MessageSent"
	TypeDeliveredUpTo        = "DeliveredUpTo"
	TypeReadUpTo             = "ReadUpTo"
	TypeCommandRejected      = "CommandRejected"
	TypeMessageDeduplicated  = "MessageDeduplicated"
	TypeMessageEdited        = "MessageEdited"
	TypeMessageRecalled      = "MessageRecalled"
	TypeReactionAdded        = "ReactionAdded"
	TypeReactionRemoved      = "ReactionRemoved"
	TypeMemberRoleChanged    = "MemberRoleChanged"
	TypeOwnershipTransferred = "OwnershipTransferred"
	TypeGroupSettingsChanged = "GroupSettingsChanged"
	TypeMemberMuted          = "MemberMuted"
	TypeMemberUnmuted        = "MemberUnmuted"
	TypeMessagePinned        = "MessagePinned"
	TypeMessageUnpinned      = "MessageUnpinned"
	// User stream events (Event.conversation_id = UserStreamID(actor)).
	TypeConversationPrefsChanged = "ConversationPrefsChanged"
	TypeMessagesHidden           = "MessagesHidden"
	TypeUserBlocked              = "UserBlocked"
	TypeUserUnblocked            = "UserUnblocked"
	// Decision records of two-stream decisions (version 0, not projected).
	TypeDirectBlockChanged = "DirectBlockChanged"
	TypeMessageForwarded   = "MessageForwarded"
	// Joining a group by link or by request.
	TypeInviteCreated       = "InviteCreated"
	TypeInviteRevoked       = "InviteRevoked"
	TypeJoinRequested       = "JoinRequested"
	TypeJoinRequestDeclined = "JoinRequestDeclined"
	// Attachments (version 0, delivered to the uploader only).
	TypeAttachmentUploaded = "AttachmentUploaded"
	TypeAttachmentDeleted  = "AttachmentDeleted"
	// Push targets (user stream events).
	TypePushTargetRegistered   = "PushTargetRegistered"
	TypePushTargetUnregistered = "PushTargetUnregistered"
	// Bans (user stream of the banned user).
	TypeUserBanned   = "UserBanned"
	TypeUserUnbanned = "UserUnbanned"
	// Device revocation (user stream of the device's user).
	TypeDeviceRevoked  = "DeviceRevoked"
	TypeDeviceRestored = "DeviceRestored"
	// Outgoing webhooks (user stream of the bot that owns them).
	TypeWebhookCreated = "WebhookCreated"
	TypeWebhookDeleted = "WebhookDeleted"
	// The audit of a service's read (version 0, not projected, not delivered).
	TypeServiceReadRecorded = "ServiceReadRecorded"
	// Closing, reopening and deleting a conversation.
	TypeConversationClosed   = "ConversationClosed"
	TypeConversationReopened = "ConversationReopened"
	TypeConversationDeleted  = "ConversationDeleted"
	// What the gateway sends a device in place of an event it may not see;
	// never on a topic.
	TypeWithheld = "Withheld"
)

// Command type names: the message name of the Command body, written to the
// HeaderType record header of parley.commands.
const (
	TypeCreateConversation      = "CreateConversation"
	TypeAddMembers              = "AddMembers"
	TypeRemoveMember            = "RemoveMember"
	TypeLeaveConversation       = "LeaveConversation"
	TypeSendMessage             = "SendMessage"
	TypeMarkDelivered           = "MarkDelivered"
	TypeMarkRead                = "MarkRead"
	TypeEditMessage             = "EditMessage"
	TypeRecallMessage           = "RecallMessage"
	TypeAddReaction             = "AddReaction"
	TypeRemoveReaction          = "RemoveReaction"
	TypeSetMemberRole           = "SetMemberRole"
	TypeTransferOwnership       = "TransferOwnership"
	TypeUpdateGroupSettings     = "UpdateGroupSettings"
	TypeMuteMember              = "MuteMember"
	TypeUnmuteMember            = "UnmuteMember"
	TypePinMessage              = "PinMessage"
	TypeUnpinMessage            = "UnpinMessage"
	TypeUpdateConversationPrefs = "UpdateConversationPrefs"
	TypeHideMessages            = "HideMessages"
	TypeBlockUser               = "BlockUser"
	TypeUnblockUser             = "UnblockUser"
	TypeForwardMessage          = "ForwardMessage"
	TypeCreateInvite            = "CreateInvite"
	TypeRevokeInvite            = "RevokeInvite"
	TypeJoinConversation        = "JoinConversation"
	TypeDecideJoinRequest       = "DecideJoinRequest"
	TypeRegisterPushTarget      = "RegisterPushTarget"
	TypeUnregisterPushTarget    = "UnregisterPushTarget"
	TypeBanUser                 = "BanUser"
	TypeUnbanUser               = "UnbanUser"
	TypeRevokeDevice            = "RevokeDevice"
	TypeRestoreDevice           = "RestoreDevice"
	TypeCreateWebhook           = "CreateWebhook"
	TypeDeleteWebhook           = "DeleteWebhook"
	TypeRecordServiceRead       = "RecordServiceRead"
	TypeCloseConversation       = "CloseConversation"
	TypeReopenConversation      = "ReopenConversation"
	TypeDeleteConversation      = "DeleteConversation"
	// Appended by a gateway's HTTP handlers or janitor, never from a
	// ClientFrame.
	TypeUploadAttachment = "UploadAttachment"
	TypeExpireAttachment = "ExpireAttachment"
	// Written by ingest only (the second step of a two-stream decision).
	TypeDirectBlock      = "DirectBlock"
	TypeForwardedMessage = "ForwardedMessage"
)

// EventType returns the message name of e's body, e.g. "MessageSent" (one of
// the Type… constants), or "" when e is nil or has no body.
func EventType(e *parleyv1.Event) string {
	if e == nil {
		return ""
	}
	return bodyType(e)
}

// CommandType returns the message name of c's body, e.g. "SendMessage" (one
// of the Type… constants), or "" when c is nil or has no body.
func CommandType(c *parleyv1.Command) string {
	if c == nil {
		return ""
	}
	return bodyType(c)
}

// IsEventType reports whether name is the type of an Event body (one of
// the Type… constants of events, Withheld aside).
func IsEventType(name string) bool {
	return name != TypeWithheld && eventTypes()[name]
}

var eventTypes = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	fields := (&parleyv1.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); f.Kind() == protoreflect.MessageKind {
			out[string(f.Message().Name())] = true
		}
	}
	return out
})

// bodyType reads the name from the descriptor rather than a type switch so a
// body added to the proto gets a type name without touching this file.
func bodyType(m proto.Message) string {
	r := m.ProtoReflect()
	od := r.Descriptor().Oneofs().ByName("body")
	if od == nil {
		return ""
	}
	fd := r.WhichOneof(od)
	if fd == nil || fd.Kind() != protoreflect.MessageKind {
		return ""
	}
	return string(fd.Message().Name())
}

// MessageSeq is the seq of the message e changes — the message_seq of an
// edit, a recall, a reaction added or removed, a pin or an unpin — or 0 when
// e changes no message of its own timeline (MessageForwarded, a decision
// record never delivered, names the seq it forwards but changes nothing).
// Who may not see that message may not see the change either.
func MessageSeq(e *parleyv1.Event) int64 {
	switch b := e.GetBody().(type) {
	case *parleyv1.Event_MessageEdited:
		return b.MessageEdited.GetMessageSeq()
	case *parleyv1.Event_MessageRecalled:
		return b.MessageRecalled.GetMessageSeq()
	case *parleyv1.Event_ReactionAdded:
		return b.ReactionAdded.GetMessageSeq()
	case *parleyv1.Event_ReactionRemoved:
		return b.ReactionRemoved.GetMessageSeq()
	case *parleyv1.Event_MessagePinned:
		return b.MessagePinned.GetMessageSeq()
	case *parleyv1.Event_MessageUnpinned:
		return b.MessageUnpinned.GetMessageSeq()
	}
	return 0
}

// IsTimelineEvent reports whether an event of type t takes a seq: messages
// and system notices do, receipts and rejections do not.
func IsTimelineEvent(t string) bool {
	switch t {
	case TypeMembersAdded, TypeMemberRemoved, TypeMessageSent:
		return true
	}
	return false
}

// DirectConversationID returns the id of the direct conversation between
// userA and userB: "d:" followed by the first 32 hex digits (128 bits) of
// SHA-256 over the two ids, sorted and joined by a zero byte. It is
// deterministic and order-independent, so either user (and any gateway)
// derives the same id, and hence the same Kafka partition, without a lookup;
// the zero byte keeps ("ab","c") apart from ("a","bc").
func DirectConversationID(userA, userB string) string {
	if userB < userA {
		userA, userB = userB, userA
	}
	sum := sha256.Sum256([]byte(userA + "\x00" + userB))
	return "d:" + hex.EncodeToString(sum[:16])
}

// UserStreamID is the stream of one user's own settings (conversation
// prefs, hidden messages, blocks, push targets): "u:" + 32 lowercase hex digits of a hash
// of the user id. Its commands and events are keyed by it like a
// conversation's, so they are ordered and versioned per user, and every
// device of the user follows it (Welcome.user_stream_id).
func UserStreamID(user string) string {
	sum := sha256.Sum256([]byte("user\x00" + user))
	return "u:" + hex.EncodeToString(sum[:16])
}

// IsUserStreamID reports whether id has the shape of a user stream id. It
// does not say whose.
func IsUserStreamID(id string) bool {
	h, ok := strings.CutPrefix(id, "u:")
	if !ok || len(h) != 32 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// IsDirectConversationID reports whether id has the shape of a direct
// conversation id. It does not say which users it belongs to.
func IsDirectConversationID(id string) bool {
	h, ok := strings.CutPrefix(id, "d:")
	if !ok || len(h) != 32 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// NewGroupConversationID returns a fresh random group conversation id:
// "g:" followed by 32 hex digits (128 random bits). Group ids are not derived
// from anything, so a retried CreateConversation must reuse the id it got the
// first time.
func NewGroupConversationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return "g:" + hex.EncodeToString(b[:])
}

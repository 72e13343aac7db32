package ingest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
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
	// its sender (a group's owner and admins recall at any time). Both
	// are at most DedupWindow: the send's remembered entry is what proves
	// who sent it and when (Validate).
	EditWindow, RecallWindow time.Duration
	// MaxEditsPerMessage caps the edits of one message (default 100;
	// NOT_EDITABLE after).
	MaxEditsPerMessage int
	// MaxReactionsPerMessage caps the distinct emoji on one message
	// (default 32; TOO_MANY_REACTIONS).
	MaxReactionsPerMessage int
	// MaxPins caps the pinned messages of one conversation (default 50;
	// TOO_MANY_PINS).
	MaxPins int
	// MaxBlocksPerUser caps the users one user blocks at once (default
	// 10,000; INVALID_ARGUMENT past it).
	MaxBlocksPerUser int
	// MaxInvites caps a group's invitation links that are neither revoked
	// nor expired (default 100; LIMIT_REACHED). MaxInviteUses caps one
	// link's max_uses (default 10,000; INVALID_ARGUMENT past it).
	MaxInvites, MaxInviteUses int
	// MaxJoinRequests caps a group's pending join requests (default 1,000;
	// LIMIT_REACHED).
	MaxJoinRequests int
	// MaxPendingAttachments caps the attachments uploaded to one
	// conversation and not sent yet (default 1,000; LIMIT_REACHED).
	MaxPendingAttachments int
	// AttachmentTTL is how long an upload nobody sends is kept: an
	// ExpireAttachment deletes it only once this has passed since it was
	// received (default 24h).
	AttachmentTTL time.Duration
	// MaxPushTargets caps the push targets of one user, one per device
	// (default 20; LIMIT_REACHED).
	MaxPushTargets int
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
	MaxPins:                50,
	MaxBlocksPerUser:       10_000,
	MaxInvites:             100,
	MaxInviteUses:          10_000,
	MaxJoinRequests:        1000,
	MaxPendingAttachments:  1000,
	AttachmentTTL:          24 * time.Hour,
	MaxPushTargets:         20,
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
	if l.MaxPins > 0 {
		d.MaxPins = l.MaxPins
	}
	if l.MaxBlocksPerUser > 0 {
		d.MaxBlocksPerUser = l.MaxBlocksPerUser
	}
	if l.MaxInvites > 0 {
		d.MaxInvites = l.MaxInvites
	}
	if l.MaxInviteUses > 0 {
		d.MaxInviteUses = l.MaxInviteUses
	}
	if l.MaxJoinRequests > 0 {
		d.MaxJoinRequests = l.MaxJoinRequests
	}
	if l.MaxPendingAttachments > 0 {
		d.MaxPendingAttachments = l.MaxPendingAttachments
	}
	if l.AttachmentTTL > 0 {
		d.AttachmentTTL = l.AttachmentTTL
	}
	if l.MaxPushTargets > 0 {
		d.MaxPushTargets = l.MaxPushTargets
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
	base := baseOf(cmd, now)
	st, evs, d, rej := decideBody(l, st, cmd, base, received)
	if rej == nil {
		// Every event that changes a view takes the next version; the
		// sender-only answers (MessageDeduplicated) and the decision records
		// of two-stream decisions (DirectBlockChanged, MessageForwarded)
		// do not.
		for _, ev := range evs {
			if versioned(ev) {
				st.lastVersion++
				ev.Version = st.lastVersion
				d.header = true
			}
		}
	}
	if rej == nil && len(evs) == 0 && cmd.GetServicePrincipal() != "" {
		// A service learns that nothing changed (the admin API answers a
		// retry from it); a device's no-op stays silent.
		rej = reject(pb.ErrorCode_ERROR_CODE_NO_CHANGE, "%s changes nothing: it is in place already", schemas.CommandType(cmd))
	}
	if rej != nil {
		return st, []*pb.Event{rejected(base, cmd, rej)}, delta{}
	}
	return st, evs, d
}

// baseOf is the envelope of every event decided from cmd at now.
func baseOf(cmd *pb.Command, now time.Time) *pb.Event {
	return &pb.Event{
		ConversationId: cmd.GetConversationId(),
		CommandId:      cmd.GetCommandId(),
		ActorUserId:    cmd.GetUserId(),
		ActorDeviceId:  cmd.GetDeviceId(),
		ActorService:   cmd.GetServicePrincipal(),
		OccurredAt:     timestamppb.New(now),
	}
}

// rejected is the one CommandRejected that answers a refused cmd.
func rejected(base *pb.Event, cmd *pb.Command, rej *rejection) *pb.Event {
	ev := cloneBase(base)
	r := &pb.CommandRejected{Code: rej.code, Message: rej.msg, CommandType: schemas.CommandType(cmd)}
	if sm := cmd.GetSendMessage(); sm != nil {
		r.ClientMsgId = sm.GetClientMsgId()
	} else if em := cmd.GetEditMessage(); em != nil {
		r.ClientMsgId = em.GetClientMsgId()
	} else if fm := cmd.GetForwardMessage(); fm != nil {
		r.ClientMsgId = fm.GetClientMsgId()
	} else if fm := cmd.GetForwardedMessage(); fm != nil {
		r.ClientMsgId = fm.GetClientMsgId()
	}
	ev.Body = &pb.Event_CommandRejected{CommandRejected: r}
	return ev
}

func cloneBase(b *pb.Event) *pb.Event {
	return &pb.Event{ConversationId: b.ConversationId, CommandId: b.CommandId,
		ActorUserId: b.ActorUserId, ActorDeviceId: b.ActorDeviceId, ActorService: b.ActorService, OccurredAt: b.OccurredAt}
}

func decideBody(l Limits, st *convState, cmd *pb.Command, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	user := cmd.GetUserId()
	if user == "" || cmd.GetConversationId() == "" {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "command without user_id or conversation_id")
	}
	if r := cmd.GetRecordServiceRead(); r != nil {
		// Any stream, before the stream's own rules: a read changes nothing.
		return recordRead(st, cmd, r, base)
	}
	if rej := checkStream(cmd); rej != nil {
		return st, nil, d, rej
	}
	switch b := cmd.GetBody().(type) {
	case *pb.Command_UpdateConversationPrefs, *pb.Command_HideMessages, *pb.Command_BlockUser, *pb.Command_UnblockUser:
		return decideUserStream(l, st, cmd, base)
	case *pb.Command_RegisterPush, *pb.Command_UnregisterPush:
		return decidePush(l, st, cmd, base, received)
	case *pb.Command_BanUser, *pb.Command_UnbanUser:
		return decideBan(st, cmd, base, received)
	case *pb.Command_RevokeDevice, *pb.Command_RestoreDevice:
		return decideRevoke(st, cmd, base)
	case *pb.Command_CreateWebhook, *pb.Command_DeleteWebhook:
		return decideWebhook(st, cmd, base)
	case *pb.Command_DirectBlock:
		return directBlock(st, cmd, b.DirectBlock, base)
	case *pb.Command_CloseConversation, *pb.Command_ReopenConversation, *pb.Command_DeleteConversation:
		return decideLifecycle(st, cmd, base)
	}
	if c := cmd.GetCreateConversation(); c != nil {
		return create(l, st, cmd, c, base)
	}
	if j := cmd.GetJoinConversation(); j != nil {
		// The one command of a user who is not a member.
		if rej := st.frozen(cmd.GetConversationId()); rej != nil && st.exists() {
			return st, nil, d, rej
		}
		return join(l, st, user, j, base, received.UnixMilli())
	}
	if x := cmd.GetExpireAttachment(); x != nil {
		// Its owner may have left since the upload.
		return expireAttachment(l, st, x, base, received.UnixMilli())
	}
	if cmd.GetBody() == nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "command has no body this version knows")
	}
	// Every other command needs an existing conversation the sender is in.
	// A missing conversation answers NOT_MEMBER too, so ids cannot be probed.
	if !st.exists() || st.members[user] == nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "%s is not a member of %s", user, cmd.GetConversationId())
	}
	if rej := checkOpen(st, cmd); rej != nil {
		return st, nil, d, rej
	}
	switch b := cmd.GetBody().(type) {
	case *pb.Command_SendMessage:
		return sendMessage(l, st, user, b.SendMessage, nil, base, received)

	case *pb.Command_ForwardMessage:
		return forward(l, st, cmd, b.ForwardMessage, base)

	case *pb.Command_ForwardedMessage:
		fm := b.ForwardedMessage
		o := fm.GetOrigin()
		if o == nil || schemas.CheckConversationID("origin.conversation_id", o.GetConversationId()) != nil ||
			o.GetConversationId() == cmd.GetConversationId() || o.GetSeq() < 1 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a forwarded message needs the origin it was forwarded from")
		}
		return sendMessage(l, st, user, &pb.SendMessage{ClientMsgId: fm.GetClientMsgId(), Text: fm.GetText(), ContentType: fm.GetContentType()},
			&forwarded{origin: o, attachments: fm.GetAttachments()}, base, received)

	case *pb.Command_EditMessage:
		return edit(l, st, user, b.EditMessage, base, received)

	case *pb.Command_RecallMessage:
		return recall(l, st, user, b.RecallMessage.GetSeq(), base, received)

	case *pb.Command_AddReaction, *pb.Command_RemoveReaction:
		return react(l, st, cmd, base)

	case *pb.Command_SetMemberRole:
		return setRole(st, user, b.SetMemberRole, base)

	case *pb.Command_TransferOwnership:
		return transfer(st, user, b.TransferOwnership.GetUserId(), base)

	case *pb.Command_UpdateGroupSettings:
		return updateSettings(l, st, user, b.UpdateGroupSettings.GetSettings(), base)

	case *pb.Command_MuteMember:
		return mute(st, user, b.MuteMember, base, received)

	case *pb.Command_UnmuteMember:
		return unmute(st, user, b.UnmuteMember.GetUserId(), base, received)

	case *pb.Command_PinMessage:
		return pin(l, st, user, b.PinMessage.GetSeq(), true, base)

	case *pb.Command_UnpinMessage:
		return pin(l, st, user, b.UnpinMessage.GetSeq(), false, base)

	case *pb.Command_CreateInvite:
		return createInvite(l, st, user, b.CreateInvite, base, received.UnixMilli())

	case *pb.Command_RevokeInvite:
		return revokeInvite(st, user, b.RevokeInvite.GetInviteId(), base)

	case *pb.Command_DecideJoinRequest:
		return decideJoin(l, st, user, b.DecideJoinRequest, base)

	case *pb.Command_UploadAttachment:
		return uploadAttachment(l, st, user, b.UploadAttachment, base, received.UnixMilli())

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
		if st.settings.adminsAdd && !st.members[user].privileged() {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the owner and admins add members to this group")
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
			if cmd.GetServicePrincipal() != "" {
				return st, nil, d, nil // NO_CHANGE to the service (decide)
			}
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "no new members: every user is already a member")
		}
		if rej := st.room(l, len(added)); rej != nil {
			return st, nil, d, rej
		}
		ev := st.notice(base, &d)
		for _, u := range added {
			st.admit(u, ev.Seq, &d)
		}
		ev.Body = &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: added}}
		return st, []*pb.Event{ev}, d, nil

	case *pb.Command_RemoveMember, *pb.Command_LeaveConversation:
		if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "only groups can be left or have members removed")
		}
		actor := st.members[user]
		target, reason := user, pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT
		rm := cmd.GetRemoveMember()
		switch {
		case rm != nil && rm.GetUserId() != user:
			target, reason = rm.GetUserId(), pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED
			tm := st.members[target]
			switch {
			case tm == nil:
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member", target)
			case tm.role == pb.MemberRole_MEMBER_ROLE_OWNER:
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "nobody removes the group's owner")
			case actor.role == pb.MemberRole_MEMBER_ROLE_OWNER:
			case actor.role == pb.MemberRole_MEMBER_ROLE_ADMIN && !tm.privileged():
			case actor.role == pb.MemberRole_MEMBER_ROLE_ADMIN:
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner removes an admin")
			default:
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner and admins remove members")
			}
		case rm != nil && actor.role == pb.MemberRole_MEMBER_ROLE_OWNER:
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "the owner leaves with LeaveConversation, which hands the group over")
		}
		owner := st.members[target].role == pb.MemberRole_MEMBER_ROLE_OWNER
		ev := st.notice(base, &d)
		delete(st.members, target)
		d.member(target)
		ev.Body = &pb.Event_MemberRemoved{MemberRemoved: &pb.MemberRemoved{UserId: target, Reason: reason}}
		evs := []*pb.Event{ev}
		// The owner left (nobody else removes it): the group passes to
		// its successor in the same decision, unless nobody is left.
		if owner {
			if to := st.successor(); to != "" {
				// The owner is never muted: becoming owner ends a mute.
				st.members[to].role, st.members[to].mutedUntil = pb.MemberRole_MEMBER_ROLE_OWNER, 0
				d.member(to)
				hand := cloneBase(base)
				hand.Body = &pb.Event_OwnershipTransferred{OwnershipTransferred: &pb.OwnershipTransferred{FromUserId: target, ToUserId: to,
					Reason: pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT}}
				evs = append(evs, hand)
			}
		}
		return st, evs, d, nil
	}
	return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "command %s is not supported", schemas.CommandType(cmd))
}

// checkClientMsgID checks the client id of a send or an edit.
func checkClientMsgID(l Limits, id string) *rejection {
	switch {
	case id == "":
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "client_msg_id is required")
	case len(id) > l.MaxClientMsgIDBytes:
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "client_msg_id longer than %d bytes", l.MaxClientMsgIDBytes)
	}
	return nil
}

// checkText checks the body of a send or an edit and returns its content
// type normalised (schemas.CheckContent).
func checkText(l Limits, text, contentType string) (string, *rejection) {
	switch {
	case text == "":
		return "", reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "empty message")
	case len(text) > l.MaxMessageBytes:
		return "", reject(pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE, "message of %d bytes, limit %d", len(text), l.MaxMessageBytes)
	case !utf8.ValidString(text):
		return "", reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "text is not UTF-8")
	}
	ct, err := schemas.CheckContent(contentType, text, l.MaxCustomBytes)
	if err != nil {
		return "", reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	return ct, nil
}

// checkCaption checks the content type of a send whose text is empty
// because it carries attachments: a caption is plain or markdown text.
func checkCaption(contentType string) (string, *rejection) {
	ct := strings.ToLower(contentType)
	switch ct {
	case "":
		return schemas.ContentText, nil
	case schemas.ContentText, schemas.ContentMarkdown:
		return ct, nil
	}
	return "", reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a message of attachments without text is text/plain or text/markdown, not %s", schemas.Clip(contentType))
}

// checkMessage refuses a seq that is not a message of the timeline: before
// its start, past its end, or a member notice.
func checkMessage(st *convState, seq int64) *rejection {
	if !st.isMessage(seq) {
		return reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "no message at seq %d", seq)
	}
	return nil
}

// checkTarget refuses a seq that is not a message, or a recalled one: what
// an edit, a reaction or a reply acts on.
func checkTarget(st *convState, seq int64) *rejection {
	if rej := checkMessage(st, seq); rej != nil {
		return rej
	}
	if st.isRecalled(seq) {
		return reject(pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED, "message %d was recalled", seq)
	}
	return nil
}

// editable reports whether content type ct (normalised; "" is text/plain)
// is one an edit may start from or turn a message into.
func editable(ct string) bool {
	media, _, _ := strings.Cut(ct, ";")
	switch strings.TrimSpace(media) {
	case "", schemas.ContentText, schemas.ContentMarkdown:
		return true
	}
	return false
}

// edit decides an EditMessage. Who sent the message and when is its
// remembered send (bySeq): an edit is possible only while the send is
// remembered, which Limits.Validate makes last at least the edit window.
func edit(l Limits, st *convState, user string, m *pb.EditMessage, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	seq, id := m.GetSeq(), m.GetClientMsgId()
	if rej := checkClientMsgID(l, id); rej != nil {
		return st, nil, d, rej
	}
	ct, rej := checkText(l, m.GetText(), m.GetContentType())
	if rej != nil {
		return st, nil, d, rej
	}
	if !editable(ct) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_EDITABLE, "an edit turns a message into text/plain or text/markdown, not %s", schemas.Clip(ct))
	}
	if rej := checkTarget(st, seq); rej != nil {
		return st, nil, d, rej
	}
	ref, e, ok := st.sender(seq)
	if !ok {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_WINDOW_PASSED, "message %d is past the edit window, or not remembered as yours", seq)
	}
	if ref.user != user {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the sender edits a message")
	}
	// A retry is answered before the window is checked: an edit that
	// landed just before the window closed is still recognised after.
	x := e.extra()
	if slices.Contains(x.editIDs, id) {
		ev := cloneBase(base)
		ev.Body = &pb.Event_MessageDeduplicated{MessageDeduplicated: &pb.MessageDeduplicated{ClientMsgId: id, OriginalSeq: seq}}
		return st, []*pb.Event{ev}, d, nil
	}
	if x.noTime || received.UnixMilli()-e.at > l.EditWindow.Milliseconds() {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_WINDOW_PASSED, "message %d is past the edit window (%v)", seq, l.EditWindow)
	}
	if !editable(x.ct) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_EDITABLE, "only text/plain and text/markdown messages are edited, not %s", schemas.Clip(x.ct))
	}
	if int(x.edits) >= l.MaxEditsPerMessage {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_EDITABLE, "message %d was edited the maximum number of times (%d)", seq, l.MaxEditsPerMessage)
	}
	x.edits++
	keep := x.editIDs[max(0, len(x.editIDs)-(maxEditIDs-1)):]
	x.editIDs = append(append(make([]string, 0, len(keep)+1), keep...), id)
	x.ct = ct
	if ct == schemas.ContentText {
		x.ct = ""
	}
	e = e.with(x)
	st.update(ref.user, ref.clientMsgID, e)
	d.edited = append(d.edited, ref)
	ev := cloneBase(base)
	ev.Body = &pb.Event_MessageEdited{MessageEdited: &pb.MessageEdited{MessageSeq: seq, Text: m.GetText(), ContentType: ct,
		ClientMsgId: id, EditNumber: x.edits}}
	return st, []*pb.Event{ev}, d, nil
}

// recall decides a RecallMessage: by its sender within the recall window,
// or by a group's owner or an admin at any time.
func recall(l Limits, st *convState, user string, seq int64, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if rej := checkMessage(st, seq); rej != nil {
		return st, nil, d, rej
	}
	if st.isRecalled(seq) {
		return st, nil, d, nil // a recall is final; nothing more to say
	}
	ref, e, known := st.sender(seq)
	bySender := known && ref.user == user
	inWindow := bySender && !e.extra().noTime && received.UnixMilli()-e.at <= l.RecallWindow.Milliseconds()
	switch {
	case inWindow || st.members[user].privileged():
	case bySender:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_WINDOW_PASSED, "message %d is past the recall window (%v)", seq, l.RecallWindow)
	case !known:
		// The send is no longer remembered, so who sent it is not known
		// here: it may be the actor's own, past the window, or another's.
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_WINDOW_PASSED,
			"message %d is past the recall window, or not yours; only the group's owner or an admin recalls it now", seq)
	default:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED,
			"only the sender, within the recall window, or the group's owner or an admin recalls a message")
	}
	if len(st.reactions[seq]) > 0 {
		d.reactions = append(d.reactions, seq) // their record's tombstone
	}
	if st.isPinned(seq) {
		d.pins = append(d.pins, seq) // a recall unpins, without an event of its own
	}
	st.recall(seq, user)
	d.recalled = append(d.recalled, seq)
	ev := cloneBase(base)
	ev.Body = &pb.Event_MessageRecalled{MessageRecalled: &pb.MessageRecalled{MessageSeq: seq, SenderUserId: ref.user}}
	evs := []*pb.Event{ev}
	// The message's attachments are deleted whether or not its send is
	// still remembered: with its dedup entry while it is, in st.sent once
	// it was evicted or swept. Either way they leave the state.
	owner, atts := ref.user, []sentAttachment(nil)
	if x := e.extra(); known && len(x.atts) > 0 {
		atts, x.atts = x.atts, nil
		st.update(ref.user, ref.clientMsgID, e.with(x))
		d.edited = append(d.edited, ref)
	}
	if m, ok := st.sent[seq]; ok {
		if atts == nil {
			owner, atts = m.sender, m.atts
		}
		delete(st.sent, seq)
		d.sent = append(d.sent, seq)
	}
	evs = append(evs, recalledAttachments(base, owner, seq, atts)...)
	return st, evs, d, nil
}

// maxEmojiBytes bounds AddReaction.emoji and RemoveReaction.emoji.
const maxEmojiBytes = 64

// checkEmoji: 1 to maxEmojiBytes bytes of UTF-8 without whitespace or
// control characters (joiners and variation selectors are neither).
func checkEmoji(emoji string) *rejection {
	if emoji == "" || len(emoji) > maxEmojiBytes || !utf8.ValidString(emoji) ||
		strings.IndexFunc(emoji, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "emoji must be 1 to %d bytes of UTF-8 without spaces or control characters", maxEmojiBytes)
	}
	return nil
}

// react decides an AddReaction or a RemoveReaction. Either is idempotent:
// a reaction already there, or already gone, yields no event.
func react(l Limits, st *convState, cmd *pb.Command, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	user := cmd.GetUserId()
	seq, emoji := cmd.GetAddReaction().GetSeq(), cmd.GetAddReaction().GetEmoji()
	add := cmd.GetAddReaction() != nil
	if !add {
		seq, emoji = cmd.GetRemoveReaction().GetSeq(), cmd.GetRemoveReaction().GetEmoji()
	}
	if rej := checkEmoji(emoji); rej != nil {
		return st, nil, d, rej
	}
	if rej := checkTarget(st, seq); rej != nil {
		return st, nil, d, rej
	}
	has := st.hasReaction(seq, emoji, user)
	ev := cloneBase(base)
	switch {
	case add && has, !add && !has:
		return st, nil, d, nil
	case add:
		if _, known := st.reactions[seq][emoji]; !known && len(st.reactions[seq]) >= l.MaxReactionsPerMessage {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_TOO_MANY_REACTIONS, "message %d has %d distinct reactions, the limit", seq, l.MaxReactionsPerMessage)
		}
		st.addReaction(seq, emoji, user)
		ev.Body = &pb.Event_ReactionAdded{ReactionAdded: &pb.ReactionAdded{MessageSeq: seq, Emoji: emoji}}
	default:
		st.removeReaction(seq, emoji, user)
		ev.Body = &pb.Event_ReactionRemoved{ReactionRemoved: &pb.ReactionRemoved{MessageSeq: seq, Emoji: emoji}}
	}
	d.reactions = append(d.reactions, seq)
	return st, []*pb.Event{ev}, d, nil
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
	if st.exists() && st.deleted {
		// Its id stays taken: the log holds its events.
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_CONVERSATION_DELETED, "conversation %s was deleted; its id is not used again", id)
	}
	if st.exists() {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_CONVERSATION_EXISTS, "conversation %s exists", id)
	}
	var blockers map[string]string
	if st != nil {
		// The blocks of a direct conversation recorded before it was
		// created stand in it.
		blockers = st.blockers
	}
	st = newConvState(c.GetKind(), c.GetTitle())
	st.blockers = blockers
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

// sendMessage decides a SendMessage by user, or the second step of a
// forward (from is its origin, the message has no reply or mentions).
func sendMessage(l Limits, st *convState, user string, m *pb.SendMessage, fw *forwarded, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if rej := checkClientMsgID(l, m.GetClientMsgId()); rej != nil {
		return st, nil, d, rej
	}
	var ct string
	var rej *rejection
	if m.GetText() == "" && (len(m.GetAttachmentIds()) > 0 || len(fw.GetAttachments()) > 0) {
		ct, rej = checkCaption(m.GetContentType())
	} else {
		ct, rej = checkText(l, m.GetText(), m.GetContentType())
	}
	if rej != nil {
		return st, nil, d, rej
	}
	if orig, ok := st.lookup(user, m.GetClientMsgId()); ok {
		ev := cloneBase(base)
		ev.Body = &pb.Event_MessageDeduplicated{MessageDeduplicated: &pb.MessageDeduplicated{ClientMsgId: m.GetClientMsgId(), OriginalSeq: orig.seq}}
		return st, []*pb.Event{ev}, d, nil
	}
	// After the dedup check: a resend is the original, whatever
	// happened since to the sender's rights, to blocks, to the message
	// it replies to or to the conversation (closed, deleted).
	if rej := st.frozen(base.GetConversationId()); rej != nil {
		return st, nil, d, rej
	}
	if len(st.blockers) > 0 {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_BLOCKED, "a block stands between the two users of %s", base.GetConversationId())
	}
	ms := st.members[user]
	if st.settings.announcementOnly && !ms.privileged() {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the owner and admins send in an announcement-only group")
	}
	if ms.muted(received.UnixMilli()) {
		if ms.mutedUntil == mutedForever {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_MUTED, "%s is muted until unmuted", user)
		}
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_MUTED, "%s is muted until %s", user, time.UnixMilli(ms.mutedUntil).UTC().Format(time.RFC3339Nano))
	}
	if to := m.GetReplyToSeq(); to != 0 {
		if rej := checkTarget(st, to); rej != nil {
			return st, nil, d, rej
		}
	}
	mentions, rej := checkMentions(st, user, m)
	if rej != nil {
		return st, nil, d, rej
	}
	atts, rej := takeAttachments(st, user, m.GetAttachmentIds())
	if rej != nil {
		return st, nil, d, rej
	}
	var evs []*pb.Event
	if copies := fw.GetAttachments(); len(copies) > 0 {
		if evs, rej = forwardedAttachments(st, user, copies, base); rej != nil {
			return st, nil, d, rej
		}
		atts = copies
	}
	// A mute that ended is forgotten with the sender's member record,
	// which the send rewrites anyway.
	ms.mutedUntil = 0
	st.lastSeq++
	d.header = true
	ev := cloneBase(base)
	ev.Seq = st.lastSeq
	ev.Body = &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: m.GetClientMsgId(), Text: m.GetText(), ContentType: ct,
		ReplyToSeq: m.GetReplyToSeq(), MentionUserIds: mentions, MentionAll: m.GetMentionAll(), ForwardedFrom: fw.GetOrigin(), Attachments: atts}}
	ms.readSeq, ms.delivered = st.lastSeq, st.lastSeq
	d.member(user)
	d.dedup = append(d.dedup, dedupRef{user, m.GetClientMsgId()})
	e := dedupEntry{seq: st.lastSeq, at: received.UnixMilli()}
	x := sendExtra{atts: sendAttachments(st, atts, &d)}
	if ct != schemas.ContentText {
		x.ct = ct
	}
	e = e.with(x) // none when x is zero: most sends
	evicted, kept := st.remember(user, m.GetClientMsgId(), e, l.DedupPerSender)
	for _, old := range evicted {
		d.dedup = append(d.dedup, dedupRef{user, old})
	}
	d.sent = append(d.sent, kept...) // evicted sends' attachments, kept for their recall
	return st, append(evs, ev), d, nil
}

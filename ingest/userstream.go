package ingest

import (
	"errors"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// maxHideSeqs bounds HideMessages.seqs (commands.proto: at most 100).
const maxHideSeqs = 100

// versioned reports whether ev takes its stream's next version: every
// event that changes a view does; the sender-only answers
// (MessageDeduplicated) and the decision records of two-stream decisions
// (DirectBlockChanged, MessageForwarded) do not.
func versioned(ev *pb.Event) bool {
	return ev.GetMessageDeduplicated() == nil && ev.GetDirectBlockChanged() == nil && ev.GetMessageForwarded() == nil &&
		ev.GetAttachmentUploaded() == nil && ev.GetAttachmentDeleted() == nil && ev.GetServiceReadRecorded() == nil
}

// userStreamCommand reports whether cmd is one of the per-user commands,
// keyed by the sender's user stream.
func userStreamCommand(cmd *pb.Command) bool {
	switch cmd.GetBody().(type) {
	case *pb.Command_UpdateConversationPrefs, *pb.Command_HideMessages, *pb.Command_BlockUser, *pb.Command_UnblockUser,
		*pb.Command_RegisterPush, *pb.Command_UnregisterPush, *pb.Command_BanUser, *pb.Command_UnbanUser,
		*pb.Command_CreateWebhook, *pb.Command_DeleteWebhook, *pb.Command_RevokeDevice, *pb.Command_RestoreDevice:
		return true
	}
	return false
}

// checkStream refuses a command keyed by the wrong kind of stream: a
// per-user command keyed by anything but a user stream, or by another
// user's stream, and a conversation command keyed by a user stream.
func checkStream(cmd *pb.Command) *rejection {
	conv := cmd.GetConversationId()
	if userStreamCommand(cmd) {
		if !schemas.IsUserStreamID(conv) {
			return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s is keyed by the sender's user stream, not by a conversation", schemas.CommandType(cmd))
		}
		if conv != schemas.UserStreamID(cmd.GetUserId()) {
			return reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "a user stream takes its own user's commands only")
		}
		return nil
	}
	if len(conv) >= 2 && conv[:2] == "u:" {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s is keyed by a conversation, not by a user stream", schemas.CommandType(cmd))
	}
	return nil
}

// idRejection turns a schemas.Check* error into its refusal.
func idRejection(err error) *rejection {
	code := pb.ErrorCode_ERROR_CODE_INVALID_ID
	var ie *schemas.IDError
	if errors.As(err, &ie) {
		code = ie.Code
	}
	return reject(code, "%v", err)
}

// decideUserStream decides a per-user command on the sender's stream (st
// is nil until its first accepted command). Prefs and hidden messages are
// the user's own data: neither is checked against a conversation's
// membership, which the user stream does not know.
func decideUserStream(l Limits, st *convState, cmd *pb.Command, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	user := cmd.GetUserId()
	ev := cloneBase(base)
	switch b := cmd.GetBody().(type) {
	case *pb.Command_UpdateConversationPrefs:
		p := b.UpdateConversationPrefs
		if err := schemas.CheckConversationID("conversation_id", p.GetConversationId()); err != nil {
			return st, nil, d, idRejection(err)
		}
		if p.Mute == nil && p.Pinned == nil && p.ArchivedUpToSeq == nil && p.UnreadMarkedAtSeq == nil {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "no preference set: set mute, pinned, archived_up_to_seq or unread_marked_at_seq")
		}
		if p.GetArchivedUpToSeq() < 0 || p.GetUnreadMarkedAtSeq() < 0 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "archived_up_to_seq and unread_marked_at_seq must not be negative")
		}
		if m := p.GetMute(); m != nil {
			switch {
			case m.GetForever() && m.GetUntil() != nil:
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a mute is forever or until a time, not both")
			case m.GetUntil() != nil && m.GetUntil().CheckValid() != nil:
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "mute.until is not a valid time")
			}
		}
		ev.Body = &pb.Event_ConversationPrefsChanged{ConversationPrefsChanged: &pb.ConversationPrefsChanged{ConversationId: p.GetConversationId(),
			Mute: p.GetMute(), Pinned: p.Pinned, ArchivedUpToSeq: p.ArchivedUpToSeq, UnreadMarkedAtSeq: p.UnreadMarkedAtSeq}}

	case *pb.Command_HideMessages:
		h := b.HideMessages
		if err := schemas.CheckConversationID("conversation_id", h.GetConversationId()); err != nil {
			return st, nil, d, idRejection(err)
		}
		if len(h.GetSeqs()) > maxHideSeqs {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%d seqs; at most %d per command (use up_to_seq to clear the history)", len(h.GetSeqs()), maxHideSeqs)
		}
		if h.GetUpToSeq() < 0 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "up_to_seq must not be negative")
		}
		var seqs []int64
		seen := make(map[int64]bool, len(h.GetSeqs()))
		for _, s := range h.GetSeqs() {
			if s < 1 {
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "seq %d: every seq is at least 1", s)
			}
			if !seen[s] {
				seen[s] = true
				seqs = append(seqs, s)
			}
		}
		if len(seqs) == 0 && h.GetUpToSeq() == 0 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "nothing to hide: give seqs or up_to_seq")
		}
		ev.Body = &pb.Event_MessagesHidden{MessagesHidden: &pb.MessagesHidden{ConversationId: h.GetConversationId(), Seqs: seqs, UpToSeq: h.GetUpToSeq()}}

	case *pb.Command_BlockUser, *pb.Command_UnblockUser:
		block := cmd.GetBlockUser() != nil
		target := cmd.GetBlockUser().GetUserId()
		if !block {
			target = cmd.GetUnblockUser().GetUserId()
		}
		if err := schemas.CheckID("user_id", target); err != nil {
			return st, nil, d, idRejection(err)
		}
		if target == user {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a user does not block itself")
		}
		if st.isBlocked(target) == block {
			return st, nil, d, nil // already so; nothing to say, nothing to carry
		}
		if block && st != nil && len(st.blocked) >= l.MaxBlocksPerUser {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s blocks %d users, the limit", user, l.MaxBlocksPerUser)
		}
		st = st.orNew()
		if block {
			if st.blocked == nil {
				st.blocked = map[string]struct{}{}
			}
			st.blocked[target] = struct{}{}
			ev.Body = &pb.Event_UserBlocked{UserBlocked: &pb.UserBlocked{UserId: target}}
		} else {
			delete(st.blocked, target)
			ev.Body = &pb.Event_UserUnblocked{UserUnblocked: &pb.UserUnblocked{UserId: target}}
		}
		d.blocked = append(d.blocked, target)
		d.derived = append(d.derived, derive(cmd, schemas.DirectConversationID(user, target),
			&pb.DirectBlock{BlockerUserId: user, BlockedUserId: target, Blocked: block}))
	}
	return st.orNew(), []*pb.Event{ev}, d, nil
}

// derive is the second step of a two-stream decision: a command to key,
// with cmd's envelope (command_id, user_id, device_id, received_at), so its
// outcome reaches the device that asked.
func derive(cmd *pb.Command, key string, body any) *pb.Command {
	out := &pb.Command{CommandId: cmd.GetCommandId(), UserId: cmd.GetUserId(), DeviceId: cmd.GetDeviceId(),
		ConversationId: key, ReceivedAt: cmd.GetReceivedAt()}
	switch b := body.(type) {
	case *pb.DirectBlock:
		out.Body = &pb.Command_DirectBlock{DirectBlock: b}
	case *pb.ForwardedMessage:
		out.Body = &pb.Command_ForwardedMessage{ForwardedMessage: b}
	}
	return out
}

// directBlock decides a DirectBlock (written by ingest only) in the direct
// conversation of its two users, which need not exist yet: the block is
// recorded either way, and refuses sends there while it stands.
func directBlock(st *convState, cmd *pb.Command, b *pb.DirectBlock, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	blocker, blocked := b.GetBlockerUserId(), b.GetBlockedUserId()
	if schemas.CheckID("blocker_user_id", blocker) != nil || schemas.CheckID("blocked_user_id", blocked) != nil || blocker == blocked {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a direct block names two different valid users")
	}
	if cmd.GetUserId() != blocker {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a direct block is sent by its blocker")
	}
	if cmd.GetConversationId() != schemas.DirectConversationID(blocker, blocked) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a direct block is keyed by the direct conversation of its two users")
	}
	if st.exists() && st.kind != pb.ConversationKind_CONVERSATION_KIND_DIRECT {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "blocks stand in direct conversations only")
	}
	if st.hasBlocker(blocker) == b.GetBlocked() {
		return st, nil, d, nil
	}
	st = st.orNew()
	if b.GetBlocked() {
		if st.blockers == nil {
			st.blockers = map[string]string{}
		}
		st.blockers[blocker] = blocked
	} else {
		delete(st.blockers, blocker)
	}
	d.blockers = append(d.blockers, blocker)
	ev := cloneBase(base)
	ev.Body = &pb.Event_DirectBlockChanged{DirectBlockChanged: &pb.DirectBlockChanged{BlockerUserId: blocker, BlockedUserId: blocked, Blocked: b.GetBlocked()}}
	return st, []*pb.Event{ev}, d, nil
}

// forward decides a ForwardMessage in its source conversation (the sender
// is a member, checked before): the message must be one the sender may see
// and not recalled; then MessageForwarded records the decision and a
// ForwardedMessage carries the send to the target, which decides it.
func forward(l Limits, st *convState, cmd *pb.Command, f *pb.ForwardMessage, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	src, seq := cmd.GetConversationId(), f.GetSeq()
	if rej := checkClientMsgID(l, f.GetClientMsgId()); rej != nil {
		return st, nil, d, rej
	}
	target := f.GetTargetConversationId()
	if err := schemas.CheckConversationID("target_conversation_id", target); err != nil {
		return st, nil, d, idRejection(err)
	}
	if target == src {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a message is forwarded to another conversation")
	}
	if rej := checkMessage(st, seq); rej != nil {
		return st, nil, d, rej
	}
	if st.settings.sinceJoin && seq < st.members[cmd.GetUserId()].joinedSeq {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "no message at seq %d", seq) // not visible: as if absent
	}
	if st.isRecalled(seq) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED, "message %d was recalled", seq)
	}
	o := f.GetOrigin()
	if o.GetConversationId() != src || o.GetSeq() != seq {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "origin must name the message forwarded (%s, seq %d)", src, seq)
	}
	if ref, _, ok := st.sender(seq); ok && o.GetSenderUserId() != ref.user {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "origin.sender_user_id is not the message's sender")
	}
	if f.GetText() == "" && len(f.GetAttachments()) > 0 {
		if _, rej := checkCaption(f.GetContentType()); rej != nil {
			return st, nil, d, rej
		}
	} else if _, rej := checkText(l, f.GetText(), f.GetContentType()); rej != nil {
		return st, nil, d, rej
	}
	ev := cloneBase(base)
	ev.Body = &pb.Event_MessageForwarded{MessageForwarded: &pb.MessageForwarded{Seq: seq, TargetConversationId: target, ClientMsgId: f.GetClientMsgId()}}
	d.derived = append(d.derived, derive(cmd, target, &pb.ForwardedMessage{ClientMsgId: f.GetClientMsgId(), Text: f.GetText(),
		ContentType: f.GetContentType(), Origin: o, Attachments: f.GetAttachments()}))
	return st, []*pb.Event{ev}, d, nil
}

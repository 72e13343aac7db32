package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The gateway's one validation layer. Every frame a device sends passes
// checkFrame before anything is appended, read, published or logged: ids
// (conversation, user, client message and request ids) must have the forms
// of schemas.CheckConversationID and schemas.CheckID, cursors those of
// schemas.CheckCursor, and sizes their documented bounds. Handlers after it
// may rely on that and check only what needs state (membership, kind,
// presence state). What the device sent is never repeated beyond
// schemas.Clip, in answers or in log lines.

const (
	// maxTitleBytes bounds CreateConversation.title.
	maxTitleBytes = 256
	// maxContentTypeBytes bounds SendMessage.content_type.
	maxContentTypeBytes = schemas.MaxContentTypeBytes
	// maxMentions bounds SendMessage.mention_user_ids (the decider's limit).
	maxMentions = 50
	// maxDescriptionBytes and maxAvatarURLBytes bound a group's settings.
	maxDescriptionBytes = 1024
	maxAvatarURLBytes   = 2048
	// maxErrorDetail bounds the decoder's detail repeated in an Error.
	maxErrorDetail = 200
	// maxHideSeqs bounds HideMessages.seqs (the decider's limit).
	maxHideSeqs = 100
)

// refusal is why a frame is refused: its ErrorCode and a message for the
// device (bounded: it never repeats more than a clipped prefix of input).
type refusal struct {
	code pb.ErrorCode
	msg  string
}

func invalidArg(format string, args ...any) *refusal {
	return &refusal{pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, fmt.Sprintf(format, args...)}
}

// refusalOf turns a schemas check error into a refusal with its own code.
func refusalOf(err error) *refusal {
	var ie *schemas.IDError
	if errors.As(err, &ie) {
		return &refusal{ie.Code, ie.Error()}
	}
	return &refusal{pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err.Error()}
}

// checkRequestID checks the id the answer must carry. A frame without a
// valid one cannot be answered in a way the device can match, so it ends
// the session (see session.handle).
func checkRequestID(id string) error { return schemas.CheckID("requestId", id) }

// frameChecks are the settings checkFrame needs.
type frameChecks struct {
	maxMessageBytes  int
	maxPresenceWatch int
}

// checkFrame checks every id, cursor and size of f against its documented
// form, or returns the first problem. It needs no state and never blocks.
func checkFrame(f *pb.ClientFrame, c frameChecks) *refusal {
	conv := f.GetConversationId()
	if conv != "" {
		check := schemas.CheckConversationID
		switch f.GetBody().(type) {
		case *pb.ClientFrame_BlockUser, *pb.ClientFrame_UnblockUser, *pb.ClientFrame_RegisterPush, *pb.ClientFrame_UnregisterPush:
			// Empty or the user's own stream (command checks whose).
			check = schemas.CheckStreamID
		}
		if err := check("conversationId", conv); err != nil {
			return refusalOf(err)
		}
	}
	needConv := func() *refusal {
		if conv == "" {
			return invalidArg("conversationId is required")
		}
		return nil
	}
	switch b := f.GetBody().(type) {
	case *pb.ClientFrame_CreateConversation:
		cc := b.CreateConversation
		if cc.GetKind() == pb.ConversationKind_CONVERSATION_KIND_GROUP && conv != "" && !schemas.IsGroupConversationID(conv) {
			return &refusal{pb.ErrorCode_ERROR_CODE_INVALID_ID,
				"conversationId of a group must be \"g:\" followed by 32 lowercase hex digits (or empty: the gateway picks one)"}
		}
		if len(cc.GetTitle()) > maxTitleBytes {
			return invalidArg("createConversation.title is %d bytes; at most %d", len(cc.GetTitle()), maxTitleBytes)
		}
		if r := checkUserIDs("createConversation.memberUserIds", cc.GetMemberUserIds()); r != nil {
			return r
		}
	case *pb.ClientFrame_AddMembers:
		if r := needConv(); r != nil {
			return r
		}
		if len(b.AddMembers.GetUserIds()) == 0 {
			return invalidArg("addMembers.userIds is empty")
		}
		if r := checkUserIDs("addMembers.userIds", b.AddMembers.GetUserIds()); r != nil {
			return r
		}
	case *pb.ClientFrame_RemoveMember:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckID("removeMember.userId", b.RemoveMember.GetUserId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_LeaveConversation, *pb.ClientFrame_Typing, *pb.ClientFrame_ReopenConversation:
		return needConv()
	case *pb.ClientFrame_CloseConversation:
		if r := needConv(); r != nil {
			return r
		}
		if reason := b.CloseConversation.GetReason(); len(reason) > schemas.MaxCloseReasonBytes || !utf8.ValidString(reason) {
			return invalidArg("closeConversation.reason must be UTF-8 of at most %d bytes", schemas.MaxCloseReasonBytes)
		}
	case *pb.ClientFrame_SendMessage:
		if r := needConv(); r != nil {
			return r
		}
		m := b.SendMessage
		if m.GetClientMsgId() == "" {
			return invalidArg("sendMessage.clientMsgId is required")
		}
		if err := schemas.CheckID("sendMessage.clientMsgId", m.GetClientMsgId()); err != nil {
			return refusalOf(err)
		}
		if len(m.GetText()) > c.maxMessageBytes {
			return &refusal{pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE, "text larger than maxMessageBytes"}
		}
		if ct := m.GetContentType(); len(ct) > maxContentTypeBytes || hasControl(ct) {
			return invalidArg("sendMessage.contentType must be at most %d bytes without control characters", maxContentTypeBytes)
		}
		if m.GetReplyToSeq() < 0 {
			return invalidArg("sendMessage.replyToSeq must not be negative")
		}
		if n := len(m.GetMentionUserIds()); n > maxMentions {
			return invalidArg("sendMessage.mentionUserIds names %d users; at most %d", n, maxMentions)
		}
		if r := checkUserIDs("sendMessage.mentionUserIds", m.GetMentionUserIds()); r != nil {
			return r
		}
	case *pb.ClientFrame_SetMemberRole:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckID("setMemberRole.userId", b.SetMemberRole.GetUserId()); err != nil {
			return refusalOf(err)
		}
		if r := b.SetMemberRole.GetRole(); r != pb.MemberRole_MEMBER_ROLE_ADMIN && r != pb.MemberRole_MEMBER_ROLE_MEMBER {
			return invalidArg("setMemberRole.role must be MEMBER_ROLE_ADMIN or MEMBER_ROLE_MEMBER (ownership moves by transferOwnership)")
		}
	case *pb.ClientFrame_TransferOwnership:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckID("transferOwnership.userId", b.TransferOwnership.GetUserId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_MuteMember:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckID("muteMember.userId", b.MuteMember.GetUserId()); err != nil {
			return refusalOf(err)
		}
		if u := b.MuteMember.GetUntil(); u != nil && u.CheckValid() != nil {
			return invalidArg("muteMember.until is not a valid time")
		}
	case *pb.ClientFrame_UnmuteMember:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckID("unmuteMember.userId", b.UnmuteMember.GetUserId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_UpdateGroupSettings:
		if r := needConv(); r != nil {
			return r
		}
		return checkSettings(b.UpdateGroupSettings.GetSettings())
	case *pb.ClientFrame_PinMessage:
		if r := needConv(); r != nil {
			return r
		}
		return checkMessageSeq("pinMessage.seq", b.PinMessage.GetSeq())
	case *pb.ClientFrame_UnpinMessage:
		if r := needConv(); r != nil {
			return r
		}
		return checkMessageSeq("unpinMessage.seq", b.UnpinMessage.GetSeq())
	case *pb.ClientFrame_EditMessage:
		if r := needConv(); r != nil {
			return r
		}
		m := b.EditMessage
		if err := schemas.CheckID("editMessage.clientMsgId", m.GetClientMsgId()); err != nil {
			return refusalOf(err)
		}
		if r := checkMessageSeq("editMessage.seq", m.GetSeq()); r != nil {
			return r
		}
		if len(m.GetText()) > c.maxMessageBytes {
			return &refusal{pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE, "text larger than maxMessageBytes"}
		}
		if ct := m.GetContentType(); len(ct) > maxContentTypeBytes || hasControl(ct) {
			return invalidArg("editMessage.contentType must be at most %d bytes without control characters", maxContentTypeBytes)
		}
	case *pb.ClientFrame_RecallMessage:
		if r := needConv(); r != nil {
			return r
		}
		return checkMessageSeq("recallMessage.seq", b.RecallMessage.GetSeq())
	case *pb.ClientFrame_AddReaction:
		if r := needConv(); r != nil {
			return r
		}
		if r := checkMessageSeq("addReaction.seq", b.AddReaction.GetSeq()); r != nil {
			return r
		}
		return checkEmoji("addReaction.emoji", b.AddReaction.GetEmoji())
	case *pb.ClientFrame_RemoveReaction:
		if r := needConv(); r != nil {
			return r
		}
		if r := checkMessageSeq("removeReaction.seq", b.RemoveReaction.GetSeq()); r != nil {
			return r
		}
		return checkEmoji("removeReaction.emoji", b.RemoveReaction.GetEmoji())
	case *pb.ClientFrame_MarkDelivered:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckCursor("markDelivered.upToSeq", b.MarkDelivered.GetUpToSeq(), -1); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_MarkRead:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckCursor("markRead.upToSeq", b.MarkRead.GetUpToSeq(), -1); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_UpdateConversationPrefs:
		if r := needConv(); r != nil {
			return r
		}
		return checkPrefs(conv, b.UpdateConversationPrefs)
	case *pb.ClientFrame_HideMessages:
		if r := needConv(); r != nil {
			return r
		}
		return checkHide(conv, b.HideMessages)
	case *pb.ClientFrame_BlockUser:
		if err := schemas.CheckID("blockUser.userId", b.BlockUser.GetUserId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_UnblockUser:
		if err := schemas.CheckID("unblockUser.userId", b.UnblockUser.GetUserId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_ForwardMessage:
		if r := needConv(); r != nil {
			return r
		}
		return checkForward(conv, b.ForwardMessage)
	case *pb.ClientFrame_RegisterPush:
		return checkPush(b.RegisterPush)
	case *pb.ClientFrame_UnregisterPush:
		return checkPush(b.UnregisterPush)
	case *pb.ClientFrame_CreateInvite:
		if r := needConv(); r != nil {
			return r
		}
		ci := b.CreateInvite
		if err := schemas.CheckInviteToken("createInvite.token", ci.GetToken()); err != nil {
			return invalidArg("%v", err)
		}
		if ci.GetTokenHash() != "" {
			return invalidArg("createInvite.tokenHash is the gateway's: send the token")
		}
	case *pb.ClientFrame_RevokeInvite:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckInviteID("revokeInvite.inviteId", b.RevokeInvite.GetInviteId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_JoinConversation:
		if r := needConv(); r != nil {
			return r
		}
		jc := b.JoinConversation
		if t := jc.GetToken(); t != "" {
			if err := schemas.CheckInviteToken("joinConversation.token", t); err != nil {
				return invalidArg("%v", err)
			}
		}
		if jc.GetTokenHash() != "" {
			return invalidArg("joinConversation.tokenHash is the gateway's: send the token")
		}
		if len(jc.GetNote()) > schemas.MaxJoinNoteBytes {
			return invalidArg("joinConversation.note is %d bytes; at most %d", len(jc.GetNote()), schemas.MaxJoinNoteBytes)
		}
	case *pb.ClientFrame_DecideJoinRequest:
		if r := needConv(); r != nil {
			return r
		}
		if err := schemas.CheckID("decideJoinRequest.userId", b.DecideJoinRequest.GetUserId()); err != nil {
			return refusalOf(err)
		}
	case *pb.ClientFrame_Resume:
		return checkCursors(b.Resume.GetCursors())
	case *pb.ClientFrame_WatchPresence:
		users := b.WatchPresence.GetUserIds()
		if len(users) > c.maxPresenceWatch {
			return invalidArg("watchPresence names %d users; at most %d", len(users), c.maxPresenceWatch)
		}
		return checkUserIDs("watchPresence.userIds", users)
	case *pb.ClientFrame_SetPresence, *pb.ClientFrame_Ping:
	case nil:
		if len(f.ProtoReflect().GetUnknown()) > 0 {
			return &refusal{pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "frame body unknown to this gateway"}
		}
		return invalidArg("frame has no body")
	default:
		return &refusal{pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "frame body not supported by this gateway"}
	}
	return nil
}

// checkSettings checks the sizes of a settings change (the decider checks
// the rest: who may, and what changes).
func checkSettings(st *pb.GroupSettings) *refusal {
	switch {
	case st == nil || proto.Size(st) == 0:
		return invalidArg("updateGroupSettings.settings sets nothing")
	case len(st.GetTitle()) > maxTitleBytes:
		return invalidArg("updateGroupSettings.settings.title is %d bytes; at most %d", len(st.GetTitle()), maxTitleBytes)
	case len(st.GetDescription()) > maxDescriptionBytes:
		return invalidArg("updateGroupSettings.settings.description is %d bytes; at most %d", len(st.GetDescription()), maxDescriptionBytes)
	case len(st.GetAvatarUrl()) > maxAvatarURLBytes || hasControl(st.GetAvatarUrl()):
		return invalidArg("updateGroupSettings.settings.avatarUrl must be at most %d bytes without control characters", maxAvatarURLBytes)
	}
	return nil
}

// checkBodyConversation checks a per-user body's conversationId: the frame
// names the conversation; the body's copy, when set, must say the same.
func checkBodyConversation(field, conv, body string) *refusal {
	if body != "" && body != conv {
		return invalidArg("%s must be empty or equal to the frame's conversationId", field)
	}
	return nil
}

// checkPrefs checks an UpdateConversationPrefs: it sets something, a mute
// is forever or until a valid time (or neither: unmute), seqs are not
// negative.
func checkPrefs(conv string, p *pb.UpdateConversationPrefs) *refusal {
	if r := checkBodyConversation("updateConversationPrefs.conversationId", conv, p.GetConversationId()); r != nil {
		return r
	}
	if p.Mute == nil && p.Pinned == nil && p.ArchivedUpToSeq == nil && p.UnreadMarkedAtSeq == nil {
		return invalidArg("updateConversationPrefs sets nothing (mute, pinned, archivedUpToSeq or unreadMarkedAtSeq)")
	}
	if m := p.GetMute(); m != nil {
		if m.GetForever() && m.GetUntil() != nil {
			return invalidArg("updateConversationPrefs.mute is forever or until a time, not both")
		}
		if u := m.GetUntil(); u != nil && u.CheckValid() != nil {
			return invalidArg("updateConversationPrefs.mute.until is not a valid time")
		}
	}
	if p.GetArchivedUpToSeq() < 0 {
		return invalidArg("updateConversationPrefs.archivedUpToSeq must not be negative (0 un-archives)")
	}
	if p.GetUnreadMarkedAtSeq() < 0 {
		return invalidArg("updateConversationPrefs.unreadMarkedAtSeq must not be negative (0 clears the mark)")
	}
	return nil
}

// checkHide checks a HideMessages: seqs (1 to maxHideSeqs, each at least
// 1) or up_to_seq (at least 1), or both.
func checkHide(conv string, h *pb.HideMessages) *refusal {
	if r := checkBodyConversation("hideMessages.conversationId", conv, h.GetConversationId()); r != nil {
		return r
	}
	if len(h.GetSeqs()) == 0 && h.GetUpToSeq() == 0 {
		return invalidArg("hideMessages hides nothing: name seqs, upToSeq, or both")
	}
	if n := len(h.GetSeqs()); n > maxHideSeqs {
		return invalidArg("hideMessages.seqs names %d messages; at most %d", n, maxHideSeqs)
	}
	for i, seq := range h.GetSeqs() {
		if r := checkMessageSeq(fmt.Sprintf("hideMessages.seqs[%d]", i), seq); r != nil {
			return r
		}
	}
	if h.GetUpToSeq() < 0 {
		return invalidArg("hideMessages.upToSeq must not be negative")
	}
	return nil
}

// checkForward checks a ForwardMessage: the seq, a valid target other than
// the source, a client message id, and none of what the gateway fills from
// the views (text, contentType, origin, attachments).
func checkForward(conv string, m *pb.ForwardMessage) *refusal {
	if r := checkMessageSeq("forwardMessage.seq", m.GetSeq()); r != nil {
		return r
	}
	if m.GetClientMsgId() == "" {
		return invalidArg("forwardMessage.clientMsgId is required")
	}
	if err := schemas.CheckID("forwardMessage.clientMsgId", m.GetClientMsgId()); err != nil {
		return refusalOf(err)
	}
	target := m.GetTargetConversationId()
	if target == "" {
		return invalidArg("forwardMessage.targetConversationId is required")
	}
	if err := schemas.CheckConversationID("forwardMessage.targetConversationId", target); err != nil {
		return refusalOf(err)
	}
	if target == conv {
		return invalidArg("forwardMessage.targetConversationId must not be the source conversation")
	}
	if m.GetText() != "" || m.GetContentType() != "" || m.GetOrigin() != nil || len(m.GetAttachments()) > 0 {
		return invalidArg("forwardMessage: text, contentType, origin and attachments are filled by the gateway from the message; leave them out")
	}
	return nil
}

// checkMessageSeq checks the seq of the message an action names: at least
// 1. Whether a message is there is the decider's to say.
func checkMessageSeq(field string, seq int64) *refusal {
	if seq < 1 {
		return invalidArg("%s must be the seq of a message (at least 1)", field)
	}
	return nil
}

// checkEmoji checks the form of a reaction (the decider checks it too):
// 1 to schemas.MaxEmojiBytes bytes of UTF-8 without spaces or control
// characters.
func checkEmoji(field, emoji string) *refusal {
	if err := schemas.CheckEmoji(emoji); err != nil {
		return invalidArg("%s: %v", field, err)
	}
	return nil
}

// checkUserIDs checks each user id of a list.
func checkUserIDs(field string, ids []string) *refusal {
	for i, u := range ids {
		if err := schemas.CheckID(fmt.Sprintf("%s[%d]", field, i), u); err != nil {
			return refusalOf(err)
		}
	}
	return nil
}

// checkCursors checks the form of a Resume's cursors. Whether a cursor lies
// beyond its conversation's last seq needs the views: resume checks that per
// conversation.
func checkCursors(cursors []*pb.ConversationCursor) *refusal {
	if len(cursors) > maxResumeCursors {
		return invalidArg("at most %d cursors per resume", maxResumeCursors)
	}
	seen := make(map[string]bool, len(cursors))
	for i, c := range cursors {
		id := c.GetConversationId()
		// A conversation, or a user stream (resume checks whose).
		if err := schemas.CheckStreamID(fmt.Sprintf("resume.cursors[%d].conversationId", i), id); err != nil {
			return refusalOf(err)
		}
		if seen[id] {
			return invalidArg("conversation %s named twice", id)
		}
		seen[id] = true
		if c.GetLastSeq() != 0 {
			return &refusal{pb.ErrorCode_ERROR_CODE_INVALID_CURSOR, fmt.Sprintf(
				"resume.cursors[%d].lastSeq: resume counts versions: send the last Event.version applied as version, and no lastSeq (gateway README, Resume)", i)}
		}
		if err := schemas.CheckCursor(fmt.Sprintf("resume.cursors[%d].version", i), c.GetVersion(), -1); err != nil {
			return refusalOf(err)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// recoverRequestID digs the request id out of a frame that did not decode,
// so the device can still match the Error to its request. It returns "" when
// there is none to be found.
func recoverRequestID(mt int, data []byte) string {
	if mt == websocket.BinaryMessage {
		return binaryRequestID(data)
	}
	var f pb.ClientFrame
	if (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &f) == nil {
		return f.GetRequestId()
	}
	// Any JSON object: a field of the wrong type elsewhere must not hide
	// the request id. Both spellings protojson accepts.
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	for _, k := range []string{"requestId", "request_id"} {
		var id string
		if raw, ok := fields[k]; ok && json.Unmarshal(raw, &id) == nil {
			return id
		}
	}
	return ""
}

// binaryRequestID reads field 1 (ClientFrame.request_id) of a protobuf frame
// up to the first malformed field; the last occurrence wins, as in protobuf.
func binaryRequestID(b []byte) string {
	var id string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				break
			}
			id, b = string(v), b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			break
		}
		b = b[n:]
	}
	return id
}

// detail bounds a decoder's message (which may quote the input) for an
// Error frame, cutting at a rune boundary.
func detail(s string) string {
	if len(s) <= maxErrorDetail {
		return s
	}
	cut := maxErrorDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

package ingest

import (
	"unicode/utf8"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Joining a group other than by being added (README.md, "Joining by link
// or by request"): invitation links (CreateInvite, RevokeInvite) and join
// requests (JoinConversation, DecideJoinRequest). The decider keeps each
// group's links and pending requests, so it rules on a join from its own
// state, never from a view.

// inviteState is one invitation link of a group. A revoked link stays (so
// its token keeps being refused as revoked, and a late resend of its
// CreateInvite does not bring it back); an expired one too.
type inviteState struct {
	hash     string // schemas.InviteTokenHash of its secret
	creator  string
	expires  int64 // Unix ms; 0: never
	maxUses  int32 // 0: no limit
	uses     int32
	approval bool
	revoked  bool
}

// open reports whether the link still admits a join at receive time at.
func (i *inviteState) open(at int64) bool {
	return !i.revoked && (i.expires == 0 || at < i.expires) && (i.maxUses == 0 || i.uses < i.maxUses)
}

// joinRequest is a pending request to join.
type joinRequest struct {
	invite string // the link it came by; "" for a request without one
	at     int64  // Unix ms, when received
}

// mayAdd reports whether user may add members to the group, and so manage
// its links and requests (GroupSettings.who_may_add).
func (s *convState) mayAdd(user string) bool {
	m := s.members[user]
	return m != nil && (!s.settings.adminsAdd || m.privileged())
}

// room refuses adding n members past Limits.MaxGroupMembers.
func (s *convState) room(l Limits, n int) *rejection {
	if total := len(s.members) + n; total > l.MaxGroupMembers {
		return reject(pb.ErrorCode_ERROR_CODE_GROUP_FULL, "%d members would exceed the limit of %d", total, l.MaxGroupMembers)
	}
	return nil
}

// notice is the next timeline item of s, a member notice (MembersAdded,
// MemberRemoved): it takes the next seq, recorded as a notice.
func (s *convState) notice(base *pb.Event, d *delta) *pb.Event {
	s.lastSeq++
	d.header = true
	s.addNotice(s.lastSeq)
	d.notices = append(d.notices, s.lastSeq)
	ev := cloneBase(base)
	ev.Seq = s.lastSeq
	return ev
}

// admit makes u a member from the notice at seq (a MembersAdded), ending
// any pending request of u.
func (s *convState) admit(u string, seq int64, d *delta) {
	s.members[u] = &memberState{role: pb.MemberRole_MEMBER_ROLE_MEMBER, joinedSeq: seq, readSeq: seq, delivered: seq}
	d.member(u)
	if _, ok := s.requests[u]; ok {
		delete(s.requests, u)
		d.requests = append(d.requests, u)
	}
}

func createInvite(l Limits, st *convState, user string, m *pb.CreateInvite, base *pb.Event, received int64) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	switch {
	case st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "invitation links are for groups only")
	case !st.mayAdd(user):
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the owner and admins invite to this group")
	case m.GetToken() != "":
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a link's token never reaches the log: the gateway sends its hash")
	case m.GetMaxUses() < 0 || int(m.GetMaxUses()) > l.MaxInviteUses:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "max_uses must be 0 (no limit) to %d", l.MaxInviteUses)
	}
	hash := m.GetTokenHash()
	if err := schemas.CheckInviteTokenHash("token_hash", hash); err != nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	var expires int64
	if e := m.GetExpiresAt(); e != nil {
		if expires = e.AsTime().UnixMilli(); expires <= received {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "expires_at must be in the future")
		}
	}
	id := schemas.InviteID(hash)
	if old := st.invites[id]; old != nil {
		if old.hash == hash {
			return st, nil, d, nil // a resend: the link exists
		}
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "the group has a link with the same id: use another token")
	}
	open := 0
	for _, i := range st.invites {
		if !i.revoked && (i.expires == 0 || received < i.expires) {
			open++
		}
	}
	if open >= l.MaxInvites {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_LIMIT_REACHED, "the group has %d open invitation links, the limit: revoke one first", l.MaxInvites)
	}
	if st.invites == nil {
		st.invites = map[string]*inviteState{}
	}
	st.invites[id] = &inviteState{hash: hash, creator: user, expires: expires, maxUses: m.GetMaxUses(), approval: m.GetRequiresApproval()}
	d.invites = append(d.invites, id)
	ev := cloneBase(base)
	ev.Body = &pb.Event_InviteCreated{InviteCreated: &pb.InviteCreated{InviteId: id, ExpiresAt: m.GetExpiresAt(),
		MaxUses: m.GetMaxUses(), RequiresApproval: m.GetRequiresApproval()}}
	return st, []*pb.Event{ev}, d, nil
}

func revokeInvite(st *convState, user, id string, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "invitation links are for groups only")
	}
	inv := st.invites[id]
	switch {
	case inv == nil:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "the group has no invitation link %s", id)
	case inv.creator != user && !st.members[user].privileged():
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the link's creator and the group's owner and admins revoke it")
	case inv.revoked:
		return st, nil, d, nil // revoked already
	}
	inv.revoked = true
	d.invites = append(d.invites, id)
	ev := cloneBase(base)
	ev.Body = &pb.Event_InviteRevoked{InviteRevoked: &pb.InviteRevoked{InviteId: id}}
	return st, []*pb.Event{ev}, d, nil
}

// join decides a JoinConversation, sent by a user who need not be a
// member. A group that does not exist, is not a group, or does not take
// requests answers as any command on a conversation one is not in
// (NOT_MEMBER), or INVITE_INVALID with a token: neither tells whether the
// id exists.
func join(l Limits, st *convState, user string, m *pb.JoinConversation, base *pb.Event, received int64) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	hash := m.GetTokenHash()
	switch {
	case m.GetToken() != "":
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a link's token never reaches the log: the gateway sends its hash")
	case len(m.GetNote()) > schemas.MaxJoinNoteBytes || !utf8.ValidString(m.GetNote()):
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "note must be at most %d bytes of UTF-8", schemas.MaxJoinNoteBytes)
	case st.exists() && st.members[user] != nil:
		return st, nil, d, nil // a member already: nothing to join
	}
	group := st.exists() && st.kind == pb.ConversationKind_CONVERSATION_KIND_GROUP
	var inv *inviteState
	var invID string
	if hash != "" {
		if err := schemas.CheckInviteTokenHash("token_hash", hash); err != nil {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
		}
		invID = schemas.InviteID(hash)
		if group {
			inv = st.invites[invID]
		}
		switch {
		case inv == nil || inv.hash != hash:
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVITE_INVALID, "not an invitation link of this group")
		case inv.revoked:
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVITE_INVALID, "the invitation link was revoked")
		case inv.expires != 0 && received >= inv.expires:
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVITE_INVALID, "the invitation link expired")
		case !inv.open(received):
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVITE_INVALID, "the invitation link was used %d times, its limit", inv.maxUses)
		}
	} else if !group || !st.settings.joinRequests {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "%s is not a member of %s, and it takes no join requests", user, base.GetConversationId())
	}
	if inv != nil && !inv.approval {
		if rej := st.room(l, 1); rej != nil {
			return st, nil, d, rej
		}
		inv.uses++
		d.invites = append(d.invites, invID)
		ev := st.notice(base, &d)
		st.admit(user, ev.Seq, &d)
		ev.Body = &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: []string{user},
			Invite: &pb.InviteUse{InviteId: invID, Uses: inv.uses}}}
		return st, []*pb.Event{ev}, d, nil
	}
	if _, pending := st.requests[user]; pending {
		return st, nil, d, nil // asked already
	}
	if len(st.requests) >= l.MaxJoinRequests {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_LIMIT_REACHED, "the group has %d pending join requests, the limit", l.MaxJoinRequests)
	}
	var use *pb.InviteUse
	if inv != nil {
		inv.uses++
		d.invites = append(d.invites, invID)
		use = &pb.InviteUse{InviteId: invID, Uses: inv.uses}
	}
	if st.requests == nil {
		st.requests = map[string]*joinRequest{}
	}
	st.requests[user] = &joinRequest{invite: invID, at: received}
	d.requests = append(d.requests, user)
	ev := cloneBase(base)
	ev.Body = &pb.Event_JoinRequested{JoinRequested: &pb.JoinRequested{UserId: user, Invite: use, Note: m.GetNote()}}
	return st, []*pb.Event{ev}, d, nil
}

// decideJoin decides a DecideJoinRequest.
func decideJoin(l Limits, st *convState, user string, m *pb.DecideJoinRequest, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	target := m.GetUserId()
	switch {
	case st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "join requests are for groups only")
	case !st.mayAdd(user):
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the owner and admins decide join requests in this group")
	case st.members[target] != nil && m.GetApprove():
		return st, nil, d, nil // a member already (approved, or added)
	case st.requests[target] == nil:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s has no pending join request", target)
	}
	if !m.GetApprove() {
		delete(st.requests, target)
		d.requests = append(d.requests, target)
		ev := cloneBase(base)
		ev.Body = &pb.Event_JoinRequestDeclined{JoinRequestDeclined: &pb.JoinRequestDeclined{UserId: target}}
		return st, []*pb.Event{ev}, d, nil
	}
	if rej := st.room(l, 1); rej != nil {
		return st, nil, d, rej
	}
	ev := st.notice(base, &d)
	st.admit(target, ev.Seq, &d)
	ev.Body = &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: []string{target}}}
	return st, []*pb.Event{ev}, d, nil
}

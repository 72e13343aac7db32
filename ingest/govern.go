package ingest

import (
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Bounds of a group's settings and of a message's mentions (README.md,
// "Governance"). They are part of the contract (conversation.proto,
// commands.proto), not deployment settings.
const (
	maxDescriptionBytes = 1024
	maxAvatarURLBytes   = 2048
	maxMentions         = 50
)

// avatarSchemes are the prefixes an avatar URL may start with: a web
// address, or a reference the application resolves itself.
var avatarSchemes = []string{"https://", "http://", "parley:"}

// checkMentions checks a send's mentions and returns the user ids its
// MessageSent carries: deduplicated in order, the sender's own dropped,
// each a current member, at most maxMentions; none with mention_all, which
// mentions everyone and needs the group's who_may_mention_all.
func checkMentions(st *convState, user string, m *pb.SendMessage) ([]string, *rejection) {
	if m.GetMentionAll() {
		if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "@all is for groups only")
		}
		if st.settings.adminsMentionAll && !st.members[user].privileged() {
			return nil, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the owner and admins mention @all in this group")
		}
	}
	ids := m.GetMentionUserIds()
	if len(ids) == 0 {
		return nil, nil
	}
	var out []string
	seen := make(map[string]bool, min(len(ids), maxMentions+1))
	for _, u := range ids {
		if u == user || seen[u] {
			continue
		}
		if st.members[u] == nil {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s is not a member", u)
		}
		if len(out) == maxMentions {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "more than %d users mentioned", maxMentions)
		}
		seen[u] = true
		out = append(out, u)
	}
	if m.GetMentionAll() {
		return nil, nil // everyone is mentioned
	}
	return out, nil
}

// setRole decides a SetMemberRole: the owner makes a member an admin or a
// plain member.
func setRole(st *convState, user string, m *pb.SetMemberRole, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "roles are set in groups only")
	}
	if st.members[user].role != pb.MemberRole_MEMBER_ROLE_OWNER {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner sets roles")
	}
	target, role := m.GetUserId(), m.GetRole()
	tm := st.members[target]
	switch {
	case tm == nil:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member", target)
	case tm.role == pb.MemberRole_MEMBER_ROLE_OWNER:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "the owner's role changes only by a transfer: use TransferOwnership")
	case role != pb.MemberRole_MEMBER_ROLE_ADMIN && role != pb.MemberRole_MEMBER_ROLE_MEMBER:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "role must be MEMBER_ROLE_ADMIN or MEMBER_ROLE_MEMBER")
	case tm.role == role:
		return st, nil, d, nil // nothing changes; nothing to say
	}
	tm.role = role
	d.member(target)
	ev := cloneBase(base)
	ev.Body = &pb.Event_MemberRoleChanged{MemberRoleChanged: &pb.MemberRoleChanged{UserId: target, Role: role}}
	return st, []*pb.Event{ev}, d, nil
}

// transfer decides a TransferOwnership: the owner hands the group to
// another member and becomes an admin.
func transfer(st *convState, user, target string, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	om := st.members[user]
	if om.role != pb.MemberRole_MEMBER_ROLE_OWNER {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner transfers ownership%s", noOwner(st))
	}
	tm := st.members[target]
	switch {
	case tm == nil:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member", target)
	case target == user:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s already owns the group", target)
	}
	// The owner is never muted: becoming owner ends a mute.
	om.role, tm.role, tm.mutedUntil = pb.MemberRole_MEMBER_ROLE_ADMIN, pb.MemberRole_MEMBER_ROLE_OWNER, 0
	d.member(user)
	d.member(target)
	ev := cloneBase(base)
	ev.Body = &pb.Event_OwnershipTransferred{OwnershipTransferred: &pb.OwnershipTransferred{FromUserId: user, ToUserId: target,
		Reason: pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED}}
	return st, []*pb.Event{ev}, d, nil
}

// noOwner completes a refusal in a direct conversation, where nobody has
// the rights a group's owner or admins have.
func noOwner(st *convState) string {
	if st.kind == pb.ConversationKind_CONVERSATION_KIND_DIRECT {
		return " (a direct conversation has no owner or admins)"
	}
	return ""
}

// checkPolicy refuses a policy that is set to anything but MEMBERS or
// ADMINS.
func checkPolicy(name string, p *pb.GroupPolicy) *rejection {
	if p != nil && *p != pb.GroupPolicy_GROUP_POLICY_MEMBERS && *p != pb.GroupPolicy_GROUP_POLICY_ADMINS {
		return reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%s must be GROUP_POLICY_MEMBERS or GROUP_POLICY_ADMINS", name)
	}
	return nil
}

// updateSettings decides an UpdateGroupSettings: every field that is set is
// checked first, then those whose value changes are applied and carried by
// GroupSettingsChanged; none changing yields no event.
func updateSettings(l Limits, st *convState, user string, g *pb.GroupSettings, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if st.kind != pb.ConversationKind_CONVERSATION_KIND_GROUP {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_UNSUPPORTED, "settings are a group's")
	}
	if !st.members[user].privileged() {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner and admins change its settings")
	}
	if g == nil {
		return st, nil, d, nil // nothing set, nothing changes
	}
	if t := g.Title; t != nil && (*t == "" || len(*t) > l.MaxTitleBytes || !utf8.ValidString(*t)) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "title must be 1 to %d bytes of UTF-8", l.MaxTitleBytes)
	}
	if s := g.Description; s != nil && (len(*s) > maxDescriptionBytes || !utf8.ValidString(*s)) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "description must be at most %d bytes of UTF-8", maxDescriptionBytes)
	}
	if a := g.AvatarUrl; a != nil && (len(*a) > maxAvatarURLBytes || !utf8.ValidString(*a) ||
		*a != "" && !hasAnyPrefix(*a, avatarSchemes)) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
			"avatar_url must be empty or at most %d bytes starting with https://, http:// or parley:", maxAvatarURLBytes)
	}
	for _, p := range []struct {
		name string
		p    *pb.GroupPolicy
	}{{"who_may_add", g.WhoMayAdd}, {"who_may_mention_all", g.WhoMayMentionAll}, {"who_may_pin", g.WhoMayPin}} {
		if rej := checkPolicy(p.name, p.p); rej != nil {
			return st, nil, d, rej
		}
	}
	if v := g.HistoryVisibility; v != nil && *v != pb.HistoryVisibility_HISTORY_VISIBILITY_ALL &&
		*v != pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT,
			"history_visibility must be HISTORY_VISIBILITY_ALL or HISTORY_VISIBILITY_SINCE_JOIN")
	}
	ch := &pb.GroupSettings{}
	changed := false
	if t := g.Title; t != nil && *t != st.title {
		st.title, ch.Title, changed = *t, proto.String(*t), true
	}
	s := &st.settings
	before := *s
	if v := g.Description; v != nil && *v != s.description {
		s.description, ch.Description, changed = *v, proto.String(*v), true
	}
	if v := g.AvatarUrl; v != nil && *v != s.avatarURL {
		s.avatarURL, ch.AvatarUrl, changed = *v, proto.String(*v), true
	}
	if v := g.AnnouncementOnly; v != nil && *v != s.announcementOnly {
		s.announcementOnly, ch.AnnouncementOnly, changed = *v, proto.Bool(*v), true
	}
	for _, p := range []struct {
		set    *pb.GroupPolicy
		admins *bool
		out    **pb.GroupPolicy
	}{{g.WhoMayAdd, &s.adminsAdd, &ch.WhoMayAdd}, {g.WhoMayMentionAll, &s.adminsMentionAll, &ch.WhoMayMentionAll},
		{g.WhoMayPin, &s.adminsPin, &ch.WhoMayPin}} {
		if p.set == nil {
			continue
		}
		if admins := *p.set == pb.GroupPolicy_GROUP_POLICY_ADMINS; admins != *p.admins {
			*p.admins, *p.out, changed = admins, p.set.Enum(), true
		}
	}
	if v := g.JoinRequests; v != nil && *v != s.joinRequests {
		s.joinRequests, ch.JoinRequests, changed = *v, proto.Bool(*v), true
	}
	if v := g.HistoryVisibility; v != nil {
		if since := *v == pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN; since != s.sinceJoin {
			s.sinceJoin, ch.HistoryVisibility, changed = since, v.Enum(), true
		}
	}
	if !changed {
		return st, nil, d, nil
	}
	d.header = ch.Title != nil
	d.settings = *s != before
	ev := cloneBase(base)
	ev.Body = &pb.Event_GroupSettingsChanged{GroupSettingsChanged: &pb.GroupSettingsChanged{Settings: ch}}
	return st, []*pb.Event{ev}, d, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// checkMuteRights: the owner and admins mute and unmute members, only the
// owner an admin, nobody the owner; but the owner lifts a mute of its own
// (one from before it became the owner).
func checkMuteRights(st *convState, user, target string, unmute bool) (*memberState, *rejection) {
	am := st.members[user]
	if !am.privileged() {
		return nil, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner and admins mute and unmute members%s", noOwner(st))
	}
	tm := st.members[target]
	switch {
	case tm == nil:
		return nil, reject(pb.ErrorCode_ERROR_CODE_NOT_FOUND, "%s is not a member", target)
	case tm.role == pb.MemberRole_MEMBER_ROLE_OWNER:
		return nil, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "nobody mutes the group's owner")
	case tm.role == pb.MemberRole_MEMBER_ROLE_ADMIN && am.role != pb.MemberRole_MEMBER_ROLE_OWNER:
		return nil, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the group's owner mutes and unmutes an admin")
	}
	return tm, nil
}

// mute decides a MuteMember: the target may not send until until (in Unix
// milliseconds, after the command's receive time), or until unmuted. A new
// mute replaces the one in force.
func mute(st *convState, user string, m *pb.MuteMember, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	target := m.GetUserId()
	tm, rej := checkMuteRights(st, user, target, false)
	if rej != nil {
		return st, nil, d, rej
	}
	until := int64(mutedForever)
	var untilTS *timestamppb.Timestamp
	if u := m.GetUntil(); u != nil {
		if !u.IsValid() {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "until is not a valid timestamp")
		}
		// (A time before 1970 is never after a receive time; it would
		// also read as mutedForever.)
		if until = u.AsTime().UnixMilli(); until <= received.UnixMilli() || until <= 0 {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "until must be after the command's receive time (%s)",
				received.UTC().Format(time.RFC3339Nano))
		}
		untilTS = timestamppb.New(time.UnixMilli(until))
	}
	tm.mutedUntil = until
	d.member(target)
	ev := cloneBase(base)
	ev.Body = &pb.Event_MemberMuted{MemberMuted: &pb.MemberMuted{UserId: target, Until: untilTS}}
	return st, []*pb.Event{ev}, d, nil
}

// unmute decides an UnmuteMember; a member not muted (or whose mute ended
// by the command's receive time) yields no event.
func unmute(st *convState, user, target string, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	tm, rej := checkMuteRights(st, user, target, true)
	if rej != nil {
		return st, nil, d, rej
	}
	if !tm.muted(received.UnixMilli()) {
		return st, nil, d, nil
	}
	tm.mutedUntil = 0
	d.member(target)
	ev := cloneBase(base)
	ev.Body = &pb.Event_MemberUnmuted{MemberUnmuted: &pb.MemberUnmuted{UserId: target}}
	return st, []*pb.Event{ev}, d, nil
}

// pin decides a PinMessage (add) or an UnpinMessage. Either is idempotent:
// pinning a pinned message or unpinning one that is not yields no event.
func pin(l Limits, st *convState, user string, seq int64, add bool, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if rej := checkMessage(st, seq); rej != nil {
		return st, nil, d, rej
	}
	if add && st.isRecalled(seq) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED, "message %d was recalled", seq)
	}
	if st.settings.adminsPin && !st.members[user].privileged() {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only the owner and admins pin and unpin messages in this group")
	}
	if st.isPinned(seq) == add {
		return st, nil, d, nil
	}
	ev := cloneBase(base)
	if add {
		if len(st.pins) >= l.MaxPins {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_TOO_MANY_PINS, "%d messages are pinned, the limit", l.MaxPins)
		}
		st.pin(seq)
		ev.Body = &pb.Event_MessagePinned{MessagePinned: &pb.MessagePinned{MessageSeq: seq}}
	} else {
		delete(st.pins, seq)
		ev.Body = &pb.Event_MessageUnpinned{MessageUnpinned: &pb.MessageUnpinned{MessageSeq: seq}}
	}
	d.pins = append(d.pins, seq)
	return st, []*pb.Event{ev}, d, nil
}

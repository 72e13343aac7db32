package ingest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const (
	roleAdmin  = pb.MemberRole_MEMBER_ROLE_ADMIN
	roleMember = pb.MemberRole_MEMBER_ROLE_MEMBER
	roleOwner  = pb.MemberRole_MEMBER_ROLE_OWNER

	policyAdmins  = pb.GroupPolicy_GROUP_POLICY_ADMINS
	policyMembers = pb.GroupPolicy_GROUP_POLICY_MEMBERS

	rejMuted       = "Rejected:ERROR_CODE_MUTED"
	rejTooManyPins = "Rejected:ERROR_CODE_TOO_MANY_PINS"
	rejNotMember   = "Rejected:ERROR_CODE_NOT_MEMBER"
	rejUnsupported = "Rejected:ERROR_CODE_UNSUPPORTED"
)

func roleCmd(actor, conv, user string, role pb.MemberRole) *pb.Command {
	return cmd(actor, conv, &pb.SetMemberRole{UserId: user, Role: role})
}

func transferCmd(actor, conv, user string) *pb.Command {
	return cmd(actor, conv, &pb.TransferOwnership{UserId: user})
}

func settingsCmd(actor, conv string, s *pb.GroupSettings) *pb.Command {
	return cmd(actor, conv, &pb.UpdateGroupSettings{Settings: s})
}

func muteCmd(actor, conv, user string, until *timestamppb.Timestamp) *pb.Command {
	return cmd(actor, conv, &pb.MuteMember{UserId: user, Until: until})
}

func unmuteCmd(actor, conv, user string) *pb.Command {
	return cmd(actor, conv, &pb.UnmuteMember{UserId: user})
}

func pinCmd(actor, conv string, seq int64) *pb.Command {
	return cmd(actor, conv, &pb.PinMessage{Seq: seq})
}

func unpinCmd(actor, conv string, seq int64) *pb.Command {
	return cmd(actor, conv, &pb.UnpinMessage{Seq: seq})
}

func addCmd(actor, conv string, users ...string) *pb.Command {
	return cmd(actor, conv, &pb.AddMembers{UserIds: users})
}

func removeCmd(actor, conv, user string) *pb.Command {
	return cmd(actor, conv, &pb.RemoveMember{UserId: user})
}

func leaveCmd(user, conv string) *pb.Command {
	return cmd(user, conv, &pb.LeaveConversation{})
}

func mentionCmd(user, conv, id string, all bool, users ...string) *pb.Command {
	return cmd(user, conv, &pb.SendMessage{ClientMsgId: id, Text: "@ " + id, MentionUserIds: users, MentionAll: all})
}

func policy(p pb.GroupPolicy) *pb.GroupPolicy { return &p }

func visibility(v pb.HistoryVisibility) *pb.HistoryVisibility { return &v }

// governanceEvent reports whether ev is one of the governance or pin
// events, none of which takes a seq.
func governanceEvent(ev *pb.Event) bool {
	switch ev.GetBody().(type) {
	case *pb.Event_MemberRoleChanged, *pb.Event_OwnershipTransferred, *pb.Event_GroupSettingsChanged, *pb.Event_MemberMuted,
		*pb.Event_MemberUnmuted, *pb.Event_MessagePinned, *pb.Event_MessageUnpinned:
		return true
	}
	return false
}

// owners lists a conversation's owners.
func owners(st *convState) []string {
	var out []string
	for u, m := range st.members {
		if m.role == roleOwner {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// TestDecideGovernance: roles, ownership, removals, recalls by admins, group
// settings and the policies they set, mutes and pins: each rule and each
// refusal.
func TestDecideGovernance(t *testing.T) {
	g := "g:1"
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"the owner sets roles; the same role again says nothing", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin), roleCmd("alice", g, "bob", roleAdmin),
				roleCmd("alice", g, "bob", roleMember), roleCmd("alice", g, "carol", roleAdmin), roleCmd("alice", g, "bob", roleMember)},
			[]string{created, "Role:bob:ADMIN", "Role:bob:MEMBER", "Role:carol:ADMIN"}},
		{"only the owner sets roles, of members other than itself, to ADMIN or MEMBER", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin), roleCmd("bob", g, "carol", roleAdmin),
				roleCmd("carol", g, "bob", roleMember), roleCmd("alice", g, "dave", roleAdmin), roleCmd("alice", g, "alice", roleMember),
				roleCmd("alice", g, "carol", roleOwner), roleCmd("alice", g, "carol", pb.MemberRole_MEMBER_ROLE_UNSPECIFIED),
				roleCmd("alice", g, "carol", pb.MemberRole(9)), roleCmd("mallory", g, "carol", roleAdmin)},
			[]string{created, "Role:bob:ADMIN", rejDenied, rejDenied, rejNotFound, rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejNotMember}},
		{"the owner transfers ownership and becomes an admin", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), transferCmd("alice", g, "bob"), transferCmd("alice", g, "carol"),
				roleCmd("alice", g, "carol", roleAdmin), roleCmd("bob", g, "alice", roleMember), transferCmd("bob", g, "bob"),
				transferCmd("bob", g, "dave"), transferCmd("bob", g, "carol"), roleCmd("carol", g, "bob", roleMember)},
			[]string{created, "Owner:alice->bob:TRANSFERRED", rejDenied, rejDenied, "Role:alice:MEMBER", rejInvalid, rejNotFound,
				"Owner:bob->carol:TRANSFERRED", "Role:bob:MEMBER"}},
		{"a direct conversation has no owner or admins, and no settings; both users pin", Limits{},
			[]*pb.Command{createDirect(), roleCmd("alice", direct, "bob", roleAdmin), transferCmd("alice", direct, "bob"),
				muteCmd("alice", direct, "bob", nil), unmuteCmd("bob", direct, "alice"),
				settingsCmd("alice", direct, &pb.GroupSettings{Title: proto.String("x")}),
				send("alice", direct, "m1"), pinCmd("bob", direct, 1), unpinCmd("alice", direct, 1)},
			[]string{created, rejUnsupported, rejDenied, rejDenied, rejDenied, rejUnsupported, "MessageSent@1", "Pin:1", "Unpin:1"}},
		{"the owner removes anyone but itself, an admin plain members, a member nobody", Limits{},
			[]*pb.Command{createGroup("bob", "carol", "dave", "erin"), roleCmd("alice", g, "bob", roleAdmin), roleCmd("alice", g, "carol", roleAdmin),
				removeCmd("bob", g, "dave"), removeCmd("bob", g, "carol"), removeCmd("bob", g, "alice"), removeCmd("erin", g, "bob"),
				removeCmd("erin", g, "carol"), removeCmd("alice", g, "alice"), removeCmd("alice", g, "carol"),
				removeCmd("bob", g, "bob"), removeCmd("erin", g, "erin"), removeCmd("alice", g, "nobody")},
			[]string{created, "Role:bob:ADMIN", "Role:carol:ADMIN", "MemberRemoved@1", rejDenied, rejDenied, rejDenied, rejDenied, rejDenied,
				"MemberRemoved@2", "MemberRemoved@3", "MemberRemoved@4", rejNotFound}},
		{"the owner leaving hands the group to the admin who joined first", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), addCmd("alice", g, "dave"), addCmd("alice", g, "erin"),
				roleCmd("alice", g, "erin", roleAdmin), roleCmd("alice", g, "dave", roleAdmin), leaveCmd("alice", g),
				roleCmd("dave", g, "bob", roleAdmin), roleCmd("alice", g, "bob", roleMember)},
			[]string{created, "MembersAdded@1", "MembersAdded@2", "Role:erin:ADMIN", "Role:dave:ADMIN", "MemberRemoved@3",
				"Owner:alice->dave:OWNER_LEFT", "Role:bob:ADMIN", rejNotMember}},
		{"admins who joined together: the lowest user id", Limits{},
			[]*pb.Command{createGroup("dave", "carol", "bob"), roleCmd("alice", g, "carol", roleAdmin), roleCmd("alice", g, "bob", roleAdmin),
				leaveCmd("alice", g)},
			[]string{created, "Role:carol:ADMIN", "Role:bob:ADMIN", "MemberRemoved@1", "Owner:alice->bob:OWNER_LEFT"}},
		{"no admin: the member who joined first, ties by user id; the last one hands over to nobody", Limits{},
			[]*pb.Command{createGroup("dave", "carol"), addCmd("alice", g, "bob"), leaveCmd("alice", g), leaveCmd("carol", g),
				leaveCmd("dave", g), leaveCmd("bob", g), send("bob", g, "m1")},
			[]string{created, "MembersAdded@1", "MemberRemoved@2", "Owner:alice->carol:OWNER_LEFT", "MemberRemoved@3",
				"Owner:carol->dave:OWNER_LEFT", "MemberRemoved@4", "Owner:dave->bob:OWNER_LEFT", "MemberRemoved@5", rejNotMember}},
		{"an admin leaving hands nothing over", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin), leaveCmd("bob", g), leaveCmd("carol", g)},
			[]string{created, "Role:bob:ADMIN", "MemberRemoved@1", "MemberRemoved@2"}},
		{"an admin recalls any message; demoted, no longer", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), send("carol", g, "m1"), send("carol", g, "m2"), recallCmd("bob", g, 1),
				roleCmd("alice", g, "bob", roleAdmin), recallCmd("bob", g, 1), roleCmd("alice", g, "bob", roleMember), recallCmd("bob", g, 2)},
			[]string{created, "MessageSent@1", "MessageSent@2", rejDenied, "Role:bob:ADMIN", "Recalled:1", "Role:bob:MEMBER", rejDenied}},
		{"an admin recalls a send no longer remembered", Limits{DedupPerSender: 1},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin), send("carol", g, "m1"), send("carol", g, "m2"),
				recallCmd("carol", g, 1), recallCmd("bob", g, 1)},
			[]string{created, "Role:bob:ADMIN", "MessageSent@1", "MessageSent@2", rejWindow, "Recalled:1"}},
		{"the owner and admins change settings; only the changed fields are carried", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin),
				settingsCmd("carol", g, &pb.GroupSettings{Title: proto.String("x")}),
				settingsCmd("bob", g, &pb.GroupSettings{Title: proto.String("new"), Description: proto.String("about")}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("new"), Description: proto.String("about")}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("new"), Description: proto.String(""),
					AnnouncementOnly: proto.Bool(false), WhoMayAdd: policy(policyMembers)}),
				settingsCmd("alice", g, nil), settingsCmd("alice", g, &pb.GroupSettings{}),
				settingsCmd("alice", g, &pb.GroupSettings{WhoMayPin: policy(policyAdmins), WhoMayAdd: policy(policyAdmins),
					WhoMayMentionAll: policy(policyAdmins), AnnouncementOnly: proto.Bool(true), AvatarUrl: proto.String("https://img/a.png")}),
				settingsCmd("bob", g, &pb.GroupSettings{WhoMayPin: policy(policyAdmins)}),
				settingsCmd("bob", g, &pb.GroupSettings{WhoMayPin: policy(policyMembers), Title: proto.String("team")})},
			[]string{created, "Role:bob:ADMIN", rejDenied, "Settings:description,title", "Settings:description",
				"Settings:announcement_only,avatar_url,who_may_add,who_may_mention_all,who_may_pin", "Settings:title,who_may_pin"}},
		{"settings are checked, all of them before any applies", Limits{MaxTitleBytes: 8},
			[]*pb.Command{createGroup("bob"),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("")}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String(long(9))}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("\xff")}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String(long(8))}),
				settingsCmd("alice", g, &pb.GroupSettings{Description: proto.String(long(1025))}),
				settingsCmd("alice", g, &pb.GroupSettings{Description: proto.String("\xff")}),
				settingsCmd("alice", g, &pb.GroupSettings{Description: proto.String(long(1024))}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("https://" + long(2041))}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("ftp://host/a.png")}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("HTTPS://host/a.png")}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("javascript:alert(1)")}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("https://\xff")}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("https://" + long(2040))}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("parley:blob/1")}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("http://host/a.png")}),
				settingsCmd("alice", g, &pb.GroupSettings{AvatarUrl: proto.String("")}),
				settingsCmd("alice", g, &pb.GroupSettings{WhoMayAdd: policy(pb.GroupPolicy_GROUP_POLICY_UNSPECIFIED)}),
				settingsCmd("alice", g, &pb.GroupSettings{WhoMayPin: policy(pb.GroupPolicy(5))}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("ok"), WhoMayMentionAll: policy(pb.GroupPolicy_GROUP_POLICY_UNSPECIFIED)}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("ok")})},
			[]string{created, rejInvalid, rejInvalid, rejInvalid, "Settings:title", rejInvalid, rejInvalid, "Settings:description",
				rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid, "Settings:avatar_url", "Settings:avatar_url", "Settings:avatar_url",
				"Settings:avatar_url", rejInvalid, rejInvalid, rejInvalid, "Settings:title"}},
		{"history_visibility: ALL or SINCE_JOIN, checked with the rest; only a change is carried", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin),
				settingsCmd("carol", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_UNSPECIFIED)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility(3))}),
				settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("ok"),
					HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_UNSPECIFIED)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_ALL)}),
				settingsCmd("bob", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN),
					WhoMayPin: policy(policyAdmins)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_ALL)}),
				settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_ALL)})},
			[]string{created, "Role:bob:ADMIN", rejDenied, rejInvalid, rejInvalid, rejInvalid, "Settings:history_visibility",
				"Settings:who_may_pin", "Settings:history_visibility"}},
		{"announcement-only: the owner and admins send, members react", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin), send("carol", g, "c1"),
				settingsCmd("alice", g, &pb.GroupSettings{AnnouncementOnly: proto.Bool(true)}), send("carol", g, "c2"), send("carol", g, "c1"),
				send("bob", g, "b1"), send("alice", g, "a1"), reactCmd("carol", g, 2, "👍"), replyCmd("carol", g, "c3", 2),
				settingsCmd("bob", g, &pb.GroupSettings{AnnouncementOnly: proto.Bool(false)}), send("carol", g, "c2")},
			[]string{created, "Role:bob:ADMIN", "MessageSent@1", "Settings:announcement_only", rejDenied, "Dedup->1", "MessageSent@2",
				"MessageSent@3", "React+:2:👍", rejDenied, "Settings:announcement_only", "MessageSent@4"}},
		{"who_may_add ADMINS: only the owner and admins add members", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), roleCmd("alice", g, "bob", roleAdmin),
				settingsCmd("alice", g, &pb.GroupSettings{WhoMayAdd: policy(policyAdmins)}), addCmd("carol", g, "dave"), addCmd("bob", g, "dave"),
				addCmd("alice", g, "erin"), settingsCmd("bob", g, &pb.GroupSettings{WhoMayAdd: policy(policyMembers)}), addCmd("carol", g, "frank")},
			[]string{created, "Role:bob:ADMIN", "Settings:who_may_add", rejDenied, "MembersAdded@1", "MembersAdded@2", "Settings:who_may_add",
				"MembersAdded@3"}},
		{"admins mute members, only the owner an admin, nobody the owner", Limits{},
			[]*pb.Command{createGroup("bob", "carol", "dave"), roleCmd("alice", g, "bob", roleAdmin), roleCmd("alice", g, "carol", roleAdmin),
				muteCmd("dave", g, "carol", nil), muteCmd("bob", g, "carol", nil), muteCmd("bob", g, "alice", nil), muteCmd("alice", g, "alice", nil),
				muteCmd("bob", g, "bob", nil), muteCmd("bob", g, "erin", nil), muteCmd("bob", g, "dave", nil), muteCmd("alice", g, "carol", nil),
				unmuteCmd("bob", g, "carol"), unmuteCmd("dave", g, "dave"), unmuteCmd("carol", g, "carol"), unmuteCmd("alice", g, "carol"),
				unmuteCmd("alice", g, "carol"), unmuteCmd("bob", g, "dave"), unmuteCmd("bob", g, "alice"), unmuteCmd("bob", g, "erin")},
			[]string{created, "Role:bob:ADMIN", "Role:carol:ADMIN", rejDenied, rejDenied, rejDenied, rejDenied, rejDenied, rejNotFound,
				"Muted:dave", "Muted:carol", rejDenied, rejDenied, rejDenied, "Unmuted:carol", "Unmuted:dave", rejDenied, rejNotFound}},
		{"a muted member reads and reacts but does not send; its earlier send's resend is still the original", Limits{},
			[]*pb.Command{createGroup("bob"), send("bob", g, "b0"), send("alice", g, "a1"), muteCmd("alice", g, "bob", nil),
				send("bob", g, "b1"), replyCmd("bob", g, "b2", 2), send("bob", g, "b0"), reactCmd("bob", g, 2, "👍"),
				cmd("bob", g, &pb.MarkRead{UpToSeq: 2}), recallCmd("bob", g, 1), muteCmd("alice", g, "bob", nil),
				unmuteCmd("alice", g, "bob"), send("bob", g, "b1")},
			[]string{created, "MessageSent@1", "MessageSent@2", "Muted:bob", rejMuted, rejMuted, "Dedup->1", "React+:2:👍", "Read:bob:2",
				"Recalled:1", "Muted:bob", "Unmuted:bob", "MessageSent@3"}},
		{"removal clears a mute; a re-added member starts unmuted", Limits{},
			[]*pb.Command{createGroup("bob"), muteCmd("alice", g, "bob", nil), removeCmd("alice", g, "bob"), addCmd("alice", g, "bob"),
				unmuteCmd("alice", g, "bob"), send("bob", g, "b1")},
			[]string{created, "Muted:bob", "MemberRemoved@1", "MembersAdded@2", "MessageSent@3"}},
		{"becoming owner ends a mute; nobody mutes or unmutes the owner", Limits{},
			[]*pb.Command{createGroup("bob"), muteCmd("alice", g, "bob", nil), transferCmd("alice", g, "bob"), send("bob", g, "b1"),
				muteCmd("alice", g, "bob", nil), unmuteCmd("alice", g, "bob"), unmuteCmd("bob", g, "bob"), send("bob", g, "b1")},
			[]string{created, "Muted:bob", "Owner:alice->bob:TRANSFERRED", "MessageSent@1", rejDenied, rejDenied, rejDenied, "Dedup->1"}},
		{"pins: messages only, not recalled, once, at most MaxPins; a recall unpins", Limits{MaxPins: 2},
			[]*pb.Command{createGroup("bob", "carol"), addCmd("alice", g, "dave"), send("bob", g, "m1"), send("bob", g, "m2"), send("bob", g, "m3"),
				pinCmd("carol", g, 2), pinCmd("dave", g, 2), pinCmd("carol", g, 1), pinCmd("carol", g, 9), pinCmd("carol", g, 0),
				pinCmd("carol", g, 3), pinCmd("carol", g, 4), unpinCmd("carol", g, 4), unpinCmd("carol", g, 1), unpinCmd("carol", g, 9),
				recallCmd("bob", g, 3), pinCmd("carol", g, 4), pinCmd("carol", g, 3), unpinCmd("carol", g, 3), unpinCmd("dave", g, 2),
				pinCmd("mallory", g, 2)},
			[]string{created, "MembersAdded@1", "MessageSent@2", "MessageSent@3", "MessageSent@4", "Pin:2", rejNotFound, rejNotFound, rejNotFound,
				"Pin:3", rejTooManyPins, rejNotFound, rejNotFound, "Recalled:3", "Pin:4", rejRecalled, "Unpin:2", rejNotMember}},
		{"who_may_pin ADMINS: only the owner and admins pin and unpin", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), send("bob", g, "m1"), send("bob", g, "m2"), pinCmd("carol", g, 1),
				settingsCmd("alice", g, &pb.GroupSettings{WhoMayPin: policy(policyAdmins)}), pinCmd("carol", g, 2), unpinCmd("carol", g, 1),
				unpinCmd("carol", g, 2), pinCmd("alice", g, 2), roleCmd("alice", g, "carol", roleAdmin), unpinCmd("carol", g, 1)},
			[]string{created, "MessageSent@1", "MessageSent@2", "Pin:1", "Settings:who_may_pin", rejDenied, rejDenied, rejDenied, "Pin:2",
				"Role:carol:ADMIN", "Unpin:1"}},
		{"mentions: members only, at most 50, @all for groups and per who_may_mention_all", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), mentionCmd("bob", g, "m1", false, "carol", "alice", "carol", "bob"),
				mentionCmd("bob", g, "m2", false, "carol", "erin"), mentionCmd("bob", g, "m3", false, ""), mentionCmd("bob", g, "m4", true),
				mentionCmd("bob", g, "m5", true, "erin"), settingsCmd("alice", g, &pb.GroupSettings{WhoMayMentionAll: policy(policyAdmins)}),
				mentionCmd("bob", g, "m6", true), mentionCmd("bob", g, "m6", false, "alice"), mentionCmd("alice", g, "m7", true),
				roleCmd("alice", g, "bob", roleAdmin), mentionCmd("bob", g, "m8", true)},
			[]string{created, "MessageSent@1", rejInvalid, rejInvalid, "MessageSent@2", rejInvalid, "Settings:who_may_mention_all",
				rejDenied, "MessageSent@3", "MessageSent@4", "Role:bob:ADMIN", "MessageSent@5"}},
		{"mentions in a direct conversation; no @all there", Limits{},
			[]*pb.Command{createDirect(), mentionCmd("alice", direct, "d1", true), mentionCmd("alice", direct, "d2", false, "bob", "alice")},
			[]string{created, rejInvalid, "MessageSent@1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, evs := run(t, tc.l, tc.cmds...)
			got := summary(evs)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			var version int64
			for _, e := range evs {
				if governanceEvent(e) && e.GetSeq() != 0 {
					t.Errorf("%s has seq %d, want 0", schemas.EventType(e), e.GetSeq())
				}
				if v := e.GetVersion(); v != 0 {
					if v != version+1 {
						t.Errorf("%s has version %d after %d", schemas.EventType(e), v, version)
					}
					version = v
				}
			}
			if st.kind == pb.ConversationKind_CONVERSATION_KIND_GROUP && len(st.members) > 0 && len(owners(st)) != 1 {
				t.Errorf("owners %v", owners(st))
			}
		})
	}
}

// TestDecideMuteTimes: a mute ends at its until, compared with the
// commands' receive times in milliseconds; until must be after the
// command's; muting again replaces the mute.
func TestDecideMuteTimes(t *testing.T) {
	g := "g:1"
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	h := time.Hour
	st, evs := runAt(t, Limits{},
		timed{0, createGroup("bob", "carol")},
		timed{0, muteCmd("alice", g, "bob", at(h))},
		timed{h - time.Millisecond, send("bob", g, "b1")},
		timed{h, send("bob", g, "b1")},
		timed{h, unmuteCmd("alice", g, "bob")}, // ended: nothing to say
		timed{2 * h, muteCmd("alice", g, "bob", at(h))},
		timed{2 * h, muteCmd("alice", g, "bob", at(2*h))},
		timed{2 * h, muteCmd("alice", g, "bob", at(2*h+time.Microsecond))}, // the same millisecond
		timed{2 * h, muteCmd("alice", g, "bob", &timestamppb.Timestamp{Seconds: 1, Nanos: -1})},
		timed{2 * h, muteCmd("alice", g, "bob", &timestamppb.Timestamp{Seconds: -5})},
		timed{2 * h, muteCmd("alice", g, "bob", at(2*h+time.Millisecond))},
		timed{2 * h, send("bob", g, "b2")},
		timed{2*h + time.Millisecond, send("bob", g, "b2")},
		timed{2 * h, muteCmd("alice", g, "carol", nil)},
		timed{2 * h, muteCmd("alice", g, "carol", at(3*h))}, // replaces the mute forever
		timed{3*h - time.Millisecond, send("carol", g, "c1")},
		timed{3 * h, send("carol", g, "c1")},
		timed{3 * h, muteCmd("alice", g, "carol", at(4*h))},
		timed{3 * h, muteCmd("alice", g, "carol", nil)}, // replaces the timed one
		timed{400 * 24 * h, send("carol", g, "c2")},
		timed{400 * 24 * h, unmuteCmd("alice", g, "carol")},
		timed{400 * 24 * h, send("carol", g, "c2")},
	)
	want := []string{created, "Muted:bob", rejMuted, "MessageSent@1", rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid,
		"Muted:bob", rejMuted, "MessageSent@2", "Muted:carol", "Muted:carol", rejMuted, "MessageSent@3", "Muted:carol", "Muted:carol",
		rejMuted, "Unmuted:carol", "MessageSent@4"}
	if got := summary(evs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	// A mute that ended is forgotten by the member's next send.
	if m := st.members["bob"]; m.mutedUntil != 0 {
		t.Errorf("bob's mute ends at %d, after his send", m.mutedUntil)
	}
}

// TestDecideAdminRecallsAnyTime: an admin, like the owner, recalls past the
// recall window.
func TestDecideAdminRecallsAnyTime(t *testing.T) {
	g := "g:1"
	_, evs := runAt(t, Limits{RecallWindow: time.Hour},
		timed{0, createGroup("bob", "carol")},
		timed{0, roleCmd("alice", g, "bob", roleAdmin)},
		timed{0, send("carol", g, "m1")},
		timed{0, send("bob", g, "m2")},
		timed{2 * time.Hour, recallCmd("carol", g, 1)},
		timed{6 * 24 * time.Hour, recallCmd("bob", g, 1)},
		timed{6 * 24 * time.Hour, recallCmd("bob", g, 2)},
	)
	want := []string{created, "Role:bob:ADMIN", "MessageSent@1", "MessageSent@2", rejWindow, "Recalled:1", "Recalled:2"}
	if got := summary(evs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// TestDecideMentionBodies: what MessageSent carries of the mentions.
func TestDecideMentionBodies(t *testing.T) {
	g := "g:1"
	members := make([]string, 52)
	for i := range members {
		members[i] = fmt.Sprintf("u%02d", i)
	}
	fifty := append([]string{"alice", "u00"}, members[1:50]...) // u00 twice, the sender once: 50 others
	_, evs := run(t, Limits{},
		createGroup(members...),
		mentionCmd("u00", g, "m1", false, "u02", "alice", "u02", "u00", "u01"),
		mentionCmd("u00", g, "m2", true, "u01"),
		mentionCmd("u00", g, "m3", false, fifty...),
		mentionCmd("u51", g, "m4", false, fifty...),
		mentionCmd("u00", g, "m5", false, append(fifty, "u50")...),
		send("u00", g, "m6"),
	)
	ms := func(i int) *pb.MessageSent { return evs[i].GetMessageSent() }
	if got := ms(1).GetMentionUserIds(); !slices.Equal(got, []string{"u02", "alice", "u01"}) || ms(1).GetMentionAll() {
		t.Errorf("mentions %v (all %v)", got, ms(1).GetMentionAll())
	}
	if got := ms(2).GetMentionUserIds(); len(got) != 0 || !ms(2).GetMentionAll() {
		t.Errorf("@all: mentions %v (all %v)", got, ms(2).GetMentionAll())
	}
	if got := ms(3).GetMentionUserIds(); len(got) != 50 || got[0] != "alice" || got[1] != "u01" {
		t.Errorf("fifty mentions: %d, %v", len(got), got[:2])
	}
	if r := evs[4].GetCommandRejected(); r.GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || r.GetClientMsgId() != "m4" {
		t.Errorf("fifty-one (u51 mentioning u00 too): %v", evs[4])
	}
	if r := evs[5].GetCommandRejected(); r.GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || !strings.Contains(r.GetMessage(), "50") {
		t.Errorf("fifty-one: %v", evs[5])
	}
	if m := ms(6); len(m.GetMentionUserIds()) != 0 || m.GetMentionAll() || m.GetClientMsgId() != "m6" {
		t.Errorf("a send without mentions: %v", evs[6])
	}
	_, evs = run(t, Limits{}, createGroup("bob"), mentionCmd("bob", g, "m1", false, "erin"))
	if r := evs[1].GetCommandRejected(); r.GetMessage() != "erin is not a member" {
		t.Errorf("not a member: %v", r)
	}
}

// TestDecideGovernanceBodies: what the governance and pin events carry, and
// that their refusals name their command.
func TestDecideGovernanceBodies(t *testing.T) {
	g := "g:1"
	now := time.Unix(1_700_000_000, 0)
	until := timestamppb.New(now.Add(time.Hour + 1500*time.Microsecond))
	_, evs := run(t, Limits{},
		createGroup("bob", "carol"),
		roleCmd("alice", g, "bob", roleAdmin),
		transferCmd("alice", g, "carol"),
		settingsCmd("bob", g, &pb.GroupSettings{Title: proto.String("team"), Description: proto.String("d"), WhoMayPin: policy(policyAdmins),
			WhoMayAdd: policy(policyMembers), AnnouncementOnly: proto.Bool(true),
			HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}),
		muteCmd("carol", g, "bob", until),
		muteCmd("carol", g, "bob", nil),
		unmuteCmd("carol", g, "bob"),
		send("bob", g, "m1"),
		pinCmd("bob", g, 1),
		unpinCmd("carol", g, 1),
		leaveCmd("carol", g),
	)
	check := func(i int, actor string, want proto.Message) {
		t.Helper()
		ev := evs[i]
		body := ev.ProtoReflect().Get(ev.ProtoReflect().WhichOneof(ev.ProtoReflect().Descriptor().Oneofs().ByName("body"))).Message().Interface()
		if ev.GetActorUserId() != actor || !proto.Equal(body, want) {
			t.Errorf("event %d: actor %s, %v; want %s, %v", i, ev.GetActorUserId(), body, actor, want)
		}
	}
	check(1, "alice", &pb.MemberRoleChanged{UserId: "bob", Role: roleAdmin})
	check(2, "alice", &pb.OwnershipTransferred{FromUserId: "alice", ToUserId: "carol", Reason: pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED})
	check(3, "bob", &pb.GroupSettingsChanged{Settings: &pb.GroupSettings{Description: proto.String("d"), WhoMayPin: policy(policyAdmins),
		AnnouncementOnly: proto.Bool(true), HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}})
	// The until kept and carried is in milliseconds, as it is compared.
	check(4, "carol", &pb.MemberMuted{UserId: "bob", Until: timestamppb.New(now.Add(time.Hour + time.Millisecond))})
	check(5, "carol", &pb.MemberMuted{UserId: "bob"})
	check(6, "carol", &pb.MemberUnmuted{UserId: "bob"})
	check(8, "bob", &pb.MessagePinned{MessageSeq: 1})
	check(9, "carol", &pb.MessageUnpinned{MessageSeq: 1})
	check(10, "carol", &pb.MemberRemoved{UserId: "carol", Reason: pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT})
	// alice (an admin since the transfer) and bob are admins who joined
	// at the creation: alice comes first.
	check(11, "carol", &pb.OwnershipTransferred{FromUserId: "carol", ToUserId: "alice", Reason: pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_OWNER_LEFT})
	if evs[10].GetCommandId() != evs[11].GetCommandId() || evs[10].GetSeq() != 2 || evs[11].GetSeq() != 0 || evs[11].GetVersion() != evs[10].GetVersion()+1 {
		t.Errorf("a leave and its hand-over: %v, %v", evs[10], evs[11])
	}

	// Each new command's refusal names it.
	_, evs = run(t, Limits{},
		createGroup("bob"),
		roleCmd("bob", g, "alice", roleAdmin),
		transferCmd("bob", g, "bob"),
		settingsCmd("bob", g, &pb.GroupSettings{}),
		muteCmd("bob", g, "alice", nil),
		unmuteCmd("bob", g, "alice"),
		pinCmd("bob", g, 1),
		unpinCmd("bob", g, 1),
	)
	var types []string
	for _, ev := range evs[1:] {
		types = append(types, ev.GetCommandRejected().GetCommandType())
	}
	if want := []string{schemas.TypeSetMemberRole, schemas.TypeTransferOwnership, schemas.TypeUpdateGroupSettings, schemas.TypeMuteMember,
		schemas.TypeUnmuteMember, schemas.TypePinMessage, schemas.TypeUnpinMessage}; !slices.Equal(types, want) {
		t.Errorf("rejected command types %v, want %v", types, want)
	}
}

package replay

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// joinEvent is an event of testConv with any body.
func joinEvent(cmd string, seq int64, actor string, body proto.Message) *pb.Event {
	e := &pb.Event{ConversationId: testConv, Seq: seq, CommandId: cmd, ActorUserId: actor}
	if err := schemas.SetBody(e, body); err != nil {
		panic(err)
	}
	return e
}

// TestVerifyLogCheckJoins: invitation links and join requests, valid and
// broken.
func TestVerifyLogCheckJoins(t *testing.T) {
	var l actionLog
	idA, idB := strings.Repeat("a", 16), strings.Repeat("b", 16)
	invite := func(cmd, actor, id string, max int32, approval bool) *pb.Event {
		return joinEvent(cmd, 0, actor, &pb.InviteCreated{InviteId: id, MaxUses: max, RequiresApproval: approval})
	}
	joined := func(cmd string, seq int64, user, id string, uses int32) *pb.Event {
		return joinEvent(cmd, seq, user, &pb.MembersAdded{UserIds: []string{user}, Invite: &pb.InviteUse{InviteId: id, Uses: uses}})
	}
	asked := func(cmd, user, id string, uses int32) *pb.Event {
		jr := &pb.JoinRequested{UserId: user}
		if id != "" {
			jr.Invite = &pb.InviteUse{InviteId: id, Uses: uses}
		}
		return joinEvent(cmd, 0, user, jr)
	}
	declined := func(cmd, actor, user string) *pb.Event {
		return joinEvent(cmd, 0, actor, &pb.JoinRequestDeclined{UserId: user})
	}
	revoked := func(cmd, actor, id string) *pb.Event {
		return joinEvent(cmd, 0, actor, &pb.InviteRevoked{InviteId: id})
	}
	admins := pb.GroupPolicy_GROUP_POLICY_ADMINS.Enum()
	g := l.group("a", "b", "c")
	valid := l.versions(g,
		l.settings("g1", "a", &pb.GroupSettings{WhoMayAdd: admins}),
		l.role("r1", "a", "b", pb.MemberRole_MEMBER_ROLE_ADMIN),
		invite("i1", "b", idA, 2, false),
		joined("j1", 1, "d", idA, 1), // a non-member joins while who_may_add is ADMINS: by link
		joined("j2", 2, "e", idA, 2),
		invite("i2", "a", idB, 0, true),
		asked("j3", "f", idB, 1),
		asked("j4", "h", idB, 2),
		l.add("n1", 3, "b", "f"), // approved: the request ends
		declined("d1", "a", "h"),
		revoked("v1", "b", idB), // by an admin, not its creator
		l.settings("g2", "a", &pb.GroupSettings{JoinRequests: proto.Bool(true)}),
		asked("j5", "h", "", 0),
		declined("d2", "b", "h"),
		asked("j6", "h", "", 0),
	)
	for _, tc := range []struct {
		name   string
		events []*pb.Event
		want   string
	}{
		{"valid", valid, ""},
		{"a link by a member who may not add", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{WhoMayAdd: admins}), invite("i1", "c", idA, 0, false)),
			"c creates a link but may not add members"},
		{"a link twice", l.versions(g, invite("i1", "a", idA, 0, false), invite("i2", "a", idA, 0, false)), "link " + idA + " exists already"},
		{"a join by an unknown link", l.versions(g, joined("j1", 1, "d", idA, 1)), "link " + idA + " is not the group's"},
		{"a join past max_uses", l.versions(g, invite("i1", "a", idA, 1, false), joined("j1", 1, "d", idA, 1), joined("j2", 2, "e", idA, 2)),
			"use 2 of link " + idA + " past its max_uses 1"},
		{"a use skipped", l.versions(g, invite("i1", "a", idA, 0, false), joined("j1", 1, "d", idA, 2)), "use 2 of link " + idA + " after use 0"},
		{"a join by a revoked link", l.versions(g, invite("i1", "a", idA, 0, false), revoked("v1", "a", idA), joined("j1", 1, "d", idA, 1)),
			"link " + idA + " is revoked"},
		{"a join by a link for approval", l.versions(g, invite("i1", "a", idA, 0, true), joined("j1", 1, "d", idA, 1)), "requires_approval true"},
		{"a join by link of someone else", l.versions(g, invite("i1", "a", idA, 0, false),
			joinEvent("j1", 1, "d", &pb.MembersAdded{UserIds: []string{"e"}, Invite: &pb.InviteUse{InviteId: idA, Uses: 1}})),
			"a join by link adds [e], want the actor d alone"},
		{"a request without a link while join_requests is off", l.versions(g, asked("j1", "d", "", 0)), "a request without a link while join_requests is off"},
		{"a request by a member", l.versions(g, invite("i1", "a", idA, 0, true), asked("j1", "c", idA, 1)), "c asks to join but is a member"},
		{"a request twice", l.versions(g, invite("i1", "a", idA, 0, true), asked("j1", "d", idA, 1), asked("j2", "d", idA, 2)),
			"d asks again while its request is pending"},
		{"a decline of nothing", l.versions(g, declined("d1", "a", "d")), "d has no pending request"},
		{"a decline by a member who may not add", l.versions(g, l.settings("g1", "a", &pb.GroupSettings{WhoMayAdd: admins}),
			l.settings("g2", "a", &pb.GroupSettings{JoinRequests: proto.Bool(true)}), asked("j1", "d", "", 0), declined("d1", "c", "d")),
			"c declines a request but may not add members"},
		{"a revoke by someone else", l.versions(g, invite("i1", "b", idA, 0, false), revoked("v1", "c", idA)), "c revokes link " + idA},
		{"a revoke twice", l.versions(g, invite("i1", "a", idA, 0, false), revoked("v1", "a", idA), revoked("v2", "a", idA)), "is revoked already"},
		{"links in a direct conversation", l.versions(l.direct("a", "b"), invite("i1", "a", idA, 0, false)), "in a direct conversation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := newLogCheck()
			for i, e := range tc.events {
				check.event(0, int64(i), e)
			}
			problems := check.finish(false)
			got := strings.Join(problems, "\n")
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems in a valid log:\n%s", got)
			case tc.want != "" && (len(problems) != 1 || !strings.Contains(got, tc.want)):
				t.Errorf("problems:\n%s\nwant one, containing %q", got, tc.want)
			}
		})
	}
}

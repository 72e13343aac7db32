package system_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// describeJoin names an event of the joins log compactly.
func describeJoin(e *pb.Event) string {
	switch b := e.GetBody().(type) {
	case *pb.Event_InviteCreated:
		return fmt.Sprintf("invite %s by %s max %d approval %v", b.InviteCreated.GetInviteId(), e.GetActorUserId(),
			b.InviteCreated.GetMaxUses(), b.InviteCreated.GetRequiresApproval())
	case *pb.Event_InviteRevoked:
		return fmt.Sprintf("revoked %s by %s", b.InviteRevoked.GetInviteId(), e.GetActorUserId())
	case *pb.Event_JoinRequested:
		return fmt.Sprintf("requested %s use %d %q", b.JoinRequested.GetUserId(), b.JoinRequested.GetInvite().GetUses(), b.JoinRequested.GetNote())
	case *pb.Event_JoinRequestDeclined:
		return fmt.Sprintf("declined %s by %s", b.JoinRequestDeclined.GetUserId(), e.GetActorUserId())
	case *pb.Event_MembersAdded:
		return fmt.Sprintf("added %v by %s use %d", b.MembersAdded.GetUserIds(), e.GetActorUserId(), b.MembersAdded.GetInvite().GetUses())
	case *pb.Event_MessageSent:
		return "sent " + b.MessageSent.GetClientMsgId()
	}
	return describeGovernance(e)
}

// TestE2EJoins: invitation links and join requests on two gateways, with
// the joiner on two devices. Links admit users until revoked or used up,
// the secret never reaches the log, retries act once, non-admins and
// non-members are refused with their codes, the requester who is no
// member sees its answer live, and query shows links and requests.
func TestE2EJoins(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	// Devices that only watch (waiting for a refusal drops the events
	// queued before it).
	bobLaptop := connect(t, sys, 0, "bob", "laptop")
	carolTablet := connect(t, sys, 1, "carol", "tablet")
	dave := connect(t, sys, 1, "dave", "phone")
	daveLaptop := connect(t, sys, 0, "dave", "laptop")
	erin := connect(t, sys, 1, "erin", "phone")
	frank := connect(t, sys, 0, "frank", "phone")
	grace := connect(t, sys, 1, "grace", "phone")
	mallory := connect(t, sys, 0, "mallory", "phone")

	g := accepted(t, alice.MustDo("", group("joins", "bob", "carol")))
	accepted(t, alice.MustDo(g, &pb.SetMemberRole{UserId: "bob", Role: pb.MemberRole_MEMBER_ROLE_ADMIN}))
	admins := pb.GroupPolicy_GROUP_POLICY_ADMINS
	accepted(t, alice.MustDo(g, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{WhoMayAdd: &admins}}))

	tokA, tokB := "link-A-0123456789abcdefgh", "link-B-0123456789abcdefgh"
	idA, idB := schemas.InviteID(schemas.InviteTokenHash(tokA)), schemas.InviteID(schemas.InviteTokenHash(tokB))

	// A plain member may not invite here; a malformed token never leaves
	// the gateway; a device cannot send a hash of its own.
	wantRefused(t, carol, carol.MustDo(g, &pb.CreateInvite{Token: tokA}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	for _, ci := range []*pb.CreateInvite{{Token: "short"}, {Token: strings.Repeat("x", 30) + "!"},
		{Token: tokA, TokenHash: schemas.InviteTokenHash(tokA)}} {
		if f := alice.MustDo(g, ci); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
			t.Fatalf("createInvite %v: %v, want INVALID_ARGUMENT", ci, f)
		}
	}
	// The owner makes a link for two; its resend acts once.
	accepted(t, alice.MustDo(g, &pb.CreateInvite{Token: tokA, MaxUses: 2}))
	accepted(t, alice.MustDo(g, &pb.CreateInvite{Token: tokA, MaxUses: 2}))

	// Two join with it (dave from one device: both of his see it); a
	// third finds it used up; a wrong token or none tells nothing.
	accepted(t, dave.MustDo(g, &pb.JoinConversation{Token: tokA}))
	accepted(t, frank.MustDo(g, &pb.JoinConversation{Token: tokA}))
	wantRefused(t, mallory, mallory.MustDo(g, &pb.JoinConversation{Token: tokA}), pb.ErrorCode_ERROR_CODE_INVITE_INVALID)
	wantRefused(t, mallory, mallory.MustDo(g, &pb.JoinConversation{Token: "not-a-link-of-this-group-x"}), pb.ErrorCode_ERROR_CODE_INVITE_INVALID)
	wantRefused(t, mallory, mallory.MustDo(g, &pb.JoinConversation{}), pb.ErrorCode_ERROR_CODE_NOT_MEMBER)
	accepted(t, dave.MustDo(g, send("d1", "hi, I joined by link")))

	// An admin's link that requires approval: erin asks (twice: once),
	// a member may not decide, the admin approves.
	accepted(t, bob.MustDo(g, &pb.CreateInvite{Token: tokB, RequiresApproval: true}))
	accepted(t, erin.MustDo(g, &pb.JoinConversation{Token: tokB, Note: "from the offsite"}))
	erin.WaitEvent("her request", func(e *pb.Event) bool { return e.GetJoinRequested().GetUserId() == "erin" })
	accepted(t, erin.MustDo(g, &pb.JoinConversation{Token: tokB, Note: "from the offsite"}))
	wantRefused(t, carol, carol.MustDo(g, &pb.DecideJoinRequest{UserId: "erin", Approve: true}), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	wantRefused(t, mallory, mallory.MustDo(g, &pb.DecideJoinRequest{UserId: "erin", Approve: true}), pb.ErrorCode_ERROR_CODE_NOT_MEMBER)
	accepted(t, bob.MustDo(g, &pb.DecideJoinRequest{UserId: "erin", Approve: true}))
	accepted(t, bob.MustDo(g, &pb.DecideJoinRequest{UserId: "erin", Approve: true})) // a retry: she is a member
	erin.WaitEvent("her admission", func(e *pb.Event) bool { return slices.Contains(e.GetMembersAdded().GetUserIds(), "erin") })

	// Requests without a link, once the group takes them: grace asks,
	// bob declines, and grace — no member — learns it live.
	accepted(t, alice.MustDo(g, &pb.UpdateGroupSettings{Settings: &pb.GroupSettings{JoinRequests: proto.Bool(true)}}))
	accepted(t, grace.MustDo(g, &pb.JoinConversation{Note: "may I?"}))
	grace.WaitEvent("her request", func(e *pb.Event) bool { return e.GetJoinRequested().GetUserId() == "grace" })
	accepted(t, bob.MustDo(g, &pb.DecideJoinRequest{UserId: "grace"}))
	grace.WaitEvent("the decline", func(e *pb.Event) bool { return e.GetJoinRequestDeclined().GetUserId() == "grace" })
	wantRefused(t, bob, bob.MustDo(g, &pb.DecideJoinRequest{UserId: "grace"}), pb.ErrorCode_ERROR_CODE_NOT_FOUND)

	// The owner revokes the approval link: it admits nobody.
	accepted(t, alice.MustDo(g, &pb.RevokeInvite{InviteId: idB}))
	wantRefused(t, mallory, mallory.MustDo(g, &pb.JoinConversation{Token: tokB}), pb.ErrorCode_ERROR_CODE_INVITE_INVALID)
	accepted(t, alice.MustDo(g, send("last", "welcome all")))

	want := []string{
		"invite " + idA + " by alice max 2 approval false",
		"added [dave] by dave use 1", "added [frank] by frank use 2", "sent d1",
		"invite " + idB + " by bob max 0 approval true", "requested erin use 1 \"from the offsite\"",
		"added [erin] by bob use 0",
		"settings by alice: join_requests:true", "requested grace use 0 \"may I?\"", "declined grace by bob",
		"revoked " + idB + " by alice", "sent last",
	}
	isLast := func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "last" }
	// Every member's devices see the same, densely versioned; dave's two
	// devices from his join on.
	var delivered []*pb.Event
	for _, d := range []*testenv.WSClient{alice, bobLaptop, carolTablet, dave, daveLaptop} {
		evs := until(t, d, g, isLast)
		delivered = append(delivered, evs...)
		var got []string
		for i, e := range evs {
			if i > 0 && e.GetVersion() != evs[i-1].GetVersion()+1 {
				t.Fatalf("%s: version %d after %d", d.Name(), e.GetVersion(), evs[i-1].GetVersion())
			}
			switch e.GetBody().(type) {
			case *pb.Event_ConversationCreated, *pb.Event_MemberRoleChanged, *pb.Event_ReadUpTo, *pb.Event_DeliveredUpTo:
				continue
			case *pb.Event_GroupSettingsChanged:
				if e.GetGroupSettingsChanged().GetSettings().WhoMayAdd != nil {
					continue
				}
			}
			got = append(got, describeJoin(e))
		}
		from := 0
		if d == dave || d == daveLaptop {
			from = 1 // from his own join
		}
		if !slices.Equal(got, want[from:]) {
			t.Fatalf("%s saw\n  %s\nwant\n  %s", d.Name(), strings.Join(got, "\n  "), strings.Join(want[from:], "\n  "))
		}
	}
	// The secret is nowhere in the log: the events carry the link's id.
	for _, e := range delivered {
		if raw, _ := proto.Marshal(e); strings.Contains(string(raw), tokA) || strings.Contains(string(raw), tokB) {
			t.Fatalf("an event carries a link's secret: %v", e)
		}
	}
	if !slices.ContainsFunc(delivered, func(e *pb.Event) bool { return e.GetInviteCreated().GetInviteId() == idA }) {
		t.Fatalf("no InviteCreated of %s among the %d events delivered", idA, len(delivered))
	}

	// Query: the links and requests for who may add; a member's own
	// standing for anyone.
	var invites struct {
		Invites []struct {
			InviteID         string `json:"invite_id"`
			CreatedBy        string `json:"created_by"`
			MaxUses          int    `json:"max_uses"`
			Uses             int    `json:"uses"`
			RequiresApproval bool   `json:"requires_approval"`
			Open             bool   `json:"open"`
			RevokedBy        string `json:"revoked_by"`
		} `json:"invites"`
	}
	// The views follow the log: wait until the projector has the revoke.
	wantInv := []string{idA + " alice 2/2 approval false open false revoked \"\"", idB + " bob 1/0 approval true open false revoked \"alice\""}
	slices.Sort(wantInv)
	testenv.Eventually(t, time.Minute, func() string {
		invites.Invites = nil
		if code := api(t, sys, "bob", "/v1/conversations/"+g+"/invites", &invites); code != 200 {
			return fmt.Sprintf("invites: status %d", code)
		}
		var gotInv []string
		for _, i := range invites.Invites {
			gotInv = append(gotInv, fmt.Sprintf("%s %s %d/%d approval %v open %v revoked %q", i.InviteID, i.CreatedBy, i.Uses, i.MaxUses,
				i.RequiresApproval, i.Open, i.RevokedBy))
		}
		if !slices.Equal(gotInv, wantInv) {
			return fmt.Sprintf("invites\n  %s\nwant\n  %s", strings.Join(gotInv, "\n  "), strings.Join(wantInv, "\n  "))
		}
		return ""
	})
	var errBody struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if code := api(t, sys, "carol", "/v1/conversations/"+g+"/invites", &errBody); code != 403 || errBody.Error.Code != "PERMISSION_DENIED" {
		t.Fatalf("a member's invites: %d %s, want 403 PERMISSION_DENIED", code, errBody.Error.Code)
	}
	if code := api(t, sys, "mallory", "/v1/conversations/"+g+"/join-requests", &errBody); code != 403 || errBody.Error.Code != "NOT_MEMBER" {
		t.Fatalf("a non-member's join requests: %d %s, want 403 NOT_MEMBER", code, errBody.Error.Code)
	}
	var reqs struct {
		Requests []struct {
			UserID    string `json:"user_id"`
			State     string `json:"state"`
			Note      string `json:"note"`
			DecidedBy string `json:"decided_by"`
		} `json:"requests"`
	}
	testenv.Eventually(t, time.Minute, func() string {
		reqs.Requests = nil
		if code := api(t, sys, "alice", "/v1/conversations/"+g+"/join-requests", &reqs); code != 200 || len(reqs.Requests) != 0 {
			return fmt.Sprintf("pending requests: %d %+v, want none", code, reqs)
		}
		reqs.Requests = nil
		if code := api(t, sys, "alice", "/v1/conversations/"+g+"/join-requests?state=all", &reqs); code != 200 ||
			len(reqs.Requests) != 1 || reqs.Requests[0].UserID != "grace" || reqs.Requests[0].State != "declined" ||
			reqs.Requests[0].Note != "may I?" || reqs.Requests[0].DecidedBy != "bob" {
			return fmt.Sprintf("all requests: %d %+v, want grace's, declined by bob", code, reqs)
		}
		for user, state := range map[string]string{"grace": "declined", "dave": "member", "erin": "member", "mallory": "none"} {
			var own struct {
				State string `json:"state"`
			}
			if code := api(t, sys, user, "/v1/conversations/"+g+"/join-request", &own); code != 200 || own.State != state {
				return fmt.Sprintf("%s's own request: %d %q, want %q", user, code, own.State, state)
			}
		}
		var conv struct {
			Members []struct {
				UserID string `json:"user_id"`
			} `json:"members"`
			Settings struct {
				JoinRequests bool `json:"join_requests"`
			} `json:"settings"`
		}
		if code := api(t, sys, "dave", "/v1/conversations/"+g, &conv); code != 200 || !conv.Settings.JoinRequests || len(conv.Members) != 6 {
			return fmt.Sprintf("conversation: %d %+v, want 6 members and join_requests", code, conv)
		}
		return ""
	})
}

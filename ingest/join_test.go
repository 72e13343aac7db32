package ingest

import (
	"fmt"
	"maps"
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
	rejInviteInvalid = "Rejected:ERROR_CODE_INVITE_INVALID"
	rejLimit         = "Rejected:ERROR_CODE_LIMIT_REACHED"
	rejFull          = "Rejected:ERROR_CODE_GROUP_FULL"
)

func hashOf(token string) string { return schemas.InviteTokenHash(token) }

func inviteCmd(actor, conv, token string, maxUses int32, approval bool, expires *timestamppb.Timestamp) *pb.Command {
	return cmd(actor, conv, &pb.CreateInvite{TokenHash: hashOf(token), MaxUses: maxUses, RequiresApproval: approval, ExpiresAt: expires})
}

func revokeCmd(actor, conv, token string) *pb.Command {
	return cmd(actor, conv, &pb.RevokeInvite{InviteId: schemas.InviteID(hashOf(token))})
}

func joinCmd(user, conv, token string) *pb.Command {
	j := &pb.JoinConversation{}
	if token != "" {
		j.TokenHash = hashOf(token)
	}
	return cmd(user, conv, j)
}

func decideCmd(actor, conv, user string, approve bool) *pb.Command {
	return cmd(actor, conv, &pb.DecideJoinRequest{UserId: user, Approve: approve})
}

// joinSummary extends summary with the join events.
func joinSummary(evs []*pb.Event) []string {
	out := summary(evs)
	for i, e := range evs {
		switch b := e.GetBody().(type) {
		case *pb.Event_InviteCreated:
			out[i] = "Invite:" + b.InviteCreated.GetInviteId()[:4]
		case *pb.Event_InviteRevoked:
			out[i] = "Revoked:" + b.InviteRevoked.GetInviteId()[:4]
		case *pb.Event_JoinRequested:
			out[i] = fmt.Sprintf("Requested:%s:%d", b.JoinRequested.GetUserId(), b.JoinRequested.GetInvite().GetUses())
		case *pb.Event_JoinRequestDeclined:
			out[i] = "Declined:" + b.JoinRequestDeclined.GetUserId()
		case *pb.Event_MembersAdded:
			out[i] = fmt.Sprintf("Added@%d:%v:%d", e.GetSeq(), b.MembersAdded.GetUserIds(), b.MembersAdded.GetInvite().GetUses())
		}
	}
	return out
}

// TestDecideJoins: invitation links and join requests, each rule and each
// refusal, and resends acting once.
func TestDecideJoins(t *testing.T) {
	g := "g:1"
	tokA, tokB := "AAAAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBBBB"
	idA, idB := schemas.InviteID(hashOf(tokA))[:4], schemas.InviteID(hashOf(tokB))[:4]
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"a link admits users until its uses are up; a resend of its create acts once", Limits{},
			[]*pb.Command{createGroup("bob"), inviteCmd("alice", g, tokA, 2, false, nil), inviteCmd("alice", g, tokA, 2, false, nil),
				joinCmd("carol", g, tokA), joinCmd("carol", g, tokA), joinCmd("dave", g, tokA), joinCmd("erin", g, tokA),
				send("carol", g, "c1")},
			[]string{created, "Invite:" + idA, "Added@1:[carol]:1", "Added@2:[dave]:2", rejInviteInvalid, "MessageSent@3"}},
		{"who may add manages links; creator and admins revoke; a revoked link admits nobody", Limits{},
			[]*pb.Command{createGroup("bob", "carol"), settingsCmd("alice", g, &pb.GroupSettings{WhoMayAdd: policy(policyAdmins)}),
				inviteCmd("bob", g, tokA, 0, false, nil), roleCmd("alice", g, "bob", roleAdmin), inviteCmd("bob", g, tokA, 0, false, nil),
				revokeCmd("carol", g, tokA), revokeCmd("alice", g, tokA), revokeCmd("bob", g, tokA), joinCmd("dave", g, tokA),
				revokeCmd("alice", g, tokB), inviteCmd("mallory", g, tokB, 0, false, nil)},
			[]string{created, "Settings:who_may_add", rejDenied, "Role:bob:ADMIN", "Invite:" + idA, rejDenied, "Revoked:" + idA,
				rejInviteInvalid, rejNotFound, rejNotMember}},
		{"links are for groups only", Limits{},
			[]*pb.Command{createDirect(), inviteCmd("alice", direct, tokA, 0, false, nil), joinCmd("carol", direct, "")},
			[]string{created, rejUnsupported, rejNotMember}},
		{"links are checked: hash only, future expiry, uses in range", Limits{MaxInviteUses: 5},
			[]*pb.Command{createGroup("bob"),
				cmd("alice", g, &pb.CreateInvite{Token: tokA, TokenHash: hashOf(tokA)}), cmd("alice", g, &pb.CreateInvite{TokenHash: "abc"}),
				inviteCmd("alice", g, tokA, 6, false, nil), inviteCmd("alice", g, tokA, -1, false, nil),
				inviteCmd("alice", g, tokA, 0, false, timestamppb.New(t0)), inviteCmd("alice", g, tokA, 5, false, timestamppb.New(t0.Add(time.Hour)))},
			[]string{created, rejInvalid, rejInvalid, rejInvalid, rejInvalid, rejInvalid, "Invite:" + idA}},
		{"open links are capped; a revoked one frees its place", Limits{MaxInvites: 1},
			[]*pb.Command{createGroup("bob"), inviteCmd("alice", g, tokA, 0, false, nil), inviteCmd("alice", g, tokB, 0, false, nil),
				revokeCmd("alice", g, tokA), inviteCmd("alice", g, tokB, 0, false, nil)},
			[]string{created, "Invite:" + idA, rejLimit, "Revoked:" + idA, "Invite:" + idB}},
		{"unknown tokens, and groups that do not exist, tell nothing apart", Limits{},
			[]*pb.Command{joinCmd("carol", g, tokA), joinCmd("carol", g, ""), createGroup("bob"), joinCmd("carol", g, tokA),
				joinCmd("carol", g, ""), joinCmd("bob", g, tokA), cmd("carol", g, &pb.JoinConversation{Token: tokA}),
				cmd("carol", g, &pb.JoinConversation{TokenHash: "xyz"})},
			[]string{rejInviteInvalid, rejNotMember, created, rejInviteInvalid, rejNotMember, rejInvalid, rejInvalid}},
		{"a link that requires approval asks; the admins approve or decline; resends act once", Limits{},
			[]*pb.Command{createGroup("bob"), inviteCmd("alice", g, tokA, 3, true, nil), joinCmd("carol", g, tokA), joinCmd("carol", g, tokA),
				joinCmd("dave", g, tokA), decideCmd("bob", g, "carol", true), decideCmd("alice", g, "carol", true),
				decideCmd("alice", g, "carol", true), decideCmd("alice", g, "dave", false), decideCmd("alice", g, "dave", false),
				send("dave", g, "d1"), joinCmd("dave", g, tokA), joinCmd("erin", g, tokA)},
			[]string{created, "Invite:" + idA, "Requested:carol:1", "Requested:dave:2", "Added@1:[carol]:0", "Declined:dave",
				rejNotFound, rejNotMember, "Requested:dave:3", rejInviteInvalid}},
		{"requests without a link need join_requests; adding a user ends its request", Limits{MaxJoinRequests: 1},
			[]*pb.Command{createGroup("bob"), joinCmd("carol", g, ""), settingsCmd("alice", g, &pb.GroupSettings{JoinRequests: proto.Bool(true)}),
				joinCmd("carol", g, ""), joinCmd("dave", g, ""), addCmd("bob", g, "carol"), joinCmd("dave", g, ""),
				decideCmd("alice", g, "carol", false), decideCmd("alice", g, "dave", true)},
			[]string{created, rejNotMember, "Settings:join_requests", "Requested:carol:0", rejLimit, "Added@1:[carol]:0",
				"Requested:dave:0", rejNotFound, "Added@2:[dave]:0"}},
		{"a full group admits nobody, by link or by approval", Limits{MaxGroupMembers: 2},
			[]*pb.Command{createGroup("bob"), inviteCmd("alice", g, tokA, 0, false, nil), inviteCmd("alice", g, tokB, 0, true, nil),
				joinCmd("carol", g, tokA), joinCmd("carol", g, tokB), decideCmd("alice", g, "carol", true), leaveCmd("bob", g),
				decideCmd("alice", g, "carol", true)},
			[]string{created, "Invite:" + idA, "Invite:" + idB, rejFull, "Requested:carol:1", rejFull, "MemberRemoved@1", "Added@2:[carol]:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := run(t, tc.l, tc.cmds...)
			if got := joinSummary(evs); !slices.Equal(got, tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			// The links and requests survive a restore from the changelog.
			r := newPartRun(t, tc.l)
			at := time.Unix(1_700_000_000, 0)
			for _, c := range tc.cmds {
				r.do(c, at)
			}
			live, restored := joinsOf(r.ps.convs[g]), joinsOf(r.restore(at).convs[g])
			if live != restored {
				t.Fatalf("restored\n%s\nlive\n%s", restored, live)
			}
		})
	}
}

// TestDecideInviteExpiry: a link stops at its expiry, compared with the
// commands' receive times.
func TestDecideInviteExpiry(t *testing.T) {
	g, tok := "g:1", "CCCCCCCCCCCCCCCCCCCCCCCC"
	t0 := time.Unix(1_700_000_000, 0)
	_, evs := runAt(t, Limits{},
		timed{0, createGroup("bob")},
		timed{0, inviteCmd("alice", g, tok, 0, false, timestamppb.New(t0.Add(time.Hour)))},
		timed{time.Hour - time.Millisecond, joinCmd("carol", g, tok)},
		timed{time.Hour, joinCmd("dave", g, tok)},
	)
	want := []string{created, "Invite:" + schemas.InviteID(hashOf(tok))[:4], "Added@1:[carol]:1", rejInviteInvalid}
	if got := joinSummary(evs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// joinsOf renders a group's links, requests and members.
func joinsOf(st *convState) string {
	if st == nil {
		return "none"
	}
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(st.invites)) {
		i := st.invites[id]
		fmt.Fprintf(&b, "invite %s %+v\n", id, *i)
	}
	for _, u := range slices.Sorted(maps.Keys(st.requests)) {
		fmt.Fprintf(&b, "request %s %+v\n", u, *st.requests[u])
	}
	fmt.Fprintf(&b, "members %v settings %+v", slices.Sorted(maps.Keys(st.members)), st.settings)
	return b.String()
}

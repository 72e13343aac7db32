package projector

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func joinEv(conv, actor, cmd string, body proto.Message) *pb.Event {
	e := base(conv, 0, actor)
	e.CommandId = fmt.Sprintf("cmd-%s-%s", conv, cmd)
	if err := schemas.SetBody(e, body); err != nil {
		panic(err)
	}
	return e
}

// TestViewsJoinsAnyOrder: links with their uses and revocation, requests
// pending, declined, approved (deleted) and asked again, forwards,
// backwards and twice: the same rows.
func TestViewsJoinsAnyOrder(t *testing.T) {
	e := newEnv(t, true)
	idA, idB := "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
	for _, order := range []string{"fwd", "rev"} {
		c := "g:joins-" + order
		linkJoin := added(c, 1, "dave", "dave")
		linkJoin.GetMembersAdded().Invite = &pb.InviteUse{InviteId: idA, Uses: 1}
		linkJoin2 := added(c, 2, "erin", "erin")
		linkJoin2.GetMembersAdded().Invite = &pb.InviteUse{InviteId: idA, Uses: 2}
		evs := versioned(
			group(c, "alice", "Team", "bob"),
			joinEv(c, "alice", "i1", &pb.InviteCreated{InviteId: idA, MaxUses: 2, ExpiresAt: at(500)}),
			linkJoin, linkJoin2,
			joinEv(c, "bob", "i2", &pb.InviteCreated{InviteId: idB, RequiresApproval: true}),
			joinEv(c, "frank", "j1", &pb.JoinRequested{UserId: "frank", Invite: &pb.InviteUse{InviteId: idB, Uses: 1}, Note: "hi"}),
			joinEv(c, "gina", "j2", &pb.JoinRequested{UserId: "gina"}),
			joinEv(c, "hank", "j3", &pb.JoinRequested{UserId: "hank"}),
			added(c, 3, "alice", "frank"), // approved
			joinEv(c, "alice", "d1", &pb.JoinRequestDeclined{UserId: "gina"}),
			joinEv(c, "bob", "v1", &pb.InviteRevoked{InviteId: idB}),
			joinEv(c, "gina", "j4", &pb.JoinRequested{UserId: "gina", Note: "again"}), // after the decline: pending again
		)
		if order == "rev" {
			slices.Reverse(evs)
		}
		e.applyAll(e.keyspace, evs)
		e.applyAll(e.keyspace, evs)
		invites := map[string]string{}
		for _, r := range e.rows(e.keyspace, "invites", "conversation_id = ?", c) {
			invites[r["invite_id"].(string)] = fmt.Sprintf("by %v max %v uses %v approval %v revoked %v expires %v",
				r["created_by"], r["max_uses"], r["uses"], r["requires_approval"], r["revoked_by"], r["expires_at"] != nil)
		}
		want := map[string]string{
			idA: "by alice max 2 uses 2 approval false revoked <nil> expires true",
			idB: "by bob max 0 uses 1 approval true revoked bob expires false",
		}
		if fmt.Sprint(invites) != fmt.Sprint(want) {
			t.Errorf("%s: invites\n got %v\nwant %v", order, invites, want)
		}
		requests := map[string]string{}
		for _, r := range e.rows(e.keyspace, "join_requests", "conversation_id = ?", c) {
			requests[r["user_id"].(string)] = fmt.Sprintf("%v %v %v by %v", r["state"], r["invite_id"], r["note"], r["decided_by"])
		}
		wantReq := map[string]string{"gina": "pending <nil> again by <nil>", "hank": "pending <nil> <nil> by <nil>"}
		if fmt.Sprint(requests) != fmt.Sprint(wantReq) {
			t.Errorf("%s: join requests\n got %v\nwant %v", order, requests, wantReq)
		}
	}
}

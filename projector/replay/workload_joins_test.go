package replay

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// madeInvite is an invitation link the generator made, as the decider
// should hold it.
type madeInvite struct {
	creator       string
	approval      bool
	maxUses, uses int32
	revoked       bool
}

// open says whether the link admits one more use.
func (i *madeInvite) open() bool { return !i.revoked && (i.maxUses == 0 || i.uses < i.maxUses) }

// inviteToken is the n-th link token of c: few per group, so creates meet
// (a resend acts once) and joins find them.
func inviteToken(c *genConv, n int) string { return fmt.Sprintf("tok-%s-%016d", c.id[2:10], n) }

// mayAdd says whether u may add members to c, and so manage its links and
// requests.
func (c *genConv) mayAdd(u string) bool { return c.member(u) && (!c.addAdmins || c.privileged(u)) }

// stranger is a user who is not a member of c ("" when everyone is).
func (g *generator) stranger(c *genConv) string {
	if len(c.members) == len(g.users) {
		return ""
	}
	for {
		if u := g.users[g.rng.IntN(len(g.users))]; !c.member(u) {
			return u
		}
	}
}

// invite: a link, by who may add (mostly), for up to 3 uses or none, some
// for approval; a resend of it; refused: by a plain member while only
// admins may add, with an expiry in the past.
func (g *generator) invite(c *genConv, cmd *pb.Command) []*pb.Command {
	if c.addAdmins && g.rng.IntN(4) != 0 {
		as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	}
	u := cmd.GetUserId()
	tok := inviteToken(c, g.rng.IntN(6))
	ci := &pb.CreateInvite{TokenHash: schemas.InviteTokenHash(tok), MaxUses: int32(g.rng.IntN(4)), RequiresApproval: g.rng.IntN(3) == 0}
	valid := true
	switch g.rng.IntN(10) {
	case 0:
		ci.ExpiresAt, valid = timestamppb.New(time.Now().Add(-time.Hour)), false
	case 1, 2:
		ci.ExpiresAt = timestamppb.New(time.Now().Add(24 * time.Hour))
	}
	cmd.Body = &pb.Command_CreateInvite{CreateInvite: ci}
	if valid && c.group && c.mayAdd(u) && c.invites[tok] == nil {
		if c.invites == nil {
			c.invites = map[string]*madeInvite{}
		}
		c.invites[tok] = &madeInvite{creator: u, approval: ci.GetRequiresApproval(), maxUses: ci.GetMaxUses()}
	}
	if g.rng.IntN(5) == 0 { // a resend: no event
		again := g.cmd(c.id, u)
		again.Body = cmd.Body
		return []*pb.Command{cmd, again}
	}
	return []*pb.Command{cmd}
}

// someInvite is one of c's links, and its token ("" and nil when none).
func (g *generator) someInvite(c *genConv) (string, *madeInvite) {
	if len(c.invites) == 0 {
		return "", nil
	}
	toks := slices.Sorted(maps.Keys(c.invites))
	tok := toks[g.rng.IntN(len(toks))]
	return tok, c.invites[tok]
}

// revoke: a link revoked by its creator or a privileged member; refused:
// by someone else, an unknown link; a revoked one again yields nothing.
func (g *generator) revoke(c *genConv, cmd *pb.Command) {
	tok, inv := g.someInvite(c)
	if inv == nil || g.rng.IntN(8) == 0 {
		tok = inviteToken(c, 99) // never made: NOT_FOUND
	} else if g.rng.IntN(3) != 0 && c.member(inv.creator) {
		as(cmd, inv.creator)
	} else {
		as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	}
	u := cmd.GetUserId()
	cmd.Body = &pb.Command_RevokeInvite{RevokeInvite: &pb.RevokeInvite{InviteId: schemas.InviteID(schemas.InviteTokenHash(tok))}}
	if inv != nil && c.group && (u == inv.creator || c.privileged(u)) {
		inv.revoked = true
	}
}

// join: a non-member joins by a link of c (or asks, by a link for
// approval, or without a link while c takes requests); refused: a token
// c never made, a link revoked or used up, no link while c takes no
// requests. A member's join, a second request, and sometimes a resend,
// yield nothing.
func (g *generator) join(c *genConv, cmd *pb.Command) []*pb.Command {
	u := g.stranger(c)
	if u == "" || g.rng.IntN(20) == 0 {
		u = cmd.GetUserId() // a member: nothing to join
	}
	as(cmd, u)
	jc := &pb.JoinConversation{}
	tok, inv := g.someInvite(c)
	switch r := g.rng.IntN(10); {
	case r == 0:
		jc.TokenHash, inv = schemas.InviteTokenHash(inviteToken(c, 98)), nil // unknown: INVITE_INVALID
	case r == 1 || inv == nil:
		inv = nil // no link: a request, when c takes them
		if g.rng.IntN(2) == 0 {
			jc.Note = fmt.Sprintf("note %d", g.next)
		}
	default:
		jc.TokenHash = schemas.InviteTokenHash(tok)
	}
	cmd.Body = &pb.Command_JoinConversation{JoinConversation: jc}
	switch {
	case !c.group || c.member(u):
	case inv != nil && inv.open() && !inv.approval:
		inv.uses++
		c.sent++ // a notice takes a seq
		c.join(u, c.sent)
		delete(c.requests, u)
	case inv != nil && inv.open() && !c.requests[u]:
		inv.uses++
		c.ask(u)
	case inv == nil && jc.TokenHash == "" && c.joinRequests && !c.requests[u]:
		c.ask(u)
	}
	if g.rng.IntN(6) == 0 { // a resend: a member now, or pending, or refused again
		again := g.cmd(c.id, u)
		again.Body = cmd.Body
		return []*pb.Command{cmd, again}
	}
	return []*pb.Command{cmd}
}

// ask records u's pending request.
func (c *genConv) ask(u string) {
	if c.requests == nil {
		c.requests = map[string]bool{}
	}
	c.requests[u] = true
}

// decide: a pending request approved or declined by who may add (mostly);
// refused: by a plain member while only admins may, of a user with no
// request.
func (g *generator) decide(c *genConv, cmd *pb.Command) {
	if c.addAdmins && g.rng.IntN(4) != 0 {
		as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	}
	u := cmd.GetUserId()
	target := g.stranger(c) // likely no request: NOT_FOUND
	if pending := slices.Sorted(maps.Keys(c.requests)); len(pending) > 0 && g.rng.IntN(5) != 0 {
		target = pending[g.rng.IntN(len(pending))]
	}
	if target == "" {
		target = c.members[0]
	}
	approve := g.rng.IntN(3) != 0
	cmd.Body = &pb.Command_DecideJoinRequest{DecideJoinRequest: &pb.DecideJoinRequest{UserId: target, Approve: approve}}
	if !c.group || !c.mayAdd(u) || !c.requests[target] {
		return
	}
	delete(c.requests, target)
	if approve {
		c.sent++
		c.join(target, c.sent)
	}
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// invitesView: a group's invitation links, ((conversation_id), invite_id).
// Every cell follows the version clock: InviteCreated writes the link's
// terms, InviteRevoked its revocation, and each use (MembersAdded.invite,
// JoinRequested.invite) writes uses = the decider's count at its version,
// so the newest use wins in any order of application.
type invitesView struct {
	created, revoked, used string
	selectAll, one         string
	rows                   jsonRows
}

const inviteColumns = "invite_id, created_by, created_at, expires_at, max_uses, requires_approval, uses, revoked_by, revoked_at"

func newInvites(keyspace string) invitesView {
	return invitesView{
		created: qualify(keyspace, `UPDATE ${keyspace}.invites USING TIMESTAMP ?
			SET created_by = ?, created_at = ?, expires_at = ?, max_uses = ?, requires_approval = ?
			WHERE conversation_id = ? AND invite_id = ?`),
		revoked: qualify(keyspace, `UPDATE ${keyspace}.invites USING TIMESTAMP ?
			SET revoked_by = ?, revoked_at = ? WHERE conversation_id = ? AND invite_id = ?`),
		used: qualify(keyspace, `UPDATE ${keyspace}.invites USING TIMESTAMP ?
			SET uses = ? WHERE conversation_id = ? AND invite_id = ?`),
		selectAll: qualify(keyspace, `SELECT `+inviteColumns+` FROM ${keyspace}.invites WHERE conversation_id = ?`),
		one:       qualify(keyspace, `SELECT `+inviteColumns+` FROM ${keyspace}.invites WHERE conversation_id = ? AND invite_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.invites`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.invites WHERE conversation_id = ?`), keyArity: 1,
		},
	}
}

func invitesPart(conv string) string { return "invites\x00" + conv }

func (v invitesView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	conv, ts := ev.GetConversationId(), versionTS(ev.GetVersion())
	use := func(u *pb.InviteUse) []stmt {
		if u.GetInviteId() == "" {
			return nil
		}
		return []stmt{upsert(v.used, invitesPart(conv), u.GetInviteId(), ts, u.GetUses(), conv, u.GetInviteId())}
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_InviteCreated:
		ic := b.InviteCreated
		var expires any
		if ic.GetExpiresAt() != nil {
			expires = ic.GetExpiresAt().AsTime()
		}
		return []stmt{upsert(v.created, invitesPart(conv), ic.GetInviteId(), ts, ev.GetActorUserId(), ev.occurredAt(), expires,
			ic.GetMaxUses(), ic.GetRequiresApproval(), conv, ic.GetInviteId())}, nil
	case *pb.Event_InviteRevoked:
		id := b.InviteRevoked.GetInviteId()
		return []stmt{upsert(v.revoked, invitesPart(conv), id, ts, ev.GetActorUserId(), ev.occurredAt(), conv, id)}, nil
	case *pb.Event_MembersAdded:
		return use(b.MembersAdded.GetInvite()), nil
	case *pb.Event_JoinRequested:
		return use(b.JoinRequested.GetInvite()), nil
	}
	return nil, nil
}

// Invite is a row of the invites view: an invitation link of a group.
type Invite struct {
	ID               string
	CreatedBy        string
	CreatedAt        time.Time
	ExpiresAt        time.Time // zero: never
	MaxUses          int       // 0: no limit
	RequiresApproval bool
	Uses             int
	RevokedBy        string // "" while not revoked
	RevokedAt        time.Time
}

func (i *Invite) dest() []any {
	return []any{&i.ID, &i.CreatedBy, &i.CreatedAt, &i.ExpiresAt, &i.MaxUses, &i.RequiresApproval, &i.Uses, &i.RevokedBy, &i.RevokedAt}
}

// Invites reads a group's invitation links (one partition; the decider
// keeps at most Limits.MaxInvites open, revoked ones stay), by id.
func (t *Tables) Invites(ctx context.Context, conv string) ([]Invite, error) {
	iter := t.s.Query(t.invites.selectAll, conv).IterContext(ctx)
	var out []Invite
	var i Invite
	for iter.Scan(i.dest()...) {
		out = append(out, i)
		i = Invite{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read invites: %w", err)
	}
	return out, nil
}

// joinRequestsView: a group's join requests, ((conversation_id), user_id).
// Every cell follows the version clock: JoinRequested writes a pending row,
// JoinRequestDeclined marks it declined, and a MembersAdded deletes the
// rows of the users it adds (whether or not they asked: a deletion of
// nothing costs a tombstone, a read would cost a round trip). A request
// again later is above the deletion.
type joinRequestsView struct {
	requested, declined, remove string
	selectAll, one              string
	rows                        jsonRows
}

const joinRequestColumns = "user_id, state, requested_at, invite_id, note, decided_by, decided_at"

func newJoinRequests(keyspace string) joinRequestsView {
	return joinRequestsView{
		requested: qualify(keyspace, `UPDATE ${keyspace}.join_requests USING TIMESTAMP ?
			SET state = 'pending', requested_at = ?, invite_id = ?, note = ?, decided_by = null, decided_at = null
			WHERE conversation_id = ? AND user_id = ?`),
		declined: qualify(keyspace, `UPDATE ${keyspace}.join_requests USING TIMESTAMP ?
			SET state = 'declined', decided_by = ?, decided_at = ? WHERE conversation_id = ? AND user_id = ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.join_requests USING TIMESTAMP ?
			WHERE conversation_id = ? AND user_id = ?`),
		selectAll: qualify(keyspace, `SELECT `+joinRequestColumns+` FROM ${keyspace}.join_requests WHERE conversation_id = ?`),
		one:       qualify(keyspace, `SELECT `+joinRequestColumns+` FROM ${keyspace}.join_requests WHERE conversation_id = ? AND user_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.join_requests`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.join_requests WHERE conversation_id = ?`), keyArity: 1,
		},
	}
}

func joinRequestsPart(conv string) string { return "join_requests\x00" + conv }

func (v joinRequestsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	conv, ts := ev.GetConversationId(), versionTS(ev.GetVersion())
	switch b := ev.GetBody().(type) {
	case *pb.Event_JoinRequested:
		jr := b.JoinRequested
		var invite, note any
		if id := jr.GetInvite().GetInviteId(); id != "" {
			invite = id
		}
		if jr.GetNote() != "" {
			note = jr.GetNote()
		}
		return []stmt{upsert(v.requested, joinRequestsPart(conv), jr.GetUserId(), ts, ev.occurredAt(), invite, note, conv, jr.GetUserId())}, nil
	case *pb.Event_JoinRequestDeclined:
		u := b.JoinRequestDeclined.GetUserId()
		return []stmt{upsert(v.declined, joinRequestsPart(conv), u, ts, ev.GetActorUserId(), ev.occurredAt(), conv, u)}, nil
	case *pb.Event_MembersAdded:
		var out []stmt
		for _, u := range b.MembersAdded.GetUserIds() {
			out = append(out, upsert(v.remove, joinRequestsPart(conv), u, ts, conv, u))
		}
		return out, nil
	}
	return nil, nil
}

// JoinRequest is a row of the join_requests view.
type JoinRequest struct {
	UserID      string
	State       string // "pending" or "declined"
	RequestedAt time.Time
	InviteID    string // "" when not by a link
	Note        string
	DecidedBy   string
	DecidedAt   time.Time
}

func (r *JoinRequest) dest() []any {
	return []any{&r.UserID, &r.State, &r.RequestedAt, &r.InviteID, &r.Note, &r.DecidedBy, &r.DecidedAt}
}

// JoinRequests reads a group's join requests, pending and declined, by
// user id (one partition; at most Limits.MaxJoinRequests pending).
func (t *Tables) JoinRequests(ctx context.Context, conv string) ([]JoinRequest, error) {
	iter := t.s.Query(t.joinRequests.selectAll, conv).IterContext(ctx)
	var out []JoinRequest
	var r JoinRequest
	for iter.Scan(r.dest()...) {
		out = append(out, r)
		r = JoinRequest{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read join requests: %w", err)
	}
	return out, nil
}

// JoinRequestOf reads user's join request to conv; found is false when
// there is none (never asked, or added since).
func (t *Tables) JoinRequestOf(ctx context.Context, conv, user string) (r JoinRequest, found bool, err error) {
	err = t.s.Query(t.joinRequests.one, conv, user).ScanContext(ctx, r.dest()...)
	if errors.Is(err, gocql.ErrNotFound) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("projector: read join request: %w", err)
	}
	return r, true, nil
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// membersView: one row per (conversation, user), current and former members.
//
//   - joined_seq, joined_at, removed, removed_seq, removed_reason
//     follow the timeline: written at creationTS by ConversationCreated and
//     at seqTS(seq) by MembersAdded and MemberRemoved. A removal at seq s
//     sets removed (and the removal cells) above everything written before s;
//     a re-add at s2 > s sets removed = false and joined_seq = s2 above the
//     removal, in whatever order the two are applied. removed_seq and
//     removed_reason describe the latest removal and stay after a re-add
//     (nulling them would write tombstones, and a replay of the removal
//     after the re-add would need them to order against): read removed
//     first. removed_version (the removal's Event.version) goes with them.
//   - read_seq, delivered_seq are watermarks written at markTS(value): the
//     highest mark wins. MessageSent sets the sender's two marks to its seq,
//     ReadUpTo sets both (read implies delivered), DeliveredUpTo the
//     delivered one; joining sets both to the joining seq (0 at creation).
//     Where a write is both a timeline and a watermark write (joining,
//     sending) the two clocks agree: the value is the seq.
//   - role follows the version clock, in a statement of its own:
//     ConversationCreated writes it at creationTS ('owner' for a group's
//     creator, else 'member'), MembersAdded 'member' at versionTS(version)
//     (a re-added member is a plain one again, above any role it had),
//     MemberRoleChanged its role ('admin' or 'member'), OwnershipTransferred
//     'owner' for the new owner and, on a transfer (not when the owner
//     left), 'admin' for the old one. A log from before versions has no
//     role changes: there MembersAdded writes it at seqTS(seq), as before.
//   - muted, muted_until, muted_by follow the version clock: MemberMuted
//     sets muted = true, muted_until (null: until unmuted) and muted_by at
//     versionTS(version), MemberUnmuted muted = false and muted_until =
//     null, and MemberRemoved muted = false at its own version, so a member
//     added back starts unmuted; so does OwnershipTransferred for the new
//     owner (nobody mutes the owner). muted_until and muted_by mean something
//     only while muted is true.
type membersView struct {
	created, added, removed, marks, delivered string
	role, mute, unmute, unmuteRemoved         string
	selectRow, selectAll, selectUserIDs       string
	rows                                      jsonRows
}

const memberColumns = "user_id, role, joined_seq, read_seq, delivered_seq, removed, removed_version, muted, muted_until, muted_by"

func newMembers(keyspace string) membersView {
	return membersView{
		created: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET role = ?, joined_seq = 0, joined_at = ?, read_seq = 0, delivered_seq = 0, removed = false
			WHERE conversation_id = ? AND user_id = ?`),
		added: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET joined_seq = ?, joined_at = ?, read_seq = ?, delivered_seq = ?, removed = false
			WHERE conversation_id = ? AND user_id = ?`),
		role: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET role = ? WHERE conversation_id = ? AND user_id = ?`),
		mute: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET muted = true, muted_until = ?, muted_by = ? WHERE conversation_id = ? AND user_id = ?`),
		unmute: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET muted = false, muted_until = null WHERE conversation_id = ? AND user_id = ?`),
		unmuteRemoved: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET muted = false WHERE conversation_id = ? AND user_id = ?`),
		removed: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET removed = true, removed_seq = ?, removed_reason = ?, removed_version = ?
			WHERE conversation_id = ? AND user_id = ?`),
		marks: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET read_seq = ?, delivered_seq = ?
			WHERE conversation_id = ? AND user_id = ?`),
		delivered: qualify(keyspace, `UPDATE ${keyspace}.members USING TIMESTAMP ?
			SET delivered_seq = ?
			WHERE conversation_id = ? AND user_id = ?`),
		selectRow:     qualify(keyspace, `SELECT `+memberColumns+` FROM ${keyspace}.members WHERE conversation_id = ? AND user_id = ?`),
		selectAll:     qualify(keyspace, `SELECT `+memberColumns+` FROM ${keyspace}.members WHERE conversation_id = ?`),
		selectUserIDs: qualify(keyspace, `SELECT user_id FROM ${keyspace}.members WHERE conversation_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.members`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.members WHERE conversation_id = ?`), keyArity: 1,
		},
	}
}

func (v membersView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	id, seq, actor := ev.GetConversationId(), ev.GetSeq(), ev.GetActorUserId()
	switch ev.typ {
	case schemas.TypeConversationCreated:
		c := ev.GetConversationCreated()
		out := make([]stmt, 0, len(c.GetMemberUserIds()))
		for i, u := range c.GetMemberUserIds() {
			out = append(out, upsert(v.created, membersPart(id), u, creationTS, createdRole(c.GetKind(), i), ev.occurredAt(), id, u))
		}
		return out, nil
	case schemas.TypeMembersAdded:
		users := ev.GetMembersAdded().GetUserIds()
		roleAt := seqTS(seq) // a log from before versions
		if ver := ev.GetVersion(); ver > 0 {
			roleAt = versionTS(ver)
		}
		out := make([]stmt, 0, 2*len(users))
		for _, u := range users {
			out = append(out, upsert(v.added, membersPart(id), u, seqTS(seq), seq, ev.occurredAt(), seq, seq, id, u),
				upsert(v.role, membersPart(id), u, roleAt, "member", id, u))
		}
		return out, nil
	case schemas.TypeMemberRemoved:
		r := ev.GetMemberRemoved()
		out := []stmt{upsert(v.removed, membersPart(id), r.GetUserId(), seqTS(seq), seq, reasonName(r.GetReason()), ev.GetVersion(), id, r.GetUserId())}
		if ver := ev.GetVersion(); ver > 0 { // no mutes before versions
			out = append(out, upsert(v.unmuteRemoved, membersPart(id), r.GetUserId(), versionTS(ver), id, r.GetUserId()))
		}
		return out, nil
	case schemas.TypeMemberRoleChanged:
		r := ev.GetMemberRoleChanged()
		return []stmt{upsert(v.role, membersPart(id), r.GetUserId(), versionTS(ev.GetVersion()), roleName(r.GetRole()), id, r.GetUserId())}, nil
	case schemas.TypeOwnershipTransferred:
		o, ts := ev.GetOwnershipTransferred(), versionTS(ev.GetVersion())
		// The owner is never muted: becoming owner ends a mute.
		out := []stmt{upsert(v.role, membersPart(id), o.GetToUserId(), ts, "owner", id, o.GetToUserId()),
			upsert(v.unmuteRemoved, membersPart(id), o.GetToUserId(), ts, id, o.GetToUserId())}
		if o.GetReason() == pb.OwnershipTransferReason_OWNERSHIP_TRANSFER_REASON_TRANSFERRED {
			// When the owner left it is no member any more: its row keeps
			// the role it left with.
			out = append(out, upsert(v.role, membersPart(id), o.GetFromUserId(), ts, "admin", id, o.GetFromUserId()))
		}
		return out, nil
	case schemas.TypeMemberMuted:
		m := ev.GetMemberMuted()
		var until any
		if m.GetUntil() != nil {
			until = m.GetUntil().AsTime()
		}
		return []stmt{upsert(v.mute, membersPart(id), m.GetUserId(), versionTS(ev.GetVersion()), until, actor, id, m.GetUserId())}, nil
	case schemas.TypeMemberUnmuted:
		u := ev.GetMemberUnmuted().GetUserId()
		return []stmt{upsert(v.unmute, membersPart(id), u, versionTS(ev.GetVersion()), id, u)}, nil
	case schemas.TypeMessageSent:
		return []stmt{upsert(v.marks, membersPart(id), actor, markTS(seq), seq, seq, id, actor)}, nil
	case schemas.TypeReadUpTo:
		up := ev.GetReadUpTo().GetUpToSeq()
		return []stmt{upsert(v.marks, membersPart(id), actor, markTS(up), up, up, id, actor)}, nil
	case schemas.TypeDeliveredUpTo:
		up := ev.GetDeliveredUpTo().GetUpToSeq()
		return []stmt{upsert(v.delivered, membersPart(id), actor, markTS(up), up, id, actor)}, nil
	}
	return nil, nil
}

// createdRole is the role of the i-th initial member: the creator (listed
// first) owns a group; everyone else, and both users of a direct
// conversation, are members.
func createdRole(kind pb.ConversationKind, i int) string {
	if i == 0 && kind == pb.ConversationKind_CONVERSATION_KIND_GROUP {
		return "owner"
	}
	return "member"
}

// userIDs reads the user id of every members row of id, current or former,
// for the inbox's copy of the conversation's kind and title.
func (v membersView) userIDs(ctx context.Context, s *gocql.Session, id string) ([]string, error) {
	iter := s.Query(v.selectUserIDs, id).IterContext(ctx)
	var out []string
	var u string
	for iter.Scan(&u) {
		out = append(out, u)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read members of %s: %w", id, err)
	}
	return out, nil
}

// Member is a row of the members view: a current member, or a former one
// when Removed.
type Member struct {
	UserID                           string
	Role                             string // "owner", "admin" or "member"
	JoinedSeq, ReadSeq, DeliveredSeq int64
	Removed                          bool
	// RemovedVersion is the version of the latest removal (0 when never
	// removed, or removed in a log from before versions).
	RemovedVersion int64
	// Muted: muted by MutedBy until MutedUntil (zero: until unmuted). The
	// view does not expire a mute: one whose MutedUntil has passed is
	// still Muted here, and no longer in force. MutedUntil and MutedBy are
	// zero when not Muted.
	Muted      bool
	MutedUntil time.Time
	MutedBy    string
}

// dest is where a read of memberColumns scans one row into; done finishes
// the row.
func (m *Member) dest(rv **int64) []any {
	return []any{&m.UserID, &m.Role, &m.JoinedSeq, &m.ReadSeq, &m.DeliveredSeq, &m.Removed, rv, &m.Muted, &m.MutedUntil, &m.MutedBy}
}

func (m *Member) done(rv *int64) {
	if rv != nil {
		m.RemovedVersion = *rv
	}
	if !m.Muted {
		// What a removal or an unmute left behind.
		m.MutedUntil, m.MutedBy = time.Time{}, ""
	}
}

// Member reads user's members row in conv; found is false when there is
// none.
func (t *Tables) Member(ctx context.Context, conv, user string) (m Member, found bool, err error) {
	var rv *int64
	err = t.s.Query(t.members.selectRow, conv, user).ScanContext(ctx, m.dest(&rv)...)
	m.done(rv)
	if errors.Is(err, gocql.ErrNotFound) {
		return Member{}, false, nil
	}
	if err != nil {
		return Member{}, false, fmt.Errorf("projector: read members: %w", err)
	}
	return m, true, nil
}

// IsMember is the membership check of every reader: user is a current
// member of conv. A conversation that does not exist (or is not projected
// yet) has no members.
func (t *Tables) IsMember(ctx context.Context, conv, user string) (bool, error) {
	m, found, err := t.Member(ctx, conv, user)
	return found && !m.Removed, err
}

// Members reads every members row of conv, current and former (Removed),
// ordered by user id.
func (t *Tables) Members(ctx context.Context, conv string) ([]Member, error) {
	iter := t.s.Query(t.members.selectAll, conv).IterContext(ctx)
	var out []Member
	var m Member
	var rv *int64
	for iter.Scan(m.dest(&rv)...) {
		m.done(rv)
		out = append(out, m)
		m, rv = Member{}, nil
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read members: %w", err)
	}
	return out, nil
}

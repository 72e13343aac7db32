package projector

import (
	"context"
	"errors"
	"fmt"
	"sync"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/sync/errgroup"

	"github.com/parley-im/parley/schemas"
)

// inboxView: one row per (user, conversation) the user ever belonged to,
// written only by membership events (fan-out on read: a message writes no
// inbox row; the query service joins conversations and members).
//
//   - joined_seq, removed, removed_seq follow the timeline like the same
//     cells of members: creationTS for ConversationCreated, seqTS(seq) for
//     MembersAdded and MemberRemoved.
//   - kind, title never change and are always written at creationTS: the
//     title as the group was created. A rename changes the conversations
//     row only (readers prefer its title; this one is the fallback until
//     that row is there).
//     MembersAdded does not carry them, so it copies them from the
//     conversations row. For that copy to be order-independent,
//     ConversationCreated also writes them for every user already in the
//     members table beyond its initial members: whichever of
//     ConversationCreated and MembersAdded is applied second sees the
//     other's writes (in log order, always ConversationCreated first).
//   - deleted: ConversationDeleted, for each member it names, at
//     versionTS(version). Nothing else writes it, and nothing changes the
//     members after it, so no order of application loses it. Readers skip
//     a deleted row like a removed one.
type inboxView struct {
	created, kindTitle, added, removed string
	deleted                            string
	selectAll, selectTitle             string
	rows                               jsonRows
	// The reads of the copy, owned by their tables.
	conversations conversationsView
	members       membersView
	// titles is set when events are applied in log order (a rebuild, see
	// writer.go): then no read is needed, see plan.
	titles *titles
}

func newInbox(keyspace string) inboxView {
	return inboxView{
		created: qualify(keyspace, `UPDATE ${keyspace}.inbox USING TIMESTAMP ?
			SET kind = ?, title = ?, joined_seq = 0, removed = false
			WHERE user_id = ? AND conversation_id = ?`),
		kindTitle: qualify(keyspace, `UPDATE ${keyspace}.inbox USING TIMESTAMP ?
			SET kind = ?, title = ?
			WHERE user_id = ? AND conversation_id = ?`),
		added: qualify(keyspace, `UPDATE ${keyspace}.inbox USING TIMESTAMP ?
			SET joined_seq = ?, removed = false
			WHERE user_id = ? AND conversation_id = ?`),
		removed: qualify(keyspace, `UPDATE ${keyspace}.inbox USING TIMESTAMP ?
			SET removed = true, removed_seq = ?
			WHERE user_id = ? AND conversation_id = ?`),
		deleted: qualify(keyspace, `UPDATE ${keyspace}.inbox USING TIMESTAMP ?
			SET deleted = true
			WHERE user_id = ? AND conversation_id = ?`),
		selectAll:   qualify(keyspace, `SELECT conversation_id, kind, title, joined_seq, removed, deleted FROM ${keyspace}.inbox WHERE user_id = ?`),
		selectTitle: qualify(keyspace, `SELECT title FROM ${keyspace}.inbox WHERE user_id = ? AND conversation_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.inbox`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.inbox WHERE user_id = ? AND conversation_id = ?`), keyArity: 2,
		},
		conversations: newConversations(keyspace),
		members:       newMembers(keyspace),
	}
}

func (v inboxView) plan(ctx context.Context, s *gocql.Session, ev *event) ([]stmt, error) {
	id, seq := ev.GetConversationId(), ev.GetSeq()
	switch ev.typ {
	case schemas.TypeConversationCreated:
		c := ev.GetConversationCreated()
		kind, title := kindName(c.GetKind()), c.GetTitle()
		initial := make(map[string]bool, len(c.GetMemberUserIds()))
		var out []stmt
		for _, u := range c.GetMemberUserIds() {
			initial[u] = true
			out = append(out, upsert(v.created, inboxPart(u), id, creationTS, kind, title, u, id))
		}
		if v.titles != nil {
			// In log order nobody can have been added before the creation.
			if v.titles != nil {
				v.titles.put(id, kind, title)
			}
			return out, nil
		}
		// Users added before this event was (re)applied: only in a replay
		// out of log order. In log order this finds the initial members.
		users, err := v.members.userIDs(ctx, s, id)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			if !initial[u] {
				out = append(out, upsert(v.kindTitle, inboxPart(u), id, creationTS, kind, title, u, id))
			}
		}
		return out, nil

	case schemas.TypeMembersAdded:
		users := ev.GetMembersAdded().GetUserIds()
		kind, title, ok := v.titles.get(id)
		if !ok {
			var err error
			if kind, title, err = v.creationKindTitle(ctx, s, id); err != nil {
				return nil, err
			}
			// Kind and title never change: the next MembersAdded of this
			// group needs no read (put keeps groups only, so a row not
			// written yet is not remembered).
			if v.titles != nil {
				v.titles.put(id, kind, title)
			}
		}
		out := make([]stmt, 0, 2*len(users))
		for _, u := range users {
			out = append(out, upsert(v.added, inboxPart(u), id, seqTS(seq), seq, u, id))
			// kind is set together with title, by ConversationCreated; without
			// it the row is not there yet, and ConversationCreated will copy
			// both when it is applied.
			if kind != "" {
				out = append(out, upsert(v.kindTitle, inboxPart(u), id, creationTS, kind, title, u, id))
			}
		}
		return out, nil

	case schemas.TypeMemberRemoved:
		u := ev.GetMemberRemoved().GetUserId()
		return []stmt{upsert(v.removed, inboxPart(u), id, seqTS(seq), seq, u, id)}, nil

	case schemas.TypeConversationDeleted:
		users := ev.GetConversationDeleted().GetMemberUserIds()
		out := make([]stmt, 0, len(users))
		for _, u := range users {
			out = append(out, upsert(v.deleted, inboxPart(u), id, versionTS(ev.GetVersion()), u, id))
		}
		return out, nil
	}
	return nil, nil
}

// creationKindTitle is the kind and the creation-time title of id, as
// ConversationCreated wrote them (empty when it is not applied yet). Once a
// group is renamed its conversations row holds the new title; the
// creation's is then read from the creator's inbox row, which
// ConversationCreated wrote with it and nothing rewrites (every write of
// inbox.title is a copy of it, at creationTS). So the copy is the same
// whenever MembersAdded is applied, before or after a rename.
func (v inboxView) creationKindTitle(ctx context.Context, s *gocql.Session, id string) (kind, title string, err error) {
	kind, title, creator, renamed, err := v.conversations.kindTitle(ctx, s, id)
	if err != nil || kind == "" || creator == "" {
		// Not created yet (a rename may be applied before it, out of log
		// order): ConversationCreated copies both when it is.
		return "", "", err
	}
	if !renamed {
		return kind, title, nil
	}
	err = s.Query(v.selectTitle, creator, id).ScanContext(ctx, &title)
	if errors.Is(err, gocql.ErrNotFound) {
		// Only a lost row: leave the copy to ConversationCreated's replay.
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("projector: read inbox of %s: %w", id, err)
	}
	return kind, title, nil
}

// InboxEntry is a row of the inbox view: a conversation the user belongs
// to, or belonged to when Removed, or that was deleted (Deleted).
type InboxEntry struct {
	ConversationID string
	Kind, Title    string // empty until ConversationCreated is applied
	JoinedSeq      int64
	Removed        bool
	// Deleted: the conversation was deleted (ConversationDeleted); it is
	// not the user's any more, like a removed one.
	Deleted bool
}

// Gone reports whether the row names no conversation of the user's: it
// was removed from it, or the conversation was deleted.
func (e InboxEntry) Gone() bool { return e.Removed || e.Deleted }

// Inbox reads every inbox row of user, removed and deleted ones included,
// ordered by conversation id.
func (t *Tables) Inbox(ctx context.Context, user string) ([]InboxEntry, error) {
	iter := t.s.Query(t.inbox.selectAll, user).IterContext(ctx)
	var out []InboxEntry
	var r InboxEntry
	for iter.Scan(&r.ConversationID, &r.Kind, &r.Title, &r.JoinedSeq, &r.Removed, &r.Deleted) {
		out = append(out, r)
		r = InboxEntry{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read inbox: %w", err)
	}
	return out, nil
}

// UnreadTotal is user's unread total over the conversations it is in, as
// query's /v1/unread counts it: the sum of last_seq − read_seq (never
// below 0). It reads the inbox, then each conversation's last seq and the
// user's read mark, unreadWorkers at a time.
func (t *Tables) UnreadTotal(ctx context.Context, user string) (int64, error) {
	entries, err := t.Inbox(ctx, user)
	if err != nil {
		return 0, err
	}
	var (
		mu    sync.Mutex
		total int64
	)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(unreadWorkers)
	for _, e := range entries {
		if e.Gone() {
			continue
		}
		g.Go(func() error {
			last, _, err := t.LastSeq(ctx, e.ConversationID)
			if err != nil {
				return err
			}
			m, _, err := t.Member(ctx, e.ConversationID, user)
			if err != nil {
				return err
			}
			mu.Lock()
			total += max(0, last-m.ReadSeq)
			mu.Unlock()
			return nil
		})
	}
	return total, g.Wait()
}

// unreadWorkers bounds UnreadTotal's concurrent reads.
const unreadWorkers = 16

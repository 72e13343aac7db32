package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// prefsView: one user's settings for one conversation, ((user_id),
// conversation_id), written by ConversationPrefsChanged of the user's stream
// (the owner is the event's actor: decode checks the stream is its). Every
// cell follows the user stream's version clock, a statement per field, so
// each field is the newest change of it in any order of application and a
// batch writes each field of a row once:
//
//   - mute: muted_forever and muted_until together (a Mute with neither
//     writes false and null: not muted);
//   - pinned: pinned and pinned_at (the event's time when pinned, null when
//     unpinned);
//   - archived_up_to_seq, unread_marked_at_seq: as set (0 clears);
//   - updated_at: every ConversationPrefsChanged.
//
// Fields the event does not carry are not written. Nothing is read: the
// derived states (archived, marked unread, muted now) are the readers'.
type prefsView struct {
	mute, pin, archived, marked, updated string
	selectUser                           string
	rows                                 jsonRows
}

func newPrefs(keyspace string) prefsView {
	set := func(cols string) string {
		return qualify(keyspace, `UPDATE ${keyspace}.conversation_prefs USING TIMESTAMP ? SET `+cols+
			` WHERE user_id = ? AND conversation_id = ?`)
	}
	return prefsView{
		mute:     set("muted_forever = ?, muted_until = ?"),
		pin:      set("pinned = ?, pinned_at = ?"),
		archived: set("archived_up_to_seq = ?"),
		marked:   set("unread_marked_at_seq = ?"),
		updated:  set("updated_at = ?"),
		selectUser: qualify(keyspace, `SELECT conversation_id, muted_forever, muted_until, pinned, pinned_at,
			archived_up_to_seq, unread_marked_at_seq, updated_at FROM ${keyspace}.conversation_prefs WHERE user_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.conversation_prefs`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.conversation_prefs WHERE user_id = ?`), keyArity: 1,
		},
	}
}

func prefsPart(user string) string { return "conversation_prefs\x00" + user }

func (v prefsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	p := ev.GetConversationPrefsChanged()
	if p == nil {
		return nil, nil
	}
	user, conv, ts := ev.GetActorUserId(), p.GetConversationId(), versionTS(ev.GetVersion())
	part := prefsPart(user)
	var out []stmt
	set := func(cql string, vals ...any) {
		out = append(out, upsert(cql, part, conv, append(append([]any{ts}, vals...), user, conv)...))
	}
	if p.Mute != nil {
		var until any
		if u := p.GetMute().GetUntil(); u != nil && !p.GetMute().GetForever() {
			until = u.AsTime()
		}
		set(v.mute, p.GetMute().GetForever(), until)
	}
	if p.Pinned != nil {
		var at any
		if p.GetPinned() {
			at = ev.occurredAt()
		}
		set(v.pin, p.GetPinned(), at)
	}
	if p.ArchivedUpToSeq != nil {
		set(v.archived, p.GetArchivedUpToSeq())
	}
	if p.UnreadMarkedAtSeq != nil {
		set(v.marked, p.GetUnreadMarkedAtSeq())
	}
	set(v.updated, ev.occurredAt())
	return out, nil
}

// Prefs is a row of conversation_prefs: one user's own settings for one
// conversation, as stored. The derived states need the conversation and
// the member: see MutedAt, Archived, MarkedUnread.
type Prefs struct {
	ConversationID    string
	MutedForever      bool
	MutedUntil        time.Time // zero: no timed mute
	Pinned            bool
	PinnedAt          time.Time
	ArchivedUpToSeq   int64 // > 0: archived as of this seq
	UnreadMarkedAtSeq int64 // > 0: marked unread while read_seq <= it
	UpdatedAt         time.Time
}

// MutedAt reports whether the conversation is muted at now: forever, or
// until a time after now.
func (p Prefs) MutedAt(now time.Time) bool {
	return p.MutedForever || (!p.MutedUntil.IsZero() && now.Before(p.MutedUntil))
}

// Archived is the derived archive state: archived_up_to_seq > 0 and no
// message beyond it (lastMessageSeq, the conversation's), or muted now.
func (p Prefs) Archived(lastMessageSeq int64, now time.Time) bool {
	return p.ArchivedUpToSeq > 0 && (lastMessageSeq <= p.ArchivedUpToSeq || p.MutedAt(now))
}

// MarkedUnread is the derived mark: unread_marked_at_seq > 0 and the
// member's read mark not beyond it.
func (p Prefs) MarkedUnread(readSeq int64) bool {
	return p.UnreadMarkedAtSeq > 0 && readSeq <= p.UnreadMarkedAtSeq
}

// ConversationPrefs reads every conversation_prefs row of user (one
// partition), by conversation id. Rows may name conversations the user is
// not in: readers show those it is in.
func (t *Tables) ConversationPrefs(ctx context.Context, user string) (map[string]Prefs, error) {
	iter := t.s.Query(t.prefs.selectUser, user).IterContext(ctx)
	out := map[string]Prefs{}
	var p Prefs
	for iter.Scan(&p.ConversationID, &p.MutedForever, &p.MutedUntil, &p.Pinned, &p.PinnedAt,
		&p.ArchivedUpToSeq, &p.UnreadMarkedAtSeq, &p.UpdatedAt) {
		out[p.ConversationID] = p
		p = Prefs{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read conversation_prefs: %w", err)
	}
	return out, nil
}

package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/sync/errgroup"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// mentionsView: mentions, one row per (mentioned user, conversation,
// message), ((user_id), conversation_id, seq), and mentions_all, one row per
// @all message, ((conversation_id), seq). Every cell follows the version
// clock: a MessageSent inserts a mentions row for each of its
// mention_user_ids, or its mentions_all row when mention_all, at
// versionTS(version); the message's MessageRecalled deletes them at its
// own. A recall reads which users the message mentioned from the
// MessageSent the messages row keeps (messagesView.recalledSend; the recall
// keeps the mention fields when it takes the content out, so a replayed
// recall finds them again), which is why a recall starts its batch
// (writer.go). Without the stored send (only a lost row, or a recall
// applied before its send out of log order) the mentions rows are not
// deleted; the mentions_all row is, whatever the send said.
type mentionsView struct {
	insert, insertAll, remove, removeAll string
	selectUser, selectAll                string
	countUser, countAll                  string
	messages                             messagesView
	rows, rowsAll                        jsonRows
}

func newMentions(keyspace string) mentionsView {
	return mentionsView{
		messages: newMessages(keyspace),
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.mentions (user_id, conversation_id, seq, sender_user_id, occurred_at)
			VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		insertAll: qualify(keyspace, `INSERT INTO ${keyspace}.mentions_all (conversation_id, seq, sender_user_id, occurred_at)
			VALUES (?, ?, ?, ?) USING TIMESTAMP ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.mentions USING TIMESTAMP ?
			WHERE user_id = ? AND conversation_id = ? AND seq = ?`),
		removeAll: qualify(keyspace, `DELETE FROM ${keyspace}.mentions_all USING TIMESTAMP ?
			WHERE conversation_id = ? AND seq = ?`),
		selectUser: qualify(keyspace, `SELECT seq, sender_user_id, occurred_at FROM ${keyspace}.mentions
			WHERE user_id = ? AND conversation_id = ? AND seq > ? LIMIT ?`),
		selectAll: qualify(keyspace, `SELECT seq, sender_user_id, occurred_at FROM ${keyspace}.mentions_all
			WHERE conversation_id = ? AND seq > ? LIMIT ?`),
		countUser: qualify(keyspace, `SELECT COUNT(*) FROM ${keyspace}.mentions WHERE user_id = ? AND conversation_id = ? AND seq > ?`),
		countAll:  qualify(keyspace, `SELECT COUNT(*) FROM ${keyspace}.mentions_all WHERE conversation_id = ? AND seq > ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.mentions`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.mentions WHERE user_id = ?`), keyArity: 1,
		},
		rowsAll: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.mentions_all`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.mentions_all WHERE conversation_id = ?`), keyArity: 1,
		},
	}
}

func mentionsPart(user string) string    { return "mentions\x00" + user }
func mentionsAllPart(conv string) string { return "mentions_all\x00" + conv }

func (v mentionsView) plan(ctx context.Context, s *gocql.Session, ev *event) ([]stmt, error) {
	conv, ts := ev.GetConversationId(), versionTS(ev.GetVersion())
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessageSent:
		m, seq, sender := b.MessageSent, ev.GetSeq(), ev.GetActorUserId()
		var out []stmt
		if m.GetMentionAll() {
			out = append(out, stmt{v.insertAll, []any{conv, seq, sender, ev.occurredAt(), ts}, mentionsAllPart(conv), "", ts})
		}
		for _, u := range m.GetMentionUserIds() {
			out = append(out, stmt{v.insert, []any{u, conv, seq, sender, ev.occurredAt(), ts}, mentionsPart(u), "", ts})
		}
		return out, nil
	case *pb.Event_MessageRecalled:
		seq := b.MessageRecalled.GetMessageSeq()
		sent, err := v.messages.recalledSend(ctx, s, ev)
		if err != nil {
			return nil, err
		}
		var out []stmt
		if sent == nil || sent.GetMessageSent().GetMentionAll() {
			out = append(out, upsert(v.removeAll, mentionsAllPart(conv), "", ts, conv, seq))
		}
		for _, u := range sent.GetMessageSent().GetMentionUserIds() {
			out = append(out, upsert(v.remove, mentionsPart(u), "", ts, u, conv, seq))
		}
		return out, nil
	}
	return nil, nil
}

// Mention is a row of mentions (All false: the user was named) or of
// mentions_all (All: the message mentioned @all).
type Mention struct {
	Seq        int64
	Sender     string
	OccurredAt time.Time
	All        bool
}

// Mentions reads the mentions of user in conv with seq > afterSeq, newest
// first, up to limit (one query).
func (t *Tables) Mentions(ctx context.Context, user, conv string, afterSeq int64, limit int) ([]Mention, error) {
	return t.mentions.read(ctx, t.s, t.mentions.selectUser, false, limit, user, conv, afterSeq, limit)
}

// MentionsAll reads the @all mentions of conv with seq > afterSeq, newest
// first, up to limit (one query). Every member at the message's seq is
// mentioned, its sender too: readers skip what the user sent itself and
// what came before the user joined.
func (t *Tables) MentionsAll(ctx context.Context, conv string, afterSeq int64, limit int) ([]Mention, error) {
	return t.mentions.read(ctx, t.s, t.mentions.selectAll, true, limit, conv, afterSeq, limit)
}

func (v mentionsView) read(ctx context.Context, s *gocql.Session, cql string, all bool, limit int, args ...any) ([]Mention, error) {
	if limit <= 0 {
		return nil, nil
	}
	iter := s.Query(cql, args...).IterContext(ctx)
	var out []Mention
	m := Mention{All: all}
	for iter.Scan(&m.Seq, &m.Sender, &m.OccurredAt) {
		out = append(out, m)
		m = Mention{All: all}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read mentions: %w", err)
	}
	return out, nil
}

// CountMentions counts the mentions of user in conv with seq > afterSeq:
// the mentions rows naming user plus the mentions_all rows, two COUNTs over
// one partition slice each, run alongside each other. With afterSeq the
// user's read_seq this is its unread mentions: the read mark is at least
// its joined seq (an @all before it joined is not counted) and a message
// moves its sender's mark to its seq (its own @all is not either). Cassandra
// counts by reading the slice, so the cost grows with the unread mentions.
func (t *Tables) CountMentions(ctx context.Context, user, conv string, afterSeq int64) (int64, error) {
	var named, all int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return t.s.Query(t.mentions.countUser, user, conv, afterSeq).ScanContext(gctx, &named) })
	g.Go(func() error { return t.s.Query(t.mentions.countAll, conv, afterSeq).ScanContext(gctx, &all) })
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("projector: count mentions: %w", err)
	}
	return named + all, nil
}

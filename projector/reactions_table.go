package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// reactionsView: the current reactions, one row per (message, emoji,
// user), ((conversation_id, bucket), message_seq, emoji, user_id) with the
// messages view's buckets. Every cell follows the version clock: a
// ReactionAdded inserts the row at versionTS(version), a ReactionRemoved
// deletes it at its own, and the message's recall deletes all of the
// message's rows at its own. The decider emits an add only for a reaction
// that is not there and a removal only for one that is, so the rows are the
// adds minus the removes.
type reactionsView struct {
	insert, remove, removeAll string
	selectRange               string
	rows                      jsonRows
}

func newReactions(keyspace string) reactionsView {
	return reactionsView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.reactions (conversation_id, bucket, message_seq, emoji, user_id, reacted_at)
			VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.reactions USING TIMESTAMP ?
			WHERE conversation_id = ? AND bucket = ? AND message_seq = ? AND emoji = ? AND user_id = ?`),
		removeAll: qualify(keyspace, `DELETE FROM ${keyspace}.reactions USING TIMESTAMP ?
			WHERE conversation_id = ? AND bucket = ? AND message_seq = ?`),
		selectRange: qualify(keyspace, `SELECT message_seq, emoji, user_id, reacted_at FROM ${keyspace}.reactions
			WHERE conversation_id = ? AND bucket = ? AND message_seq >= ? AND message_seq <= ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.reactions`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.reactions WHERE conversation_id = ? AND bucket = ?`), keyArity: 2,
		},
	}
}

func reactionsPart(conv string, seq int64) string {
	return fmt.Sprintf("reactions\x00%s\x00%d", conv, schemas.Bucket(seq))
}

func (v reactionsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	conv, ts, user := ev.GetConversationId(), versionTS(ev.GetVersion()), ev.GetActorUserId()
	switch b := ev.GetBody().(type) {
	case *pb.Event_ReactionAdded:
		r := b.ReactionAdded
		seq := r.GetMessageSeq()
		return []stmt{{v.insert, []any{conv, schemas.Bucket(seq), seq, r.GetEmoji(), user, ev.occurredAt(), ts}, reactionsPart(conv, seq), "", ts}}, nil
	case *pb.Event_ReactionRemoved:
		r := b.ReactionRemoved
		seq := r.GetMessageSeq()
		return []stmt{upsert(v.remove, reactionsPart(conv, seq), "", ts, conv, schemas.Bucket(seq), seq, r.GetEmoji(), user)}, nil
	case *pb.Event_MessageRecalled:
		seq := b.MessageRecalled.GetMessageSeq()
		return []stmt{upsert(v.removeAll, reactionsPart(conv, seq), "", ts, conv, schemas.Bucket(seq), seq)}, nil
	}
	return nil, nil
}

// Reaction is a row of the reactions view.
type Reaction struct {
	MessageSeq int64
	Emoji      string
	UserID     string
	ReactedAt  time.Time
}

// Reactions reads the reactions of the messages of conv with from <= seq <=
// to, ordered by seq, emoji and user; one query per bucket of the range.
func (t *Tables) Reactions(ctx context.Context, conv string, from, to int64) ([]Reaction, error) {
	var out []Reaction
	if from < 1 {
		from = 1
	}
	for b := schemas.Bucket(from); from <= to && b <= schemas.Bucket(to); b++ {
		iter := t.s.Query(t.reactions.selectRange, conv, b, from, to).IterContext(ctx)
		var r Reaction
		for iter.Scan(&r.MessageSeq, &r.Emoji, &r.UserID, &r.ReactedAt) {
			out = append(out, r)
			r = Reaction{}
		}
		if err := iter.Close(); err != nil {
			return out, fmt.Errorf("projector: read reactions: %w", err)
		}
	}
	return out, nil
}

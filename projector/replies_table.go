package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// repliesView: the replies to a message, ((conversation_id, reply_to_seq),
// seq) ascending, from every MessageSent with reply_to_seq > 0, inserted at
// the reply's message clock msgTS(seq, 0) like its messages row. The row
// only points at the reply: its content comes from messages, so an edit
// shows and a recall (which leaves the row) shows the reply recalled.
type repliesView struct {
	insert, selectAfter string
	rows                jsonRows
}

func newReplies(keyspace string) repliesView {
	return repliesView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.replies (conversation_id, reply_to_seq, seq, sender_user_id, occurred_at)
			VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		selectAfter: qualify(keyspace, `SELECT seq, sender_user_id, occurred_at FROM ${keyspace}.replies
			WHERE conversation_id = ? AND reply_to_seq = ? AND seq > ? LIMIT ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.replies`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.replies WHERE conversation_id = ? AND reply_to_seq = ?`), keyArity: 2,
		},
	}
}

func repliesPart(conv string, to int64) string { return fmt.Sprintf("replies\x00%s\x00%d", conv, to) }

func (v repliesView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	to := ev.GetMessageSent().GetReplyToSeq()
	if to <= 0 {
		return nil, nil
	}
	conv, seq := ev.GetConversationId(), ev.GetSeq()
	ts := msgTS(seq, 0)
	return []stmt{{v.insert, []any{conv, to, seq, ev.GetActorUserId(), ev.occurredAt(), ts}, repliesPart(conv, to), "", ts}}, nil
}

// Reply is a row of the replies view: message Seq answers the message the
// read names.
type Reply struct {
	Seq        int64
	Sender     string
	OccurredAt time.Time
}

// Replies reads the replies to message seq of conv with seq > after, oldest
// first, up to limit (one query, one partition).
func (t *Tables) Replies(ctx context.Context, conv string, seq, after int64, limit int) ([]Reply, error) {
	if limit <= 0 {
		return nil, nil
	}
	iter := t.s.Query(t.replies.selectAfter, conv, seq, after, limit).IterContext(ctx)
	var out []Reply
	var r Reply
	for iter.Scan(&r.Seq, &r.Sender, &r.OccurredAt) {
		out = append(out, r)
		r = Reply{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read replies: %w", err)
	}
	return out, nil
}

package projector

import (
	"context"
	"fmt"
	"math"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// messagesView: one row per timeline item, ((conversation_id, bucket), seq).
// A seq is taken by exactly one event, so the row is written whole, once,
// at seqTS(seq); replays rewrite the same cells at the same timestamp.
// Columns a notice has no value for are left out rather than set to null,
// so no tombstones are written.
type messagesView struct {
	insertMessage, insertNotice string
	selectBefore, selectAfter   string
	rows                        jsonRows
}

const messageColumns = "seq, type, actor_user_id, actor_device_id, client_msg_id, content_type, text, occurred_at, event"

func newMessages(keyspace string) messagesView {
	return messagesView{
		insertMessage: qualify(keyspace, `INSERT INTO ${keyspace}.messages
			(conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id,
			 client_msg_id, content_type, text, occurred_at, event)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		insertNotice: qualify(keyspace, `INSERT INTO ${keyspace}.messages
			(conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id, occurred_at, event)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		selectBefore: qualify(keyspace, `SELECT `+messageColumns+` FROM ${keyspace}.messages
			WHERE conversation_id = ? AND bucket = ? AND seq < ? LIMIT ?`),
		selectAfter: qualify(keyspace, `SELECT `+messageColumns+` FROM ${keyspace}.messages
			WHERE conversation_id = ? AND bucket = ? AND seq > ? ORDER BY seq ASC LIMIT ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.messages`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.messages WHERE conversation_id = ? AND bucket = ?`), keyArity: 2,
		},
	}
}

func (v messagesView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	if !schemas.IsTimelineEvent(ev.typ) {
		return nil, nil
	}
	seq := ev.GetSeq()
	part := fmt.Sprintf("messages\x00%s\x00%d", ev.GetConversationId(), schemas.Bucket(seq))
	if m := ev.GetMessageSent(); m != nil {
		return []stmt{{v.insertMessage, []any{ev.GetConversationId(), schemas.Bucket(seq), seq, ev.typ,
			ev.GetActorUserId(), ev.GetActorDeviceId(), ev.GetCommandId(),
			m.GetClientMsgId(), m.GetContentType(), m.GetText(), ev.occurredAt(), ev.raw, seqTS(seq)}, part, "", seqTS(seq)}}, nil
	}
	return []stmt{{v.insertNotice, []any{ev.GetConversationId(), schemas.Bucket(seq), seq, ev.typ,
		ev.GetActorUserId(), ev.GetActorDeviceId(), ev.GetCommandId(), ev.occurredAt(), ev.raw, seqTS(seq)}, part, "", seqTS(seq)}}, nil
}

// Message is a row of the messages view: one timeline item. Notices
// (MembersAdded, MemberRemoved, ConversationCreated…) have no client
// message id, content type or text; Event is the whole event, as protobuf.
type Message struct {
	Seq                        int64
	Type                       string // schemas.Type…
	ActorUserID, ActorDeviceID string
	ClientMsgID, ContentType   string
	Text                       string
	OccurredAt                 time.Time
	Event                      []byte
}

// The bucket walk. History pages (query) and resume catch-up (gateway) read
// the timeline the same way: keyset on seq, one bucket partition
// (schemas.Bucket) per query, never driver page state, so a cursor is a
// plain seq that stays valid across restarts and nodes. The walk never goes
// beyond the bucket of the conversation's last_seq (read by the caller with
// Conversation or LastSeq), so an absurd cursor costs at most one query.

// MessagesBefore returns up to limit rows of conv with seq < before, newest
// first, walking down from the bucket of min(before-1, lastSeq).
func (t *Tables) MessagesBefore(ctx context.Context, conv string, before, lastSeq int64, limit int) ([]Message, error) {
	var out []Message
	if before <= 1 || limit <= 0 {
		return nil, nil
	}
	for b := min(schemas.Bucket(before-1), schemas.Bucket(max(lastSeq, 0))); b >= 0 && len(out) < limit; b-- {
		rows, err := t.bucket(ctx, t.messages.selectBefore, conv, b, before, limit-len(out))
		out = append(out, rows...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// MessagesAfter returns up to limit rows of conv with seq > after, oldest
// first, walking up to the bucket of lastSeq. With contiguous it stops at
// the first missing seq (a row the projector has not written yet), so what
// it returns is always after+1, after+2, … with no gap: what a device
// catching up needs before it switches to live events.
func (t *Tables) MessagesAfter(ctx context.Context, conv string, after, lastSeq int64, limit int, contiguous bool) ([]Message, error) {
	var out []Message
	after = max(after, 0)
	if after == math.MaxInt64 || limit <= 0 {
		return nil, nil
	}
	next := after + 1
	for b := schemas.Bucket(next); b <= schemas.Bucket(max(lastSeq, 0)) && len(out) < limit; b++ {
		rows, err := t.bucket(ctx, t.messages.selectAfter, conv, b, after, limit-len(out))
		if !contiguous {
			out = append(out, rows...)
			if err != nil {
				return out, err
			}
			continue
		}
		for _, m := range rows {
			if m.Seq != next {
				return out, err
			}
			out = append(out, m)
			next++
		}
		if err != nil {
			return out, err
		}
		if len(out) < limit && next <= (b+1)*schemas.MessagesPerBucket-1 {
			// The bucket ended before its last seq: nothing contiguous
			// lies beyond.
			return out, nil
		}
	}
	return out, nil
}

// bucket runs one walk query on one bucket partition.
func (t *Tables) bucket(ctx context.Context, cql, conv string, bucket, seq int64, limit int) ([]Message, error) {
	iter := t.s.Query(cql, conv, bucket, seq, limit).IterContext(ctx)
	var out []Message
	var m Message
	for iter.Scan(&m.Seq, &m.Type, &m.ActorUserID, &m.ActorDeviceID, &m.ClientMsgID, &m.ContentType, &m.Text, &m.OccurredAt, &m.Event) {
		out = append(out, m)
		m = Message{}
	}
	if err := iter.Close(); err != nil {
		return out, fmt.Errorf("projector: read messages: %w", err)
	}
	return out, nil
}

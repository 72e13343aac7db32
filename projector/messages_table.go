package projector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// messagesView: one row per timeline item, ((conversation_id, bucket), seq).
// A seq is taken by exactly one event, so the row is written whole, once,
// at seqTS(seq); replays rewrite the same cells at the same timestamp.
// Columns a notice has no value for are left out rather than set to null,
// so no tombstones are written.
//
// A message's later changes follow its message clock msgTS(seq, sub): the
// row is inserted at msgTS(seq, 0), its n-th MessageEdited sets text,
// content_type, edit_count and edited_at at msgTS(seq, n), and its
// MessageRecalled nulls text and content_type, replaces event with the
// MessageSent without its content and sets recalled_by and recalled_at at
// msgTS(seq, recallSub), above every edit. Replays rewrite the same cells at
// the same timestamps; an edit replayed after the recall is shadowed by it.
type messagesView struct {
	insertMessage, insertNotice string
	insertForwarded             string
	edit, recall                string
	selectBefore, selectAfter   string
	selectOne, selectEvent      string
	rows                        jsonRows
}

const messageColumns = "seq, type, actor_user_id, actor_device_id, client_msg_id, content_type, text, occurred_at, event, " +
	"reply_to_seq, edit_count, edited_at, recalled_by, recalled_at, " +
	"forwarded_conversation_id, forwarded_seq, forwarded_sender, forwarded_sent_at"

func newMessages(keyspace string) messagesView {
	return messagesView{
		insertMessage: qualify(keyspace, `INSERT INTO ${keyspace}.messages
			(conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id,
			 client_msg_id, content_type, text, occurred_at, event, reply_to_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		insertForwarded: qualify(keyspace, `INSERT INTO ${keyspace}.messages
			(conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id,
			 client_msg_id, content_type, text, occurred_at, event, reply_to_seq,
			 forwarded_conversation_id, forwarded_seq, forwarded_sender, forwarded_sent_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		edit: qualify(keyspace, `UPDATE ${keyspace}.messages USING TIMESTAMP ?
			SET text = ?, content_type = ?, edit_count = ?, edited_at = ?
			WHERE conversation_id = ? AND bucket = ? AND seq = ?`),
		recall: qualify(keyspace, `UPDATE ${keyspace}.messages USING TIMESTAMP ?
			SET text = null, content_type = null, event = ?, recalled_by = ?, recalled_at = ?
			WHERE conversation_id = ? AND bucket = ? AND seq = ?`),
		selectOne: qualify(keyspace, `SELECT `+messageColumns+` FROM ${keyspace}.messages
			WHERE conversation_id = ? AND bucket = ? AND seq = ?`),
		selectEvent: qualify(keyspace, `SELECT event FROM ${keyspace}.messages
			WHERE conversation_id = ? AND bucket = ? AND seq = ?`),
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

func messagesPart(conv string, seq int64) string {
	return fmt.Sprintf("messages\x00%s\x00%d", conv, schemas.Bucket(seq))
}

func (v messagesView) plan(ctx context.Context, s *gocql.Session, ev *event) ([]stmt, error) {
	conv := ev.GetConversationId()
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessageEdited:
		e := b.MessageEdited
		seq, n := e.GetMessageSeq(), e.GetEditNumber()
		ts := msgTS(seq, int64(n))
		return []stmt{upsert(v.edit, messagesPart(conv, seq), fmt.Sprint(seq), ts, e.GetText(), e.GetContentType(), n, ev.occurredAt(),
			conv, schemas.Bucket(seq), seq)}, nil
	case *pb.Event_MessageRecalled:
		seq := b.MessageRecalled.GetMessageSeq()
		sent, err := v.recalledSend(ctx, s, ev)
		if err != nil {
			return nil, err
		}
		redacted := redactedSent(ev, sent)
		raw, err := proto.Marshal(redacted)
		if err != nil {
			return nil, fmt.Errorf("projector: encode a recalled message: %w", err)
		}
		ts := msgTS(seq, recallSub)
		return []stmt{upsert(v.recall, messagesPart(conv, seq), fmt.Sprint(seq), ts, raw, ev.GetActorUserId(), ev.occurredAt(),
			conv, schemas.Bucket(seq), seq)}, nil
	}
	if !schemas.IsTimelineEvent(ev.typ) {
		return nil, nil
	}
	seq := ev.GetSeq()
	part := messagesPart(conv, seq)
	ts := msgTS(seq, 0)
	if m := ev.GetMessageSent(); m != nil {
		var reply any
		if r := m.GetReplyToSeq(); r > 0 {
			reply = r
		}
		args := []any{conv, schemas.Bucket(seq), seq, ev.typ,
			ev.GetActorUserId(), ev.GetActorDeviceId(), ev.GetCommandId(),
			m.GetClientMsgId(), m.GetContentType(), m.GetText(), ev.occurredAt(), ev.raw, reply}
		if f := m.GetForwardedFrom(); f != nil {
			// A statement of its own, so the others write no null
			// forwarded_* cells.
			var sentAt any
			if f.GetSentAt() != nil {
				sentAt = f.GetSentAt().AsTime()
			}
			args = append(args, f.GetConversationId(), f.GetSeq(), f.GetSenderUserId(), sentAt, ts)
			return []stmt{{v.insertForwarded, args, part, "", ts}}, nil
		}
		return []stmt{{v.insertMessage, append(args, ts), part, "", ts}}, nil
	}
	return []stmt{{v.insertNotice, []any{conv, schemas.Bucket(seq), seq, ev.typ,
		ev.GetActorUserId(), ev.GetActorDeviceId(), ev.GetCommandId(), ev.occurredAt(), ev.raw, ts}, part, "", ts}}, nil
}

// recalledSend is the stored MessageSent a MessageRecalled names, read once
// per event: the messages, changes and mentions views all plan from it
// before any of their writes.
func (v messagesView) recalledSend(ctx context.Context, s *gocql.Session, recall *event) (*pb.Event, error) {
	if !recall.recalledRead {
		sent, err := v.sentEvent(ctx, s, recall.GetConversationId(), recall.GetMessageRecalled().GetMessageSeq())
		if err != nil {
			return nil, err
		}
		recall.recalled, recall.recalledRead = sent, true
	}
	return recall.recalled, nil
}

// sentEvent reads the MessageSent stored for seq (nil when its row is not
// there: the log puts the send first, so only a lost row has none).
func (v messagesView) sentEvent(ctx context.Context, s *gocql.Session, conv string, seq int64) (*pb.Event, error) {
	var raw []byte
	err := s.Query(v.selectEvent, conv, schemas.Bucket(seq), seq).ScanContext(ctx, &raw)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && len(raw) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("projector: read the message a recall names: %w", err)
	}
	e := new(pb.Event)
	if err := proto.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("%w: stored message %s/%d does not decode: %v", ErrPoison, conv, seq, err)
	}
	return e, nil
}

// redactedSent is the MessageSent of a recalled message as the views keep
// it: every field but its content (text, content type, attachments). Without the stored
// send (a lost row) it is rebuilt from the recall: seq and sender only.
func redactedSent(recall *event, sent *pb.Event) *pb.Event {
	if sent == nil {
		r := recall.GetMessageRecalled()
		return &pb.Event{ConversationId: recall.GetConversationId(), Seq: r.GetMessageSeq(), ActorUserId: r.GetSenderUserId(),
			Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{}}}
	}
	out := proto.Clone(sent).(*pb.Event)
	if m := out.GetMessageSent(); m != nil {
		m.Text, m.ContentType, m.Attachments = "", "", nil
	}
	return out
}

// Message is a row of the messages view: one timeline item. Notices
// (MembersAdded, MemberRemoved, ConversationCreated…) have no client
// message id, content type or text; Event is the whole event, as protobuf.
type Message struct {
	Seq                        int64
	Type                       string // schemas.Type…
	ActorUserID, ActorDeviceID string
	ClientMsgID, ContentType   string
	Text                       string // the newest edit's, "" once recalled
	OccurredAt                 time.Time
	Event                      []byte // the MessageSent, without content once recalled
	ReplyToSeq                 int64  // 0: not a reply
	EditCount                  int    // 0: never edited
	EditedAt                   time.Time
	RecalledBy                 string // "": not recalled
	RecalledAt                 time.Time
	// ForwardedFrom is where a forwarded message came from (zero: not
	// forwarded).
	ForwardedFrom Forwarded
}

// Forwarded is the origin of a forwarded message (MessageSent.forwarded_from).
type Forwarded struct {
	ConversationID string // "": not forwarded
	Seq            int64
	SenderUserID   string
	SentAt         time.Time
}

// dest is where a read of messageColumns scans one row into.
func (m *Message) dest() []any {
	return []any{&m.Seq, &m.Type, &m.ActorUserID, &m.ActorDeviceID, &m.ClientMsgID, &m.ContentType, &m.Text, &m.OccurredAt, &m.Event,
		&m.ReplyToSeq, &m.EditCount, &m.EditedAt, &m.RecalledBy, &m.RecalledAt,
		&m.ForwardedFrom.ConversationID, &m.ForwardedFrom.Seq, &m.ForwardedFrom.SenderUserID, &m.ForwardedFrom.SentAt}
}

// MessageAt reads the row of seq in conv; found is false when there is none.
func (t *Tables) MessageAt(ctx context.Context, conv string, seq int64) (m Message, found bool, err error) {
	err = t.s.Query(t.messages.selectOne, conv, schemas.Bucket(seq), seq).ScanContext(ctx, m.dest()...)
	if errors.Is(err, gocql.ErrNotFound) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("projector: read messages: %w", err)
	}
	return m, true, nil
}

// The bucket walk. History pages (query) and resume catch-up (gateway) read
// the timeline the same way: keyset on seq, one bucket partition
// (schemas.Bucket) per query, never driver page state, so a cursor is a
// plain seq that stays valid across restarts and nodes. The walk never goes
// beyond the bucket of the conversation's last_seq (read by the caller with
// Conversation or LastSeq), so an absurd cursor costs at most one query.

// MessagesBefore returns up to limit rows of conv with from <= seq < before,
// newest first, walking down from the bucket of min(before-1, lastSeq) to
// the bucket of from (from <= 1: to the first): the walk reads no bucket
// below from's, and drops the rows of from's bucket below it.
func (t *Tables) MessagesBefore(ctx context.Context, conv string, before, from, lastSeq int64, limit int) ([]Message, error) {
	var out []Message
	from = max(from, 1)
	if before <= from || limit <= 0 {
		return nil, nil
	}
	for b := min(schemas.Bucket(before-1), schemas.Bucket(max(lastSeq, 0))); b >= schemas.Bucket(from) && len(out) < limit; b-- {
		rows, err := t.bucket(ctx, t.messages.selectBefore, conv, b, before, limit-len(out))
		for i, m := range rows {
			if m.Seq < from {
				return append(out, rows[:i]...), err // newest first: the rest are below from too
			}
		}
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
	for iter.Scan(m.dest()...) {
		out = append(out, m)
		m = Message{}
	}
	if err := iter.Close(); err != nil {
		return out, fmt.Errorf("projector: read messages: %w", err)
	}
	return out, nil
}

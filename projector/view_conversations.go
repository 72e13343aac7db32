package projector

import (
	"context"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// conversationsView: one row per conversation.
//
//   - kind, title, creator_user_id, created_at: ConversationCreated, at
//     creationTS; they never change.
//   - last_seq, updated_at: every timeline event, at seqTS(seq), so they
//     always describe the highest seq applied, together. ConversationCreated
//     writes last_seq 0 and its own time at creationTS, below any seq.
//   - last_message_seq, last_message_preview, last_message_sender: every
//     MessageSent, at seqTS(seq): the newest message, whatever notices came
//     after it. Null until the first message.
type conversationsView struct {
	created, timeline, message string
}

func newConversations(keyspace string) conversationsView {
	return conversationsView{
		created: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET kind = ?, title = ?, creator_user_id = ?, created_at = ?, last_seq = 0, updated_at = ?
			WHERE conversation_id = ?`),
		timeline: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET last_seq = ?, updated_at = ?
			WHERE conversation_id = ?`),
		message: qualify(keyspace, `UPDATE ${keyspace}.conversations USING TIMESTAMP ?
			SET last_seq = ?, updated_at = ?, last_message_seq = ?, last_message_preview = ?, last_message_sender = ?
			WHERE conversation_id = ?`),
	}
}

func (v conversationsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	id, seq := ev.GetConversationId(), ev.GetSeq()
	switch ev.typ {
	case schemas.TypeConversationCreated:
		c := ev.GetConversationCreated()
		return []stmt{upsert(v.created, convPart(id), id, creationTS, kindName(c.GetKind()), c.GetTitle(), ev.GetActorUserId(),
			ev.occurredAt(), ev.occurredAt(), id)}, nil
	case schemas.TypeMessageSent:
		m := ev.GetMessageSent()
		return []stmt{upsert(v.message, convPart(id), id, seqTS(seq), seq, ev.occurredAt(), seq, preview(m.GetText()), ev.GetActorUserId(), id)}, nil
	case schemas.TypeMembersAdded, schemas.TypeMemberRemoved:
		return []stmt{upsert(v.timeline, convPart(id), id, seqTS(seq), seq, ev.occurredAt(), id)}, nil
	}
	return nil, nil
}

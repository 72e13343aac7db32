package projector

import (
	"context"
	"fmt"

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
}

func newMessages(keyspace string) messagesView {
	return messagesView{
		insertMessage: qualify(keyspace, `INSERT INTO ${keyspace}.messages
			(conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id,
			 client_msg_id, content_type, text, occurred_at, event)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		insertNotice: qualify(keyspace, `INSERT INTO ${keyspace}.messages
			(conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id, occurred_at, event)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
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

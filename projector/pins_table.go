package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// pinsView: the pinned messages of a conversation, ((conversation_id),
// message_seq), newest message first. Every cell follows the version clock:
// MessagePinned inserts the row (pinned_by = its actor, pinned_at = its
// time) at versionTS(version), MessageUnpinned deletes it at its own, and
// the message's MessageRecalled deletes it at the recall's (the decider
// emits no unpin for a recall). The decider pins only a message that is not
// pinned and unpins only one that is, so the rows are the pins minus the
// unpins and recalls, in any order of application: a pin replayed after its
// unpin stays below the deletion, a pin again later is above it.
type pinsView struct {
	insert, remove string
	selectAll      string
	rows           jsonRows
}

func newPins(keyspace string) pinsView {
	return pinsView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.pins (conversation_id, message_seq, pinned_by, pinned_at)
			VALUES (?, ?, ?, ?) USING TIMESTAMP ?`),
		remove: qualify(keyspace, `DELETE FROM ${keyspace}.pins USING TIMESTAMP ?
			WHERE conversation_id = ? AND message_seq = ?`),
		selectAll: qualify(keyspace, `SELECT message_seq, pinned_by, pinned_at FROM ${keyspace}.pins WHERE conversation_id = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.pins`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.pins WHERE conversation_id = ?`), keyArity: 1,
		},
	}
}

func pinsPart(conv string) string { return "pins\x00" + conv }

func (v pinsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	conv, ts := ev.GetConversationId(), versionTS(ev.GetVersion())
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessagePinned:
		seq := b.MessagePinned.GetMessageSeq()
		return []stmt{{v.insert, []any{conv, seq, ev.GetActorUserId(), ev.occurredAt(), ts}, pinsPart(conv), "", ts}}, nil
	case *pb.Event_MessageUnpinned:
		return []stmt{upsert(v.remove, pinsPart(conv), "", ts, conv, b.MessageUnpinned.GetMessageSeq())}, nil
	case *pb.Event_MessageRecalled:
		// Whether or not it is pinned: a deletion of nothing costs one
		// tombstone, a read would cost a round trip.
		return []stmt{upsert(v.remove, pinsPart(conv), "", ts, conv, b.MessageRecalled.GetMessageSeq())}, nil
	}
	return nil, nil
}

// Pin is a row of the pins view: a pinned message.
type Pin struct {
	MessageSeq int64
	PinnedBy   string
	PinnedAt   time.Time
}

// Pins reads the pinned messages of conv, the newest message (highest seq)
// first. The decider keeps them few (MaxPins, 50 by default): one query.
func (t *Tables) Pins(ctx context.Context, conv string) ([]Pin, error) {
	iter := t.s.Query(t.pins.selectAll, conv).IterContext(ctx)
	var out []Pin
	var p Pin
	for iter.Scan(&p.MessageSeq, &p.PinnedBy, &p.PinnedAt) {
		out = append(out, p)
		p = Pin{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read pins: %w", err)
	}
	return out, nil
}

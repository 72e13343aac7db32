package projector

import (
	"context"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// editsView: message_edits, one row per edit of a message,
// ((conversation_id, message_seq), edit_number). An edit's row is written
// whole, once, at versionTS(version); the message's recall deletes the
// partition at versionTS of the recall, above every edit, so a recalled
// message keeps no text here, and an edit replayed after the recall stays
// shadowed.
type editsView struct {
	insert, deleteAll string
	selectAll         string
	rows              jsonRows
}

func newEdits(keyspace string) editsView {
	return editsView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.message_edits
			(conversation_id, message_seq, edit_number, text, content_type, actor_device_id, edited_at, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		deleteAll: qualify(keyspace, `DELETE FROM ${keyspace}.message_edits USING TIMESTAMP ?
			WHERE conversation_id = ? AND message_seq = ?`),
		selectAll: qualify(keyspace, `SELECT edit_number, text, content_type, actor_device_id, edited_at, version
			FROM ${keyspace}.message_edits WHERE conversation_id = ? AND message_seq = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.message_edits`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.message_edits WHERE conversation_id = ? AND message_seq = ?`), keyArity: 2,
		},
	}
}

func editsPart(conv string, seq int64) string {
	return fmt.Sprintf("message_edits\x00%s\x00%d", conv, seq)
}

func (v editsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	conv, ver := ev.GetConversationId(), ev.GetVersion()
	switch b := ev.GetBody().(type) {
	case *pb.Event_MessageEdited:
		e := b.MessageEdited
		ts := versionTS(ver)
		return []stmt{{v.insert, []any{conv, e.GetMessageSeq(), e.GetEditNumber(), e.GetText(), e.GetContentType(),
			ev.GetActorDeviceId(), ev.occurredAt(), ver, ts}, editsPart(conv, e.GetMessageSeq()), "", ts}}, nil
	case *pb.Event_MessageRecalled:
		seq := b.MessageRecalled.GetMessageSeq()
		return []stmt{upsert(v.deleteAll, editsPart(conv, seq), "", versionTS(ver), conv, seq)}, nil
	}
	return nil, nil
}

// Edit is a row of message_edits: one version of a message after its
// first.
type Edit struct {
	Number        int
	Text          string
	ContentType   string
	ActorDeviceID string
	EditedAt      time.Time
	Version       int64
}

// Edits reads every edit of the message at seq in conv, oldest first (none
// once it is recalled).
func (t *Tables) Edits(ctx context.Context, conv string, seq int64) ([]Edit, error) {
	return t.edits.read(ctx, t.s, conv, seq)
}

func (v editsView) read(ctx context.Context, s *gocql.Session, conv string, seq int64) ([]Edit, error) {
	iter := s.Query(v.selectAll, conv, seq).IterContext(ctx)
	var out []Edit
	var e Edit
	for iter.Scan(&e.Number, &e.Text, &e.ContentType, &e.ActorDeviceID, &e.EditedAt, &e.Version) {
		out = append(out, e)
		e = Edit{}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read message_edits: %w", err)
	}
	return out, nil
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"math"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// changesView: one row per event that changes a view, by version,
// ((conversation_id, bucket), version) with bucket = version /
// schemas.ChangesPerBucket. A version is taken by exactly one event, so the
// row is written whole, once, at the version as its timestamp; replays
// rewrite the same cells. It is what a device resumes from (the gateway's
// Resume): every kind of change, in order, with no gap.
//
// A recall is the one change that rewrites earlier rows: the rows of the
// recalled message's MessageSent and MessageEdited events get those events
// without their content, at versionTS of the recall (above their own), so
// a device resuming past a recall never receives the recalled text. Their
// versions are read from the messages row (its stored event) and from
// message_edits, which hold them as long as the recall is not applied yet —
// in log order, always; once it is, its rewrites are done.
type changesView struct {
	insert, redact, selectOne string
	selectAfter               string
	messages                  messagesView
	edits                     editsView
	rows                      jsonRows
}

func newChanges(keyspace string) changesView {
	return changesView{
		messages: newMessages(keyspace),
		edits:    newEdits(keyspace),
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.changes (conversation_id, bucket, version, seq, type, event)
			VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		redact: qualify(keyspace, `UPDATE ${keyspace}.changes USING TIMESTAMP ? SET event = ?
			WHERE conversation_id = ? AND bucket = ? AND version = ?`),
		selectOne: qualify(keyspace, `SELECT event FROM ${keyspace}.changes
			WHERE conversation_id = ? AND bucket = ? AND version = ?`),
		selectAfter: qualify(keyspace, `SELECT version, event FROM ${keyspace}.changes
			WHERE conversation_id = ? AND bucket = ? AND version > ? LIMIT ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.changes`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.changes WHERE conversation_id = ? AND bucket = ?`), keyArity: 2,
		},
	}
}

func changesPart(conv string, version int64) string {
	return fmt.Sprintf("changes\x00%s\x00%d", conv, schemas.ChangesBucket(version))
}

func (v changesView) plan(ctx context.Context, s *gocql.Session, ev *event) ([]stmt, error) {
	ver := ev.GetVersion()
	if ver <= 0 {
		return nil, nil // an event of a log from before versions
	}
	id, b := ev.GetConversationId(), schemas.ChangesBucket(ver)
	out := []stmt{{v.insert, []any{id, b, ver, ev.GetSeq(), ev.typ, ev.raw, versionTS(ver)}, changesPart(id, ver), "", versionTS(ver)}}
	if r := ev.GetMessageRecalled(); r != nil {
		red, err := v.redactions(ctx, s, ev, r.GetMessageSeq())
		if err != nil {
			return nil, err
		}
		out = append(out, red...)
	}
	return out, nil
}

// redactions rewrites the changes rows of the recalled message's send and
// edits without their content.
func (v changesView) redactions(ctx context.Context, s *gocql.Session, recall *event, seq int64) ([]stmt, error) {
	conv, ts := recall.GetConversationId(), versionTS(recall.GetVersion())
	var out []stmt
	rewrite := func(e *pb.Event) error {
		raw, err := proto.Marshal(e)
		if err != nil {
			return fmt.Errorf("projector: encode a recalled change: %w", err)
		}
		ver := e.GetVersion()
		out = append(out, upsert(v.redact, changesPart(conv, ver), fmt.Sprint(ver), ts, raw, conv, schemas.ChangesBucket(ver), ver))
		return nil
	}
	sent, err := v.messages.recalledSend(ctx, s, recall)
	if err != nil {
		return nil, err
	}
	if sent.GetVersion() > 0 {
		if err := rewrite(redactedSent(recall, sent)); err != nil {
			return nil, err
		}
	}
	edits, err := v.edits.read(ctx, s, conv, seq)
	if err != nil {
		return nil, err
	}
	for _, e := range edits {
		if e.Version <= 0 {
			continue
		}
		var raw []byte
		err := s.Query(v.selectOne, conv, schemas.ChangesBucket(e.Version), e.Version).ScanContext(ctx, &raw)
		if errors.Is(err, gocql.ErrNotFound) {
			continue // never written: no content to take out
		}
		if err != nil {
			return nil, fmt.Errorf("projector: read the changes of a recalled message: %w", err)
		}
		ed := new(pb.Event)
		if err := proto.Unmarshal(raw, ed); err != nil || ed.GetMessageEdited() == nil {
			return nil, fmt.Errorf("%w: changes row %s/%d is not the MessageEdited message_edits names", ErrPoison, conv, e.Version)
		}
		ed.GetMessageEdited().Text, ed.GetMessageEdited().ContentType = "", ""
		if err := rewrite(ed); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Change is a row of the changes view: the event at one version, as
// protobuf.
type Change struct {
	Version int64
	Event   []byte
}

// ChangesAfter returns the changes of conv with version > after, oldest
// first, up to limit, walking the buckets up to the one of lastVersion (read
// by the caller with LastVersion). It stops at the first missing version (a
// row the projector has not written yet, or lost), so what it returns is
// always after+1, after+2, … with no gap: what a device catching up needs
// before it switches to live events.
func (t *Tables) ChangesAfter(ctx context.Context, conv string, after, lastVersion int64, limit int) ([]Change, error) {
	var out []Change
	after = max(after, 0)
	if after == math.MaxInt64 || limit <= 0 {
		return nil, nil
	}
	next := after + 1
	for b := schemas.ChangesBucket(next); b <= schemas.ChangesBucket(max(lastVersion, 0)) && len(out) < limit; b++ {
		iter := t.s.Query(t.changes.selectAfter, conv, b, next-1, limit-len(out)).IterContext(ctx)
		var c Change
		contiguous := true
		for iter.Scan(&c.Version, &c.Event) {
			if c.Version != next {
				contiguous = false
				break
			}
			out = append(out, c)
			next++
			c = Change{}
		}
		if err := iter.Close(); err != nil {
			return out, fmt.Errorf("projector: read changes: %w", err)
		}
		if !contiguous || (len(out) < limit && next <= (b+1)*schemas.ChangesPerBucket-1) {
			// A version is missing, or the bucket ended before its last
			// version: nothing contiguous lies beyond.
			return out, nil
		}
	}
	return out, nil
}

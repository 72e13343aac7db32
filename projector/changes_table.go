package projector

import (
	"context"
	"fmt"
	"math"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// changesView: one row per event that changes a view, by version,
// ((conversation_id, bucket), version) with bucket = version /
// schemas.ChangesPerBucket. A version is taken by exactly one event, so the
// row is written whole, once, at the version as its timestamp; replays
// rewrite the same cells. It is what a device resumes from (the gateway's
// Resume): every kind of change, in order, with no gap.
type changesView struct {
	insert, selectAfter string
	rows                jsonRows
}

func newChanges(keyspace string) changesView {
	return changesView{
		insert: qualify(keyspace, `INSERT INTO ${keyspace}.changes (conversation_id, bucket, version, seq, type, event)
			VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`),
		selectAfter: qualify(keyspace, `SELECT version, event FROM ${keyspace}.changes
			WHERE conversation_id = ? AND bucket = ? AND version > ? LIMIT ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.changes`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.changes WHERE conversation_id = ? AND bucket = ?`), keyArity: 2,
		},
	}
}

func (v changesView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	ver := ev.GetVersion()
	if ver <= 0 {
		return nil, nil // an event of a log from before versions
	}
	id, b := ev.GetConversationId(), schemas.ChangesBucket(ver)
	part := fmt.Sprintf("changes\x00%s\x00%d", id, b)
	return []stmt{{v.insert, []any{id, b, ver, ev.GetSeq(), ev.typ, ev.raw, versionTS(ver)}, part, "", versionTS(ver)}}, nil
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

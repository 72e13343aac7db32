package projector

import (
	"context"
	"fmt"
	"time"
)

// checkpoints: per projector (its consumer group) and partition of the
// events topic, the offset of the last record whose view writes all
// succeeded. Written after those writes, at timestamp offset+1, so a
// redelivered older record never moves it back. Kafka's committed group
// offsets remain the resume point; the checkpoint is what Cassandra itself
// knows it holds (lag, audits, a rebuild tool checking how far it got).
// updated_at is the wall clock of the write: bookkeeping, not a view.
type checkpoints struct {
	save, selectAll string
}

func newCheckpoints(keyspace string) checkpoints {
	return checkpoints{
		save: qualify(keyspace, `UPDATE ${keyspace}.checkpoints USING TIMESTAMP ?
			SET applied_offset = ?, updated_at = ?
			WHERE projector = ? AND partition = ?`),
		selectAll: qualify(keyspace, `SELECT partition, applied_offset FROM ${keyspace}.checkpoints WHERE projector = ?`),
	}
}

func (c checkpoints) stmt(projector string, partition int32, offset int64) stmt {
	return stmt{cql: c.save, args: []any{offset + 1, offset, time.Now().UTC(), projector, partition}}
}

// checkpoint records that every record of partition up to offset is applied.
func (v *views) checkpoint(ctx context.Context, projector string, partition int32, offset int64) error {
	return v.run(ctx, v.checkpoints.stmt(projector, partition, offset))
}

// Checkpoints reads, per partition of the events topic, the offset of the
// last record projector (its consumer group) has applied; a partition it
// has applied nothing of is absent.
func (t *Tables) Checkpoints(ctx context.Context, projector string) (map[int32]int64, error) {
	iter := t.s.Query(t.checkpoints.selectAll, projector).IterContext(ctx)
	out := map[int32]int64{}
	var (
		p int32
		o int64
	)
	for iter.Scan(&p, &o) {
		out[p] = o
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read %s.checkpoints: %w", t.keyspace, err)
	}
	return out, nil
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// checkpoints: per projector (its consumer group) and partition of the
// events topic, the offset of the last record whose view writes all
// succeeded. Written after those writes, at timestamp offset+1, so a
// redelivered older record never moves it back.
//
// It is the resume point together with Kafka's committed offset: a
// partition is taken up at min(committed, checkpoint + 1). The checkpoint
// row is written after the batch's view rows, so a node that replays its
// commitlog after a crash holds a prefix of the writes: if the checkpoint
// survived, the rows before it did. A committed offset past the checkpoint
// means Cassandra lost acknowledged writes; those records are applied again
// (README.md, "Checkpoints and commits").
// updated_at is the wall clock of the write: bookkeeping, not a view.
type checkpoints struct {
	save, selectAll, selectOne string
}

func newCheckpoints(keyspace string) checkpoints {
	return checkpoints{
		save: qualify(keyspace, `UPDATE ${keyspace}.checkpoints USING TIMESTAMP ?
			SET applied_offset = ?, updated_at = ?
			WHERE projector = ? AND partition = ?`),
		selectAll: qualify(keyspace, `SELECT partition, applied_offset FROM ${keyspace}.checkpoints WHERE projector = ?`),
		selectOne: qualify(keyspace, `SELECT applied_offset FROM ${keyspace}.checkpoints WHERE projector = ? AND partition = ?`),
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
	return readCheckpoints(ctx, t.s, t.checkpoints, projector)
}

// readCheckpoints returns the checkpoint of every partition of projector
// that has one.
func (v *views) readCheckpoints(ctx context.Context, projector string) (map[int32]int64, error) {
	return readCheckpoints(ctx, v.s, v.checkpoints, projector)
}

func readCheckpoints(ctx context.Context, s *gocql.Session, c checkpoints, projector string) (map[int32]int64, error) {
	iter := s.Query(c.selectAll, projector).Idempotent(true).IterContext(ctx)
	out := map[int32]int64{}
	var (
		p int32
		o int64
	)
	for iter.Scan(&p, &o) {
		out[p] = o
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read checkpoints of %s: %w", projector, err)
	}
	return out, nil
}

// readCheckpoint returns the checkpoint of one partition; ok is false when
// it has none.
func (v *views) readCheckpoint(ctx context.Context, projector string, partition int32) (offset int64, ok bool, err error) {
	err = v.s.Query(v.checkpoints.selectOne, projector, partition).Idempotent(true).ScanContext(ctx, &offset)
	if errors.Is(err, gocql.ErrNotFound) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("projector: read checkpoint of %s partition %d: %w", projector, partition, err)
	}
	return offset, true, nil
}

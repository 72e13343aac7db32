package projector

import (
	"context"
	"errors"
	"fmt"
	"sync"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// Writer applies records of parley.events to the views of one keyspace in
// large batches, without Kafka or a consumer group: the building block of
// the rebuild and verify tools (projector/replay). It writes exactly the rows
// the Projector writes, with the same statements and cell timestamps, so a
// keyspace built by a Writer equals one built by a Projector row for row.
type Writer struct {
	v        *views
	maxBatch int
	logOrder bool
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Keyspace holds the views, migrated by schemas.Migrate beforehand.
	Keyspace string
	// WriteParallelism bounds the concurrent writes of one batch (default 32).
	WriteParallelism int
	// MaxBatch is how many records are planned, coalesced and written
	// together (default 5000).
	MaxBatch int
	// LogOrder promises that every conversation's records reach the Writer
	// in log order, each at most once per pass (as when a partition is read
	// from some offset onwards, and again from an earlier offset after an
	// interruption). Then the views need no read while planning: a creation
	// cannot find members added before it, and a MembersAdded takes the
	// kind and title of its conversation from the ConversationCreated seen
	// earlier (kept in memory, about 100 bytes per group; read from the
	// conversations row when it came before the first record applied). So
	// batches are not cut before membership events either.
	LogOrder bool
	// MixedBatches puts statements of different Cassandra partitions into
	// one UNLOGGED BATCH (at most 32 statements, about 4 KiB of values),
	// instead of one batch per partition. Far fewer requests when a batch
	// of records touches many conversations once each; right for a single
	// node or a small cluster, where one coordinator applying mutations of
	// several partitions costs less than a request per partition. On a large
	// cluster leave it off.
	MixedBatches bool
}

// Record is one record of parley.events.
type Record struct {
	Key, Value []byte
}

// NewWriter returns a Writer on session, which must not be bound to
// another keyspace than cfg.Keyspace (statements name their tables in full).
func NewWriter(s *gocql.Session, cfg WriterConfig) (*Writer, error) {
	if err := schemas.CheckKeyspace(cfg.Keyspace); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	if cfg.WriteParallelism <= 0 {
		cfg.WriteParallelism = 32
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 5000
	}
	v := newViews(s, cfg.Keyspace, cfg.WriteParallelism)
	v.mixed = cfg.MixedBatches
	if cfg.LogOrder {
		for _, step := range v.steps {
			for i, p := range step {
				if in, ok := p.(inboxView); ok {
					in.titles = &titles{m: map[string]kindTitle{}}
					step[i] = in
				}
			}
		}
	}
	return &Writer{v: v, maxBatch: cfg.MaxBatch, logOrder: cfg.LogOrder}, nil
}

// Apply writes the views of recs, consecutive records of one partition in
// log order. Records that can never be applied (ErrPoison: the projector
// dead-letters them) write nothing; their indexes in recs are returned with
// the reason. On error some rows may be written, and applying the same
// records again is always correct.
func (w *Writer) Apply(ctx context.Context, recs []Record) (poison map[int]error, err error) {
	var batch []*event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := w.v.applyBatch(ctx, batch)
		batch = batch[:0]
		return err
	}
	for i, r := range recs {
		ev, derr := decode(r.Key, r.Value)
		if derr != nil {
			if !errors.Is(derr, ErrPoison) {
				return poison, derr
			}
			if poison == nil {
				poison = map[int]error{}
			}
			poison[i] = derr
			continue
		}
		if len(batch) == w.maxBatch || (!w.logOrder && len(batch) > 0 && startsBatch(ev)) {
			if err := flush(); err != nil {
				return poison, err
			}
		}
		batch = append(batch, ev)
	}
	return poison, flush()
}

// Checkpoint records in the keyspace's checkpoints table that every record of
// partition up to offset is applied, under the name projector (a consumer
// group, as the Projector writes it).
func (w *Writer) Checkpoint(ctx context.Context, projector string, partition int32, offset int64) error {
	return w.v.checkpoint(ctx, projector, partition, offset)
}

// titles remembers the kind and title of the groups created in a log-order
// pass, for the inbox rows of their MembersAdded events.
type titles struct {
	mu sync.Mutex
	m  map[string]kindTitle
}

type kindTitle struct{ kind, title string }

func (t *titles) put(id, kind, title string) {
	if kind != "group" {
		return // only groups get members added
	}
	t.mu.Lock()
	t.m[id] = kindTitle{kind, title}
	t.mu.Unlock()
}

// get is false when t is nil (not a log-order pass) or id was created
// before the pass started.
func (t *titles) get(id string) (kind, title string, ok bool) {
	if t == nil {
		return "", "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	kt, ok := t.m[id]
	return kt.kind, kt.title, ok
}

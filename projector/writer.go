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
	titles   *titles // LogOrder only
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
	var t *titles
	if cfg.LogOrder {
		t = &titles{m: map[string]kindTitle{}}
		for _, step := range v.steps {
			for i, p := range step {
				if in, ok := p.(inboxView); ok {
					in.titles = t
					step[i] = in
				}
			}
		}
	}
	return &Writer{v: v, maxBatch: cfg.MaxBatch, logOrder: cfg.LogOrder, titles: t}, nil
}

// Apply writes the views of recs, consecutive records of one partition in
// log order. Records that can never be applied (ErrPoison: the projector
// dead-letters them) write nothing; their indexes in recs are returned with
// the reason. On error some rows may be written, and applying the same
// records again is always correct.
func (w *Writer) Apply(ctx context.Context, recs []Record) (poison map[int]error, err error) {
	// Between batches only: a MembersAdded planned in this call may need a
	// creation planned earlier in it, whose row is not written yet.
	w.titles.bound(maxTitles)
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
		if len(batch) == w.maxBatch || (len(batch) > 0 && startsBatch(ev, w.logOrder)) {
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

// maxTitles bounds the titles a long-lived log-order Writer (the live
// projector) keeps: about 100 bytes each. Past it the map starts over, and a
// MembersAdded of a group created before reads the conversations row, which
// in log order was written by an earlier batch.
const maxTitles = 1 << 20

// bound empties t when it holds more than n groups.
func (t *titles) bound(n int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	if len(t.m) > n {
		t.m = map[string]kindTitle{}
	}
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

// Batches. A batch is consecutive records of one partition, in offset order
// (the live projector's worker and rebuild hand the Writer exactly that),
// applied in three steps:
//
//  1. the messages and changes rows of every event of the batch (an
//     UNLOGGED BATCH per (conversation, bucket) partition, the partitions
//     concurrently);
//  2. conversations, members and inbox, coalesced: of the statements that
//     write the same cells of the same row (same CQL, same row) only the one
//     with the highest timestamp is sent — Cassandra would keep that one
//     anyway, and equal timestamps carry equal values (README, Timestamps);
//  3. conversations.last_version, coalesced the same way.
//
// The caller writes the checkpoint after them. So what a reader can see
// stays as for one event: rows before anything that points at them, and
// last_version after every row of the changes it counts.
// Without LogOrder, ConversationCreated and MembersAdded read the views while
// planning (view_inbox.go); they then only ever start a batch, so they read
// what every earlier record wrote, as when applied one by one.

const (
	// maxBatchStmts and maxBatchBytes bound one UNLOGGED BATCH, well below
	// Cassandra's batch_size_warn_threshold (5 KiB) for typical messages; a
	// larger statement goes alone.
	maxBatchStmts = 32
	maxBatchBytes = 4 << 10
)

// convPart and membersPart name the same Cassandra partition key: the
// conversations row and the members rows of a conversation are both keyed
// by conversation_id in one keyspace, so one UNLOGGED BATCH of both is a
// single mutation (one commitlog entry, one write on each replica) instead
// of two.
func convPart(id string) string    { return "conversation\x00" + id }
func membersPart(id string) string { return convPart(id) }
func inboxPart(user string) string { return "inbox\x00" + user }

// upsert is an UPDATE … USING TIMESTAMP ? whose first argument is the
// timestamp, writing row of the Cassandra partition part.
func upsert(cql, part, row string, args ...any) stmt {
	return stmt{cql: cql, args: args, part: part, row: row, ts: args[0].(int64)}
}

// coalesce drops every statement that another one with the same cql, part
// and row and a higher (or, later in the list, equal) timestamp overwrites. The
// order of first appearance is kept.
func coalesce(stmts []stmt) []stmt {
	type cell struct{ cql, part, row string }
	at := make(map[cell]int, len(stmts))
	out := stmts[:0:0]
	for _, st := range stmts {
		if st.row == "" {
			out = append(out, st)
			continue
		}
		k := cell{st.cql, st.part, st.row}
		if i, ok := at[k]; ok {
			if st.ts >= out[i].ts {
				out[i] = st
			}
			continue
		}
		at[k] = len(out)
		out = append(out, st)
	}
	return out
}

// groupByPartition splits statements into groups sent as one request each: statements
// of the same partition together (in order, at most maxStmts and about
// maxBytes of values per group), every other statement alone.
func groupByPartition(stmts []stmt, maxStmts, maxBytes int) [][]stmt {
	var out [][]stmt
	open := map[string]int{} // part → index of its open group in out
	size := map[string]int{}
	for _, st := range stmts {
		n := argBytes(st.args)
		if st.part == "" {
			out = append(out, []stmt{st})
			continue
		}
		if i, ok := open[st.part]; ok && len(out[i]) < maxStmts && size[st.part]+n <= maxBytes {
			out[i] = append(out[i], st)
			size[st.part] += n
			continue
		}
		open[st.part] = len(out)
		size[st.part] = n
		out = append(out, []stmt{st})
	}
	return out
}

// groupInOrder splits statements into groups of at most maxStmts and about
// maxBytes of values, whatever partitions they write (WriterConfig.MixedBatches).
func groupInOrder(stmts []stmt, maxStmts, maxBytes int) [][]stmt {
	var out [][]stmt
	size := 0
	for _, st := range stmts {
		n := argBytes(st.args)
		if i := len(out) - 1; i >= 0 && len(out[i]) < maxStmts && size+n <= maxBytes {
			out[i] = append(out[i], st)
			size += n
			continue
		}
		out = append(out, []stmt{st})
		size = n
	}
	return out
}

func argBytes(args []any) int {
	n := 0
	for _, a := range args {
		switch v := a.(type) {
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		default:
			n += 8
		}
	}
	return n
}

// startsBatch reports whether ev must be the first of its batch: it reads
// the views while planning, and what it reads must include the writes of
// the events before it. A log-order Writer keeps what the inbox reads in
// memory (titles); a recall reads the rows of the message it takes the
// content out of, in every Writer.
func startsBatch(ev *event, logOrder bool) bool {
	if ev == nil {
		return false
	}
	switch ev.typ {
	case schemas.TypeMessageRecalled:
		return true
	case schemas.TypeConversationCreated, schemas.TypeMembersAdded:
		return !logOrder
	}
	return false
}

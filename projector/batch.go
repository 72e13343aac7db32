package projector

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/parley-im/parley/schemas"
)

// Batching. The bus hands the projector up to 2 × Config.MaxBatch records
// of a partition at a time (bus.SubscriberConfig.MaxInFlight), and the
// router handles them concurrently. A batcher per partition puts them back
// in offset order (each message names the offset delivered before it,
// bus.MetaPrevOffset) and applies consecutive records together, one batch
// at a time per partition:
//
//  1. the messages rows of every event of the batch (an UNLOGGED BATCH per
//     (conversation, bucket) partition, the partitions concurrently);
//  2. conversations, members and inbox, coalesced: of the statements that
//     write the same cells of the same row (same CQL, same row) only the one
//     with the highest timestamp is sent — Cassandra would keep that one
//     anyway, and equal timestamps carry equal values (README, Timestamps);
//  3. the checkpoint, when the partition has nothing more waiting or at
//     most every checkpointEvery;
//
// then every record of the batch is acked. A batch that fails fails each of
// its records, which the retry middleware submits again. Batches of a
// partition are strictly sequential and follow offset order, so what a
// reader can see stays as for one event: messages rows before anything that
// points at them.
//
// ConversationCreated and MembersAdded read the views while planning
// (view_inbox.go); they only ever start a batch, so they read what every
// earlier record wrote, as when applied one by one.

const (
	// maxBatchStmts and maxBatchBytes bound one UNLOGGED BATCH, well below
	// Cassandra's batch_size_warn_threshold (5 KiB) for typical messages; a
	// larger statement goes alone.
	maxBatchStmts = 32
	maxBatchBytes = 4 << 10
	// checkpointEvery is how often a busy partition writes its checkpoint.
	checkpointEvery = 100 * time.Millisecond
)

func convPart(id string) string    { return "conversations\x00" + id }
func membersPart(id string) string { return "members\x00" + id }
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
// the views while planning.
func startsBatch(ev *event) bool {
	if ev == nil {
		return false
	}
	return ev.typ == schemas.TypeConversationCreated || ev.typ == schemas.TypeMembersAdded
}

// record is one record of a partition waiting to be applied. ev is nil for
// a record that writes nothing (poison: it only keeps the chain).
type pendingRecord struct {
	offset, prev int64
	ev           *event
	done         chan error // buffered: the batcher never blocks on it
}

// batches runs one batcher per partition.
type batches struct {
	apply      func(ctx context.Context, evs []*event) error
	checkpoint func(ctx context.Context, partition int32, offset int64) error
	maxBatch   int
	ctx        context.Context // ends the batchers (Run's)

	mu         sync.Mutex
	partitions map[int32]*batcher
}

type batcher struct {
	waiting   map[int64]*pendingRecord // by offset
	completed int64                    // highest offset applied in chain order; -1 none
	running   bool
	lastCP    time.Time
}

func newBatches(ctx context.Context, maxBatch int, apply func(context.Context, []*event) error,
	checkpoint func(context.Context, int32, int64) error) *batches {
	return &batches{apply: apply, checkpoint: checkpoint, maxBatch: maxBatch, ctx: ctx, partitions: map[int32]*batcher{}}
}

// submit queues a record of partition and waits until it is applied (nil),
// its batch failed (the error) or ctx ends.
func (b *batches) submit(ctx context.Context, partition int32, r *pendingRecord) error {
	r.done = make(chan error, 1)
	b.mu.Lock()
	p := b.partitions[partition]
	if p == nil {
		p = &batcher{waiting: map[int64]*pendingRecord{}, completed: -1}
		b.partitions[partition] = p
	}
	p.waiting[r.offset] = r // a redelivery replaces an abandoned attempt
	if !p.running {
		p.running = true
		go b.run(partition, p)
	}
	b.mu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		b.mu.Lock()
		if p.waiting[r.offset] == r {
			delete(p.waiting, r.offset)
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

// next takes the next batch of p: the records whose predecessor is applied
// (or that are the first a worker delivered), then the records following
// them, in chain order, cut before an event that must start a batch.
// Called with b.mu held.
func (b *batches) next(p *batcher) []*pendingRecord {
	byPrev := make(map[int64]*pendingRecord, len(p.waiting))
	var heads []*pendingRecord
	for _, r := range p.waiting {
		if r.prev < 0 || r.prev <= p.completed {
			heads = append(heads, r)
		} else {
			byPrev[r.prev] = r
		}
	}
	var out []*pendingRecord
	for _, r := range heads {
		for r != nil && len(out) < b.maxBatch {
			if len(out) > 0 && startsBatch(r.ev) {
				break
			}
			out = append(out, r)
			delete(p.waiting, r.offset)
			r = byPrev[r.offset]
			if r != nil && startsBatch(r.ev) {
				break
			}
		}
		if len(out) > 0 {
			break // one chain per batch keeps chain order simple
		}
	}
	return out
}

func (b *batches) run(partition int32, p *batcher) {
	for {
		b.mu.Lock()
		recs := b.next(p)
		if len(recs) == 0 {
			p.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		err := b.applyOne(partition, p, recs)
		b.mu.Lock()
		if err == nil {
			p.completed = recs[len(recs)-1].offset
		} else {
			// Records submitted again (retry) replace these; until they
			// are, nothing after them is applied.
			for _, r := range recs {
				delete(p.waiting, r.offset)
			}
		}
		b.mu.Unlock()
		for _, r := range recs {
			r.done <- err
		}
	}
}

// applyOne applies recs and, when due, the checkpoint of the last one. A
// panic is an error like any other (the router's recoverer does not see
// this goroutine).
func (b *batches) applyOne(partition int32, p *batcher, recs []*pendingRecord) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projector: panic while applying a batch: %v", v)
		}
	}()
	evs := make([]*event, len(recs))
	for i, r := range recs {
		evs[i] = r.ev
	}
	if err := b.apply(b.ctx, evs); err != nil {
		first, last := recs[0], recs[len(recs)-1]
		return fmt.Errorf("apply batch of %d (partition %d offsets %d…%d): %w", len(recs), partition, first.offset, last.offset, err)
	}
	b.mu.Lock()
	idle := len(p.waiting) == 0
	b.mu.Unlock()
	if idle || time.Since(p.lastCP) >= checkpointEvery {
		off := recs[len(recs)-1].offset
		if err := b.checkpoint(b.ctx, partition, off); err != nil {
			return fmt.Errorf("checkpoint partition %d offset %d: %w", partition, off, err)
		}
		p.lastCP = time.Now()
	}
	return nil
}

package replay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// reader reads every partition of a topic from start to end (exclusive;
// the end offsets captured before it starts) and hands each partition's
// records, in offset order, to handle: one call at a time per partition,
// the partitions concurrently. It reads committed records only, as the
// projector does, and counts transaction markers as positions, so a
// partition ending in a marker is still read to its end.
type reader struct {
	cfg        Config
	topic      string
	start, end map[int32]int64
	// follow keeps reading past end until ctx ends.
	follow bool
	// batch is the most records handed over at once.
	batch int

	// next is, per partition, the offset after the last record handled.
	next  map[int32]*atomic.Int64
	read  atomic.Int64 // data records handled
	begun time.Time
}

// handler handles records of one partition; next is the offset after
// them (markers included). A failed call is retried with the same records.
type handler func(ctx context.Context, partition int32, recs []*kgo.Record, next int64) error

func newReader(cfg Config, topic string, start, end map[int32]int64, follow bool, batch int) *reader {
	r := &reader{cfg: cfg, topic: topic, start: start, end: end, follow: follow, batch: batch, next: map[int32]*atomic.Int64{}}
	for p, o := range start {
		r.next[p] = new(atomic.Int64)
		r.next[p].Store(o)
	}
	return r
}

// run reads until every partition reached its end (or, following, until
// ctx ends). It returns nil when done, ctx's error when interrupted: what
// was handled stays handled, in offset order without holes.
func (r *reader) run(ctx context.Context, handle handler) error {
	r.begun = time.Now()
	todo := map[int32]kgo.Offset{}
	for p, o := range r.start {
		if r.follow || o < r.end[p] {
			todo[p] = kgo.NewOffset().At(o)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cl, err := r.cfg.kafka(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: todo}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(8<<20),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	var remaining atomic.Int32
	remaining.Store(int32(len(todo)))
	ins := map[int32]chan []*kgo.Record{}
	var wg sync.WaitGroup
	for p := range todo {
		in := make(chan []*kgo.Record, 8)
		ins[p] = in
		wg.Go(func() {
			r.work(ctx, p, in, handle, func() {
				if remaining.Add(-1) == 0 && !r.follow {
					stopPolling()
				}
			})
		})
	}

	var fatal error
poll:
	for {
		fs := cl.PollRecords(pollCtx, 4*r.batch)
		if pollCtx.Err() != nil || fs.IsClientClosed() {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) {
				fatal = fmt.Errorf("replay: %s partition %d: %w", t, p, err)
			}
			r.cfg.Logger.Warn("fetch failed; retrying", "topic", t, "partition", p, "err", err)
		})
		if fatal != nil {
			break
		}
		var sendErr error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 || sendErr != nil {
				return
			}
			select {
			case ins[fp.Partition] <- fp.Records:
			case <-pollCtx.Done():
				sendErr = pollCtx.Err()
			}
		})
		if sendErr != nil {
			break poll
		}
	}
	for _, in := range ins {
		close(in)
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	return ctx.Err()
}

// work handles one partition's records in batches of up to r.batch: what
// arrived while the previous batch was being written goes together.
func (r *reader) work(ctx context.Context, p int32, in <-chan []*kgo.Record, handle handler, reachedEnd func()) {
	end, done := r.end[p], false
	var pending []*kgo.Record
	for {
		if len(pending) == 0 {
			recs, ok := <-in
			if !ok {
				return
			}
			pending = recs
		}
	more:
		for len(pending) < r.batch {
			select {
			case recs, ok := <-in:
				if !ok {
					break more
				}
				pending = append(pending, recs...)
			default:
				break more
			}
		}
		n := min(len(pending), r.batch)
		chunk := pending[:n]
		pending = pending[n:]
		if done {
			continue // past the end: dropped until polling stops
		}
		if !r.follow {
			if i := slices.IndexFunc(chunk, func(rec *kgo.Record) bool { return rec.Offset >= end }); i >= 0 {
				chunk = chunk[:i]
			}
		}
		if len(chunk) == 0 {
			continue
		}
		next := chunk[len(chunk)-1].Offset + 1
		data := make([]*kgo.Record, 0, len(chunk))
		for _, rec := range chunk {
			if !rec.Attrs.IsControl() {
				data = append(data, rec)
			}
		}
		if err := r.retry(ctx, p, func() error { return handle(ctx, p, data, next) }); err != nil {
			return // ctx ended; the records are not handled
		}
		r.next[p].Store(next)
		r.read.Add(int64(len(data)))
		if !r.follow && next >= end {
			done = true
			reachedEnd()
		}
	}
}

// retry runs fn until it succeeds or ctx ends, backing off from 100 ms to
// 5 s: a rebuild waits out a Cassandra restart rather than failing.
func (r *reader) retry(ctx context.Context, p int32, fn func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.cfg.Logger.Warn("batch failed; retrying", "partition", p, "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// positions returns the current position of every partition.
func (r *reader) positions() map[int32]int64 {
	out := make(map[int32]int64, len(r.next))
	for p, n := range r.next {
		out[p] = n.Load()
	}
	return out
}

// offsets lists the first and the end offset (last stable: records of open
// transactions are not counted) of every partition of topic.
func offsets(ctx context.Context, adm *kadm.Client, topic string) (start, end map[int32]int64, err error) {
	s, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = s.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("replay: start offsets of %s: %w", topic, err)
	}
	e, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = e.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("replay: end offsets of %s: %w", topic, err)
	}
	start, end = map[int32]int64{}, map[int32]int64{}
	s.Each(func(o kadm.ListedOffset) { start[o.Partition] = o.Offset })
	e.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	if len(start) == 0 {
		return nil, nil, fmt.Errorf("replay: topic %s does not exist", topic)
	}
	return start, end, nil
}

func total(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func sortedPartitions(m map[int32]int64) []int32 {
	return slices.Sorted(maps.Keys(m))
}

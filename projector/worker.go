package projector

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
)

// worker applies one assigned partition: it takes the records the poll loop
// hands it, in offset order, up to MaxBatch at a time, and for each batch
//
//  1. writes the views (Writer.Apply, the path rebuild takes);
//  2. publishes the batch's poison records to the dead-letter topic
//     (acks=all), counted and logged;
//  3. writes the checkpoint row of the batch's last record;
//
// and only then makes the offset after it available to the committer
// (Projector.commit, every second and on revoke). A failed step fails the
// batch, which is tried again from step 1 with backoff, forever, without
// skipping a record (dead letters already published are not published
// again). Between batches, and after every failure, it reads its checkpoint
// back (verify): below what it wrote means Cassandra lost acknowledged
// writes, and the records since are applied again (repair).
type worker struct {
	p         *Projector
	cl        *kgo.Client
	w         *Writer
	partition int32
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
	wake   chan struct{} // 1-buffered: records were pushed

	// next is the offset after the last record applied and checkpointed
	// (at the start: where fetching starts), committed the last offset
	// committed for the partition by this worker.
	next, committed atomic.Int64

	// Worker goroutine only.
	lastCP     int64     // last checkpoint this worker wrote; -1 none
	lastStart  time.Time // when the last batch started
	rate       float64   // records per second, a moving average (started)
	suspect    bool      // a failure happened: verify before going on
	lastVerify time.Time
}

func newWorker(p *Projector, cl *kgo.Client, w *Writer, partition int32) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	wk := &worker{p: p, cl: cl, w: w, partition: partition, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), wake: make(chan struct{}, 1), lastCP: -1, lastVerify: time.Now()}
	wk.next.Store(-1)
	wk.committed.Store(-1)
	return wk
}

// begin records where fetching starts (startOffsets).
func (w *worker) begin(offset int64) {
	w.next.Store(offset)
	w.committed.Store(offset)
}

// stop ends the worker and waits for it: a batch being written is
// abandoned (its records are applied again by whoever reads the partition
// from the committed offset).
func (w *worker) stop() {
	w.cancel()
	<-w.done
}

// bufferLimit is how many records a worker queues before its partition's
// fetching pauses (resumed at half). Generous on purpose: a resumed
// partition joins the next fetch request only once the one in flight
// returns (up to the fetch wait, 5 s, when the others are idle), so pausing
// often stalls the partition.
func (w *worker) bufferLimit() int { return max(8*w.p.cfg.MaxBatch, 8192) }

// push queues records of the partition (poll loop). Past bufferLimit
// queued, the partition's fetching pauses until the worker has taken half.
func (w *worker) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if !w.paused && len(w.queue) >= w.bufferLimit() {
		w.paused = true
		w.cl.PauseFetchPartitions(map[string][]int32{w.p.cfg.EventsTopic: {w.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take removes up to MaxBatch queued records.
func (w *worker) take() []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.queue), w.p.cfg.MaxBatch)
	if n == 0 {
		return nil
	}
	recs := slices.Clone(w.queue[:n])
	clear(w.queue[:n])
	w.queue = w.queue[n:]
	if w.paused && len(w.queue) <= w.bufferLimit()/2 {
		w.paused = false
		w.cl.ResumeFetchPartitions(map[string][]int32{w.p.cfg.EventsTopic: {w.partition}})
	}
	return recs
}

func (w *worker) run() {
	defer close(w.done)
	every := w.p.cfg.VerifyEvery
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if time.Since(w.lastVerify) >= every {
			if w.retry("verify the checkpoint", func() error { return nil }, true) != nil {
				return
			}
		}
		if !w.gather(t.C) {
			return
		}
		recs := w.take()
		if len(recs) == 0 {
			select {
			case <-w.ctx.Done():
				return
			case <-w.wake:
			case <-t.C:
			}
			continue
		}
		w.started(len(recs))
		published := false
		if w.retry("apply a batch", func() error { return w.apply(recs, &published) }, false) != nil {
			return // stopped: the batch is abandoned
		}
	}
}

// gather waits, while fewer than MaxBatch records are queued, until
// BatchInterval has passed since the last batch started — but only while
// the partition's records come fast enough that at least gatherMin of
// them arrive in an interval: then the wait buys shared requests and
// coalesced rows; below that it would only add view lag. False when the
// worker stops meanwhile. A verify tick ends the wait early.
func (w *worker) gather(tick <-chan time.Time) bool {
	iv := w.p.cfg.BatchInterval
	if iv <= 0 || w.rate*iv.Seconds() < gatherMin {
		return true
	}
	rest := iv - time.Since(w.lastStart)
	w.mu.Lock()
	full := len(w.queue) >= w.p.cfg.MaxBatch
	w.mu.Unlock()
	if rest > 0 && !full {
		timer := time.NewTimer(rest)
		defer timer.Stop()
		select {
		case <-w.ctx.Done():
			return false
		case <-timer.C:
		case <-tick:
		}
	}
	return true
}

// gatherMin is how many records must arrive per BatchInterval, at the
// partition's recent rate, for a worker to wait for more (gather).
const gatherMin = 8

// started notes that a batch of n records starts now, and updates the
// partition's record rate: a moving average of the records per second
// between batch starts.
func (w *worker) started(n int) {
	now := time.Now()
	if !w.lastStart.IsZero() {
		if dt := now.Sub(w.lastStart).Seconds(); dt > 0 {
			w.rate = 0.7*w.rate + 0.3*float64(n)/dt
		}
	}
	w.lastStart = now
}

// retry runs fn until it succeeds or the worker stops (the error then),
// with backoff; after a failure, and when verify is set, it verifies the
// checkpoint before fn.
func (w *worker) retry(what string, fn func() error, verify bool) error {
	cfg := w.p.cfg
	delay := cfg.RetryInitialInterval
	for {
		var err error
		if verify || w.suspect {
			err = w.verify()
		}
		if err == nil {
			err = w.protect(fn)
		}
		if err == nil {
			return nil
		}
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		w.suspect = true
		w.p.m.failures.Inc()
		w.p.log.Error("cannot "+what+"; retrying", "partition", w.partition, "err", err, "in", delay)
		if !sleep(w.ctx, delay) {
			return w.ctx.Err()
		}
		delay = min(2*delay, cfg.RetryMaxInterval)
	}
}

// protect turns a panic in fn into an error, retried like any other: a bug
// stalls its partition, loudly, rather than skipping an event.
func (w *worker) protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projector: panic: %v", v)
		}
	}()
	return fn()
}

// apply writes one batch: views, dead letters, checkpoint.
func (w *worker) apply(recs []*kgo.Record, published *bool) error {
	start := time.Now()
	batch := make([]Record, len(recs))
	for i, r := range recs {
		batch[i] = Record{Key: r.Key, Value: r.Value}
	}
	first, last := recs[0].Offset, recs[len(recs)-1].Offset
	poison, err := w.w.Apply(w.ctx, batch)
	if err != nil {
		return fmt.Errorf("apply %d records (partition %d offsets %d…%d): %w", len(recs), w.partition, first, last, err)
	}
	if len(poison) > 0 && !*published {
		if err := w.deadLetter(recs, poison); err != nil {
			return err
		}
		*published = true
	}
	if err := w.w.Checkpoint(w.ctx, w.p.cfg.Group, w.partition, last); err != nil {
		return fmt.Errorf("checkpoint partition %d offset %d: %w", w.partition, last, err)
	}
	w.lastCP = last
	w.next.Store(last + 1)
	w.p.m.batch.Observe(time.Since(start).Seconds())
	for i, r := range recs {
		if _, bad := poison[i]; !bad {
			w.p.m.applied.WithLabelValues(recordType(r)).Inc()
		}
	}
	return nil
}

// recordType is the event type the record's header names.
func recordType(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderType {
			return string(h.Value)
		}
	}
	return "unknown"
}

// verify reads the partition's checkpoint back. Below the last one this
// worker wrote (or gone), Cassandra lost acknowledged writes — a node that
// crashed before its commitlog reached the disk replays a prefix of them —,
// and the records from the checkpoint on are applied again.
func (w *worker) verify() error {
	w.lastVerify = time.Now()
	if w.lastCP < 0 {
		return nil
	}
	cp, ok, err := w.w.v.readCheckpoint(w.ctx, w.p.cfg.Group, w.partition)
	if err != nil {
		return err
	}
	if ok && cp >= w.lastCP {
		w.suspect = false
		return nil
	}
	from := cp + 1
	if !ok {
		from = 0
	}
	w.p.m.rewinds.Inc()
	w.p.log.Warn("checkpoint behind what was written: Cassandra lost acknowledged writes; applying again from the checkpoint",
		"partition", w.partition, "written", w.lastCP, "checkpoint", cp, "has_checkpoint", ok, "from", from)
	if err := w.repair(from, w.lastCP); err != nil {
		return err
	}
	w.suspect = false
	return nil
}

// repair applies the records from..to of the partition again, reading them
// with a client of its own so the group's fetching is not disturbed; the
// records after to are still queued and come next, so the partition stays
// in log order (again from an earlier offset). Poison records were
// dead-lettered the first time and are skipped.
func (w *worker) repair(from, to int64) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(w.p.cfg.Seeds...),
		kgo.ClientID("parley-projector-repair"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.p.cfg.EventsTopic: {w.partition: kgo.NewOffset().At(from)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // positions: stop at to even if it is a marker
	}, w.p.cfg.KafkaOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("projector: repair client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(w.ctx, w.p.cfg.MaxBatch)
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("projector: repair partition %d: %w", w.partition, ferr)
		}
		var batch []Record
		lastData, done := int64(-1), false
		fs.EachRecord(func(r *kgo.Record) {
			if done || r.Offset > to {
				done = true
				return
			}
			if r.Offset == to {
				done = true
			}
			if !r.Attrs.IsControl() {
				batch = append(batch, Record{Key: r.Key, Value: r.Value})
				lastData = r.Offset
			}
		})
		if len(batch) > 0 {
			if _, err := w.w.Apply(w.ctx, batch); err != nil {
				return fmt.Errorf("repair partition %d: %w", w.partition, err)
			}
			if err := w.w.Checkpoint(w.ctx, w.p.cfg.Group, w.partition, lastData); err != nil {
				return fmt.Errorf("repair partition %d: checkpoint: %w", w.partition, err)
			}
		}
		if done {
			// The last checkpoint written is to's (or the last record's
			// before it, when to is a marker): write to's, as before.
			return w.w.Checkpoint(w.ctx, w.p.cfg.Group, w.partition, to)
		}
	}
}

// Dead-letter record headers, besides the original record's. The names are
// those of Watermill's poison queue, which the side consumers use.
const (
	// HeaderReason is why the record cannot be applied.
	HeaderReason = "reason_poisoned"
	// HeaderTopic is the topic the record was read from.
	HeaderTopic = "topic_poisoned"
	// MetaConsumerGroup is the consumer group of the projector that gave up
	// on the record.
	MetaConsumerGroup = "consumer_group"
	// HeaderPartition and HeaderOffset are where the record is (decimal).
	HeaderPartition = "partition"
	HeaderOffset    = "offset"
)

// deadLetter publishes the poison records of recs (acks=all), then counts
// and logs each: none goes unnoticed, and a failed publish is retried with
// the batch, not counted.
func (w *worker) deadLetter(recs []*kgo.Record, poison map[int]error) error {
	idx := make([]int, 0, len(poison))
	for i := range poison {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]*kgo.Record, 0, len(idx))
	for _, i := range idx {
		r := recs[i]
		h := append(slices.Clone(r.Headers),
			kgo.RecordHeader{Key: HeaderReason, Value: []byte(poison[i].Error())},
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: MetaConsumerGroup, Value: []byte(w.p.cfg.Group)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		)
		out = append(out, &kgo.Record{Topic: w.p.cfg.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: h})
	}
	if err := w.cl.ProduceSync(w.ctx, out...).FirstErr(); err != nil {
		return fmt.Errorf("publish %d dead letters to %s: %w", len(out), w.p.cfg.DeadLetterTopic, err)
	}
	for _, i := range idx {
		w.p.m.poison.Inc()
		w.p.log.Error("event cannot be applied; sent to the dead-letter topic",
			"dead_letter_topic", w.p.cfg.DeadLetterTopic, "reason", poison[i].Error(),
			"partition", w.partition, "offset", recs[i].Offset, "key", string(recs[i].Key), "type", recordType(recs[i]))
	}
	return nil
}

package bus

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partition delivers the records of one partition, one at a time, in offset
// order. Its queue is filled by the poll loop; when the queue holds
// MaxBufferedRecords the partition's fetching is paused (franz-go keeps the
// fetch position, so nothing is skipped) and resumed once half is drained.
type partition struct {
	c  *consumer
	id int32

	ctx      context.Context // canceled to abandon the message in flight
	abort    context.CancelFunc
	stopping chan struct{} // closed to deliver nothing new
	stopOnce sync.Once
	done     chan struct{}

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
	wake   chan struct{}
}

func newPartition(c *consumer, id int32) *partition {
	ctx, cancel := context.WithCancel(c.ctx)
	return &partition{
		c:        c,
		id:       id,
		ctx:      ctx,
		abort:    cancel,
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// push appends records; called by the poll loop only, never blocks.
func (w *partition) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if !w.paused && len(w.queue) >= w.c.cfg.MaxBufferedRecords {
		w.paused = true
		// Under mu, so a concurrent resume in next cannot be overtaken.
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.c.topic: {w.id}})
		w.c.log.Trace("Fetching paused", watermill.LogFields{"partition": w.id, "buffered": len(w.queue)})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop ends the worker. Graceful stops take nothing new from the queue but
// wait for the message in flight to be acked or nacked (or for the consumer
// to end); otherwise the message in flight is abandoned at once.
func (w *partition) stop(graceful bool) {
	w.stopOnce.Do(func() { close(w.stopping) })
	if !graceful {
		w.abort()
	}
}

func (w *partition) run() {
	defer close(w.done)
	defer w.abort()
	defer func() {
		// The client remembers paused partitions across assignments; a
		// partition that comes back must not come back paused.
		w.mu.Lock()
		if w.paused {
			w.paused = false
			w.c.cl.ResumeFetchPartitions(map[string][]int32{w.c.topic: {w.id}})
		}
		w.queue = nil
		w.mu.Unlock()
	}()
	for {
		rec, ok := w.next()
		if !ok || !w.deliver(rec) {
			return
		}
	}
}

// next waits for the next record; false means stop.
func (w *partition) next() (*kgo.Record, bool) {
	for {
		select {
		case <-w.stopping:
			return nil, false
		case <-w.ctx.Done():
			return nil, false
		default:
		}
		if rec := w.take(); rec != nil {
			return rec, true
		}
		select {
		case <-w.wake:
		case <-w.stopping:
			return nil, false
		case <-w.ctx.Done():
			return nil, false
		}
	}
}

// take pops the next queued record, nil if there is none; it resumes
// fetching once half the queue is drained.
func (w *partition) take() *kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return nil
	}
	rec := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	if w.paused && len(w.queue) <= w.c.cfg.MaxBufferedRecords/2 {
		w.paused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.c.topic: {w.id}})
		w.c.log.Trace("Fetching resumed", watermill.LogFields{"partition": w.id, "buffered": len(w.queue)})
	}
	return rec
}

// newMessage is rec as a message whose context is a child of the worker's.
// The context is returned too: a router may replace the message's own.
func (w *partition) newMessage(rec *kgo.Record) (*message.Message, context.Context, context.CancelFunc) {
	msg := toMessage(rec)
	ctx, cancel := context.WithCancel(w.ctx)
	msg.SetContext(ctx)
	return msg, ctx, cancel
}

// deliver hands rec out until it is acked (true) or the worker stops
// (false). A nack delivers the same record again after NackResendSleep, as a
// fresh message, since a Watermill message is acked or nacked only once.
func (w *partition) deliver(rec *kgo.Record) bool {
	for {
		msg, _, cancel := w.newMessage(rec)
		select {
		case w.c.out <- msg:
		case <-w.stopping:
			cancel()
			return false
		case <-w.ctx.Done():
			cancel()
			return false
		}
		// In flight: a graceful stop waits here for the outcome.
		select {
		case <-msg.Acked():
			cancel()
			w.c.acked(rec)
			return true
		case <-msg.Nacked():
			cancel()
		case <-w.ctx.Done():
			cancel()
			return false
		}
		w.c.log.Trace("Nacked, delivering again", nil)
		t := time.NewTimer(w.c.cfg.NackResendSleep)
		select {
		case <-t.C:
		case <-w.stopping:
			t.Stop()
			return false
		case <-w.ctx.Done():
			t.Stop()
			return false
		}
	}
}

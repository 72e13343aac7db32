package bus

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partition delivers the records of one partition. At most MaxInFlight of
// its messages are handed out at once, and of those at most one per record
// key: a record is delivered only after every earlier record with its key
// was acked, so each key is seen in offset order (with MaxInFlight 1, the
// whole partition is). Offsets move only over a prefix of acked records: a
// record acked ahead of an unacked one is committed once that one is.
//
// The poll loop fills queue; the worker moves it into window, its private
// list of the records not yet covered by an ack. While queue and window
// hold MaxBufferedRecords the partition's fetching is paused (franz-go
// keeps the fetch position, so nothing is skipped), and resumed once half
// is gone.
type partition struct {
	c  *consumer
	id int32

	ctx      context.Context // canceled to abandon the messages in flight
	abort    context.CancelFunc
	stopping chan struct{} // closed to deliver nothing new
	stopOnce sync.Once
	done     chan struct{}

	mu       sync.Mutex
	queue    []*kgo.Record
	buffered int // len(queue) + len(window)
	paused   bool
	wake     chan struct{}

	// Owned by the worker goroutine.
	window   []*entry
	handed   int // messages handed out, not yet acked or nacked
	resting  int // nacked messages waiting NackResendSleep
	outcomes chan outcome
	retries  chan *entry
	keys     map[string]bool // scratch for pick
}

// entry is a record of the window and where it stands.
type entry struct {
	rec   *kgo.Record
	state entryState
}

type entryState int

const (
	queued  entryState = iota // not handed out yet, or again after a nack's pause
	offered                   // a message is being handed out
	handed                    // a handler has it
	resting                   // nacked, delivered again after NackResendSleep
	acked
)

// outcome is what became of a handed-out message.
type outcome struct {
	e   *entry
	ack bool
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
		outcomes: make(chan outcome),
		retries:  make(chan *entry),
		keys:     map[string]bool{},
	}
}

// push appends records; called by the poll loop only, never blocks.
func (w *partition) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	w.buffered += len(recs)
	if !w.paused && w.buffered >= w.c.cfg.MaxBufferedRecords {
		w.paused = true
		// Under mu, so a concurrent resume in release cannot be overtaken.
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.c.topic: {w.id}})
		w.c.log.Trace("Fetching paused", watermill.LogFields{"partition": w.id, "buffered": w.buffered})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop ends the worker. Graceful stops hand out nothing new but wait for
// the messages handed out to be acked or nacked (or for the consumer to
// end); otherwise those messages are abandoned at once.
func (w *partition) stop(graceful bool) {
	w.stopOnce.Do(func() { close(w.stopping) })
	if !graceful {
		w.abort()
	}
}

func (w *partition) run() {
	defer close(w.done)
	// Also ends the goroutines waiting for outcomes and pauses.
	defer w.abort()
	defer func() {
		// The client remembers paused partitions across assignments; a
		// partition that comes back must not come back paused.
		w.mu.Lock()
		if w.paused {
			w.paused = false
			w.c.cl.ResumeFetchPartitions(map[string][]int32{w.c.topic: {w.id}})
		}
		w.queue, w.buffered = nil, 0
		w.mu.Unlock()
	}()
	var (
		stopping = w.stopping // nil once closed: handing out nothing new
		offer    *entry
		msg      *message.Message
		cancel   context.CancelFunc
	)
	for {
		if stopping == nil && w.handed == 0 {
			return
		}
		if offer == nil && stopping != nil && w.handed+w.resting < w.c.cfg.MaxInFlight {
			w.take()
			if offer = w.pick(); offer != nil {
				offer.state = offered
				msg, cancel = w.newMessage(offer.rec)
			}
		}
		var out chan<- *message.Message
		if offer != nil {
			out = w.c.out
		}
		select {
		case out <- msg:
			offer.state = handed
			w.handed++
			go w.await(offer, msg, cancel)
			offer, msg, cancel = nil, nil, nil
		case o := <-w.outcomes:
			w.handed--
			if o.ack {
				o.e.state = acked
				w.release()
				continue
			}
			o.e.state = resting
			w.resting++
			w.c.log.Trace("Nacked, delivering again", nil)
			go w.rest(o.e)
		case e := <-w.retries:
			e.state = queued
			w.resting--
		case <-w.wake:
		case <-stopping:
			stopping = nil
			if offer != nil {
				cancel()
				offer.state, offer, msg, cancel = queued, nil, nil, nil
			}
		case <-w.ctx.Done():
			if cancel != nil {
				cancel()
			}
			return
		}
	}
}

// take moves what the poll loop queued into the window.
func (w *partition) take() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, rec := range w.queue {
		w.window = append(w.window, &entry{rec: rec})
	}
	w.queue = w.queue[:0]
}

// pick returns the first record of the window that may be handed out: the
// earliest not acked of its key, waiting to be delivered. Nil if none.
func (w *partition) pick() *entry {
	if w.c.cfg.MaxInFlight == 1 {
		// Only the first record not acked may go.
		for _, e := range w.window {
			if e.state == queued {
				return e
			}
			if e.state != acked {
				return nil
			}
		}
		return nil
	}
	clear(w.keys)
	for _, e := range w.window {
		if e.state == acked {
			continue
		}
		k := string(e.rec.Key)
		if w.keys[k] {
			continue
		}
		w.keys[k] = true
		if e.state == queued {
			return e
		}
	}
	return nil
}

// release drops the acked records at the front of the window and records
// the last of them as acked; fetching resumes once half the buffer is gone.
func (w *partition) release() {
	n := 0
	for n < len(w.window) && w.window[n].state == acked {
		n++
	}
	if n == 0 {
		return
	}
	w.c.acked(w.window[n-1].rec)
	clear(w.window[:n])
	w.window = w.window[n:]
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buffered -= n
	if w.paused && w.buffered <= w.c.cfg.MaxBufferedRecords/2 {
		w.paused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.c.topic: {w.id}})
		w.c.log.Trace("Fetching resumed", watermill.LogFields{"partition": w.id, "buffered": w.buffered})
	}
}

// await reports msg's ack or nack to the worker, then cancels its context.
func (w *partition) await(e *entry, msg *message.Message, cancel context.CancelFunc) {
	defer cancel()
	var o outcome
	select {
	case <-msg.Acked():
		o = outcome{e: e, ack: true}
	case <-msg.Nacked():
		o = outcome{e: e}
	case <-w.ctx.Done():
		return
	}
	select {
	case w.outcomes <- o:
	case <-w.ctx.Done():
	}
}

// rest gives e back to the worker after NackResendSleep.
func (w *partition) rest(e *entry) {
	t := time.NewTimer(w.c.cfg.NackResendSleep)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.ctx.Done():
		return
	}
	select {
	case w.retries <- e:
	case <-w.ctx.Done():
	}
}

// newMessage is rec as a message whose context is a child of the worker's.
// The context is returned too: a router may replace the message's own.
func (w *partition) newMessage(rec *kgo.Record) (*message.Message, context.CancelFunc) {
	msg := toMessage(rec)
	ctx, cancel := context.WithCancel(w.ctx)
	msg.SetContext(ctx)
	return msg, cancel
}

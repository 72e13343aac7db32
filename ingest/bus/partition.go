package bus

import (
	"context"
	"strconv"
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
	if w.c.cfg.MaxInFlight > 1 {
		w.runWindow()
		return
	}
	prev := int64(-1)
	for {
		rec, ok := w.next()
		if !ok || !w.deliver(rec, prev) {
			return
		}
		prev = rec.Offset
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
func (w *partition) newMessage(rec *kgo.Record, prev int64) (*message.Message, context.Context, context.CancelFunc) {
	msg := toMessage(rec)
	msg.Metadata[MetaPrevOffset] = strconv.FormatInt(prev, 10)
	ctx, cancel := context.WithCancel(w.ctx)
	msg.SetContext(ctx)
	return msg, ctx, cancel
}

// deliver hands rec out until it is acked (true) or the worker stops
// (false). A nack delivers the same record again after NackResendSleep, as a
// fresh message, since a Watermill message is acked or nacked only once.
func (w *partition) deliver(rec *kgo.Record, prev int64) bool {
	for {
		msg, _, cancel := w.newMessage(rec, prev)
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

// flight is a record of a windowed partition, delivered and not yet
// committable: handed out, nacked and waiting to be sent again, or acked
// behind one that is not.
type flight struct {
	rec   *kgo.Record
	prev  int64
	acked bool
	due   time.Time // when nacked: when to deliver it again
}

type outcome struct {
	f     *flight
	acked bool
}

// runWindow delivers up to MaxInFlight records at a time, in offset order,
// each with the offset of the one before (MetaPrevOffset). Acks are
// recorded for commit only as a prefix: the committed offset never passes a
// record not acked. A nacked record is delivered again after
// NackResendSleep (same prev), the others go on. A graceful stop sends
// nothing new and waits until no message is out.
func (w *partition) runWindow() {
	limit := w.c.cfg.MaxInFlight
	var (
		window  []*flight // in offset order
		resend  []*flight // nacked, in nack order
		out     int       // messages handed out, not yet answered
		prev    = int64(-1)
		results = make(chan outcome, limit)
		timer   *time.Timer
		timerC  <-chan time.Time
		cand    *flight
		candMsg *message.Message
		candCtx context.Context
		candEnd context.CancelFunc
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if candEnd != nil {
			candEnd()
		}
	}()
	stopping := w.stopping
	handle := func(o outcome) {
		out--
		if !o.acked {
			o.f.due = time.Now().Add(w.c.cfg.NackResendSleep)
			resend = append(resend, o.f)
			w.c.log.Trace("Nacked, delivering again", nil)
			return
		}
		o.f.acked = true
		n := 0
		for n < len(window) && window[n].acked {
			n++
		}
		if n > 0 {
			w.c.acked(window[n-1].rec)
			clear(window[:n])
			window = window[n:]
		}
	}
	for {
		if stopping == nil && out == 0 {
			return // graceful stop: nothing out any more
		}
		if cand == nil && stopping != nil {
			now := time.Now()
			if len(resend) > 0 && !resend[0].due.After(now) {
				cand, resend = resend[0], resend[1:]
			} else if len(window) < limit {
				if rec := w.take(); rec != nil {
					cand = &flight{rec: rec, prev: prev}
					prev = rec.Offset
					window = append(window, cand)
				}
			}
			if cand != nil {
				candMsg, candCtx, candEnd = w.newMessage(cand.rec, cand.prev)
			}
		}
		timerC = nil
		if cand == nil && len(resend) > 0 && stopping != nil {
			if timer == nil {
				timer = time.NewTimer(time.Until(resend[0].due))
			} else {
				timer.Reset(time.Until(resend[0].due))
			}
			timerC = timer.C
		}
		var send chan<- *message.Message
		if cand != nil {
			send = w.c.out
		}
		select {
		case send <- candMsg:
			out++
			go waitOutcome(candMsg, candCtx, cand, candEnd, results)
			cand, candMsg, candCtx, candEnd = nil, nil, nil, nil
		case o := <-results:
			handle(o)
		case <-w.wake:
		case <-timerC:
		case <-stopping:
			stopping = nil
			if candEnd != nil {
				candEnd()
				cand, candMsg, candCtx, candEnd = nil, nil, nil, nil
			}
		case <-w.ctx.Done():
			return
		}
		if timer != nil && timerC != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// waitOutcome reports msg's ack or nack; nothing if ctx, the context msg
// was delivered with, ends first (the worker is gone then).
func waitOutcome(msg *message.Message, ctx context.Context, f *flight, end context.CancelFunc, results chan<- outcome) {
	defer end()
	select {
	case <-msg.Acked():
		results <- outcome{f, true}
	case <-msg.Nacked():
		results <- outcome{f, false}
	case <-ctx.Done():
	}
}

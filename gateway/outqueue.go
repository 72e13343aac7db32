package gateway

import "sync"

// outQueue is a session's bounded queue of frames waiting for its writer.
// A buffered channel of the same bound would hold its whole buffer for the
// life of the session (1,280 frames: 10 KiB, used or not); this holds memory
// only for what is queued, so an idle session keeps none.
type outQueue struct {
	mu    sync.Mutex
	items []*outbound
	head  int // items[head:] are queued
	limit int
	// ready is signalled (without blocking) after each push: the writer
	// drains the queue each time it receives, so no push goes unseen.
	ready chan struct{}
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push queues o unless bound frames are queued already (bound ≤ limit);
// false when there is no room.
func (q *outQueue) push(o *outbound, bound int) bool {
	q.mu.Lock()
	if len(q.items)-q.head >= min(bound, q.limit) {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, o)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest queued frame.
func (q *outQueue) pop() (*outbound, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil, false
	}
	o := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		// Empty: start again at the front, and give a burst's memory back.
		q.head = 0
		if cap(q.items) > 64 {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
	}
	return o, true
}

// len is how many frames are queued.
func (q *outQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

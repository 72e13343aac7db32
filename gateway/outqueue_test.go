package gateway

import "testing"

// TestOutQueue: frames come out in order; a push beyond its bound is
// refused (the answers' reserve above the others' bound, the limit above
// every bound); the writer's signal is pending after a push; an emptied
// queue holds no burst's memory.
func TestOutQueue(t *testing.T) {
	q := newOutQueue(4)
	frames := make([]*outbound, 5)
	for i := range frames {
		frames[i] = &outbound{kind: string(rune('a' + i))}
	}
	for i := range 3 {
		if !q.push(frames[i], 3) {
			t.Fatalf("push %d within the bound 3 refused", i)
		}
	}
	if q.push(frames[3], 3) {
		t.Fatal("a fourth push within the bound 3 accepted")
	}
	if !q.push(frames[3], 10) {
		t.Fatal("a push within the limit 4 with a larger bound refused")
	}
	if q.push(frames[4], 10) {
		t.Fatal("a push beyond the limit 4 accepted")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no signal pending after pushes")
	}
	if q.len() != 4 {
		t.Fatalf("len %d, want 4", q.len())
	}
	for i := range 4 {
		o, ok := q.pop()
		if !ok || o != frames[i] {
			t.Fatalf("pop %d: %v %v, want frame %s", i, o, ok, frames[i].kind)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop of an empty queue gave a frame")
	}

	big := newOutQueue(1000)
	for range 500 {
		big.push(frames[0], 1000)
	}
	for ok := true; ok; _, ok = big.pop() {
	}
	if big.items != nil || big.len() != 0 {
		t.Fatalf("emptied after a burst: %d queued, capacity %d kept", big.len(), cap(big.items))
	}
}

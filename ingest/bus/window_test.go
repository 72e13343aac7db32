package bus_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/ingest/bus"
	"github.com/parley-im/parley/testenv"
)

// TestMaxInFlight: with MaxInFlight = 4 a partition hands out four messages
// in offset order without waiting for acks, each naming the one before; the
// fifth waits for the oldest to be acked; acks behind an unacked message
// are never committed; a nacked message comes again (same prev) while later
// ones go on.
func TestMaxInFlight(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-window", 1)
	group := k.Name("bus-window")
	adm := kadm.NewClient(k.Client())
	const n, window = 12, 4

	pub := newPublisher(t, k, 0)
	defer pub.Close()
	var batch []*message.Message
	for i := range n {
		batch = append(batch, message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", i)))
	}
	if err := pub.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: group, CommitInterval: 20 * time.Millisecond, MaxInFlight: window, NackResendSleep: 10 * time.Millisecond})
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	get := func(want int) *message.Message {
		t.Helper()
		m := receive(t, msgs)
		if got := payloadSeq(t, m); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
		if got, want := m.Metadata.Get(bus.MetaPrevOffset), strconv.Itoa(want-1); got != want {
			t.Fatalf("message %d: prev_offset %q, want %q", payloadSeq(t, m), got, want)
		}
		return m
	}
	none := func() {
		t.Helper()
		select {
		case m := <-msgs:
			t.Fatalf("unexpected message %s", m.Payload)
		case <-time.After(200 * time.Millisecond):
		}
	}
	var first []*message.Message
	for i := range window {
		first = append(first, get(i))
	}
	none() // the window is full
	for _, m := range first[1:] {
		m.Ack()
	}
	none() // still full: message 0 is not acked
	if got := committed(t, adm, group, topic, 0); got != -1 {
		t.Fatalf("committed %d past the unacked message 0", got)
	}
	first[0].Ack()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := committed(t, adm, group, topic, 0); got != window {
			return fmt.Errorf("committed %d, want %d", got, window)
		}
		return nil
	})
	second := []*message.Message{get(4), get(5), get(6), get(7)}
	second[1].Nack()
	again := get(5)
	second[0].Ack()
	second[2].Ack()
	second[3].Ack()
	eighth := get(8) // window: 5 (out again), 6, 7 (acked), 8
	none()           // 5 holds the window
	again.Ack()
	eighth.Ack()
	for i := 9; i < n; i++ {
		get(i).Ack()
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := committed(t, adm, group, topic, 0); got != n {
			return fmt.Errorf("committed %d, want %d", got, n)
		}
		return nil
	})
}

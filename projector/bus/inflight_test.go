package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/testenv"
)

// TestInFlightPerKey: with MaxInFlight 2 on one partition holding
// a0 b0 c0 a1 b1 c1 a2 (offsets 0…6), two messages of different keys are
// handed out at once and no third; a message waits for every earlier one
// of its key, not for the others; a nacked message comes again before the
// next of its key; and the committed offset stays at the first message
// not acked, however many behind it were.
func TestInFlightPerKey(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-inflight", 1)
	group := k.Name("bus-inflight")
	adm := kadm.NewClient(k.Client())
	pub := newPublisher(t, k, 0)
	defer pub.Close()
	var batch []*message.Message
	for _, p := range strings.Fields("a0 b0 c0 a1 b1 c1 a2") {
		msg := message.NewMessage(watermill.NewUUID(), []byte(p))
		msg.Metadata.Set(bus.MetaPartitionKey, p[:1])
		batch = append(batch, msg)
	}
	if err := pub.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}

	sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: group, MaxInFlight: 2,
		CommitInterval: 20 * time.Millisecond, NackResendSleep: time.Millisecond})
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	next := func(want string) *message.Message {
		t.Helper()
		m := receive(t, msgs)
		if got := string(m.Payload); got != want {
			t.Fatalf("received %s, want %s", got, want)
		}
		return m
	}
	nothing := func(why string) {
		t.Helper()
		// A negative check: nothing may come while the window is full
		// or every key in it is held.
		testenv.Consistently(t, 300*time.Millisecond, func() string {
			select {
			case m := <-msgs:
				return fmt.Sprintf("received %s while %s", m.Payload, why)
			default:
				return ""
			}
		})
	}
	commitIs := func(want int64) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, func() string {
			if got := committed(t, adm, group, topic, 0); got != want {
				return fmt.Sprintf("committed %d, want %d", got, want)
			}
			return ""
		})
	}

	a0, b0 := next("a0"), next("b0")
	nothing("a0 and b0 fill the window")
	b0.Ack()
	c0 := next("c0") // a1 waits for a0
	c0.Ack()
	b1 := next("b1")
	nothing("a0 and b1 fill the window")
	b1.Ack()
	c1 := next("c1")
	nothing("a1 and a2 wait for a0")
	c1.Ack()
	// b0 c0 b1 c1 are acked, but a0 is not: nothing may be committed.
	testenv.Consistently(t, 300*time.Millisecond, func() string {
		if got := committed(t, adm, group, topic, 0); got != -1 {
			return fmt.Sprintf("committed %d past the unacked a0", got)
		}
		return ""
	})
	a0.Ack()
	commitIs(3) // a0 b0 c0; a1 is not acked
	a1 := next("a1")
	a1.Nack()
	a1 = next("a1") // again, before a2
	nothing("a2 waits for a1")
	a1.Ack()
	commitIs(6) // up to c1: a2 is not acked
	next("a2").Ack()
	commitIs(7)
}

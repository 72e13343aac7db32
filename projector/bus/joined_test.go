package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/testenv"
)

// TestJoined: a Subscriber is not joined before its first Subscribe, is
// once the group gave its member an assignment, and is not after Close.
func TestJoined(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-joined", 2)
	sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: k.Name("bus-joined")})
	if err := sub.Joined(); err == nil {
		t.Fatal("joined before any Subscribe")
	}
	if _, err := sub.Subscribe(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() string {
		if err := sub.Joined(); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Joined(); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

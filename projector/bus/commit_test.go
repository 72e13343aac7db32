package bus_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/testenv"
)

// committed returns the group's committed offset of topic/partition (-1 if
// none).
func committed(t *testing.T, adm *kadm.Client, group, topic string, partition int32) int64 {
	t.Helper()
	os, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	o, ok := os.Lookup(topic, partition)
	if !ok {
		return -1
	}
	return o.At
}

func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no message")
	}
	return nil
}

func payloadSeq(t *testing.T, m *message.Message) int {
	t.Helper()
	n, err := strconv.Atoi(string(m.Payload))
	if err != nil {
		t.Fatalf("payload %q", m.Payload)
	}
	return n
}

// TestCommitResumesAfterAck acks the first K messages of a partition, holds
// message K unacked, nacks nothing else and closes: the group's offset must
// be exactly K (a periodic commit never passes the unacked message, the
// commit on Close keeps the last acks), and a new subscriber of the group
// resumes at K: nothing acked comes again, nothing unacked is lost.
func TestCommitResumesAfterAck(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-commit", 1)
	group := k.Name("bus-commit")
	adm := kadm.NewClient(k.Client())
	const n, K = 20, 7

	pub := newPublisher(t, k, 0)
	defer pub.Close()
	var batch []*message.Message
	for i := range n {
		batch = append(batch, message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", i)))
	}
	if err := pub.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}

	t.Run("periodic commit stops at the unacked message", func(t *testing.T) {
		sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: group, CommitInterval: 20 * time.Millisecond})
		defer sub.Close()
		msgs, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		for i := range K - 3 {
			if m := receive(t, msgs); payloadSeq(t, m) != i {
				t.Fatalf("got %s, want %d", m.Payload, i)
			} else {
				m.Ack()
			}
		}
		held := receive(t, msgs)
		testenv.Eventually(t, 10*time.Second, func() string {
			if got := committed(t, adm, group, topic, 0); got != K-3 {
				return fmt.Sprintf("committed %d, want %d", got, K-3)
			}
			return ""
		})
		// A negative check, watched throughout: 200 ms are ten commit
		// intervals, ten chances for a periodic commit to pass the
		// unacked message.
		testenv.Consistently(t, 200*time.Millisecond, func() string {
			if got := committed(t, adm, group, topic, 0); got != K-3 {
				return fmt.Sprintf("committed %d while offset %d is unacked", got, K-3)
			}
			return ""
		})
		held.Nack() // let the close below drop it rather than wait
	})

	t.Run("close commits acks and abandons the message in flight", func(t *testing.T) {
		// An hour: only the commit on Close can record these acks.
		sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: group, CommitInterval: time.Hour})
		msgs, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		for i := K - 3; i < K; i++ {
			m := receive(t, msgs)
			if payloadSeq(t, m) != i {
				t.Fatalf("resumed with %s, want %d", m.Payload, i)
			}
			m.Ack()
		}
		held := receive(t, msgs)
		if payloadSeq(t, held) != K {
			t.Fatalf("got %s, want %d", held.Payload, K)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-held.Context().Done():
		default:
			t.Error("context of the unacked message not canceled by Close")
		}
		if _, open := <-msgs; open {
			t.Error("channel still open after Close")
		}
		if got := committed(t, adm, group, topic, 0); got != K {
			t.Fatalf("committed %d after close, want %d", got, K)
		}
	})

	t.Run("a new subscriber resumes at the first unacked message", func(t *testing.T) {
		sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: group})
		defer sub.Close()
		msgs, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		for i := K; i < n; i++ {
			m := receive(t, msgs)
			if got := payloadSeq(t, m); got != i {
				t.Fatalf("got %d, want %d", got, i)
			}
			m.Ack()
		}
		// A negative check: nothing acked comes again within 300 ms after
		// the last message.
		select {
		case m := <-msgs:
			t.Fatalf("unexpected message %s", m.Payload)
		case <-time.After(300 * time.Millisecond):
		}
	})
}

// TestRebalanceHandover moves partitions while messages flow: member A
// consumes alone, B joins (A gives up half its partitions gracefully), then
// A closes (B takes everything). No key may skip a message; the graceful
// handover repeats nothing, A's close repeats at most what A had delivered
// but not yet seen committed; every message arrives.
func TestRebalanceHandover(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-rebalance", 6)
	group := k.Name("bus-rebalance")
	const nKeys, perKey = 60, 50
	keys := make([]string, nKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("conv-%02d", i)
	}
	pub := newPublisher(t, k, 0)
	defer pub.Close()
	publishKeyed(t, pub, topic, keys, perKey)

	var (
		mu    sync.Mutex
		next  = map[string]int{} // next new seq expected per key
		dups  int
		total int
	)
	// The steps below start when the handlers reach these counts, not when
	// a poll sees them: the stream is short, and a late look would let it
	// pass the point where B should join or A close.
	quarter, twoThirds, all := make(chan struct{}), make(chan struct{}), make(chan struct{})
	marks := map[int]chan struct{}{nKeys * perKey / 4: quarter, nKeys * perKey * 2 / 3: twoThirds, nKeys * perKey: all}
	handle := func(msgs <-chan *message.Message, wg *sync.WaitGroup) {
		defer wg.Done()
		for m := range msgs {
			d := parseDelivery(t, m)
			mu.Lock()
			switch want := next[d.key]; {
			case d.seq == want:
				next[d.key]++
				total++
				if mark := marks[total]; mark != nil {
					close(mark)
				}
			case d.seq < want:
				dups++
			default:
				t.Errorf("%s: got seq %d, want %d (skipped)", d.key, d.seq, want)
			}
			mu.Unlock()
			time.Sleep(200 * time.Microsecond) // slow enough for rebalances to land mid-stream
			m.Ack()
		}
	}
	progress := func() int {
		mu.Lock()
		defer mu.Unlock()
		return total
	}
	reached := func(mark chan struct{}, timeout time.Duration, what string) {
		t.Helper()
		select {
		case <-mark:
		case <-time.After(timeout):
			t.Fatalf("%s consumed only %d of %d after %s", what, progress(), nKeys*perKey, timeout)
		}
	}

	// Frequent heartbeats let members notice a rebalance in time to
	// have it land mid-stream.
	cfg := bus.SubscriberConfig{ConsumerGroup: group, MaxBufferedRecords: 50,
		KafkaOptions: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}}
	start := time.Now()
	var wg sync.WaitGroup
	subA := newSubscriber(t, k, cfg)
	msgsA, err := subA.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go handle(msgsA, &wg)
	reached(quarter, 30*time.Second, "A")

	t.Logf("%s: A consumed %d, B joins", time.Since(start).Round(time.Millisecond), progress())
	subB := newSubscriber(t, k, cfg)
	defer subB.Close()
	msgsB, err := subB.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go handle(msgsB, &wg)
	reached(twoThirds, 30*time.Second, "A and B")
	t.Logf("%s: consumed %d, A closes", time.Since(start).Round(time.Millisecond), progress())
	mu.Lock()
	if dups > 0 {
		// B's joining made A give up partitions gracefully: commit after
		// the in-flight ack, then release. That must not repeat anything.
		t.Errorf("%d messages redelivered by a graceful rebalance", dups)
	}
	mu.Unlock()
	if err := subA.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: A closed", time.Since(start).Round(time.Millisecond))
	reached(all, 60*time.Second, "B")
	t.Logf("%s: all consumed", time.Since(start).Round(time.Millisecond))
	if err := subB.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: B closed", time.Since(start).Round(time.Millisecond))
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, key := range keys {
		if next[key] != perKey {
			t.Errorf("%s: %d of %d", key, next[key], perKey)
		}
	}
	t.Logf("%d messages, %d redelivered (A's in-flight messages at close)", total, dups)

}

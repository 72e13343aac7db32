package bus_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/testenv"
)

// delivery is one message as a handler saw it.
type delivery struct {
	key       string
	seq       int
	partition string
	offset    int64
}

func parseDelivery(t *testing.T, msg *message.Message) delivery {
	key, seq, ok := strings.Cut(string(msg.Payload), ":")
	n, err := strconv.Atoi(seq)
	if !ok || err != nil {
		t.Errorf("bad payload %q", msg.Payload)
	}
	off, err := strconv.ParseInt(msg.Metadata.Get(bus.MetaOffset), 10, 64)
	if err != nil {
		t.Errorf("bad offset metadata %q", msg.Metadata.Get(bus.MetaOffset))
	}
	if got := msg.Metadata.Get(bus.MetaPartitionKey); got != key {
		t.Errorf("partition_key metadata %q, want %q", got, key)
	}
	if got := msg.Metadata.Get("test_key"); got != key {
		t.Errorf("header test_key %q, want %q", got, key)
	}
	return delivery{key: key, seq: n, partition: msg.Metadata.Get(bus.MetaPartition), offset: off}
}

// publishKeyed publishes perKey messages for each of keys ("key:seq",
// partition_key=key) from several goroutines, each owning some keys and
// publishing them in seq order.
func publishKeyed(t *testing.T, pub message.Publisher, topic string, keys []string, perKey int) {
	const publishers = 4
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range perKey {
				var batch []*message.Message
				for i := g; i < len(keys); i += publishers {
					msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%s:%d", keys[i], seq))
					msg.Metadata.Set(bus.MetaPartitionKey, keys[i])
					msg.Metadata.Set("test_key", keys[i])
					batch = append(batch, msg)
				}
				if err := pub.Publish(topic, batch...); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// recorder collects deliveries per key from handler goroutines.
type recorder struct {
	mu     sync.Mutex
	byKey  map[string][]delivery
	total  int
	bySub  map[int]int
	t      *testing.T
	jitter int
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{byKey: map[string][]delivery{}, bySub: map[int]int{}, t: t}
}

// consume handles msgs with n goroutines that record, then ack. Because the
// bus delivers a key's next message only after the ack, per-key order must
// survive the parallel handlers.
func (r *recorder) consume(sub int, msgs <-chan *message.Message, n int, wg *sync.WaitGroup) {
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range msgs {
				d := parseDelivery(r.t, msg)
				r.mu.Lock()
				r.byKey[d.key] = append(r.byKey[d.key], d)
				r.total++
				r.bySub[sub]++
				r.jitter++
				slow := r.jitter%997 == 0
				r.mu.Unlock()
				if slow {
					// Every 997th message takes 2 ms longer, so the handlers
					// fall out of step: order must come from the ack, not
					// from timing.
					time.Sleep(2 * time.Millisecond)
				}
				msg.Ack()
			}
		}()
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// TestOrderPerKey publishes 10,000 messages over 100 keys to a 12-partition
// topic and consumes them with two members of one consumer group, each
// handling messages on 4 goroutines, with fetching paused and resumed
// (MaxBufferedRecords 32): every key's messages must arrive complete, once,
// in publish order, from one partition at increasing offsets.
//
// With MaxInFlight 8, up to 8 messages of a partition are handed out at
// once, and per-key order must hold all the same.
func TestOrderPerKey(t *testing.T) {
	for _, inFlight := range []int{1, 8} {
		t.Run(fmt.Sprintf("MaxInFlight=%d", inFlight), func(t *testing.T) { testOrderPerKey(t, inFlight) })
	}
}

func testOrderPerKey(t *testing.T, inFlight int) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-order", 12)
	group := k.Name("bus-order")
	const nKeys, perKey = 100, 100

	rec := newRecorder(t)
	var handlers sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 2 {
		sub := newSubscriber(t, k, bus.SubscriberConfig{ConsumerGroup: group, MaxBufferedRecords: 32, MaxInFlight: inFlight})
		t.Cleanup(func() { _ = sub.Close() })
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		rec.consume(i, msgs, 4, &handlers)
	}
	// Publish only once both members own partitions: this test wants no
	// handover while messages flow (TestRebalance… covers that).
	adm := kadm.NewClient(k.Client())
	testenv.Eventually(t, 30*time.Second, func() string {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return err.Error()
		}
		g := gs[group]
		owned := 0
		for _, m := range g.Members {
			c, ok := m.Assigned.AsConsumer()
			if !ok || len(c.Topics) == 0 {
				return fmt.Sprintf("member %s has no partitions yet", m.MemberID)
			}
			for _, tp := range c.Topics {
				owned += len(tp.Partitions)
			}
		}
		if g.State != "Stable" || len(g.Members) != 2 || owned != 12 {
			return fmt.Sprintf("group %s: state %s, %d members, %d partitions owned", group, g.State, len(g.Members), owned)
		}
		return ""
	})

	keys := make([]string, nKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("conv-%03d", i)
	}
	start := time.Now()
	pub := newPublisher(t, k, 0)
	defer pub.Close()
	publishKeyed(t, pub, topic, keys, perKey)
	t.Logf("published %d messages in %s", nKeys*perKey, time.Since(start).Round(time.Millisecond))

	testenv.Eventually(t, 90*time.Second, func() string {
		if n := rec.count(); n < nKeys*perKey {
			return fmt.Sprintf("received %d of %d", n, nKeys*perKey)
		}
		return ""
	})
	t.Logf("consumed in %s", time.Since(start).Round(time.Millisecond))
	// A negative check, watched throughout: 300 ms more for a duplicate
	// delivery, if any, to show in the count.
	testenv.Consistently(t, 300*time.Millisecond, func() string {
		if n := rec.count(); n != nKeys*perKey {
			return fmt.Sprintf("received %d messages, want exactly %d", n, nKeys*perKey)
		}
		return ""
	})
	cancel()
	handlers.Wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.total != nKeys*perKey {
		t.Errorf("received %d messages, want exactly %d", rec.total, nKeys*perKey)
	}
	for i := range 2 {
		if rec.bySub[i] == 0 {
			t.Errorf("member %d received nothing; partitions were not shared", i)
		}
	}
	partitions := map[string]bool{}
	for _, key := range keys {
		ds := rec.byKey[key]
		if len(ds) != perKey {
			t.Errorf("%s: %d messages, want %d", key, len(ds), perKey)
			continue
		}
		for i, d := range ds {
			if d.seq != i {
				t.Errorf("%s: message %d has seq %d", key, i, d.seq)
				break
			}
			if d.partition != ds[0].partition {
				t.Errorf("%s: in partitions %s and %s", key, ds[0].partition, d.partition)
				break
			}
			if i > 0 && d.offset <= ds[i-1].offset {
				t.Errorf("%s: offsets %d then %d", key, ds[i-1].offset, d.offset)
				break
			}
		}
		partitions[ds[0].partition] = true
	}
	t.Logf("member deliveries %v; keys spread over %d partitions", rec.bySub, len(partitions))
}

// TestOrderStuckPartition holds one message unacked: its partition must
// deliver nothing more, while the other partitions deliver everything. After
// the ack the stuck partition continues where it stopped.
func TestOrderStuckPartition(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic("bus-stuck", 4)
	pub := newPublisher(t, k, 0)
	defer pub.Close()
	const n = 40
	for i := range n {
		msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", i))
		msg.Metadata.Set(bus.MetaPartitionKey, fmt.Sprintf("key-%d", i))
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
	}
	sub := newSubscriber(t, k, bus.SubscriberConfig{})
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	receive := func(wait time.Duration) *message.Message {
		select {
		case m := <-msgs:
			if seen[m.UUID] {
				t.Errorf("duplicate %s", m.UUID)
			}
			seen[m.UUID] = true
			return m
		case <-time.After(wait):
			return nil
		}
	}
	held := receive(15 * time.Second)
	if held == nil {
		t.Fatal("nothing received")
	}
	stuck := held.Metadata.Get(bus.MetaPartition)
	others := 0
	// A negative check: the other partitions deliver everything they hold
	// while the stuck one must deliver nothing; a second with no delivery
	// at all ends it.
	for m := receive(time.Second); m != nil; m = receive(time.Second) {
		if p := m.Metadata.Get(bus.MetaPartition); p == stuck {
			t.Fatalf("partition %s delivered offset %s before offset %s was acked", p, m.Metadata.Get(bus.MetaOffset), held.Metadata.Get(bus.MetaOffset))
		}
		others++
		m.Ack()
	}
	if others == 0 {
		t.Fatal("other partitions delivered nothing while one was stuck")
	}
	held.Ack()
	last, _ := strconv.Atoi(held.Metadata.Get(bus.MetaOffset))
	for len(seen) < n {
		m := receive(10 * time.Second)
		if m == nil {
			t.Fatalf("received %d of %d after the ack", len(seen), n)
		}
		if p := m.Metadata.Get(bus.MetaPartition); p != stuck {
			t.Errorf("partition %s delivered after it was drained", p)
		}
		off, _ := strconv.Atoi(m.Metadata.Get(bus.MetaOffset))
		if off != last+1 {
			t.Errorf("stuck partition resumed at offset %d, want %d", off, last+1)
		}
		last = off
		m.Ack()
	}
	t.Logf("%d messages from other partitions flowed while partition %s was stuck", others, stuck)
}

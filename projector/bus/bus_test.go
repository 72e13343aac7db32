package bus_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector/bus"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// logger prints errors and infos only (the suite runs hundreds of
// subscriptions); PARLEY_BUS_DEBUG=1 adds debug lines, =2 trace lines too.
func logger() watermill.LoggerAdapter {
	v := os.Getenv("PARLEY_BUS_DEBUG")
	return watermill.NewStdLogger(v != "", v == "2")
}

func newPublisher(t *testing.T, k *testenv.KafkaEnv, partitions int32) *bus.Publisher {
	t.Helper()
	pub, err := bus.NewPublisher(bus.PublisherConfig{
		Brokers: k.Seeds,
		Topics:  bus.Topics{AutoCreate: partitions > 0, Partitions: partitions},
	}, logger())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func newSubscriber(t *testing.T, k *testenv.KafkaEnv, cfg bus.SubscriberConfig) *bus.Subscriber {
	t.Helper()
	cfg.Brokers = k.Seeds
	sub, err := bus.NewSubscriber(cfg, logger())
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestConfigValidate(t *testing.T) {
	if err := (bus.SubscriberConfig{}).Defaults().Validate(); err != nil {
		t.Fatalf("subscriber defaults must validate: %v", err)
	}
	if err := (bus.PublisherConfig{}).Defaults().Validate(); err != nil {
		t.Fatalf("publisher defaults must validate: %v", err)
	}
	err := bus.SubscriberConfig{StartFrom: 7, MaxBufferedRecords: -1, Topics: bus.Topics{Partitions: -2}}.Defaults().Validate()
	for _, want := range []string{"StartFrom", "MaxBufferedRecords", "Partitions"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %s reported, got %v", want, err)
		}
	}
}

// TestConformance runs Watermill's own Pub/Sub suite against real Kafka,
// twice.
//
// With one partition per topic the suite's ordering tests (InOrder, NoAck)
// apply: they check order across a whole topic, which Kafka gives only
// within a partition. With four partitions, records of unrelated keys are
// delivered in parallel, so GuaranteedOrder is honestly false there and the
// suite checks everything else; per-key order over many partitions is
// TestOrderPerKey's job.
//
// The plain constructor subscribes without a consumer group, so every
// subscriber reads a topic from the start (NewSubscriberReceivesOldMessages);
// the consumer-group constructor shares progress through committed offsets.
func TestConformance(t *testing.T) {
	k := testenv.Kafka(t)
	for _, partitions := range []int32{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			prefix := k.Name(fmt.Sprintf("bus-suite-p%d", partitions))
			// Some suite tests leave subscribers open (TestPublishSubscribeInOrder
			// closes its multiplier before subscribing through it); close them
			// all before their topics go.
			var mu sync.Mutex
			var subs []*bus.Subscriber
			t.Cleanup(func() {
				for _, s := range subs {
					_ = s.Close()
				}
				deleteTopics(t, k, prefix)
			})
			constructor := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
				sub := newSubscriber(t, k, bus.SubscriberConfig{
					ConsumerGroup:   group,
					NackResendSleep: 10 * time.Millisecond,
					Topics:          bus.Topics{AutoCreate: true, Partitions: partitions},
				})
				mu.Lock()
				subs = append(subs, sub)
				mu.Unlock()
				return newPublisher(t, k, partitions), sub
			}
			tests.TestPubSub(t,
				tests.Features{
					ConsumerGroups:                   true,
					ExactlyOnceDelivery:              false,
					GuaranteedOrder:                  partitions == 1,
					Persistent:                       true,
					RequireSingleInstance:            false,
					NewSubscriberReceivesOldMessages: true,
					GenerateTopicFunc: func(tctx tests.TestContext) string {
						return prefix + "." + string(tctx.TestID)
					},
				},
				func(t *testing.T) (message.Publisher, message.Subscriber) { return constructor(t, "") },
				func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
					return constructor(t, prefix+"."+group)
				},
			)
		})
	}
}

// deleteTopics removes the suite's topics when it passed; a failed run keeps
// them for inspection, like testenv.Topic.
func deleteTopics(t *testing.T, k *testenv.KafkaEnv, prefix string) {
	if t.Failed() {
		t.Logf("keeping topics %s.* for inspection", prefix)
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Seeds...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Logf("list topics: %v", err)
		return
	}
	var mine []string
	for _, name := range all.Names() {
		if strings.HasPrefix(name, prefix+".") {
			mine = append(mine, name)
		}
	}
	if _, err := adm.DeleteTopics(ctx, mine...); err != nil {
		t.Logf("delete topics: %v", err)
	}
}

package eventlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Source is what to read: a Kafka cluster and one topic of it.
type Source struct {
	Seeds []string
	// Topic is the full name, with any deployment prefix, e.g.
	// schemas.Prefixed(prefix).Events.Name.
	Topic string
	// Kind is what the topic's values are (Events unless it is the commands topic).
	Kind Kind
	// Extra franz-go options, appended last (TLS, SASL).
	Extra []kgo.Opt
}

// ErrNoTopic is returned when the topic does not exist.
var ErrNoTopic = errors.New("eventlog: no such topic")

func (s Source) validate() error {
	var errs []error
	if len(s.Seeds) == 0 {
		errs = append(errs, errors.New("eventlog: no Kafka seed brokers"))
	}
	if s.Topic == "" {
		errs = append(errs, errors.New("eventlog: no topic"))
	}
	return errors.Join(errs...)
}

func (s Source) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(s.Seeds...), kgo.ClientID("parley-eventlog")}
	cl, err := kgo.NewClient(append(append(base, opts...), s.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	return cl, nil
}

// consumer reads the given partitions of the topic, read_committed, starting
// at the given offsets. It joins no group and commits nothing.
func (s Source) consumer(start map[int32]kgo.Offset, opts ...kgo.Opt) (*kgo.Client, error) {
	return s.client(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.Topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, opts...)...)
}

// listed returns one partition's offset from a kadm listing, or an error
// that names the topic when it is missing.
func listed(lo kadm.ListedOffsets, err error, topic string, p int32) (int64, error) {
	if err != nil {
		return 0, fmt.Errorf("eventlog: list offsets of %s: %w", topic, err)
	}
	o, ok := lo.Lookup(topic, p)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNoTopic, topic)
	}
	if o.Err != nil {
		return 0, fmt.Errorf("eventlog: offsets of %s/%d: %w", topic, p, o.Err)
	}
	return o.Offset, nil
}

// partitionCount asks the brokers how many partitions the topic has.
func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("eventlog: metadata of %s: %w", topic, err)
	}
	t, ok := td[topic]
	if !ok || len(t.Partitions) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrNoTopic, topic)
	}
	if t.Err != nil {
		return 0, fmt.Errorf("eventlog: metadata of %s: %w", topic, t.Err)
	}
	return int32(len(t.Partitions)), nil
}

// partitionsToRead is the conversation's partition, or every partition.
func partitionsToRead(conversation string, n int32) []int32 {
	if conversation != "" {
		return []int32{PartitionFor(conversation, n)}
	}
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

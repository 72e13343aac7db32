package bus

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metadata keys and headers this package reads and writes. Records keep a
// message's metadata as headers one to one; these are the only extras.
const (
	// HeaderUUID carries the Watermill message UUID on the record.
	HeaderUUID = "_watermill_message_uuid"
	// MetaPartitionKey is read by DefaultKeyFunc to choose the record key and,
	// on a consumed message, holds the record key.
	MetaPartitionKey = "partition_key"
	// MetaPartition holds the partition number (decimal) of a consumed message.
	MetaPartition = "partition"
	// MetaOffset holds the offset (decimal) of a consumed message.
	MetaOffset = "offset"
)

// KeyFunc chooses the Kafka record key of a message; records with equal keys
// land in the same partition and so keep their relative order.
type KeyFunc func(topic string, msg *message.Message) []byte

// DefaultKeyFunc keys a message by its "partition_key" metadata, or by its
// UUID when that is unset (which spreads unrelated messages over partitions).
func DefaultKeyFunc(_ string, msg *message.Message) []byte {
	if k := msg.Metadata.Get(MetaPartitionKey); k != "" {
		return []byte(k)
	}
	return []byte(msg.UUID)
}

// Topics says whether and how the publisher and subscriber create the topics
// they are asked to use. Kafka brokers in Parley run with
// auto.create.topics.enable=false, so nothing else will create them.
type Topics struct {
	// AutoCreate creates a topic that does not exist on first use
	// (Publish, Subscribe, SubscribeInitialize). Off by default: Parley's
	// own topics are provisioned with their contract (ingest.Provision).
	AutoCreate bool
	// Partitions of a created topic (default 1).
	Partitions int32
	// ReplicationFactor of a created topic; -1 (the default) takes the
	// broker's default.
	ReplicationFactor int16
}

func (t Topics) defaults() Topics {
	if t.Partitions == 0 {
		t.Partitions = 1
	}
	if t.ReplicationFactor == 0 {
		t.ReplicationFactor = -1
	}
	return t
}

func (t Topics) validate() error {
	var errs []error
	if t.Partitions < 1 {
		errs = append(errs, fmt.Errorf("bus: Topics.Partitions must be at least 1, got %d", t.Partitions))
	}
	if t.ReplicationFactor < -1 || t.ReplicationFactor == 0 {
		errs = append(errs, fmt.Errorf("bus: Topics.ReplicationFactor must be -1 or positive, got %d", t.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Brokers are the seed brokers (default 127.0.0.1:9092).
	Brokers []string
	// ClientID names the client in broker logs and quotas (default "parley-bus").
	ClientID string
	// KeyFunc chooses record keys (default DefaultKeyFunc).
	KeyFunc KeyFunc
	// PublishTimeout bounds one Publish call (default 30s). A timed-out
	// Publish may still have written some records: callers retry, and
	// consumers are at-least-once anyway.
	PublishTimeout time.Duration
	// Topics controls topic creation.
	Topics Topics
	// KafkaOptions are appended to the client options (after the ones this
	// package sets), for TLS, SASL, linger and the like.
	KafkaOptions []kgo.Opt
}

// Defaults returns c with unset fields filled with values that work against
// a local broker.
func (c PublisherConfig) Defaults() PublisherConfig {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.ClientID == "" {
		c.ClientID = "parley-bus"
	}
	if c.KeyFunc == nil {
		c.KeyFunc = DefaultKeyFunc
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 30 * time.Second
	}
	c.Topics = c.Topics.defaults()
	return c
}

// Validate reports every invalid field at once.
func (c PublisherConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("bus: Brokers is empty"))
	}
	if c.KeyFunc == nil {
		errs = append(errs, errors.New("bus: KeyFunc is nil"))
	}
	if c.PublishTimeout < 0 {
		errs = append(errs, errors.New("bus: PublishTimeout is negative"))
	}
	errs = append(errs, c.Topics.validate())
	return errors.Join(errs...)
}

// StartOffset is where a partition is read from when there is no committed
// offset for it (always, without a consumer group).
type StartOffset int

const (
	// StartEarliest reads from the oldest retained record (the default).
	StartEarliest StartOffset = iota
	// StartLatest reads only records produced after the partition is assigned.
	StartLatest
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Brokers are the seed brokers (default 127.0.0.1:9092).
	Brokers []string
	// ClientID names the client in broker logs and quotas (default "parley-bus").
	ClientID string
	// ConsumerGroup shares the partitions of a topic among subscribers with
	// the same group and commits acked offsets, so a restart resumes after
	// the last acked message. Empty means no group: every Subscribe reads
	// every partition from StartFrom and commits nothing (a tail or replay).
	ConsumerGroup string
	// StartFrom applies when a partition has no committed offset.
	StartFrom StartOffset
	// NackResendSleep is the pause before a nacked message is delivered
	// again (default 100ms).
	NackResendSleep time.Duration
	// CommitInterval is how often acked offsets are committed (default 1s).
	// They are also committed before a partition is given up and on Close.
	CommitInterval time.Duration
	// MaxBufferedRecords bounds the records fetched but not yet covered by
	// an ack (and every ack before it) per partition; fetching a partition
	// pauses above it (default 1000).
	MaxBufferedRecords int
	// MaxInFlight is how many messages of one partition may be handed out
	// at once, not yet acked or nacked (default 1: the partition is
	// delivered one message at a time, in offset order). Above 1, messages
	// with the same record key still go one at a time, in offset order: a
	// message is delivered only after every earlier one with its key was
	// acked. Offsets are committed only up to the first message not acked.
	MaxInFlight int
	// CloseTimeout bounds the final commit on Close (default 10s).
	CloseTimeout time.Duration
	// Topics controls topic creation.
	Topics Topics
	// KafkaOptions are appended to the client options (after the ones this
	// package sets), for TLS, SASL, session timeouts and the like.
	KafkaOptions []kgo.Opt
}

// Defaults returns c with unset fields filled with values that work against
// a local broker.
func (c SubscriberConfig) Defaults() SubscriberConfig {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.ClientID == "" {
		c.ClientID = "parley-bus"
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = 100 * time.Millisecond
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = 1000
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	c.Topics = c.Topics.defaults()
	return c
}

// Validate reports every invalid field at once.
func (c SubscriberConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("bus: Brokers is empty"))
	}
	if c.StartFrom != StartEarliest && c.StartFrom != StartLatest {
		errs = append(errs, fmt.Errorf("bus: unknown StartFrom %d", c.StartFrom))
	}
	if c.NackResendSleep < 0 {
		errs = append(errs, errors.New("bus: NackResendSleep is negative"))
	}
	if c.CommitInterval <= 0 {
		errs = append(errs, errors.New("bus: CommitInterval must be positive"))
	}
	if c.MaxBufferedRecords < 1 {
		errs = append(errs, errors.New("bus: MaxBufferedRecords must be at least 1"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, errors.New("bus: MaxInFlight must be at least 1"))
	}
	if c.CloseTimeout <= 0 {
		errs = append(errs, errors.New("bus: CloseTimeout must be positive"))
	}
	errs = append(errs, c.Topics.validate())
	return errors.Join(errs...)
}

package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("bus: closed")

// Publisher is a Watermill message.Publisher writing to Kafka through one
// idempotent franz-go producer.
type Publisher struct {
	cfg    PublisherConfig
	log    watermill.LoggerAdapter
	cl     *kgo.Client
	topics *provisioner

	// mu is held shared by every Publish in flight and exclusively by Close,
	// so Close waits for them instead of failing their records.
	mu     sync.RWMutex
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher; it connects lazily, on the first Publish.
func NewPublisher(cfg PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		// acks=all and idempotence are franz-go's defaults; spelled out
		// because durability of Publish rests on them.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Records of one key must keep their order; franz-go's default
		// partitioner hashes keys like the Java client (murmur2), so other
		// producers of the same topics agree on partitions.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// Publish waits for its records, so lingering only adds latency;
		// concurrent Publish calls still share batches while a request is
		// in flight.
		kgo.ProducerLinger(0),
		// franz-go waits at least MetadataMinAge (default 5s) before it
		// refreshes metadata again; a partition without a leader yet (a
		// fresh topic, an election) would hold Publish that long.
		kgo.MetadataMinAge(metadataMinAge),
	}
	cl, err := kgo.NewClient(append(opts, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: new producer: %w", err)
	}
	return &Publisher{
		cfg:    cfg,
		log:    logger.With(watermill.LogFields{"component": "bus.Publisher"}),
		cl:     cl,
		topics: newProvisioner(cfg.Topics, cl),
	}, nil
}

// Publish writes msgs to topic in order and returns once every record is
// acknowledged by all in-sync replicas, or with the first error. Messages
// with the same key keep their order; on error some may have been written.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	if err := p.topics.ensure(ctx, topic); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, msg := range msgs {
		recs[i] = toRecord(topic, msg, p.cfg.KeyFunc)
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("bus: publish to %s: %w", topic, err)
	}
	p.log.Trace("published", watermill.LogFields{"topic": topic, "messages": len(msgs)})
	return nil
}

// Close waits for Publish calls in flight and closes the producer. It is
// idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cl.Close()
	return nil
}

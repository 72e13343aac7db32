package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Subscriber is a Watermill message.Subscriber reading Kafka through
// franz-go. Every Subscribe call is its own Kafka client (and, with a
// ConsumerGroup, its own group member); see consumer for how partitions are
// delivered.
type Subscriber struct {
	cfg    SubscriberConfig
	log    watermill.LoggerAdapter
	admin  *kgo.Client
	topics *provisioner

	// closing is canceled by Close; every consumer's context derives from
	// it too, so Close reaches them all.
	closing context.Context
	close   context.CancelFunc

	mu     sync.Mutex // guards closed, running and wg.Add against Close's wg.Wait
	closed bool
	wg     sync.WaitGroup
	// running are the consumers of the Subscribe calls not ended yet.
	running map[*consumer]struct{}
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber; it connects lazily, on the first
// Subscribe or SubscribeInitialize.
func NewSubscriber(cfg SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID)}, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: new admin client: %w", err)
	}
	closing, cancel := context.WithCancel(context.Background())
	return &Subscriber{
		cfg:     cfg,
		log:     logger.With(watermill.LogFields{"component": "bus.Subscriber", "consumer_group": cfg.ConsumerGroup}),
		admin:   admin,
		topics:  newProvisioner(cfg.Topics, admin),
		closing: closing,
		close:   cancel,
		running: map[*consumer]struct{}{},
	}, nil
}

// SubscribeInitialize creates topic if Topics.AutoCreate is set.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(s.closing, provisionTimeout)
	defer cancel()
	return s.topics.ensure(ctx, topic)
}

// Subscribe starts consuming topic. The returned channel delivers one
// message per partition at a time (MaxInFlight 1): the next message of a
// partition comes only after the previous one was acked, a nacked one comes
// again after NackResendSleep. With MaxInFlight above 1, up to that many
// per partition, one per record key at a time. The channel is closed when ctx is canceled or the
// Subscriber is closed, after acked offsets were committed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()

	c, err := s.subscribe(ctx, topic)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	s.mu.Lock()
	s.running[c] = struct{}{}
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.run()
		s.mu.Lock()
		delete(s.running, c)
		s.mu.Unlock()
	}()
	return c.out, nil
}

// Joined is nil when a Subscribe runs and, with a ConsumerGroup, each
// running one's member has received its assignment (maybe empty: a group
// with more members than partitions) and not lost it since; else why not.
// It is what a health check of a consumer on this Subscriber asks.
func (s *Subscriber) Joined() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.running) == 0 {
		return errors.New("bus: no subscription running")
	}
	for c := range s.running {
		if c.grouped() && !c.assigned.Load() {
			return fmt.Errorf("bus: not in consumer group %s yet (or expelled from it) for %s", s.cfg.ConsumerGroup, c.topic)
		}
	}
	return nil
}

func (s *Subscriber) subscribe(ctx context.Context, topic string) (*consumer, error) {
	if err := s.SubscribeInitialize(topic); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.closing, cancel)
	c := &consumer{
		cfg:     s.cfg,
		topic:   topic,
		log:     s.log.With(watermill.LogFields{"topic": topic}),
		ctx:     cctx,
		cancel:  func() { stopOnClose(); cancel() },
		out:     make(chan *message.Message),
		workers: make(map[int32]*partition),
		pending: make(map[int32]kgo.EpochOffset),
	}
	start := kgo.NewOffset().AtStart()
	if s.cfg.StartFrom == StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ClientID(s.cfg.ClientID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
		// Records of aborted transactions (ingest writes transactionally)
		// must never reach a view.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A fetch in flight keeps partitions assigned meanwhile (after a
		// rebalance, say) waiting until it returns; franz-go's default long
		// poll of 5s showed up as 5s stalls. 500ms is the Java client's.
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.MetadataMinAge(metadataMinAge),
	}
	if s.cfg.ConsumerGroup != "" {
		opts = append(opts,
			kgo.ConsumerGroup(s.cfg.ConsumerGroup),
			// Offsets are committed only for acked messages, by us.
			kgo.DisableAutoCommit(),
			// Rebalance callbacks run only between polls, never while the
			// poll loop hands records to partitions, so a revoked partition
			// cannot receive records after its worker was stopped.
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(c.onAssigned),
			kgo.OnPartitionsRevoked(c.onRevoked),
			kgo.OnPartitionsLost(c.onLost),
		)
	}
	cl, err := kgo.NewClient(append(opts, s.cfg.KafkaOptions...)...)
	if err != nil {
		cancel()
		stopOnClose()
		return nil, fmt.Errorf("bus: new consumer for %s: %w", topic, err)
	}
	c.cl = cl
	return c, nil
}

// Close stops every Subscribe, commits what was acked and waits for all
// goroutines. Messages delivered but not yet acked have their context
// canceled and are delivered again to whoever reads the partition next. It
// is idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.close()
	s.wg.Wait()
	s.admin.Close()
	return nil
}

const (
	// provisionTimeout bounds creating a topic and waiting for its leaders.
	provisionTimeout = 30 * time.Second
	// metadataMinAge lets the clients look up a missing leader again after
	// 500ms instead of franz-go's default 5s (the Java clients retry after
	// 100ms).
	metadataMinAge = 500 * time.Millisecond
)

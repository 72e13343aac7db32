package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/ingest/bus"
	"github.com/parley-im/parley/schemas"
)

// Projector consumes parley.events and keeps the Cassandra views up to date.
// See README.md for its guarantees.
type Projector struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	running atomic.Bool
}

// New checks cfg and registers the metrics; Run connects and does the work.
func New(cfg Config) (*Projector, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Projector{cfg: cfg, log: cfg.Logger.With("component", "projector", "group", cfg.Group), m: m}, nil
}

// MetaConsumerGroup is set on dead-lettered messages (a record header): the
// consumer group of the projector that gave up on them.
const MetaConsumerGroup = "consumer_group"

// Run connects to Cassandra (retrying until it answers), makes sure the
// dead-letter topic exists, and applies events until ctx is canceled; then
// it finishes or abandons the events in flight, commits the offsets of the
// applied ones, and returns nil. Any other return is an error that stopped
// it (a subscription that could not be started).
func (p *Projector) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("projector: Run is already running")
	}
	defer p.running.Store(false)

	var session *gocql.Session
	err := p.retry(ctx, "connect to Cassandra", func() (err error) {
		session, err = newSession(p.cfg)
		return err
	})
	if err != nil {
		return nil // ctx canceled
	}
	defer session.Close()
	p.checkTables(ctx, session)
	if err := p.retry(ctx, "create the dead-letter topic", func() error { return p.provisionDeadLetters(ctx) }); err != nil {
		return nil
	}

	wlog := watermill.NewSlogLogger(p.log)
	sub, err := bus.NewSubscriber(bus.SubscriberConfig{
		Brokers:       p.cfg.Seeds,
		ClientID:      "parley-projector",
		ConsumerGroup: p.cfg.Group,
		StartFrom:     bus.StartEarliest, // a new group builds the views from offset 0
		// Twice a batch: the next batch fills while one is written.
		MaxInFlight:  2 * p.cfg.MaxBatch,
		KafkaOptions: p.cfg.KafkaOptions,
	}, wlog)
	if err != nil {
		return err
	}
	defer sub.Close()
	pub, err := bus.NewPublisher(bus.PublisherConfig{
		Brokers:      p.cfg.Seeds,
		ClientID:     "parley-projector",
		KafkaOptions: p.cfg.KafkaOptions,
	}, wlog)
	if err != nil {
		return err
	}
	defer pub.Close()

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, wlog)
	if err != nil {
		return fmt.Errorf("projector: router: %w", err)
	}
	dlq := &deadLetters{pub: pub, group: p.cfg.Group, log: p.log, poison: p.m.poison.Inc}
	poisonQueue, err := middleware.PoisonQueueWithFilter(dlq, p.cfg.DeadLetterTopic, func(err error) bool {
		return errors.Is(err, ErrPoison)
	})
	if err != nil {
		return fmt.Errorf("projector: poison queue: %w", err)
	}
	// First added runs outermost. The retry wraps the poison queue, so a
	// failed publish to the dead-letter topic is retried like a failed
	// write; poison events never reach the retry (the poison queue acks them
	// once published), every other error is retried until ctx ends. The
	// recoverer turns a panic into an error, which is retried too: a bug
	// stalls its partition, loudly, rather than skipping an event.
	router.AddMiddleware(
		correlate,
		middleware.CorrelationID,
		middleware.Retry{
			MaxRetries:          math.MaxInt32, // forever: ~340 years at 5s
			InitialInterval:     p.cfg.RetryInitialInterval,
			MaxInterval:         p.cfg.RetryMaxInterval,
			Multiplier:          2,
			RandomizationFactor: 0.2,
			Logger:              wlog,
		}.Middleware,
		poisonQueue,
		middleware.Recoverer,
	)
	v := newViews(session, p.cfg.Keyspace, p.cfg.WriteParallelism)
	batches := newBatches(ctx, p.cfg.MaxBatch, v.applyBatch, func(ctx context.Context, partition int32, offset int64) error {
		return v.checkpoint(ctx, p.cfg.Group, partition, offset)
	})
	router.AddConsumerHandler("projector", p.cfg.EventsTopic, sub, p.handler(batches))

	stop := context.AfterFunc(ctx, func() { _ = router.Close() })
	defer stop()
	p.log.Info("projector running", "topic", p.cfg.EventsTopic, "keyspace", p.cfg.Keyspace, "dead_letters", p.cfg.DeadLetterTopic)
	err = router.Run(ctx)
	_ = router.Close()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	return errors.New("projector: subscription ended")
}

// handler applies one event: it hands it to its partition's batcher
// (batch.go), which writes the views, then the checkpoint when due; the
// message is acked (and its offset committed later) only when the batch
// holding it succeeded. A poison record is passed through the batcher too,
// writing nothing, so the records after it keep their order, and its error
// is returned for the poison queue.
func (p *Projector) handler(b *batches) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		start := time.Now()
		ctx := msg.Context()
		ev, derr := decode([]byte(msg.Metadata.Get(bus.MetaPartitionKey)), msg.Payload)
		partition, offset, prev, havePos := position(msg)
		if !havePos {
			// Not from the bus's consumer: apply on its own, no checkpoint.
			if derr != nil {
				return derr
			}
			if err := b.apply(ctx, []*event{ev}); err != nil {
				p.m.failures.Inc()
				return err
			}
			return nil
		}
		r := &pendingRecord{offset: offset, prev: prev, ev: ev}
		if derr != nil {
			r.ev = nil
		}
		if err := b.submit(ctx, partition, r); err != nil {
			if ctx.Err() == nil {
				p.m.failures.Inc()
			}
			if derr == nil {
				return fmt.Errorf("%s of %s seq %d (partition %d offset %d): %w",
					ev.typ, ev.GetConversationId(), ev.GetSeq(), partition, offset, err)
			}
			return err
		}
		if derr != nil {
			return derr
		}
		p.m.applied.WithLabelValues(ev.typ).Inc()
		p.m.duration.WithLabelValues(ev.typ).Observe(time.Since(start).Seconds())
		return nil
	}
}

// position is the record's partition, offset and the offset delivered
// before it in the partition, set by the bus on every consumed message.
func position(msg *message.Message) (partition int32, offset, prev int64, ok bool) {
	p, err1 := strconv.ParseInt(msg.Metadata.Get(bus.MetaPartition), 10, 32)
	o, err2 := strconv.ParseInt(msg.Metadata.Get(bus.MetaOffset), 10, 64)
	pr, err3 := strconv.ParseInt(msg.Metadata.Get(bus.MetaPrevOffset), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return -1, -1, -1, false
	}
	return int32(p), o, pr, true
}

// correlate gives each message a correlation id (the bus's UUID of the
// record, "topic/partition/offset"), carried into logs and dead letters.
func correlate(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		middleware.SetCorrelationID(msg.UUID, msg)
		return h(msg)
	}
}

// deadLetters is the poison queue's publisher: it publishes, then counts and
// logs each dead letter, so none goes unnoticed and a failed publish is not
// counted (the event is retried instead).
type deadLetters struct {
	pub    message.Publisher
	group  string
	log    *slog.Logger
	poison func()
}

func (d *deadLetters) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.Metadata.Set(MetaConsumerGroup, d.group)
	}
	if err := d.pub.Publish(topic, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		d.poison()
		d.log.Error("event cannot be applied; sent to the dead-letter topic",
			"dead_letter_topic", topic,
			"reason", m.Metadata.Get(middleware.ReasonForPoisonedKey),
			"partition", m.Metadata.Get(bus.MetaPartition),
			"offset", m.Metadata.Get(bus.MetaOffset),
			"key", m.Metadata.Get(bus.MetaPartitionKey),
			"type", m.Metadata.Get(schemas.HeaderType))
	}
	return nil
}

// Close does nothing: Run closes the underlying publisher.
func (d *deadLetters) Close() error { return nil }

// provisionDeadLetters creates the dead-letter topic with the contract's
// settings if it does not exist; one with another partition count is fine.
func (p *Projector) provisionDeadLetters(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Seeds...)}, p.cfg.KafkaOptions...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := schemas.DeadLetters
	t.Name = p.cfg.DeadLetterTopic
	if err := ingest.Provision(ctx, cl, -1, t); err != nil && !errors.Is(err, ingest.ErrTopicMismatch) {
		return err
	}
	return nil
}

// checkTables warns when the views are not there (keyspace not migrated):
// the projector still starts, and retries every event until they exist.
func (p *Projector) checkTables(ctx context.Context, s *gocql.Session) {
	iter := s.Query("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", p.cfg.Keyspace).IterContext(ctx)
	have := map[string]bool{}
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		p.log.Warn("cannot list the tables of the keyspace", "keyspace", p.cfg.Keyspace, "err", err)
		return
	}
	var missing []string
	for _, t := range []string{"messages", "conversations", "members", "inbox", "checkpoints"} {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		p.log.Error("views missing: run schemas.Migrate on the keyspace; until then every event is retried",
			"keyspace", p.cfg.Keyspace, "missing", missing)
	}
}

// retry runs fn until it succeeds or ctx ends, with the configured backoff;
// it returns ctx's error in the latter case.
func (p *Projector) retry(ctx context.Context, what string, fn func() error) error {
	delay := p.cfg.RetryInitialInterval
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Error("cannot "+what+"; retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, p.cfg.RetryMaxInterval)
	}
}

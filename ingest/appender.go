package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
)

// AppenderConfig configures an Appender. Defaults() fills what is unset.
type AppenderConfig struct {
	// Seeds are Kafka bootstrap addresses.
	Seeds []string
	// Topic is where records go (default schemas.Commands.Name).
	Topic string
	// Linger is how long the producer waits to batch records per partition.
	// Zero sends as soon as possible, which gives the lowest ack latency.
	Linger time.Duration
	// MaxBuffered bounds records waiting to be acked; Append blocks (or fails
	// with the context) beyond it, which is the gateway's back-pressure.
	MaxBuffered int
	// DeliveryTimeout bounds how long one record may take to become durable
	// before its callback gets an error (default 30s).
	DeliveryTimeout time.Duration
	// ClientID names the producer in broker logs and metrics.
	ClientID string
	// Extra franz-go options, appended last (tests, TLS, SASL).
	Extra []kgo.Opt
}

// Defaults returns c with every unset field given its default.
func (c AppenderConfig) Defaults() AppenderConfig {
	if c.Topic == "" {
		c.Topic = schemas.Commands.Name
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 10_000
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 30 * time.Second
	}
	if c.ClientID == "" {
		c.ClientID = "parley-appender"
	}
	return c
}

// Validate reports every invalid field at once.
func (c AppenderConfig) Validate() error {
	var errs []error
	if len(c.Seeds) == 0 {
		errs = append(errs, errors.New("ingest: AppenderConfig.Seeds is empty"))
	}
	if c.MaxBuffered < 0 {
		errs = append(errs, errors.New("ingest: AppenderConfig.MaxBuffered must be positive"))
	}
	if c.Linger < 0 || c.DeliveryTimeout < 0 {
		errs = append(errs, errors.New("ingest: AppenderConfig durations must not be negative"))
	}
	return errors.Join(errs...)
}

// Appender appends records to one topic with acks=all and the idempotent
// producer: a record is acknowledged only once every in-sync replica has it,
// and producer retries never duplicate or reorder records of a partition.
// Records with the same key go to the same partition, in Append order.
type Appender struct {
	cl    *kgo.Client
	topic string
}

// Record is what an Appender appends.
type Record struct {
	// Key is the conversation id: it picks the partition.
	Key string
	// Type goes to the parley-type header so consumers can route without decoding.
	Type  string
	Value []byte
}

// Position is where an appended record landed.
type Position struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// NewAppender connects a producer. It does not create topics: see Provision.
func NewAppender(cfg AppenderConfig) (*Appender, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Seeds...),
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence on, franz-go's default; stated for the reader
		kgo.ProducerLinger(cfg.Linger),
		kgo.MaxBufferedRecords(cfg.MaxBuffered),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as Kafka's Java clients
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
	}
	cl, err := kgo.NewClient(append(opts, cfg.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("ingest: appender: %w", err)
	}
	return &Appender{cl: cl, topic: cfg.Topic}, nil
}

// Append queues r and returns at once (unless MaxBuffered records are
// waiting, then it waits). done is called exactly once, from the producer's
// goroutine, when the record is durable or has failed for good; it must not
// block. Callbacks of records with the same key run in Append order.
func (a *Appender) Append(ctx context.Context, r Record, done func(Position, error)) {
	a.cl.Produce(ctx, a.record(r), func(rec *kgo.Record, err error) {
		if err != nil {
			done(Position{}, fmt.Errorf("ingest: append to %s: %w", a.topic, err))
			return
		}
		done(Position{Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp}, nil)
	})
}

// AppendSync appends r and waits until it is durable.
func (a *Appender) AppendSync(ctx context.Context, r Record) (Position, error) {
	type result struct {
		p   Position
		err error
	}
	ch := make(chan result, 1)
	a.Append(ctx, r, func(p Position, err error) { ch <- result{p, err} })
	res := <-ch
	return res.p, res.err
}

func (a *Appender) record(r Record) *kgo.Record {
	rec := &kgo.Record{Key: []byte(r.Key), Value: r.Value}
	rec.Headers = []kgo.RecordHeader{{Key: schemas.HeaderSchemaVersion, Value: []byte(schemas.SchemaVersion)}}
	if r.Type != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: schemas.HeaderType, Value: []byte(r.Type)})
	}
	return rec
}

// Flush waits until every record appended so far has been acked or failed.
func (a *Appender) Flush(ctx context.Context) error { return a.cl.Flush(ctx) }

// Close flushes what is buffered (bounded by ctx) and closes the producer.
// Records still unacked when ctx ends get their callbacks with an error.
func (a *Appender) Close(ctx context.Context) error {
	err := a.cl.Flush(ctx)
	a.cl.Close()
	return err
}

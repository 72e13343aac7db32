package projector

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

// Config configures a Projector. Every field has a default that works
// against a local Kafka and Cassandra.
type Config struct {
	// Seeds are Kafka bootstrap addresses (default 127.0.0.1:9092).
	Seeds []string
	// EventsTopic is read (default schemas.Events.Name).
	EventsTopic string
	// Group is the consumer group, and the key of this projector's rows in
	// the checkpoints table (default "parley-projector").
	Group string
	// DeadLetterTopic receives events that can never be applied (default
	// schemas.DeadLetters.Name). Run creates it if missing.
	DeadLetterTopic string
	// KafkaOptions are extra franz-go options (TLS, SASL…) for every Kafka
	// client of the projector.
	KafkaOptions []kgo.Opt
	// Membership is how the projector takes part in its group: a static
	// InstanceID makes a restarted process take its partitions back at
	// once; SessionTimeout (default 6 s) bounds how long the partitions of a
	// member that died for good wait. Zero: dynamic membership, 6 s. See
	// README.md, "Takeover".
	Membership deploy.Membership

	// Cassandra is how to reach Cassandra (authentication, TLS …). Its
	// Hosts, Timeout and Consistency, when unset, are taken from Hosts,
	// CassandraTimeout and Consistency below.
	Cassandra deploy.Cassandra
	// Hosts are Cassandra contact points, "host" or "host:port" (default
	// 127.0.0.1:9042).
	Hosts []string
	// Keyspace holds the views, migrated by schemas.Migrate beforehand
	// (default "parley").
	Keyspace string
	// Consistency of every write and read (default LOCAL_QUORUM).
	Consistency gocql.Consistency
	// CassandraTimeout bounds one query (default 10s). A timed-out write is
	// retried like any other failure.
	CassandraTimeout time.Duration
	// WriteParallelism bounds the concurrent writes of one event, e.g. the
	// members and inbox rows of a large ConversationCreated (default 32).
	WriteParallelism int
	// MaxBatch is how many consecutive records of a partition are applied
	// together, their writes coalesced (default 1000; 1 applies records one
	// by one). Up to max(8 × MaxBatch, 8192) records per partition are
	// buffered before its fetching pauses. See README.md, "Batches".
	MaxBatch int
	// BatchInterval is the least time between the starts of two batches of
	// a partition (default 250ms; negative is refused). While at least 8
	// records arrive per interval at the partition's recent rate, a worker
	// whose queue holds less than MaxBatch records waits the rest of it, so more
	// records share a batch's requests and its checkpoint, and more of a
	// conversation's rows are coalesced: fewer Cassandra writes per event,
	// for up to this much more view lag. See README.md, "Batches".
	BatchInterval time.Duration
	// PerPartitionBatches sends one UNLOGGED BATCH per Cassandra partition
	// instead of batches of up to 32 statements of any partitions
	// (WriterConfig.MixedBatches, the default here). Mixed batches take far
	// fewer requests when a batch touches many conversations once each,
	// and suit a cluster whose nodes each hold most of the data (3 nodes at
	// replication factor 3); on a large cluster, where a mixed batch's
	// coordinator forwards most of it, set this.
	PerPartitionBatches bool
	// MaxLag is the most records the assigned partitions may be behind the
	// end of the log (summed) for /healthz to report healthy (default
	// 10,000).
	MaxLag int64
	// VerifyEvery is how often each partition reads its checkpoint back
	// (default 5 s): a checkpoint below the one written means Cassandra lost
	// acknowledged writes, and the records since are applied again. It is
	// also read back after every failed attempt.
	VerifyEvery time.Duration

	// RetryInitialInterval is the first pause after a failed apply (default
	// 100ms); each next pause doubles, up to RetryMaxInterval (default 5s).
	// Failures other than poison events are retried for as long as Run's
	// context lives: a view never skips an event.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration

	// Logger receives the projector's logs (default: discarded).
	Logger *slog.Logger
	// Registerer receives the projector's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// DefaultBatchInterval is Config.BatchInterval's default.
const DefaultBatchInterval = 250 * time.Millisecond

// Defaults returns c with every unset field given its default.
func (c Config) Defaults() Config {
	if len(c.Seeds) == 0 {
		c.Seeds = []string{"127.0.0.1:9092"}
	}
	if c.EventsTopic == "" {
		c.EventsTopic = schemas.Events.Name
	}
	if c.Group == "" {
		c.Group = "parley-projector"
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = schemas.DeadLetters.Name
	}
	if len(c.Hosts) == 0 && len(c.Cassandra.Hosts) == 0 {
		c.Hosts = []string{"127.0.0.1:9042"}
	}
	if c.Keyspace == "" {
		c.Keyspace = "parley"
	}
	// gocql.Any (the zero value) is never right for a view: it is "unset".
	if c.Consistency == gocql.Any {
		c.Consistency = gocql.LocalQuorum
	}
	if c.CassandraTimeout == 0 {
		c.CassandraTimeout = 10 * time.Second
	}
	if c.WriteParallelism == 0 {
		c.WriteParallelism = 32
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.MaxLag == 0 {
		c.MaxLag = 10000
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.VerifyEvery == 0 {
		c.VerifyEvery = 5 * time.Second
	}
	c.Membership = c.Membership.Defaults()
	if c.RetryInitialInterval == 0 {
		c.RetryInitialInterval = 100 * time.Millisecond
	}
	if c.RetryMaxInterval == 0 {
		c.RetryMaxInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Cassandra = c.Cassandra.Or(c.Hosts, c.CassandraTimeout, c.Consistency.String(), c.Logger)
	return c
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Seeds) == 0 {
		errs = append(errs, errors.New("projector: Seeds is empty"))
	}
	if c.EventsTopic == "" || c.DeadLetterTopic == "" || c.Group == "" {
		errs = append(errs, errors.New("projector: EventsTopic, DeadLetterTopic and Group must be set"))
	}
	if c.EventsTopic == c.DeadLetterTopic {
		errs = append(errs, fmt.Errorf("projector: DeadLetterTopic must differ from EventsTopic (%s)", c.EventsTopic))
	}
	if len(c.Cassandra.Hosts) == 0 {
		errs = append(errs, errors.New("projector: no Cassandra hosts"))
	}
	if err := schemas.CheckKeyspace(c.Keyspace); err != nil {
		errs = append(errs, fmt.Errorf("projector: Keyspace: %w", err))
	}
	if c.CassandraTimeout < 0 {
		errs = append(errs, errors.New("projector: CassandraTimeout is negative"))
	}
	if c.WriteParallelism < 1 {
		errs = append(errs, errors.New("projector: WriteParallelism must be at least 1"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("projector: MaxBatch must be at least 1"))
	}
	if c.MaxLag < 0 || c.VerifyEvery < 0 || c.BatchInterval < 0 {
		errs = append(errs, errors.New("projector: MaxLag, VerifyEvery and BatchInterval must not be negative"))
	}
	if err := c.Membership.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("projector: Membership: %w", err))
	}
	if _, err := deploy.ParseConsistency(c.Cassandra.Consistency); err != nil {
		errs = append(errs, fmt.Errorf("projector: %w", err))
	}
	if c.RetryInitialInterval <= 0 || c.RetryMaxInterval < c.RetryInitialInterval {
		errs = append(errs, errors.New("projector: need 0 < RetryInitialInterval <= RetryMaxInterval"))
	}
	return errors.Join(errs...)
}

// Package replay rebuilds Parley's views from parley.events into a keyspace
// of their own (Rebuild), checks the live views and the log itself against
// each other (Verify), and points the query service at another keyspace
// (Switch). The binary is projector/cmd/replay; README.md of the projector
// states what each command guarantees and what a crash leaves behind.
//
// It reads parley.events and parley.commands and never writes them; it
// writes only the keyspace it rebuilds into, the serving pointer of the base
// keyspace (Switch), and the committed offsets of its own consumer group.
package replay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

// Config says where the log and the views are. Every field has a default
// that works against a local Kafka and Cassandra.
type Config struct {
	// Seeds are Kafka bootstrap addresses (default 127.0.0.1:9092).
	Seeds []string
	// Topics are the deployment's topics (default schemas.Prefixed("")).
	Topics schemas.TopicSet
	// KafkaOptions are extra franz-go options (TLS, SASL).
	KafkaOptions []kgo.Opt
	// Cassandra is how to reach Cassandra (contact points, authentication,
	// TLS). Its timeout defaults to 20 s (a rebuild writes large batches)
	// and its consistency to LOCAL_QUORUM.
	Cassandra deploy.Cassandra
	// Hosts is shorthand for Cassandra.Hosts, used when that is empty
	// (default 127.0.0.1:9042).
	Hosts []string
	// Keyspace is the base keyspace: the one the live projector writes and
	// the query service is configured with, which holds the serving pointer
	// (default "parley").
	Keyspace string
	// Logger receives warnings and retries (default: discarded).
	Logger *slog.Logger
	// Progress receives the progress lines of a rebuild (default: none).
	Progress io.Writer
	// ProgressEvery is the interval of progress lines (default 1s).
	ProgressEvery time.Duration
}

// Defaults returns c with every unset field given its default.
func (c Config) Defaults() Config {
	if len(c.Seeds) == 0 {
		c.Seeds = []string{"127.0.0.1:9092"}
	}
	if c.Topics.Events.Name == "" {
		c.Topics = schemas.Prefixed("")
	}
	if len(c.Hosts) == 0 && len(c.Cassandra.Hosts) == 0 {
		c.Hosts = []string{"127.0.0.1:9042"}
	}
	if c.Keyspace == "" {
		c.Keyspace = "parley"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Cassandra = c.Cassandra.Or(c.Hosts, 20*time.Second, "LOCAL_QUORUM", c.Logger)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	return c
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Seeds) == 0 || len(c.Cassandra.Hosts) == 0 {
		errs = append(errs, errors.New("replay: Seeds and Hosts must be set"))
	}
	if err := checkKeyspace("base", c.Keyspace); err != nil {
		errs = append(errs, err)
	}
	if c.ProgressEvery < 0 {
		errs = append(errs, errors.New("replay: ProgressEvery is negative"))
	}
	return errors.Join(errs...)
}

func checkKeyspace(what, ks string) error {
	if err := schemas.CheckKeyspace(ks); err != nil {
		return fmt.Errorf("replay: %s keyspace: %w", what, err)
	}
	return nil
}

// session connects to Cassandra with the one session builder, without
// binding a keyspace: every statement names its keyspace.
func session(c Config) (*gocql.Session, error) {
	s, err := c.Cassandra.Session()
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return s, nil
}

func (c Config) kafka(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(c.Seeds...)}, c.KafkaOptions...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("replay: kafka: %w", err)
	}
	return cl, nil
}

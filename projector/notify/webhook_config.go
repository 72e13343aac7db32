package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

// MinSigningKeyBytes is the shortest webhook signing key accepted.
const MinSigningKeyBytes = schemas.MinWebhookSigningKeyBytes

// DispatcherConfig configures a Dispatcher. Every field but SigningKey has
// a default that works against a local Kafka and Cassandra.
type DispatcherConfig struct {
	// Seeds are Kafka bootstrap addresses (default 127.0.0.1:9092).
	Seeds []string
	// Topics: events and webhooks are read, deliveries written and read,
	// dead letters receive the deliveries that could not be made (defaults:
	// the contract's names).
	EventsTopic, WebhooksTopic, DeliveriesTopic, DeadLetterTopic string
	// Group is the planner's consumer group; the sender uses Group +
	// "-send" (default "parley-webhooks").
	Group string
	// Projector is the consumer group of the projector whose checkpoints
	// the planner waits for before it reads memberships (default
	// "parley-projector").
	Projector string
	// FromStart makes a planner whose group has committed nothing read
	// parley.events from the beginning; by default it starts at the end.
	FromStart bool
	// KafkaOptions are extra franz-go options (TLS, SASL…).
	KafkaOptions []kgo.Opt

	// Cassandra is how to reach the views (read only: memberships).
	Cassandra deploy.Cassandra
	// Keyspace holds the views (default "parley").
	Keyspace string

	// SigningKey derives each webhook's secret (schemas.WebhookSecret); the
	// gateways' admin API must hold the same (at least MinSigningKeyBytes).
	SigningKey []byte
	// Poster is how deliveries are sent: plain http and private
	// addresses are refused unless allowed; Timeout bounds each request
	// (default 10s).
	Poster push.PosterConfig
	// MaxRetries is how often a delivery the receiver answered with a
	// temporary failure (5xx, 408, 429, network) is tried again before it
	// goes to the dead-letter topic (default 8); the pause starts at
	// RetryInitial (default 500ms) and doubles up to RetryMax (default
	// 30s). A Retry-After is honoured up to RetryMax.
	MaxRetries             int
	RetryInitial, RetryMax time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Defaults returns c with every unset field at its default.
func (c DispatcherConfig) Defaults() DispatcherConfig {
	if len(c.Seeds) == 0 {
		c.Seeds = []string{"127.0.0.1:9092"}
	}
	or(&c.EventsTopic, schemas.Events.Name)
	or(&c.WebhooksTopic, schemas.Webhooks.Name)
	or(&c.DeliveriesTopic, schemas.WebhookDeliveries.Name)
	or(&c.DeadLetterTopic, schemas.DeadLetters.Name)
	or(&c.Group, "parley-webhooks")
	or(&c.Projector, "parley-projector")
	or(&c.Keyspace, "parley")
	or(&c.MaxRetries, 8)
	or(&c.RetryInitial, 500*time.Millisecond)
	or(&c.RetryMax, 30*time.Second)
	or(&c.Poster.Timeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Cassandra = c.Cassandra.Or(nil, 0, "", c.Logger)
	return c
}

// Validate reports what is wrong with c (after Defaults). Errors never
// quote the key.
func (c DispatcherConfig) Validate() error {
	var errs []error
	if len(c.SigningKey) < MinSigningKeyBytes {
		errs = append(errs, fmt.Errorf("webhooks: SigningKey must be at least %d bytes, got %d", MinSigningKeyBytes, len(c.SigningKey)))
	}
	if c.MaxRetries < 0 || c.RetryInitial < 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, errors.New("webhooks: MaxRetries, RetryInitial ≥ 0 and RetryMax ≥ RetryInitial"))
	}
	if err := schemas.CheckKeyspace(c.Keyspace); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

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

// Preview is how much of a message a push shows.
type Preview int

const (
	// PreviewFull shows the sender (or the group's title) and the text.
	PreviewFull Preview = iota
	// PreviewSender shows who wrote, and "New message".
	PreviewSender
	// PreviewNone shows nothing of the message: the app's generic alert.
	PreviewNone
)

// ParsePreview reads a Preview setting: "full", "sender" or "none".
func ParsePreview(s string) (Preview, error) {
	switch s {
	case "", "full":
		return PreviewFull, nil
	case "sender":
		return PreviewSender, nil
	case "none":
		return PreviewNone, nil
	}
	return 0, fmt.Errorf("notify: preview must be full, sender or none, got %q", s)
}

func (p Preview) String() string {
	switch p {
	case PreviewSender:
		return "sender"
	case PreviewNone:
		return "none"
	}
	return "full"
}

// Config configures a Notifier. Every field but Senders has a default that
// works against a local Kafka and Cassandra.
type Config struct {
	// Seeds are Kafka bootstrap addresses (default 127.0.0.1:9092).
	Seeds []string
	// Topics: events and signals are read, push is written and read,
	// commands receives the unregistrations of invalid tokens, dead letters
	// the pushes that could not be sent (defaults: the contract's names).
	EventsTopic, SignalsTopic, PushTopic, CommandsTopic, DeadLetterTopic string
	// Group is the planner's consumer group; each provider's deliverer
	// uses Group + "-" + its name (default "parley-notifier").
	Group string
	// Projector is the consumer group of the projector whose checkpoints
	// the planner waits for (default "parley-projector").
	Projector string
	// FromStart makes a planner whose group has committed nothing read
	// parley.events from the beginning (a log created with the notifier,
	// as in the tests); by default it starts at the end, so a new notifier
	// does not push the history.
	FromStart bool
	// KafkaOptions are extra franz-go options (TLS, SASL…) for every
	// Kafka client of the notifier.
	KafkaOptions []kgo.Opt

	// Cassandra is how to reach the views (read only).
	Cassandra deploy.Cassandra
	// Keyspace holds the views (default "parley").
	Keyspace string

	// Senders are the providers pushes go to, at most one per provider. A
	// device registered with a provider that has none is not pushed (and
	// counted in parley_notifier_skipped_total{reason="no_provider"}).
	Senders []push.Sender
	// Preview is what a push shows of the message (default PreviewFull).
	Preview Preview
	// Rate is the most pushes per second each provider is sent (default
	// 1,000; the deliverer waits, it drops nothing).
	Rate int
	// MaxRetries is how often a push the provider answered with a
	// temporary failure (429, 5xx, network) is tried again before it goes
	// to the dead-letter topic (default 8); the pause starts at
	// RetryInitial (default 250ms) and doubles up to RetryMax (default
	// 30s). A provider's Retry-After is honoured up to RetryMax.
	MaxRetries             int
	RetryInitial, RetryMax time.Duration
	// PresenceWindow is how far back the signals topic is read at start to
	// learn which devices are connected: at least the gateways' presence
	// TTL (default 60s, the gateways' default).
	PresenceWindow time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Defaults returns c with every unset field at its default.
func (c Config) Defaults() Config {
	if len(c.Seeds) == 0 {
		c.Seeds = []string{"127.0.0.1:9092"}
	}
	or(&c.EventsTopic, schemas.Events.Name)
	or(&c.SignalsTopic, schemas.Signals.Name)
	or(&c.PushTopic, schemas.Push.Name)
	or(&c.CommandsTopic, schemas.Commands.Name)
	or(&c.DeadLetterTopic, schemas.DeadLetters.Name)
	or(&c.Group, "parley-notifier")
	or(&c.Projector, "parley-projector")
	or(&c.Keyspace, "parley")
	or(&c.Rate, 1000)
	or(&c.MaxRetries, 8)
	or(&c.RetryInitial, 250*time.Millisecond)
	or(&c.RetryMax, 30*time.Second)
	or(&c.PresenceWindow, 60*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Cassandra = c.Cassandra.Or(nil, 0, "", c.Logger)
	return c
}

// Validate reports what is wrong with c (after Defaults).
func (c Config) Validate() error {
	var errs []error
	if len(c.Senders) == 0 {
		errs = append(errs, errors.New("notify: no provider is configured (Senders is empty)"))
	}
	seen := map[string]bool{}
	for _, s := range c.Senders {
		name := schemas.ProviderName(s.Provider())
		if name == "" {
			errs = append(errs, fmt.Errorf("notify: a sender has provider %v", s.Provider()))
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("notify: two senders for provider %s", name))
		}
		seen[name] = true
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("notify: Rate must be positive, got %d", c.Rate))
	}
	if c.MaxRetries < 0 || c.RetryInitial < 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, errors.New("notify: MaxRetries, RetryInitial ≥ 0 and RetryMax ≥ RetryInitial"))
	}
	if err := schemas.CheckKeyspace(c.Keyspace); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// or sets *p to v when *p is its type's zero value (unset).
func or[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

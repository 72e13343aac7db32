// Package analytics is an example of a job that reads parley.events
// directly, as an analytics team would, using nothing but the contract in
// schemas/README.md: it counts messages per hour by conversation kind.
//
// What it shows:
//
//   - its own consumer group, so it never moves a Parley component's offsets;
//   - isolation level read_committed, so aborted transactions of the decider
//     never count;
//   - routing on the parley-type header: only the two types it needs are
//     decoded, and types it does not know are skipped (the evolution policy);
//   - state per conversation: the kind is only in ConversationCreated, which
//     comes first in the conversation's partition, so the job remembers it;
//   - deduplication by (conversation, seq), in case records are read twice
//     after a rebalance.
//
// The counts and the kinds live in memory: a real job would store both in its
// own database together with its offsets (or read from the start of the topic
// on every start, as this one does when its group has no offsets yet).
// Conversations whose ConversationCreated it never saw count as "unknown".
package analytics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Config says where to read.
type Config struct {
	Seeds []string
	// Topic is the events topic, e.g. schemas.Events.Name.
	Topic string
	// Group is this job's consumer group, e.g. "analytics-messages-per-hour".
	Group string
	// KafkaOptions are appended to the consumer's own: TLS and SASL, e.g.
	// deploy.Env.KafkaOpts, so the job reads as its own principal.
	KafkaOptions []kgo.Opt
}

// Key is one figure: messages sent in an hour in conversations of a kind.
type Key struct {
	Hour time.Time // Event.occurred_at truncated to the hour, UTC
	Kind string    // "direct", "group", or "unknown"
}

// Counter counts MessageSent events per hour and conversation kind.
type Counter struct {
	cl *kgo.Client

	mu      sync.Mutex
	convs   map[string]*conversation
	counts  map[Key]int
	records int
}

type conversation struct {
	kind    string
	lastSeq int64 // highest MessageSent seq counted
}

// New connects the consumer; Run consumes.
func New(cfg Config) (*Counter, error) {
	if len(cfg.Seeds) == 0 || cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("analytics: Seeds, Topic and Group are required")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Seeds...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // a new group reads the whole history
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	return &Counter{cl: cl, convs: map[string]*conversation{}, counts: map[Key]int{}}, nil
}

// Run consumes until ctx ends, then commits what it read and leaves the group.
func (c *Counter) Run(ctx context.Context) error {
	defer c.cl.Close() // commits the offsets polled so far, then leaves the group
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("analytics: %w", err)
		}
		c.mu.Lock()
		fs.EachRecord(c.apply)
		c.mu.Unlock()
	}
}

func (c *Counter) apply(r *kgo.Record) {
	c.records++
	switch header(r, schemas.HeaderType) {
	case schemas.TypeConversationCreated, schemas.TypeMessageSent:
	default:
		return // receipts, notices, rejections, and types added later
	}
	var e pb.Event
	if err := proto.Unmarshal(r.Value, &e); err != nil {
		return // a real job would count these, or send them to a dead-letter topic
	}
	conv := c.convs[e.GetConversationId()]
	if conv == nil {
		conv = &conversation{kind: "unknown"}
		c.convs[e.GetConversationId()] = conv
	}
	if created := e.GetConversationCreated(); created != nil {
		conv.kind = kindName(created.GetKind())
		return
	}
	if e.GetSeq() <= conv.lastSeq {
		return // already counted
	}
	conv.lastSeq = e.GetSeq()
	c.counts[Key{Hour: e.GetOccurredAt().AsTime().UTC().Truncate(time.Hour), Kind: conv.kind}]++
}

// Counts returns a copy of the figures so far.
func (c *Counter) Counts() map[Key]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Key]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Records is how many records Run has read, of every type.
func (c *Counter) Records() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// kindName turns CONVERSATION_KIND_DIRECT into "direct".
func kindName(k pb.ConversationKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "CONVERSATION_KIND_"))
}

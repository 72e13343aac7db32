package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/parley-im/parley/schemas"
)

// ErrTopicMismatch means a topic exists with a partition count other than
// the contract's. Commands and events must have equal counts (a conversation
// lives in the same partition number of both), so this is never papered over:
// an operator must decide.
var ErrTopicMismatch = errors.New("ingest: existing topic does not match the contract")

// Provision creates the given topics if they do not exist, with their
// partition count, retention and cleanup policy, and returns once the broker's
// metadata shows every topic with all its partitions (so a producer or
// consumer started next finds them). Running it again is a no-op; an existing
// topic with another partition count is an ErrTopicMismatch.
// replicationFactor -1 takes the broker's default. cl is any client of the
// cluster; Provision sends it admin and metadata requests only.
func Provision(ctx context.Context, cl *kgo.Client, replicationFactor int16, topics ...schemas.Topic) error {
	adm := kadm.NewClient(cl)
	// Create first, without listing: CreateTopics answers "exists" too, and a
	// listing of a missing topic would be cached by the client (MetadataMinAge)
	// and delay the wait below.
	for _, t := range topics {
		res, err := adm.CreateTopic(ctx, t.Partitions, replicationFactor, topicConfigs(t), t.Name)
		if err == nil {
			err = res.Err
		}
		// Another provisioner, or an earlier run, created it: the check
		// below still compares it with the contract.
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("ingest: provision %s: %w", t.Name, err)
		}
	}
	return waitTopics(ctx, cl, topics)
}

// waitTopics polls a broker's metadata (directly, not the client's cache)
// until every topic is visible with all its partitions led, then checks the
// partition counts against the contract.
func waitTopics(ctx context.Context, cl *kgo.Client, topics []schemas.Topic) error {
	for {
		counts, err := ledPartitions(ctx, cl, topics)
		if err == nil {
			var errs []error
			for _, t := range topics {
				if got := counts[t.Name]; got != t.Partitions {
					errs = append(errs, fmt.Errorf("%w: %s has %d partitions, want %d", ErrTopicMismatch, t.Name, got, t.Partitions))
				}
			}
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ingest: provision: waiting for topics: %w (%w)", err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ledPartitions returns each topic's partition count once every partition
// of every topic has a leader, or an error saying what is not ready.
func ledPartitions(ctx context.Context, cl *kgo.Client, topics []schemas.Topic) (map[string]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t.Name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	counts := map[string]int32{}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return nil, fmt.Errorf("%s: %w", deref(rt.Topic), err) // not ready is not an answer yet
		}
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return nil, fmt.Errorf("%s/%d has no leader yet", deref(rt.Topic), p.Partition)
			}
		}
		counts[deref(rt.Topic)] = int32(len(rt.Partitions))
	}
	return counts, nil
}

func topicConfigs(t schemas.Topic) map[string]*string {
	retention := "-1"
	if t.Retention > 0 {
		retention = strconv.FormatInt(t.Retention.Milliseconds(), 10)
	}
	cleanup := t.Cleanup
	if cleanup == "" {
		cleanup = "delete"
	}
	cfg := map[string]*string{
		"retention.ms":   &retention,
		"cleanup.policy": &cleanup,
	}
	for k, v := range t.Configs {
		cfg[k] = &v
	}
	return cfg
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

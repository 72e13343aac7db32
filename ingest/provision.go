package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

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
// replicationFactor -1 takes the broker's default.
func Provision(ctx context.Context, adm *kadm.Client, replicationFactor int16, topics ...schemas.Topic) error {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("ingest: provision: list topics: %w", err)
	}
	for _, t := range topics {
		if d, ok := existing[t.Name]; ok && d.Err == nil {
			continue
		}
		res, err := adm.CreateTopic(ctx, t.Partitions, replicationFactor, topicConfigs(t), t.Name)
		if err == nil {
			err = res.Err
		}
		// Another provisioner (or an earlier run whose metadata had not yet
		// propagated) created it: the check below still compares it.
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("ingest: provision %s: %w", t.Name, err)
		}
	}
	return waitTopics(ctx, adm, topics)
}

// waitTopics polls metadata until every topic is visible with all its
// partitions led, then checks the partition counts against the contract.
func waitTopics(ctx context.Context, adm *kadm.Client, topics []schemas.Topic) error {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	for {
		details, err := adm.ListTopics(ctx, names...)
		if err == nil && allReady(details, names) {
			var errs []error
			for _, t := range topics {
				if got := int32(len(details[t.Name].Partitions)); got != t.Partitions {
					errs = append(errs, fmt.Errorf("%w: %s has %d partitions, want %d", ErrTopicMismatch, t.Name, got, t.Partitions))
				}
			}
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("metadata does not show every topic with a leader yet")
			}
			return fmt.Errorf("ingest: provision: waiting for topics: %w (%w)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allReady(details kadm.TopicDetails, names []string) bool {
	for _, n := range names {
		d, ok := details[n]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return false
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
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
	return map[string]*string{
		"retention.ms":   &retention,
		"cleanup.policy": &cleanup,
	}
}

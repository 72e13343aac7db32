package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/provision"
)

// ErrTopicMismatch means a topic exists with a partition count other than
// the contract's. Commands and events must have equal counts (a conversation
// lives in the same partition number of both), so this is never papered over:
// an operator must decide.
var ErrTopicMismatch = provision.ErrMismatch

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
	var refused []string
	var refusal error
	for _, t := range topics {
		res, err := adm.CreateTopic(ctx, t.Partitions, replicationFactor, topicConfigs(t), t.Name)
		if err == nil {
			err = res.Err
		}
		// A component without the right to create topics (Kafka ACLs,
		// least privilege) is refused even for one that exists: whether it
		// does is looked up below.
		if errors.Is(err, kerr.TopicAuthorizationFailed) {
			refused, refusal = append(refused, t.Name), err
			continue
		}
		// Another provisioner, or an earlier run, created it: the check
		// below still compares it with the contract.
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("ingest: provision %s: %w", t.Name, err)
		}
	}
	if len(refused) > 0 {
		details, err := adm.ListTopics(ctx, refused...)
		for _, n := range refused {
			if d, ok := details[n]; err != nil || !ok || d.Err != nil {
				return fmt.Errorf("ingest: provision %s: not allowed to create it, and it does not exist or may not be described: %w", n, refusal)
			}
		}
	}
	return waitTopics(ctx, cl, topics)
}

// waitTopics returns once every partition of every topic has a leader,
// then checks the partition counts: schemas/provision's wait, shared with
// the deployment's provisioning.
func waitTopics(ctx context.Context, cl *kgo.Client, topics []schemas.Topic) error {
	return provision.WaitLeaders(ctx, kadm.NewClient(cl), topics)
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

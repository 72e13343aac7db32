// Package provision prepares a deployment's Kafka topics and Cassandra
// keyspace: the first step of a real deployment (schemas/cmd/provision) and
// what `go tool task dev` runs on every start. Both halves are idempotent: a
// second run with the same settings changes nothing, and a run whose settings
// disagree with what exists (another partition count, replication factor,
// cleanup policy, retention, min.insync.replicas or keyspace replication) is
// refused with a message naming each difference, changing nothing.
package provision

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/schemas"
)

// ErrMismatch is an existing topic or keyspace that differs from the
// requested settings. Nothing is changed: an operator decides (re-keying a
// topic to another partition count means a new topic and a copy, see the
// top-level README).
var ErrMismatch = errors.New("provision: existing resources differ from the requested settings")

// Topics says how the topics are created.
type Topics struct {
	// Prefix is PARLEY_TOPIC_PREFIX.
	Prefix string
	// Partitions of the keyed topics (commands, events, the ingest
	// changelog, signals, repairs): all equal, since a conversation lives in the
	// same partition number of each. It caps the decider's and the
	// projector's parallelism and cannot change without re-keying, so choose
	// it once (default schemas.DefaultPartitions).
	Partitions int32
	// ReplicationFactor of every topic; -1 takes the broker's
	// default.replication.factor. Production: 3.
	ReplicationFactor int16
	// MinInsyncReplicas of every topic (0: the broker's default). With
	// acks=all a write is acknowledged once this many replicas have it:
	// production RF 3 with 2.
	MinInsyncReplicas int
	// CommandsRetention overrides the commands topic's retention (0: the
	// contract's 7 days). Events are kept forever, always.
	CommandsRetention time.Duration
}

// Keyspace says how the views' keyspace is created.
type Keyspace struct {
	Name string
	// Replication is the keyspace's replication: "SimpleStrategy" with
	// ReplicationFactor (one data centre; the default, RF 1), or
	// "NetworkTopologyStrategy" with a factor per data centre in DataCenters.
	Strategy          string
	ReplicationFactor int
	DataCenters       map[string]int
}

// Report is what a run found and did, one line per resource.
type Report struct{ Lines []string }

func (r *Report) add(format string, args ...any) {
	r.Lines = append(r.Lines, fmt.Sprintf(format, args...))
}

// TopicSet is the contract's topics with the settings applied.
func (t Topics) TopicSet() schemas.TopicSet {
	set := schemas.Prefixed(t.Prefix)
	parts := t.Partitions
	if parts <= 0 {
		parts = schemas.DefaultPartitions
	}
	for _, tp := range []*schemas.Topic{&set.Commands, &set.Events, &set.IngestState, &set.Signals, &set.Repairs} {
		tp.Partitions = parts
	}
	if t.CommandsRetention > 0 {
		set.Commands.Retention = t.CommandsRetention
	}
	return set
}

// Kafka creates the missing topics and checks the existing ones against the
// settings, then waits until every partition has a leader.
func Kafka(ctx context.Context, cl *kgo.Client, t Topics, r *Report) error {
	adm := kadm.NewClient(cl)
	topics := t.TopicSet().All()
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i] = tp.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("provision: list topics: %w", err)
	}
	var existing []string
	for _, tp := range topics {
		if d, ok := details[tp.Name]; ok && d.Err == nil {
			existing = append(existing, tp.Name)
		}
	}
	configs := map[string]map[string]string{}
	if len(existing) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil {
			return fmt.Errorf("provision: describe topic configs: %w", err)
		}
		for _, rc := range rcs {
			if rc.Err != nil {
				return fmt.Errorf("provision: configs of %s: %w", rc.Name, rc.Err)
			}
			m := map[string]string{}
			for _, c := range rc.Configs {
				if c.Value != nil {
					m[c.Key] = *c.Value
				}
			}
			configs[rc.Name] = m
		}
	}
	var problems []string
	for _, tp := range topics {
		want := wantConfigs(tp, t.MinInsyncReplicas)
		d, ok := details[tp.Name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			res, err := adm.CreateTopic(ctx, tp.Partitions, t.ReplicationFactor, ptrs(want), tp.Name)
			if err == nil {
				err = res.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				// Another run created it meanwhile; the wait below checks
				// the partition count.
				r.add("topic %-28s exists (created concurrently)", tp.Name)
				continue
			}
			if err != nil {
				return fmt.Errorf("provision: create %s: %w", tp.Name, err)
			}
			r.add("topic %-28s created: %d partitions, replication %s, %s", tp.Name, tp.Partitions, rfName(t.ReplicationFactor), describe(want))
			continue
		}
		if d.Err != nil {
			return fmt.Errorf("provision: topic %s: %w", tp.Name, d.Err)
		}
		var diffs []string
		if got := int32(len(d.Partitions)); got != tp.Partitions {
			diffs = append(diffs, fmt.Sprintf("%d partitions, want %d", got, tp.Partitions))
		}
		if rf := d.Partitions.NumReplicas(); t.ReplicationFactor > 0 && rf != int(t.ReplicationFactor) {
			diffs = append(diffs, fmt.Sprintf("replication factor %d, want %d", rf, t.ReplicationFactor))
		}
		have := configs[tp.Name]
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if have[k] != want[k] {
				diffs = append(diffs, fmt.Sprintf("%s=%s, want %s", k, have[k], want[k]))
			}
		}
		if len(diffs) > 0 {
			problems = append(problems, fmt.Sprintf("topic %s: %s", tp.Name, strings.Join(diffs, "; ")))
			continue
		}
		r.add("topic %-28s ok: %d partitions, replication %d, %s", tp.Name, len(d.Partitions), d.Partitions.NumReplicas(), describe(want))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrMismatch, strings.Join(problems, "\n  "))
	}
	return WaitLeaders(ctx, adm, topics)
}

func wantConfigs(tp schemas.Topic, minISR int) map[string]string {
	retention := "-1"
	if tp.Retention > 0 {
		retention = strconv.FormatInt(tp.Retention.Milliseconds(), 10)
	}
	cleanup := tp.Cleanup
	if cleanup == "" {
		cleanup = "delete"
	}
	m := map[string]string{"retention.ms": retention, "cleanup.policy": cleanup}
	maps.Copy(m, tp.Configs)
	if minISR > 0 {
		m["min.insync.replicas"] = strconv.Itoa(minISR)
	}
	return m
}

func ptrs(m map[string]string) map[string]*string {
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}

func describe(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func rfName(rf int16) string {
	if rf < 0 {
		return "broker default"
	}
	return strconv.Itoa(int(rf))
}

// WaitLeaders returns once every partition of every topic has a leader (a
// producer or consumer started next finds them).
func WaitLeaders(ctx context.Context, adm *kadm.Client, topics []schemas.Topic) error {
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i] = tp.Name
	}
	for {
		details, err := adm.ListTopics(ctx, names...)
		if err == nil {
			err = ready(details, topics)
			if err == nil {
				return nil
			}
			if errors.Is(err, ErrMismatch) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("provision: waiting for partition leaders: %w (%w)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ready(details kadm.TopicDetails, topics []schemas.Topic) error {
	for _, tp := range topics {
		d, ok := details[tp.Name]
		if !ok || d.Err != nil {
			return fmt.Errorf("%s not visible yet", tp.Name)
		}
		if got := int32(len(d.Partitions)); got != tp.Partitions {
			if got > 0 {
				return fmt.Errorf("%w: topic %s has %d partitions, want %d", ErrMismatch, tp.Name, got, tp.Partitions)
			}
			return fmt.Errorf("%s has no partitions yet", tp.Name)
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("%s/%d has no leader yet", tp.Name, p.Partition)
			}
		}
	}
	return nil
}

// Replication is the keyspace's CQL replication map.
func (k Keyspace) Replication() (map[string]string, error) {
	switch k.Strategy {
	case "", "SimpleStrategy":
		rf := k.ReplicationFactor
		if rf <= 0 {
			rf = 1
		}
		if len(k.DataCenters) > 0 {
			return nil, errors.New("provision: SimpleStrategy takes a replication factor, not data centres")
		}
		return map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": strconv.Itoa(rf)}, nil
	case "NetworkTopologyStrategy":
		if len(k.DataCenters) == 0 {
			return nil, errors.New("provision: NetworkTopologyStrategy needs a replication factor per data centre (e.g. dc1:3)")
		}
		m := map[string]string{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy"}
		for dc, rf := range k.DataCenters {
			if rf <= 0 || dc == "" || strings.ContainsAny(dc, "'\"{}:,") {
				return nil, fmt.Errorf("provision: data centre %q with replication factor %d", dc, rf)
			}
			m[dc] = strconv.Itoa(rf)
		}
		return m, nil
	}
	return nil, fmt.Errorf("provision: unknown replication strategy %q (want SimpleStrategy or NetworkTopologyStrategy)", k.Strategy)
}

// cql renders a replication map as a CQL map literal.
func cql(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] == "class" || (keys[j] != "class" && keys[i] < keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := m[k]
		if k == "class" {
			v = strings.TrimPrefix(v, "org.apache.cassandra.locator.")
		}
		parts[i] = fmt.Sprintf("'%s': '%s'", k, v)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Cassandra creates the keyspace if it is missing (or checks its
// replication if it exists) and applies every migration not yet applied.
func Cassandra(ctx context.Context, s *gocql.Session, k Keyspace, r *Report) error {
	if err := schemas.CheckKeyspace(k.Name); err != nil {
		return err
	}
	want, err := k.Replication()
	if err != nil {
		return err
	}
	var have map[string]string
	err = s.Query("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", k.Name).ScanContext(ctx, &have)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		if err := schemas.CreateKeyspace(ctx, s, k.Name, cql(want)); err != nil {
			return err
		}
		r.add("keyspace %-25s created: replication %s", k.Name, cql(want))
	case err != nil:
		return fmt.Errorf("provision: read keyspace %s: %w", k.Name, err)
	case !maps.Equal(have, want):
		return fmt.Errorf("%w: keyspace %s has replication %s, want %s (change it with ALTER KEYSPACE and a repair, then run again)",
			ErrMismatch, k.Name, cql(have), cql(want))
	default:
		r.add("keyspace %-25s ok: replication %s", k.Name, cql(have))
	}
	if err := schemas.Migrate(ctx, s, k.Name); err != nil {
		return err
	}
	ms, err := schemas.Migrations()
	if err != nil {
		return err
	}
	r.add("keyspace %-25s migrated to version %d", k.Name, ms[len(ms)-1].Version)
	return nil
}

package provision_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/schemas/provision"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestProvisionTwiceThenRefuseMismatch(t *testing.T) {
	k := testenv.Kafka(t)
	c := testenv.Cassandra(t)
	cl := k.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topics := provision.Topics{Prefix: k.Name("prov") + ".", Partitions: 4, ReplicationFactor: 1, MinInsyncReplicas: 1}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var names []string
		for _, tp := range topics.TopicSet().All() {
			names = append(names, tp.Name)
		}
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, names...)
	})
	s := c.Session()
	defer s.Close()
	ks := provision.Keyspace{Name: c.Keyspace} // SimpleStrategy RF 1, as testenv made it
	for run := 1; run <= 2; run++ {
		var r provision.Report
		if err := provision.Kafka(ctx, cl, topics, &r); err != nil {
			t.Fatalf("run %d: kafka: %v", run, err)
		}
		if err := provision.Cassandra(ctx, s, ks, &r); err != nil {
			t.Fatalf("run %d: cassandra: %v", run, err)
		}
		word := map[int]string{1: "created", 2: "ok"}[run]
		if n := strings.Count(strings.Join(r.Lines, "\n"), " "+word+":"); n < 5 {
			t.Errorf("run %d: want 5 topics %s, report:\n%s", run, word, strings.Join(r.Lines, "\n"))
		}
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics.TopicSet().Events.Name, topics.TopicSet().DeadLetters.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details[topics.TopicSet().Events.Name].Partitions); got != 4 {
		t.Errorf("events has %d partitions, want 4", got)
	}
	if got := len(details[topics.TopicSet().DeadLetters.Name].Partitions); got != 1 {
		t.Errorf("dead letters has %d partitions, want 1", got)
	}
	var tables int
	iter := s.Query("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", c.Keyspace).Iter()
	var name string
	for iter.Scan(&name) {
		tables++
	}
	if err := iter.Close(); err != nil || tables < 6 {
		t.Errorf("keyspace has %d tables (%v), want the views migrated", tables, err)
	}

	// Mismatches are refused, naming each difference, and change nothing.
	other := topics
	other.Partitions, other.MinInsyncReplicas = 6, 0
	other.CommandsRetention = 24 * time.Hour
	err = provision.Kafka(ctx, cl, other, &provision.Report{})
	if !errors.Is(err, provision.ErrMismatch) {
		t.Fatalf("6 partitions over 4: want ErrMismatch, got %v", err)
	}
	for _, want := range []string{"4 partitions, want 6", "retention.ms=604800000, want 86400000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("mismatch message lacks %q:\n%v", want, err)
		}
	}
	details, _ = kadm.NewClient(cl).ListTopics(ctx, topics.TopicSet().Commands.Name)
	if got := len(details[topics.TopicSet().Commands.Name].Partitions); got != 4 {
		t.Errorf("a refused run changed commands to %d partitions", got)
	}
	err = provision.Cassandra(ctx, s, provision.Keyspace{Name: c.Keyspace, ReplicationFactor: 3}, &provision.Report{})
	if !errors.Is(err, provision.ErrMismatch) || !strings.Contains(err.Error(), "'replication_factor': '1'") {
		t.Fatalf("RF 3 over RF 1: want ErrMismatch naming the replication, got %v", err)
	}
	if _, err := (provision.Keyspace{Strategy: "NetworkTopologyStrategy"}).Replication(); err == nil {
		t.Error("NetworkTopologyStrategy without data centres accepted")
	}
}

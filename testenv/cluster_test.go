package testenv

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCluster starts the cluster mode and shows it runs the production
// settings and survives the loss of one node of each kind: a topic created
// without settings has three replicas and needs two in sync; with the
// leader of a partition SIGKILLed, writes acknowledged by all in-sync
// replicas go on, and every record written before and after is read back
// once; a keyspace at replication factor 3 takes and serves QUORUM writes
// and reads with one Cassandra node SIGKILLed. Each node comes back.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts three Kafka brokers and three Cassandra nodes (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := StartCluster(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	if len(env.KafkaSeeds) != ClusterSize || len(env.CassandraHosts) != ClusterSize {
		t.Fatalf("seeds %v, hosts %v", env.KafkaSeeds, env.CassandraHosts)
	}

	// Kafka.
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaSeeds...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics("cluster"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) != ClusterSize {
		t.Fatalf("brokers %v: %v", brokers, err)
	}
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, "cluster"); err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cfgs.On("cluster", nil); err != nil {
		t.Fatal(err)
	} else {
		for _, kv := range c.Configs {
			if kv.Key == "min.insync.replicas" && kv.MaybeValue() != "2" {
				t.Fatalf("min.insync.replicas %q, want 2", kv.MaybeValue())
			}
		}
	}
	var leader int32
	Eventually(t, time.Minute, func() string {
		md, err := adm.Metadata(ctx, "cluster")
		if err != nil {
			return err.Error()
		}
		if n := len(md.Topics["cluster"].Partitions); n != 3 {
			return fmt.Sprintf("%d partitions in the metadata", n)
		}
		for _, p := range md.Topics["cluster"].Partitions {
			if len(p.Replicas) != ClusterSize || len(p.ISR) != ClusterSize {
				return fmt.Sprintf("partition %d: replicas %v, in sync %v", p.Partition, p.Replicas, p.ISR)
			}
		}
		leader = md.Topics["cluster"].Partitions[0].Leader
		return ""
	})
	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			r := &kgo.Record{Topic: "cluster", Partition: 0, Value: []byte(strconv.Itoa(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	produce(0, 100)
	victim := fmt.Sprintf("kafka-%d", leader)
	if err := env.Kill(victim); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	produce(100, 100) // acks=all from the two left: min.insync.replicas holds
	t.Logf("%s (the leader of partition 0) killed: 100 records acknowledged by the other two in %s", victim, time.Since(t0).Round(time.Millisecond))
	seen := map[string]int{}
	for len(seen) < 200 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of 200 records", len(seen))
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("record %s read %d times", v, n)
		}
	}
	if err := env.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 2*time.Minute, func() string {
		md, err := adm.Metadata(ctx, "cluster")
		if err != nil {
			return err.Error()
		}
		if p := md.Topics["cluster"].Partitions[0]; len(p.ISR) != ClusterSize {
			return fmt.Sprintf("%s back, partition 0 in sync: %v", victim, p.ISR)
		}
		return ""
	})

	// Cassandra.
	c := gocql.NewCluster(env.CassandraHosts...)
	c.Consistency = gocql.Quorum
	c.Timeout = 10 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var peers int
	if err := s.Query("SELECT count(*) FROM system.peers").Consistency(gocql.One).Scan(&peers); err != nil || peers != ClusterSize-1 {
		t.Fatalf("system.peers: %d rows (%v), want %d", peers, err, ClusterSize-1)
	}
	for _, q := range []string{
		"CREATE KEYSPACE cluster WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
		"CREATE TABLE cluster.rows (p int, c int, PRIMARY KEY (p, c))",
	} {
		if err := s.Query(q).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	write := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := s.Query("INSERT INTO cluster.rows (p, c) VALUES (?, ?)", i%10, i).Exec(); err != nil {
				t.Fatalf("row %d: %v", i, err)
			}
		}
	}
	write(0, 100)
	if err := env.Kill("cassandra-2"); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	write(100, 100) // QUORUM: two of three
	t.Logf("cassandra-2 killed: 100 rows written at QUORUM in %s", time.Since(t0).Round(time.Millisecond))
	// Read back per partition, as Parley reads. Until gossip convicts the
	// dead node (seconds), a coordinator may still ask it and time out; a
	// client retries.
	t0 = time.Now()
	Eventually(t, 2*time.Minute, func() string {
		n := 0
		for p := range 10 {
			var k int
			if err := s.Query("SELECT count(*) FROM cluster.rows WHERE p = ?", p).Scan(&k); err != nil {
				return fmt.Sprintf("with cassandra-2 down, partition %d at QUORUM: %v", p, err)
			}
			n += k
		}
		if n != 200 {
			return fmt.Sprintf("with cassandra-2 down: %d rows at QUORUM, want 200", n)
		}
		return ""
	})
	t.Logf("every row read back at QUORUM %s after the writes", time.Since(t0).Round(time.Millisecond))
	if err := env.Restart(ctx, "cassandra-2"); err != nil {
		t.Fatal(err)
	}
	// Back in the ring: a write at ALL needs every replica.
	Eventually(t, 2*time.Minute, func() string {
		if err := s.Query("INSERT INTO cluster.rows (p, c) VALUES (0, 1000)").Consistency(gocql.All).Exec(); err != nil {
			return "a write at ALL after cassandra-2 restarted: " + err.Error()
		}
		return ""
	})
}

package testenv

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// TestCassandraCrashKeepsAcknowledgedWrites writes rows as fast as a
// projector would, SIGKILLs Cassandra while writes are in flight, restarts
// it, and checks every write Cassandra acknowledged before the kill is
// there: the projector commits Kafka offsets on the strength of such
// acknowledgements. It runs an Env of its own (it kills it).
func TestCassandraCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts Kafka and Cassandra (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	s, err := newSession(env.CassandraHosts[0], "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE KEYSPACE crash WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
		"CREATE TABLE crash.rows (p int, c int, v text, PRIMARY KEY (p, c))",
	} {
		if err := s.Query(q).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	// 16 writers until the kill; each records what was acknowledged.
	var acked sync.Map
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Query("INSERT INTO crash.rows (p, c, v) VALUES (?, ?, ?)", w, i, "value").Exec(); err != nil {
					return // the node is gone
				}
				acked.Store([2]int{w, i}, true)
				n.Add(1)
			}
		}()
	}
	for n.Load() < 3000 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d writes acknowledged", n.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := env.Kill("cassandra"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	s.Close()
	total := n.Load()
	t0 := time.Now()
	if err := env.Restart(ctx, "cassandra"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged before SIGKILL; Cassandra back in %s", total, time.Since(t0).Round(time.Millisecond))
	s2, err := newSession(env.CassandraHosts[0], "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	present := map[[2]int]bool{}
	iter := s2.Query("SELECT p, c FROM crash.rows").Consistency(gocql.One).Iter()
	var p, c int
	for iter.Scan(&p, &c) {
		present[[2]int{p, c}] = true
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	var missing []string
	acked.Range(func(k, _ any) bool {
		if key := k.([2]int); !present[key] {
			missing = append(missing, fmt.Sprint(key))
		}
		return len(missing) < 10
	})
	if len(missing) > 0 {
		t.Fatalf("acknowledged writes lost by the crash (first %d): %v", len(missing), missing)
	}
}

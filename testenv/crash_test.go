package testenv

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// TestCassandraCrashKeepsAPrefix writes as a projector does — a partition's
// rows, then a checkpoint row naming the last of them, each write waiting
// for the one before — SIGKILLs Cassandra while writes are in flight,
// restarts it, and checks what the projector's recovery relies on
// (projector README, Checkpoints and commits): the node keeps a prefix of
// what it acknowledged, so every row a surviving checkpoint covers is
// there, with no hole below it. With commitlog_sync periodic (testenv's
// setting, Cassandra's default) the writes after the last sync may be gone;
// how many is logged. With group or batch (PARLEY_TESTENV_COMMITLOG_SYNC)
// none may be. It runs an Env of its own (it kills it).
func TestCassandraCrashKeepsAPrefix(t *testing.T) {
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
		"CREATE TABLE crash.checkpoints (p int PRIMARY KEY, c int)",
	} {
		if err := s.Query(q).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	// 16 writers until the kill; each records the last row and the last
	// checkpoint acknowledged.
	const writers = 16
	var lastRow, lastCP [writers]atomic.Int64
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		lastRow[w].Store(-1)
		lastCP[w].Store(-1)
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
				lastRow[w].Store(int64(i))
				n.Add(1)
				if err := s.Query("INSERT INTO crash.checkpoints (p, c) VALUES (?, ?)", w, i).Exec(); err != nil {
					return
				}
				lastCP[w].Store(int64(i))
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
	t.Logf("%d rows acknowledged before SIGKILL; Cassandra back in %s", total, time.Since(t0).Round(time.Millisecond))
	s2, err := newSession(env.CassandraHosts[0], "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rows := map[int][]int{}
	iter := s2.Query("SELECT p, c FROM crash.rows").Consistency(gocql.One).Iter()
	var p, c int
	for iter.Scan(&p, &c) {
		rows[p] = append(rows[p], c) // clustering order: ascending
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	cps := map[int]int{}
	iter = s2.Query("SELECT p, c FROM crash.checkpoints").Consistency(gocql.One).Iter()
	for iter.Scan(&p, &c) {
		cps[p] = c
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for w := range writers {
		got := rows[w]
		for i, c := range got {
			if c != i {
				t.Fatalf("writer %d: a hole in what the node kept: row %d present, row %d missing", w, c, i)
			}
		}
		cp, ok := cps[w]
		if ok && cp >= len(got) {
			t.Fatalf("writer %d: the checkpoint %d survived, the row it covers (%d rows kept) did not", w, cp, len(got))
		}
		if acked := int(lastRow[w].Load()) + 1; len(got) < acked {
			lost += acked - len(got)
		}
		if ok && int64(cp) < lastCP[w].Load() && durableCommitlog() {
			t.Errorf("writer %d: checkpoint %d acknowledged, %d kept", w, lastCP[w].Load(), cp)
		}
	}
	t.Logf("commitlog_sync %s: %d of %d acknowledged rows lost by the crash, every survivor a prefix", strings.Fields(commitlogSync())[0], lost, total)
	if lost > 0 && durableCommitlog() {
		t.Fatalf("%d acknowledged rows lost with a commitlog that acknowledges only what it holds", lost)
	}
}

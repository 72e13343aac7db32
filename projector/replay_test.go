package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/testenv"
)

// TestReplayIdempotent projects a log through Kafka, then replays it again
// (a second group over the same keyspace), shuffled within each conversation,
// reversed, and a random range of it once more: the rows never change, and
// they say what the simulated decider says.
func TestReplayIdempotent(t *testing.T) {
	e := newEnv(t, true)
	s := newSim(1, "g:idem", 5)
	s.step(200 - len(s.log))
	last := e.produce(s.log...)

	cfg := e.config()
	_, stop := e.start(cfg)
	start := time.Now()
	e.waitApplied(e.keyspace, cfg.Group, last, 30*time.Second)
	t.Logf("%d events applied in %v", len(s.log), time.Since(start))
	stop()
	first := e.dump(e.keyspace)
	e.checkModel(t, s, first)

	// The whole log again, through Kafka, by a new group.
	again := e.config()
	_, stop = e.start(again)
	e.waitApplied(e.keyspace, again.Group, last, 30*time.Second)
	stop()
	sameRows(t, "replayed by a second group", first, e.dump(e.keyspace))
	if got := e.checkpoints(e.keyspace, cfg.Group); !mapsEqual(got, last) {
		t.Errorf("checkpoints of the first group moved: %v, want %v", got, last)
	}

	e.applyAll(e.keyspace, s.shuffled())
	sameRows(t, "shuffled replay", first, e.dump(e.keyspace))

	rev := slices.Clone(s.log)
	slices.Reverse(rev)
	e.applyAll(e.keyspace, rev)
	sameRows(t, "reversed replay", first, e.dump(e.keyspace))

	from := s.rng.IntN(len(s.log))
	e.applyAll(e.keyspace, s.log[from:from+s.rng.IntN(len(s.log)-from)])
	sameRows(t, "range replay", first, e.dump(e.keyspace))

	// Out of order into an empty keyspace: the same rows as in log order.
	fresh := testenv.MigratedCassandra(t).Keyspace
	e.applyAll(fresh, s.shuffled())
	sameRows(t, "shuffled into an empty keyspace", first, e.dump(fresh))
}

// TestReplayRebuild projects a log while it is being written, then deletes
// the keyspace and rebuilds it from offset 0 with a new group: every view
// row is the same, and so are the checkpoints.
func TestReplayRebuild(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	_, stop := e.start(cfg)
	s := newSim(2, "g:rebuild", 8)
	last := map[int32]int64{}
	creations := slices.Clone(s.log)
	for i, batch := range []int{60, 100, 140} {
		evs := s.step(batch)
		if i == 0 {
			evs = append(creations, evs...)
		}
		for p, o := range e.produce(evs...) {
			last[p] = max(last[p], o)
		}
		// The live projector applies each batch before the next is
		// written: the views are built while the log grows.
		e.waitApplied(e.keyspace, cfg.Group, last, 30*time.Second)
	}
	stop()
	live := e.dump(e.keyspace)
	e.checkModel(t, s, live)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, q := range []string{
		"DROP KEYSPACE IF EXISTS " + e.keyspace,
		fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", e.keyspace),
	} {
		// A schema change can outlast the driver's request timeout on a
		// loaded node and still take effect: both are idempotent, so a
		// timed-out one is sent again until it answers.
		for {
			err := e.s.Query(q).ExecContext(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil || !errors.Is(err, gocql.ErrTimeoutNoResponse) {
				t.Fatal(err)
			}
			t.Logf("%s: %v; again", q, err)
		}
	}
	e.migrate(e.keyspace)
	rebuild := e.config()
	start := time.Now()
	_, stop = e.start(rebuild)
	e.waitApplied(e.keyspace, rebuild.Group, last, 30*time.Second)
	t.Logf("rebuilt %d events in %v", len(s.log), time.Since(start))
	stop()
	sameRows(t, "rebuild", live, e.dump(e.keyspace))
	if got := e.checkpoints(e.keyspace, rebuild.Group); !mapsEqual(got, last) {
		t.Errorf("rebuild checkpoints %v, want %v", got, last)
	}
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkModel compares a dump with what the simulated decider holds.
func (e *env) checkModel(t *testing.T, s *sim, d map[string][]string) {
	t.Helper()
	for _, c := range s.convs {
		kind := "direct"
		if c.group {
			kind = "group"
		}
		e.check(t, c.id, c.want(kind))
	}
	var msgs int64
	for _, c := range s.convs {
		msgs += c.lastSeq
	}
	if int64(len(d["messages"])) != msgs {
		t.Errorf("%d messages rows, want %d", len(d["messages"]), msgs)
	}
}

// want is the part of the rows the simulation knows.
func (c *simConv) want(kind string) want {
	w := want{
		conversation: row{"kind": kind, "last_seq": int(c.lastSeq)},
		members:      map[string]row{},
		inbox:        map[string]row{},
		messages:     map[int64]row{},
	}
	for u, m := range c.members {
		mr := row{"read_seq": int(m.read), "delivered_seq": int(m.delivered), "joined_seq": int(m.joined), "removed": m.removed}
		ir := row{"kind": kind, "joined_seq": int(m.joined), "removed": m.removed}
		if m.removedSeq > 0 {
			mr["removed_seq"], mr["removed_reason"], ir["removed_seq"] = int(m.removedSeq), m.reason, int(m.removedSeq)
		} else {
			mr["removed_seq"], ir["removed_seq"] = nil, nil
		}
		w.members[u], w.inbox[u] = mr, ir
	}
	for seq := int64(1); seq <= c.lastSeq; seq++ {
		w.messages[seq] = row{}
	}
	return w
}

package projector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

// TestRewindLostWrites: Cassandra loses acknowledged writes (TRUNCATE of the
// messages and checkpoints tables stands in for a node that crashed before
// its commitlog reached the disk) while Kafka keeps the committed offsets.
// A projector restarted on the group finds the checkpoints behind the
// commits and applies the log again from them; a running one finds its
// checkpoints gone when it reads them back. Both times every row comes back,
// counted in the rewinds metric. /healthz is ok while it runs, and not once
// it stopped.
func TestRewindLostWrites(t *testing.T) {
	e := newEnv(t, true)
	s := newSim(7, "g:rewind", 6)
	s.step(250)
	last := e.produce(s.log...)
	cfg := e.config()
	cfg.VerifyEvery = 200 * time.Millisecond
	p, stop := e.start(cfg)
	e.waitApplied(e.keyspace, cfg.Group, last, 60*time.Second)
	healthy := func() deploy.HealthBody {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return deploy.Health(ctx, p.Checks())
	}
	testenv.Eventually(t, 20*time.Second, func() string {
		if h := healthy(); h.Status != "ok" {
			return fmt.Sprintf("healthz of a running projector: %+v", h)
		}
		return ""
	})
	// Let the committer commit what is checkpointed, then stop (the final
	// commit happens on the way out).
	stop()
	if h := healthy(); h.Status == "ok" {
		t.Errorf("healthz of a stopped projector: %+v", h)
	}
	want := e.dump(e.keyspace)
	e.checkModel(t, s, want)

	lose := func() {
		t.Helper()
		for _, table := range []string{"messages", "checkpoints"} {
			if err := e.s.Query("TRUNCATE " + e.keyspace + "." + table).Exec(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Restarted: the committed offsets are past the (gone) checkpoints.
	lose()
	p, stop = e.start(cfg)
	e.waitApplied(e.keyspace, cfg.Group, last, 60*time.Second)
	if n := counterValue(t, p.m.rewinds); n < 1 {
		t.Errorf("rewinds %v after restarting on lost writes, want at least 1", n)
	}
	sameRows(t, "re-applied after a restart", want, e.dump(e.keyspace))

	// Running, idle: the writes it made are lost under it.
	before := counterValue(t, p.m.rewinds)
	lose()
	e.waitApplied(e.keyspace, cfg.Group, last, 60*time.Second)
	if n := counterValue(t, p.m.rewinds); n <= before {
		t.Errorf("rewinds %v, want more than %v after losing the writes of a running projector", n, before)
	}
	var got map[string][]string
	testenv.Eventually(t, 30*time.Second, func() string {
		got = e.dump(e.keyspace)
		if len(got["messages"]) != len(want["messages"]) {
			return fmt.Sprintf("messages rows %d, want %d", len(got["messages"]), len(want["messages"]))
		}
		return ""
	})
	sameRows(t, "re-applied by a running projector", want, got)
	stop()
}

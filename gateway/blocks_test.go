package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

// TestBlockedByReadsBlocks: the watch decision reads the blocks view (the
// watched user's row of the watcher), on real Cassandra: only who blocked
// the watcher is hidden, not whom the watcher blocked.
func TestBlockedByReadsBlocks(t *testing.T) {
	t.Parallel()
	c := testenv.MigratedCassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, r := range [][2]string{{"bob", "alice"}, {"alice", "carol"}, {"dave", "erin"}} {
		if err := c.Session().Query("INSERT INTO "+c.Keyspace+".blocks (user_id, blocked_user_id, blocked_at) VALUES (?, ?, toTimestamp(now()))",
			r[0], r[1]).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	v, err := openViews(deploy.Cassandra{Hosts: c.Hosts}, c.Keyspace)
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	sess := &session{srv: &Server{views: v}, user: "alice"}
	got, err := sess.blockedBy(ctx, []string{"alice", "bob", "carol", "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["bob"] {
		t.Fatalf("blocked by %v, want bob alone", got)
	}
}

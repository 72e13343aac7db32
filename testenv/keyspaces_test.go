package testenv

import (
	"context"
	"testing"
	"time"
)

// TestMigratedCassandraReuse: a keyspace handed back by a passed test comes
// to the next one migrated and without rows; one whose schema a test changed
// is dropped, not handed out again.
func TestMigratedCassandraReuse(t *testing.T) {
	var first string
	t.Run("writes", func(t *testing.T) {
		c := MigratedCassandra(t)
		first = c.Keyspace
		if err := c.Session().Query(`INSERT INTO checkpoints (projector, partition, applied_offset) VALUES ('p', 0, 7)`).Exec(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reuses", func(t *testing.T) {
		c := MigratedCassandra(t)
		if c.Keyspace != first {
			t.Fatalf("keyspace %s, want %s again", c.Keyspace, first)
		}
		s := c.Session()
		var n int
		if err := s.Query(`SELECT count(*) FROM checkpoints`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("checkpoints has %d rows (%v), want 0", n, err)
		}
		if err := s.Query(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("schema_migrations has %d rows (%v), want the migrations", n, err)
		}
		if err := s.Query(`ALTER TABLE checkpoints ADD IF NOT EXISTS extra text`).Exec(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("drops a changed one", func(t *testing.T) {
		c := MigratedCassandra(t)
		if c.Keyspace == first {
			t.Fatalf("keyspace %s handed out again after its schema changed", first)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		tables, err := tablesOf(ctx, c.Session(), first)
		if err != nil || len(tables) != 0 {
			t.Fatalf("keyspace %s still has tables %v (%v)", first, tables, err)
		}
	})
}

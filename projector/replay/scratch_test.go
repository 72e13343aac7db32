package replay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/testenv"
)

// TestEmptyScratch: a scratch keyspace that is missing, or that is not what
// the migrations make, is made anew; a migrated one is kept and emptied.
func TestEmptyScratch(t *testing.T) {
	c := testenv.Cassandra(t)
	s := c.Session()
	ks := c.Keyspace
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(cql string) {
		t.Helper()
		if err := s.Query(cql).ExecContext(ctx); err != nil {
			t.Fatalf("%s: %v", cql, err)
		}
	}
	migrated := func(want bool) {
		t.Helper()
		if _, ok, err := migratedTables(ctx, s, ks); err != nil || ok != want {
			t.Fatalf("migratedTables = %v, %v; want %v", ok, err, want)
		}
	}
	count := func(table string) int {
		t.Helper()
		var n int
		if err := s.Query("SELECT count(*) FROM "+ks+"."+table).ScanContext(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ms, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}

	migrated(false) // no tables at all
	if err := emptyScratch(ctx, s, ks); err != nil {
		t.Fatal(err)
	}
	migrated(true)
	if n := count("schema_migrations"); n != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", n, len(ms))
	}

	// Kept and emptied: rows go, the recorded migrations stay.
	run("INSERT INTO " + ks + ".checkpoints (projector, partition, applied_offset) VALUES ('p', 0, 7)")
	if err := emptyScratch(ctx, s, ks); err != nil {
		t.Fatal(err)
	}
	if n := count("checkpoints"); n != 0 {
		t.Fatalf("%d checkpoints rows after emptying, want 0", n)
	}
	if n := count("schema_migrations"); n != len(ms) {
		t.Fatalf("%d migrations recorded after emptying, want %d", n, len(ms))
	}

	// Not what the migrations make: each change is seen, and undone; after
	// the last, the keyspace is made anew, with the dropped column back.
	pins := ""
	for _, m := range ms {
		for _, st := range m.Statements {
			if strings.Contains(st, schemas.KeyspacePlaceholder+".pins (") {
				pins = strings.ReplaceAll(st, schemas.KeyspacePlaceholder, ks)
			}
		}
	}
	if pins == "" {
		t.Fatal("no CREATE TABLE pins in the migrations")
	}
	for _, change := range []struct{ do, undo string }{
		{"DROP TABLE " + ks + ".pins", pins},
		{"UPDATE " + ks + ".schema_migrations SET checksum = 'x' WHERE version = 1",
			"UPDATE " + ks + ".schema_migrations SET checksum = '" + ms[0].Checksum + "' WHERE version = 1"},
		{"INSERT INTO " + ks + ".schema_migrations (version, name, checksum) VALUES (9999, 'newer', 'x')",
			"DELETE FROM " + ks + ".schema_migrations WHERE version = 9999"},
		{"CREATE INDEX scratch_test ON " + ks + ".messages (type)", "DROP INDEX " + ks + ".scratch_test"},
		{"ALTER TABLE " + ks + ".messages DROP reply_to_seq", ""},
	} {
		migrated(true)
		run(change.do)
		migrated(false)
		if change.undo != "" {
			run(change.undo)
		}
	}
	if err := emptyScratch(ctx, s, ks); err != nil {
		t.Fatal(err)
	}
	migrated(true)
	run("SELECT reply_to_seq FROM " + ks + ".messages LIMIT 1")
}

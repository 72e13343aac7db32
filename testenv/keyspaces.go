package testenv

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// migrated holds the keyspaces MigratedCassandra made in this test binary.
// A keyspace handed back by a passed test, with the schema the migrations
// made and no other, is emptied (TRUNCATE of every table but
// schema_migrations) and waits in free for the next test: a TRUNCATE of the
// views costs about half a second on one node, a CREATE KEYSPACE, Migrate
// and DROP KEYSPACE of a fresh one about eight.
var migrated struct {
	mu   sync.Mutex
	free []string
	// schema is what a keyspace of free must still show to be reused:
	// its tables, columns and recorded migrations, by keyspace.
	schema map[string]string
}

// MigratedCassandra returns the shared Cassandra with a keyspace for this
// test that schemas.Migrate brought to the latest version and that holds no
// rows. The keyspace is this test's alone until it ends; then, if the test
// passed and the keyspace still has the migrations' schema (and no other
// table), its tables are truncated and the keyspace goes to a later test of
// the same binary; one with a changed schema is dropped, and one of a failed
// test is kept for inspection. Main drops the keyspaces left at the end.
// Use Cassandra for a keyspace with no tables, e.g. to test a migration.
func MigratedCassandra(t testing.TB) *CassandraEnv {
	t.Helper()
	env := need(t)
	host := env.CassandraHosts[0]
	s, err := newSession(host, "", time.Minute)
	if err != nil {
		t.Fatalf("testenv: cassandra session: %v", err)
	}
	defer s.Close()
	ks := takeMigrated()
	if ks == "" {
		ks = "t_migrated_" + randHex(4)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		err := schemas.CreateKeyspace(ctx, s, ks, "")
		if err == nil {
			err = schemas.Migrate(ctx, s, ks)
		}
		var fp string
		if err == nil {
			fp, err = schemaOf(ctx, s, ks)
		}
		if err != nil {
			t.Fatalf("testenv: migrated keyspace %s: %v", ks, err)
		}
		migrated.mu.Lock()
		if migrated.schema == nil {
			migrated.schema = map[string]string{}
		}
		migrated.schema[ks] = fp
		migrated.mu.Unlock()
	}
	t.Cleanup(func() {
		if t.Failed() {
			forgetMigrated(ks)
			t.Logf("testenv: keeping keyspace %s for inspection", ks)
			return
		}
		s, err := newSession(host, "", 2*time.Minute)
		if err != nil {
			forgetMigrated(ks)
			return
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := emptyMigrated(ctx, s, ks); err != nil {
			forgetMigrated(ks)
			t.Logf("testenv: dropping keyspace %s, not reused: %v", ks, err)
			_ = s.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(ctx)
			return
		}
		migrated.mu.Lock()
		migrated.free = append(migrated.free, ks)
		migrated.mu.Unlock()
	})
	return &CassandraEnv{Hosts: env.CassandraHosts, Keyspace: ks, t: t}
}

func takeMigrated() string {
	migrated.mu.Lock()
	defer migrated.mu.Unlock()
	if n := len(migrated.free); n > 0 {
		ks := migrated.free[n-1]
		migrated.free = migrated.free[:n-1]
		return ks
	}
	return ""
}

func forgetMigrated(ks string) {
	migrated.mu.Lock()
	defer migrated.mu.Unlock()
	delete(migrated.schema, ks)
}

// emptyMigrated truncates every table of ks but schema_migrations, after
// checking that ks still has the schema it had when migrated.
func emptyMigrated(ctx context.Context, s *gocql.Session, ks string) error {
	migrated.mu.Lock()
	want := migrated.schema[ks]
	migrated.mu.Unlock()
	got, err := schemaOf(ctx, s, ks)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("its schema or recorded migrations changed")
	}
	tables, err := tablesOf(ctx, s, ks)
	if err != nil {
		return err
	}
	for _, table := range tables {
		if table == "schema_migrations" {
			continue
		}
		if err := s.Query("TRUNCATE " + ks + "." + table).ExecContext(ctx); err != nil {
			return fmt.Errorf("truncate %s: %w", table, err)
		}
	}
	return nil
}

func tablesOf(ctx context.Context, s *gocql.Session, ks string) ([]string, error) {
	var tables []string
	iter := s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, ks).IterContext(ctx)
	var name string
	for iter.Scan(&name) {
		tables = append(tables, name)
	}
	return tables, iter.Close()
}

// schemaOf describes the schema of ks: every column of every table, each
// table's TTL and gc grace, its indexes, views and types, and the
// migrations recorded in schema_migrations. Two keyspaces with the same
// description answer every statement of the views alike.
func schemaOf(ctx context.Context, s *gocql.Session, ks string) (string, error) {
	var lines []string
	scan := func(q string, n int) error {
		iter := s.Query(q, ks).IterContext(ctx)
		row := make([]string, n)
		dest := make([]any, n)
		for i := range row {
			dest[i] = &row[i]
		}
		for iter.Scan(dest...) {
			lines = append(lines, strings.Join(row, " "))
		}
		return iter.Close()
	}
	for _, q := range []struct {
		q string
		n int
	}{
		{`SELECT table_name, column_name, kind, type, clustering_order FROM system_schema.columns WHERE keyspace_name = ?`, 5},
		{`SELECT table_name, index_name FROM system_schema.indexes WHERE keyspace_name = ?`, 2},
		{`SELECT view_name FROM system_schema.views WHERE keyspace_name = ?`, 1},
		{`SELECT type_name FROM system_schema.types WHERE keyspace_name = ?`, 1},
	} {
		if err := scan(q.q, q.n); err != nil {
			return "", err
		}
	}
	iter := s.Query(`SELECT table_name, default_time_to_live, gc_grace_seconds FROM system_schema.tables WHERE keyspace_name = ?`, ks).IterContext(ctx)
	var (
		table    string
		ttl, gcg int
	)
	for iter.Scan(&table, &ttl, &gcg) {
		lines = append(lines, fmt.Sprintf("table %s ttl %d gc %d", table, ttl, gcg))
	}
	if err := iter.Close(); err != nil {
		return "", err
	}
	iter = s.Query(fmt.Sprintf(`SELECT version, name, checksum FROM %s.schema_migrations`, ks)).IterContext(ctx)
	var (
		v              int
		name, checksum string
	)
	for iter.Scan(&v, &name, &checksum) {
		lines = append(lines, fmt.Sprintf("migration %d %s %s", v, name, checksum))
	}
	if err := iter.Close(); err != nil {
		return "", err
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// dropMigrated drops the keyspaces waiting in the pool, at the end of the
// binary's tests.
func dropMigrated() {
	migrated.mu.Lock()
	free := migrated.free
	migrated.free = nil
	migrated.mu.Unlock()
	if len(free) == 0 || shared.env == nil {
		return
	}
	s, err := newSession(shared.env.CassandraHosts[0], "", 2*time.Minute)
	if err != nil {
		return
	}
	defer s.Close()
	for _, ks := range free {
		_ = s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
	}
}

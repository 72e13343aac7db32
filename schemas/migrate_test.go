package schemas_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestMigrations(t *testing.T) {
	ms, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("%s: version %d at position %d", m.Name, m.Version, i)
		}
		for _, s := range m.Statements {
			up := strings.ToUpper(s)
			if strings.HasSuffix(s, ";") || strings.HasPrefix(s, "--") {
				t.Errorf("%s: badly split statement %q", m.Name, s)
			}
			// Each is idempotent: an interrupted migration, or a statement
			// sent again after a timeout (execDDL), applies cleanly.
			switch {
			case strings.HasPrefix(up, "CREATE"), strings.HasPrefix(up, "ALTER"):
				if !strings.Contains(up, "IF NOT EXISTS") {
					t.Errorf("%s: %s without IF NOT EXISTS: %q", m.Name, strings.Fields(up)[0], s)
				}
			default:
				t.Errorf("%s: only CREATE and ALTER … ADD IF NOT EXISTS are idempotent: %q", m.Name, s)
			}
			if !strings.Contains(s, schemas.KeyspacePlaceholder+".") {
				t.Errorf("%s: statement does not qualify its table with %s: %q", m.Name, schemas.KeyspacePlaceholder, s)
			}
		}
	}
}

func TestMigrate(t *testing.T) {
	c := testenv.Cassandra(t)
	s := c.Session()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for run := 1; run <= 2; run++ {
		if err := schemas.Migrate(ctx, s, c.Keyspace); err != nil {
			t.Fatalf("Migrate run %d: %v", run, err)
		}
	}

	var tables []string
	iter := s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, strings.ToLower(c.Keyspace)).IterContext(ctx)
	var name string
	for iter.Scan(&name) {
		tables = append(tables, name)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"messages", "conversations", "members", "inbox", "checkpoints", "schema_migrations"} {
		if !slices.Contains(tables, want) {
			t.Errorf("table %s missing; have %v", want, tables)
		}
	}

	ms, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	iter = s.Query(`SELECT version FROM schema_migrations`).IterContext(ctx)
	var v int
	for iter.Scan(&v) {
		count[v]++
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if len(count) != len(ms) {
		t.Errorf("schema_migrations has versions %v, want %d", count, len(ms))
	}
	for _, m := range ms {
		if count[m.Version] != 1 {
			t.Errorf("version %d recorded %d times", m.Version, count[m.Version])
		}
	}
}

// TestMigrateResumesAfterCrash simulates a run that died after creating some
// tables but before recording the version.
func TestMigrateResumesAfterCrash(t *testing.T) {
	c := testenv.Cassandra(t)
	s := c.Session()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ms, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	first := strings.ReplaceAll(ms[0].Statements[0], schemas.KeyspacePlaceholder, c.Keyspace)
	if err := s.Query(first).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, s, c.Keyspace); err != nil {
		t.Fatalf("Migrate after partial run: %v", err)
	}
}

func TestMigrateDetectsEditedMigration(t *testing.T) {
	c := testenv.Cassandra(t)
	s := c.Session()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := schemas.Migrate(ctx, s, c.Keyspace); err != nil {
		t.Fatal(err)
	}
	if err := s.Query(`UPDATE schema_migrations SET checksum = 'x' WHERE version = 1`).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, s, c.Keyspace); !errors.Is(err, schemas.ErrMigrationChanged) {
		t.Fatalf("Migrate = %v, want ErrMigrationChanged", err)
	}
}

func TestMigrateCreateKeyspace(t *testing.T) {
	c := testenv.Cassandra(t)
	s := c.Session()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The keyspace exists already: CreateKeyspace must leave it alone.
	if err := schemas.CreateKeyspace(ctx, s, c.Keyspace, ""); err != nil {
		t.Fatal(err)
	}
	if err := schemas.CreateKeyspace(ctx, s, "bad-name", ""); err == nil {
		t.Fatal("CreateKeyspace accepted an invalid keyspace name")
	}
	if err := schemas.Migrate(ctx, s, "x; DROP"); err == nil {
		t.Fatal("Migrate accepted an invalid keyspace name")
	}
}

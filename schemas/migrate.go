package schemas

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// MessagesPerBucket is the number of seqs per messages partition:
// bucket = seq / MessagesPerBucket. Changing it changes where existing rows
// live, so it is part of the schema: never change it for an existing keyspace.
const MessagesPerBucket int64 = 1000

// Bucket returns the messages partition bucket of seq.
func Bucket(seq int64) int64 { return seq / MessagesPerBucket }

// ChangesPerBucket is the number of versions per changes partition: bucket =
// version / ChangesPerBucket. Part of the schema, like MessagesPerBucket.
const ChangesPerBucket int64 = 1000

// ChangesBucket returns the changes partition bucket of version.
func ChangesBucket(version int64) int64 { return version / ChangesPerBucket }

// KeyspacePlaceholder is replaced by the target keyspace in every CQL file;
// tables are always written fully qualified, so Migrate works with a session
// bound to any keyspace, or to none.
const KeyspacePlaceholder = "${keyspace}"

// DefaultReplication is the replication of CreateKeyspace when none is
// given: right for one local node, wrong for production.
const DefaultReplication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"

// ErrMigrationChanged is returned when a migration already applied to the
// keyspace no longer matches its embedded file: applied files must never be
// edited; add a new version instead.
var ErrMigrationChanged = errors.New("schemas: applied migration was edited")

//go:embed cql/*.cql
var cqlFiles embed.FS

// Migration is one versioned CQL file, "cql/NNNN_name.cql".
type Migration struct {
	Version    int
	Name       string // file name without directory
	Checksum   string // hex SHA-256 of the file
	Statements []string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.cql$`)

// Migrations returns the embedded migrations in version order, with the
// keyspace placeholder still in place.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(cqlFiles, "cql/*.cql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, p := range names {
		name := path.Base(p)
		m := migrationName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("schemas: migration file %s: name must be NNNN_lower_snake.cql", name)
		}
		v, _ := strconv.Atoi(m[1])
		b, err := cqlFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: name, Checksum: hex.EncodeToString(sum[:]), Statements: splitStatements(string(b))})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schemas: migration %s: versions must be 1, 2, 3 … without gaps or duplicates", m.Name)
		}
		if len(m.Statements) == 0 {
			return nil, fmt.Errorf("schemas: migration %s has no statements", m.Name)
		}
	}
	return ms, nil
}

// splitStatements splits a CQL file into statements: a statement ends at a
// line ending with ';'. Whole-line comments ("--" or "//") are dropped, so
// they may contain ';'; comments after code on a line are left to Cassandra.
func splitStatements(src string) []string {
	var stmts []string
	var cur strings.Builder
	for line := range strings.Lines(src) {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") || strings.HasPrefix(t, "//") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmts = append(stmts, strings.TrimSpace(s))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

var identifier = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

// CheckKeyspace refuses a name that is not a plain CQL identifier (letters,
// digits and _, starting with a letter, at most 48): keyspace names are
// written into statements, never bound.
func CheckKeyspace(keyspace string) error {
	if !identifier.MatchString(keyspace) {
		return fmt.Errorf("schemas: invalid keyspace name %q (letters, digits and _, at most 48)", keyspace)
	}
	return nil
}

// CreateKeyspace creates keyspace if it does not exist. replication is the
// CQL replication map, e.g. "{'class': 'NetworkTopologyStrategy', 'dc1': 3}",
// taken from the deployer's configuration as is; empty means
// DefaultReplication. An existing keyspace is left unchanged.
func CreateKeyspace(ctx context.Context, s *gocql.Session, keyspace, replication string) error {
	if err := CheckKeyspace(keyspace); err != nil {
		return err
	}
	if replication == "" {
		replication = DefaultReplication
	}
	q := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", keyspace, replication)
	if err := s.Query(q).ExecContext(ctx); err != nil {
		return fmt.Errorf("schemas: create keyspace %s: %w", keyspace, err)
	}
	return nil
}

// Migrate brings the views of keyspace (which must exist) to the latest
// version: it applies, in version order, every embedded migration not yet
// recorded in keyspace.schema_migrations, recording each one after all its
// statements succeeded.
//
// It is safe to run again, and after a run that crashed halfway through a
// file: every statement is idempotent (IF NOT EXISTS), so the interrupted file
// is simply applied again. A recorded migration whose file has since changed
// fails with ErrMigrationChanged. Versions recorded but unknown to this binary
// (applied by a newer one) are ignored. Run it from one process at a time:
// concurrent schema changes to the same table can disagree in Cassandra.
func Migrate(ctx context.Context, s *gocql.Session, keyspace string) error {
	if err := CheckKeyspace(keyspace); err != nil {
		return err
	}
	ms, err := Migrations()
	if err != nil {
		return err
	}
	if err := s.Query(fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations (
		version int PRIMARY KEY, name text, checksum text, applied_at timestamp)`, keyspace)).ExecContext(ctx); err != nil {
		return fmt.Errorf("schemas: create %s.schema_migrations: %w", keyspace, err)
	}
	applied := map[int]string{}
	iter := s.Query(fmt.Sprintf("SELECT version, checksum FROM %s.schema_migrations", keyspace)).IterContext(ctx)
	var (
		v   int
		sum string
	)
	for iter.Scan(&v, &sum) {
		applied[v] = sum
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("schemas: read %s.schema_migrations: %w", keyspace, err)
	}
	for _, m := range ms {
		if got, ok := applied[m.Version]; ok {
			if got != m.Checksum {
				return fmt.Errorf("%w: %s in keyspace %s (recorded checksum %s, file %s)", ErrMigrationChanged, m.Name, keyspace, got, m.Checksum)
			}
			continue
		}
		for i, stmt := range m.Statements {
			stmt = strings.ReplaceAll(stmt, KeyspacePlaceholder, keyspace)
			// DDL results make the driver wait for schema agreement before
			// returning, so the next statement sees this one's tables.
			if err := execDDL(ctx, s, stmt); err != nil {
				return fmt.Errorf("schemas: migration %s statement %d: %w", m.Name, i+1, err)
			}
		}
		if err := s.Query(fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)", keyspace),
			m.Version, m.Name, m.Checksum, time.Now().UTC()).ExecContext(ctx); err != nil {
			return fmt.Errorf("schemas: record migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// ddlAttempts bounds how often execDDL sends a statement that timed out.
const ddlAttempts = 5

// execDDL runs a schema statement, again when the driver gave up waiting
// for Cassandra's answer: a loaded node can take longer than the client
// timeout over a schema change, which it then applies all the same. Every
// migration statement is idempotent (IF NOT EXISTS), so sending it again
// is safe; any other error, or the last timeout, is returned.
func execDDL(ctx context.Context, s *gocql.Session, stmt string) error {
	var err error
	for attempt := 1; attempt <= ddlAttempts; attempt++ {
		err = s.Query(stmt).ExecContext(ctx)
		if !errors.Is(err, gocql.ErrTimeoutNoResponse) && !errors.Is(err, gocql.ErrConnectionClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	return err
}

package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/schemas"
)

// ServingName is the row of the serving table that names the keyspace query
// serves the views from (schemas/cql/0002_serving.cql).
const ServingName = "views"

// Serving returns the keyspace query serves: the one the base keyspace's
// pointer names, or base itself when there is no pointer.
func Serving(ctx context.Context, s *gocql.Session, base string) (string, error) {
	if err := checkKeyspace("base", base); err != nil {
		return "", err
	}
	var ks string
	err := s.Query(fmt.Sprintf("SELECT keyspace_name FROM %s.serving WHERE name = ?", base), ServingName).ScanContext(ctx, &ks)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && ks == "") {
		return base, nil
	}
	if err != nil {
		return "", fmt.Errorf("replay: read %s.serving: %w", base, err)
	}
	return ks, nil
}

// Switch points query at keyspace to (the base keyspace itself undoes a
// switch). It refuses a keyspace that is not migrated to this binary's
// latest schema. Every query instance follows the pointer at its next
// refresh (query.Config.ServingRefresh), one request at a time: requests in
// flight finish on the keyspace they started on. The previous keyspace is
// returned; it is left as it is.
func Switch(ctx context.Context, cfg Config, to string) (previous string, err error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	if err := checkKeyspace("target", to); err != nil {
		return "", err
	}
	s, err := session(cfg)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := schemas.Migrate(ctx, s, cfg.Keyspace); err != nil { // the serving table
		return "", err
	}
	if err := migrated(ctx, s, to); err != nil {
		return "", err
	}
	previous, err = Serving(ctx, s, cfg.Keyspace)
	if err != nil {
		return "", err
	}
	if err := s.Query(fmt.Sprintf("INSERT INTO %s.serving (name, keyspace_name, previous, switched_at) VALUES (?, ?, ?, ?)", cfg.Keyspace),
		ServingName, strings.ToLower(to), previous, time.Now().UTC()).ExecContext(ctx); err != nil {
		return "", fmt.Errorf("replay: write %s.serving: %w", cfg.Keyspace, err)
	}
	return previous, nil
}

// migrated checks that keyspace holds every migration this binary knows.
func migrated(ctx context.Context, s *gocql.Session, keyspace string) error {
	ms, err := schemas.Migrations()
	if err != nil {
		return err
	}
	have := map[int]bool{}
	iter := s.Query(fmt.Sprintf("SELECT version FROM %s.schema_migrations", keyspace)).IterContext(ctx)
	var v int
	for iter.Scan(&v) {
		have[v] = true
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("replay: keyspace %s is not migrated (rebuild into it first): %w", keyspace, err)
	}
	for _, m := range ms {
		if !have[m.Version] {
			return fmt.Errorf("replay: keyspace %s lacks migration %s (rebuild into it first)", keyspace, m.Name)
		}
	}
	return nil
}

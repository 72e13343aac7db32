package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
)

// Serving returns the keyspace query serves (schemas.ServingKeyspace).
func Serving(ctx context.Context, s *gocql.Session, base string) (string, error) {
	ks, err := schemas.ServingKeyspace(ctx, s, base)
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	return ks, nil
}

// SwitchOptions says what to switch to.
type SwitchOptions struct {
	// To is the keyspace query should serve; the base keyspace undoes a switch.
	To string
	// Group is the projector (or rebuild) group whose checkpoints in To
	// say how far it is (default: the base projector's group for the base
	// keyspace, else the rebuild group of To).
	Group string
	// MaxLag is how many offsets of parley.events To may be behind the end
	// of the log, summed over partitions (default 1000; transaction markers
	// count, about one per partition).
	MaxLag int64
	// Force switches whatever the lag.
	Force bool
}

// ErrBehind is returned by Switch when the keyspace is not current.
var ErrBehind = errors.New("replay: the keyspace is behind the log")

// Switch points query at opts.To. It refuses a keyspace that is not
// migrated to this binary's latest schema, or (unless opts.Force) whose
// checkpoints are more than opts.MaxLag behind the end of parley.events.
// Every query instance follows the pointer at its next refresh
// (query.Config.ServingRefresh), one request at a time: requests in flight
// finish on the keyspace they started on. The previous keyspace is
// returned; it is left as it is.
func Switch(ctx context.Context, cfg Config, opts SwitchOptions) (previous string, err error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	to := strings.ToLower(opts.To)
	if err := checkKeyspace("target", to); err != nil {
		return "", err
	}
	if opts.MaxLag == 0 {
		opts.MaxLag = 1000
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup(cfg.Topics, to)
		if strings.EqualFold(to, cfg.Keyspace) {
			opts.Group = strings.TrimSuffix(cfg.Topics.Events.Name, schemas.Events.Name) + "parley-projector"
		}
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
	if !opts.Force {
		if err := current(ctx, cfg, s, to, opts.Group, opts.MaxLag); err != nil {
			return "", err
		}
	}
	previous, err = Serving(ctx, s, cfg.Keyspace)
	if err != nil {
		return "", err
	}
	if err := s.Query(fmt.Sprintf("INSERT INTO %s.serving (name, keyspace_name, previous, switched_at) VALUES (?, ?, ?, ?)", cfg.Keyspace),
		schemas.ServingRow, to, previous, time.Now().UTC()).ExecContext(ctx); err != nil {
		return "", fmt.Errorf("replay: write %s.serving: %w", cfg.Keyspace, err)
	}
	return previous, nil
}

// current checks that group's checkpoints in keyspace are within maxLag
// offsets of the end of the events topic.
func current(ctx context.Context, cfg Config, s *gocql.Session, keyspace, group string, maxLag int64) error {
	cl, err := cfg.kafka()
	if err != nil {
		return err
	}
	defer cl.Close()
	_, end, err := offsets(ctx, kadm.NewClient(cl), cfg.Topics.Events.Name)
	if err != nil {
		return err
	}
	tables, err := projector.NewTables(s, keyspace)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	applied, err := tables.Checkpoints(ctx, group)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	var lag int64
	for p, e := range end {
		next, ok := applied[p]
		if ok {
			next++
		}
		lag += max(0, e-next)
	}
	if lag > maxLag {
		return fmt.Errorf("%w: %s has applied the events of group %s up to %d offsets before the end of %s "+
			"(at most %d): let its projector catch up, or force", ErrBehind, keyspace, group, lag, cfg.Topics.Events.Name, maxLag)
	}
	return nil
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

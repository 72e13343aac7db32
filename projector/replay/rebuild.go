package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
)

// RebuildOptions says what to rebuild into and from where.
type RebuildOptions struct {
	// To is the keyspace the views are rebuilt into. It is created (with
	// Replication) and migrated if needed. It must not be the base keyspace
	// nor the one query serves.
	To string
	// Replication is the CQL replication map of a new keyspace (default
	// schemas.DefaultReplication).
	Replication string
	// Group is the consumer group whose committed offsets record how far the
	// rebuild got (default "<prefix>parley-projector-<To>"). A projector
	// started with this group and keyspace continues where the rebuild
	// stopped.
	Group string
	// From is where a rebuild without committed offsets starts: "" or
	// "start" (every partition's first record), an offset for every
	// partition ("1200"), offsets per partition ("0:1200,3:80"; the others
	// from the start) or an RFC 3339 time (the first record at or after it).
	// With committed offsets the rebuild resumes from them, and a From is
	// refused.
	From string
	// Follow keeps applying new events after the end of the log was reached,
	// until the context ends.
	Follow bool
	// MaxBatch is how many records of a partition are written together
	// (default 5000: the more records of a conversation share a batch, the
	// fewer writes, see projector README "Batches"); WriteParallelism
	// bounds the concurrent writes of one partition's batch (default 32).
	MaxBatch, WriteParallelism int
	// MixedBatches: see projector.WriterConfig.
	MixedBatches bool

	hooks *passHooks // tests: observe the records kept
}

// Result is what a rebuild did.
type Result struct {
	Keyspace, Group string
	Start, End      map[int32]int64 // positions it started from and had to reach
	Events          int64           // records applied in this run
	Poison          int64           // records that cannot be applied (skipped, as the projector dead-letters them)
	Elapsed         time.Duration
}

// Rate is the events applied per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// Rebuild applies parley.events to the views of opts.To, from the start (or
// opts.From, or where an interrupted rebuild of the same group stopped) to
// the end offsets read when it starts, and returns. Offsets are committed to
// opts.Group after the writes (every second and at the end), so running it
// again after an interruption continues from there; records applied but not
// yet committed are applied again, which changes nothing. It returns ctx's
// error when interrupted.
func Rebuild(ctx context.Context, cfg Config, opts RebuildOptions) (Result, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if err := checkKeyspace("target", opts.To); err != nil {
		return Result{}, err
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup(cfg.Topics, opts.To)
	}
	s, err := session(cfg)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	if err := schemas.CreateKeyspace(ctx, s, opts.To, opts.Replication); err != nil {
		return Result{}, err
	}
	if err := schemas.Migrate(ctx, s, opts.To); err != nil {
		return Result{}, err
	}
	cl, err := cfg.kafka()
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	first, end, err := offsets(ctx, adm, cfg.Topics.Events.Name)
	if err != nil {
		return Result{}, err
	}
	start, resumed, err := startOffsets(ctx, adm, cfg.Topics.Events.Name, opts, first)
	if err != nil {
		return Result{}, err
	}
	if !resumed {
		// Harmless for the rows (every write is an idempotent upsert), but
		// surely a mistake: a fresh rebuild goes into a keyspace of its own.
		// Resuming one that is served since (catching it up) is fine.
		serving, err := Serving(ctx, s, cfg.Keyspace)
		if err != nil {
			return Result{}, err
		}
		if strings.EqualFold(opts.To, cfg.Keyspace) || strings.EqualFold(opts.To, serving) {
			return Result{}, fmt.Errorf("replay: will not start a rebuild into %s: it is the base or the served keyspace", opts.To)
		}
	}
	for p, o := range start {
		start[p] = min(max(o, first[p]), end[p])
	}
	if resumed {
		cfg.Logger.Info("resuming from the committed offsets", "group", opts.Group)
	}
	return apply(ctx, cfg, s, adm, opts, start, end, opts.hooks)
}

// DefaultGroup is the consumer group of a rebuild into keyspace.
func DefaultGroup(topics schemas.TopicSet, keyspace string) string {
	prefix := strings.TrimSuffix(topics.Events.Name, schemas.Events.Name)
	return prefix + "parley-projector-" + keyspace
}

// startOffsets are the group's committed offsets, or else where opts.From says.
func startOffsets(ctx context.Context, adm *kadm.Client, topic string, opts RebuildOptions, first map[int32]int64) (map[int32]int64, bool, error) {
	committed, err := adm.FetchOffsets(ctx, opts.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return nil, false, fmt.Errorf("replay: committed offsets of %s: %w", opts.Group, err)
	}
	start := map[int32]int64{}
	resumed := false
	for p, o := range first {
		start[p] = o
		if c, ok := committed.Lookup(topic, p); ok && c.At >= 0 {
			start[p], resumed = c.At, true
		}
	}
	if resumed {
		if opts.From != "" {
			return nil, false, fmt.Errorf("replay: group %s has committed offsets: it resumes from them; "+
				"drop -from, or start over with another keyspace or group", opts.Group)
		}
		return start, true, nil
	}
	switch from := strings.TrimSpace(opts.From); {
	case from == "" || from == "start":
	case strings.Contains(from, ":") && !strings.Contains(from, "T"):
		for item := range strings.SplitSeq(from, ",") {
			ps, os, _ := strings.Cut(item, ":")
			p, err1 := strconv.ParseInt(strings.TrimSpace(ps), 10, 32)
			o, err2 := strconv.ParseInt(strings.TrimSpace(os), 10, 64)
			if _, ok := first[int32(p)]; err1 != nil || err2 != nil || !ok {
				return nil, false, fmt.Errorf("replay: -from %q: want partition:offset pairs of existing partitions", opts.From)
			}
			start[int32(p)] = o
		}
	default:
		if o, err := strconv.ParseInt(from, 10, 64); err == nil {
			for p := range start {
				start[p] = o
			}
			break
		}
		t, err := time.Parse(time.RFC3339, from)
		if err != nil {
			return nil, false, fmt.Errorf("replay: -from %q: want start, an offset, partition:offset pairs or an RFC 3339 time", opts.From)
		}
		after, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
		if err == nil {
			err = after.Error()
		}
		if err != nil {
			return nil, false, fmt.Errorf("replay: offsets after %s: %w", t, err)
		}
		after.Each(func(o kadm.ListedOffset) {
			if o.Offset >= 0 {
				start[o.Partition] = o.Offset
			}
		})
	}
	return start, false, nil
}

// apply runs the pass of a rebuild (and of verify, with only: the
// conversations to keep, and observe: sees every record kept, in order per
// partition). With a group, offsets are committed as batches complete.
func apply(ctx context.Context, cfg Config, s *gocql.Session, adm *kadm.Client, opts RebuildOptions,
	start, end map[int32]int64, keep *passHooks) (Result, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 5000
	}
	w, err := projector.NewWriter(s, projector.WriterConfig{Keyspace: opts.To, WriteParallelism: opts.WriteParallelism,
		MaxBatch: opts.MaxBatch, LogOrder: true, MixedBatches: opts.MixedBatches})
	if err != nil {
		return Result{}, err
	}
	res := Result{Keyspace: opts.To, Group: opts.Group, Start: start, End: end}
	r := newReader(cfg, cfg.Topics.Events.Name, start, end, opts.Follow, opts.MaxBatch)
	var poisonMu sync.Mutex
	handle := func(ctx context.Context, p int32, recs []*kgo.Record, _ int64) error {
		batch := make([]projector.Record, 0, len(recs))
		for _, rec := range recs {
			if keep != nil && keep.keep != nil && !keep.keep(p, rec) {
				continue
			}
			batch = append(batch, projector.Record{Key: rec.Key, Value: rec.Value})
		}
		poison, err := w.Apply(ctx, batch)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			last := recs[len(recs)-1].Offset
			if err := w.Checkpoint(ctx, opts.Group, p, last); err != nil {
				return err
			}
		}
		poisonMu.Lock()
		res.Poison += int64(len(poison))
		poisonMu.Unlock()
		for _, err := range poison {
			cfg.Logger.Warn("skipped a record that cannot be applied (the projector dead-letters it)", "partition", p, "err", err)
		}
		return nil
	}

	var commitErr error
	var commits sync.WaitGroup
	stopCommits := make(chan struct{})
	committed := map[int32]int64{}
	pendingOffsets := func() kadm.Offsets {
		os := kadm.Offsets{}
		for p, n := range r.positions() {
			if n > start[p] && n != committed[p] {
				os.AddOffset(cfg.Topics.Events.Name, p, n, -1)
			}
		}
		return os
	}
	commit := func(ctx context.Context) error {
		if keep != nil && keep.noCommit {
			return nil
		}
		os := pendingOffsets()
		if len(os) == 0 {
			return nil
		}
		resp, err := adm.CommitOffsets(ctx, opts.Group, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("replay: commit offsets of %s: %w", opts.Group, err)
		}
		os.Each(func(o kadm.Offset) { committed[o.Partition] = o.At })
		return nil
	}
	commits.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		prog := newProgress(cfg, opts.To, r)
		pt := time.NewTicker(cfg.ProgressEvery)
		defer pt.Stop()
		for {
			select {
			case <-stopCommits:
				prog.final()
				return
			case <-pt.C:
				prog.line()
			case <-t.C:
				if err := commit(ctx); err != nil && ctx.Err() == nil {
					cfg.Logger.Warn("offset commit failed; retried in a second", "err", err)
				}
			}
		}
	})
	runErr := r.run(ctx, handle)
	close(stopCommits)
	commits.Wait()
	// The final commit outlives an interruption: what was applied is kept.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := commit(cctx); err != nil {
		commitErr = err
	}
	res.Events = r.read.Load()
	res.Elapsed = time.Since(r.begun)
	if keep != nil && keep.noCommit {
		commitErr = nil
	}
	return res, errors.Join(runErr, commitErr)
}

// passHooks let verify filter and observe a rebuild pass.
type passHooks struct {
	keep     func(partition int32, rec *kgo.Record) bool
	noCommit bool
}

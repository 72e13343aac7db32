package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
)

// Projector consumes parley.events and keeps the Cassandra views up to date.
// See README.md for its guarantees.
type Projector struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	running atomic.Bool

	// commitMu orders offset commits with stopping workers: a commit
	// names only running workers, and a revoked worker's last commit is
	// made before its partition is given up.
	commitMu sync.Mutex

	mu      sync.Mutex
	cl      *kgo.Client    // of the current Run, nil outside it
	session *gocql.Session // of the current Run
	writer  *Writer        // of the current Run
	workers map[int32]*worker
	joined  bool // the current Run's member has an assignment (maybe empty)
}

// New checks cfg and registers the metrics; Run connects and does the work.
func New(cfg Config) (*Projector, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Projector{cfg: cfg, log: cfg.Logger.With("component", "projector", "group", cfg.Group), m: m,
		workers: map[int32]*worker{}}, nil
}

// commitEvery is how often the offsets of checkpointed batches are
// committed. The checkpoint rows are the resume point as much as the
// commits (min of the two), so a commit behind costs re-applied records on
// a restart, nothing else.
const commitEvery = time.Second

// Run connects to Cassandra (retrying until it answers), makes sure the
// dead-letter topic exists, joins the consumer group and applies events
// until ctx is canceled; then it finishes or abandons the batches in
// flight, commits the offsets of the applied ones, and returns nil. Any
// other return is an error that stopped it (a Kafka client that could not
// be built).
func (p *Projector) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("projector: Run is already running")
	}
	defer p.running.Store(false)

	var session *gocql.Session
	err := p.retry(ctx, "connect to Cassandra", func() (err error) {
		session, err = newSession(p.cfg)
		return err
	})
	if err != nil {
		return nil // ctx canceled
	}
	defer session.Close()
	p.checkTables(ctx, session)
	if err := p.retry(ctx, "create the dead-letter topic", func() error { return p.provisionDeadLetters(ctx) }); err != nil {
		return nil
	}
	w, err := NewWriter(session, WriterConfig{Keyspace: p.cfg.Keyspace, WriteParallelism: p.cfg.WriteParallelism,
		MaxBatch: p.cfg.MaxBatch, LogOrder: true, MixedBatches: !p.cfg.PerPartitionBatches})
	if err != nil {
		return err
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(p.cfg.Seeds...),
		kgo.ClientID("parley-projector"),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.EventsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // a new group builds the views from offset 0
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxPartitionBytes(8 << 20),
		kgo.DisableAutoCommit(),
		// Polls and rebalances exclude each other: records handed to a
		// worker belong to a partition this member owns, and a revoke
		// runs only between two polls.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
		kgo.AdjustFetchOffsetsFn(p.startOffsets),
	}
	opts = append(opts, p.cfg.Membership.KafkaOptions()...)
	opts = append(opts, p.cfg.KafkaOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("projector: kafka client: %w", err)
	}
	p.mu.Lock()
	p.cl, p.session, p.writer, p.joined = cl, session, w, false
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cl, p.session, p.writer, p.joined = nil, nil, nil, false
		p.mu.Unlock()
	}()

	var commits sync.WaitGroup
	stopCommits := make(chan struct{})
	commits.Go(func() {
		t := time.NewTicker(commitEvery)
		defer t.Stop()
		for {
			select {
			case <-stopCommits:
				return
			case <-t.C:
				p.commitMu.Lock()
				p.commit(ctx, p.runningWorkers())
				p.commitMu.Unlock()
			}
		}
	})

	p.log.Info("projector running", "topic", p.cfg.EventsTopic, "keyspace", p.cfg.Keyspace,
		"dead_letters", p.cfg.DeadLetterTopic, "instance", p.cfg.Membership.InstanceID,
		"session_timeout", p.cfg.Membership.SessionTimeout)
	p.poll(ctx, cl)

	close(stopCommits)
	commits.Wait()
	// Shutdown: stop every worker (a batch being written is abandoned),
	// commit what is checkpointed, then leave (a static member stays, so
	// its restart takes the partitions back at once).
	p.stopWorkers(nil, true)
	cl.Close()
	return nil
}

// poll fetches records and hands each partition's, in offset order, to its
// worker. It never blocks on a worker: a worker with 2 × MaxBatch records
// waiting pauses its partition's fetching instead, so rebalances are never
// held up by a slow or retrying partition.
func (p *Projector) poll(ctx context.Context, cl *kgo.Client) {
	for {
		fs := cl.PollRecords(ctx, 4*p.cfg.MaxBatch)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		fs.EachError(func(t string, part int32, err error) {
			if errors.Is(err, context.Canceled) || deploy.ReportKafkaFetch(p.log, cl, t, err) {
				return
			}
			p.log.Warn("fetch failed; retrying", "topic", t, "partition", part, "err", err)
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			p.mu.Lock()
			w := p.workers[fp.Partition]
			p.mu.Unlock()
			if w == nil {
				return // not ours (any more): its owner reads it from the committed offset
			}
			w.push(fp.Records)
		})
		cl.AllowRebalance()
	}
}

// assigned starts a worker for each newly assigned partition. Fetching for
// them begins after startOffsets.
func (p *Projector) assigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.joined = true
	for _, part := range m[p.cfg.EventsTopic] {
		if p.workers[part] != nil {
			continue
		}
		w := newWorker(p, cl, p.writer, part)
		p.workers[part] = w
		go w.run()
	}
	p.m.partitions.Set(float64(len(p.workers)))
	if len(m[p.cfg.EventsTopic]) > 0 {
		p.log.Info("partitions assigned", "partitions", m[p.cfg.EventsTopic], "now", len(p.workers))
	}
}

// revoked stops the revoked partitions' workers and commits what they
// applied, before the partitions go to another member.
func (p *Projector) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if parts := m[p.cfg.EventsTopic]; len(parts) > 0 {
		p.log.Info("partitions revoked", "partitions", parts)
		p.stopWorkers(parts, true)
	}
}

// lost stops the workers of partitions this member no longer owns (session
// expired, fenced): no commit, it would be refused.
func (p *Projector) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	p.mu.Lock()
	p.joined = false
	p.mu.Unlock()
	if parts := m[p.cfg.EventsTopic]; len(parts) > 0 {
		p.log.Warn("partitions lost", "partitions", parts)
		p.stopWorkers(parts, false)
	}
}

// stopWorkers stops the workers of parts (nil: all), then commits their
// offsets if commit is set.
func (p *Projector) stopWorkers(parts []int32, commit bool) {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	p.mu.Lock()
	var stop []*worker
	if parts == nil {
		for part := range p.workers {
			parts = append(parts, part)
		}
	}
	for _, part := range parts {
		if w := p.workers[part]; w != nil {
			stop = append(stop, w)
			delete(p.workers, part)
		}
	}
	p.m.partitions.Set(float64(len(p.workers)))
	cl := p.cl
	p.mu.Unlock()
	for _, w := range stop {
		w.stop()
	}
	if cl != nil && len(parts) > 0 {
		// A paused partition stays paused across assignments.
		cl.ResumeFetchPartitions(map[string][]int32{p.cfg.EventsTopic: parts})
	}
	if commit {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.commit(ctx, stop)
	}
}

func (p *Projector) runningWorkers() []*worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*worker, 0, len(p.workers))
	for _, w := range p.workers {
		out = append(out, w)
	}
	return out
}

// commit commits, for each of ws, the offset after its last checkpointed
// batch, if it moved. Called with commitMu held.
func (p *Projector) commit(ctx context.Context, ws []*worker) {
	p.mu.Lock()
	cl := p.cl
	p.mu.Unlock()
	if cl == nil {
		return
	}
	offsets := map[int32]kgo.EpochOffset{}
	for _, w := range ws {
		if n := w.next.Load(); n > w.committed.Load() {
			offsets[w.partition] = kgo.EpochOffset{Epoch: -1, Offset: n}
		}
	}
	if len(offsets) == 0 {
		return
	}
	var failed error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{p.cfg.EventsTopic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				failed = err
				return
			}
			for _, t := range resp.Topics {
				for _, part := range t.Partitions {
					if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
						failed = fmt.Errorf("partition %d: %w", part.Partition, err)
						delete(offsets, part.Partition)
					}
				}
			}
		})
	for _, w := range ws {
		if o, ok := offsets[w.partition]; ok && failed == nil {
			w.committed.Store(o.Offset)
		}
	}
	if failed != nil && ctx.Err() == nil {
		p.log.Warn("offset commit failed; the checkpoints keep the position, retried in a second", "err", failed)
	}
}

// startOffsets is where each assigned partition starts:
// min(committed offset, checkpoint + 1). The checkpoint row is written after
// a batch's view rows and before its offsets are committed; finding it
// behind the committed offset means Cassandra lost acknowledged writes (a
// node that crashed before its commitlog reached the disk), so the records
// since the checkpoint are applied again. It waits for Cassandra to answer
// (nothing can be applied before anyway) until the group session ends.
func (p *Projector) startOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[p.cfg.EventsTopic]
	if len(parts) == 0 {
		return offsets, nil
	}
	p.mu.Lock()
	w := p.writer
	p.mu.Unlock()
	var cps map[int32]int64
	if err := p.retry(ctx, "read the checkpoints", func() (err error) {
		cps, err = w.v.readCheckpoints(ctx, p.cfg.Group)
		return err
	}); err != nil {
		return offsets, err
	}
	for part, o := range parts {
		committed := o.EpochOffset().Offset
		start := committed
		if committed >= 0 {
			cp, ok := cps[part]
			from := cp + 1
			if !ok {
				from = 0
			}
			if from < committed {
				p.m.rewinds.Inc()
				p.log.Warn("checkpoint behind the committed offset: Cassandra lost acknowledged writes; applying again from the checkpoint",
					"partition", part, "committed", committed, "checkpoint", cp, "has_checkpoint", ok, "from", from)
				if ok {
					parts[part] = kgo.NewOffset().At(from).WithEpoch(-1)
				} else {
					parts[part] = kgo.NewOffset().AtStart()
				}
				start = from
			}
		} else {
			start = 0 // from the start of the log
		}
		p.mu.Lock()
		if wk := p.workers[part]; wk != nil {
			wk.begin(start)
		}
		p.mu.Unlock()
	}
	return offsets, nil
}

// Checks are the projector's health checks for /healthz: Kafka reachable,
// the member in its group with its partitions (none is fine when the group
// has more members than partitions), lag of the assigned partitions at most
// Config.MaxLag records, Cassandra answering. Outside Run they fail.
func (p *Projector) Checks() []deploy.Check {
	return []deploy.Check{
		{Name: "kafka", Fn: func(ctx context.Context) error {
			cl, _, err := p.clients()
			if err != nil {
				return err
			}
			return cl.Ping(ctx)
		}},
		{Name: "partitions", Fn: func(context.Context) error {
			if _, _, err := p.clients(); err != nil {
				return err
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.joined {
				return fmt.Errorf("not in consumer group %s yet (or expelled from it)", p.cfg.Group)
			}
			return nil
		}},
		{Name: "lag", Fn: func(ctx context.Context) error {
			lag, err := p.Lag(ctx)
			if err != nil {
				return err
			}
			if lag > p.cfg.MaxLag {
				return fmt.Errorf("%d records behind the end of %s, above %d", lag, p.cfg.EventsTopic, p.cfg.MaxLag)
			}
			return nil
		}},
		{Name: "cassandra", Fn: func(ctx context.Context) error {
			_, s, err := p.clients()
			if err != nil {
				return err
			}
			var v string
			return s.Query("SELECT release_version FROM system.local").ScanContext(ctx, &v)
		}},
	}
}

func (p *Projector) clients() (*kgo.Client, *gocql.Session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl == nil {
		return nil, nil, errors.New("projector not running (connecting to Cassandra or stopped)")
	}
	return p.cl, p.session, nil
}

// Lag is how many records the partitions assigned to this member are behind
// the end of the events topic (last stable offset: open transactions are not
// counted; a transaction marker after the last record counts one).
func (p *Projector) Lag(ctx context.Context) (int64, error) {
	cl, _, err := p.clients()
	if err != nil {
		return 0, err
	}
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, p.cfg.EventsTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", p.cfg.EventsTopic, err)
	}
	var lag int64
	for _, w := range p.runningWorkers() {
		if end, ok := ends.Lookup(p.cfg.EventsTopic, w.partition); ok {
			lag += max(0, end.Offset-max(w.next.Load(), 0))
		}
	}
	return lag, nil
}

// provisionDeadLetters creates the dead-letter topic with the contract's
// settings if it does not exist; one with another partition count is fine.
func (p *Projector) provisionDeadLetters(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Seeds...)}, p.cfg.KafkaOptions...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := schemas.DeadLetters
	t.Name = p.cfg.DeadLetterTopic
	if err := ingest.Provision(ctx, cl, -1, t); err != nil && !errors.Is(err, ingest.ErrTopicMismatch) {
		return err
	}
	return nil
}

// checkTables warns when the views are not there (keyspace not migrated):
// the projector still starts, and waits (reading the checkpoints) and
// retries every batch until they exist.
func (p *Projector) checkTables(ctx context.Context, s *gocql.Session) {
	iter := s.Query("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", p.cfg.Keyspace).IterContext(ctx)
	have := map[string]bool{}
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		p.log.Warn("cannot list the tables of the keyspace", "keyspace", p.cfg.Keyspace, "err", err)
		return
	}
	var missing []string
	for _, t := range []string{"messages", "conversations", "members", "inbox", "checkpoints"} {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		p.log.Error("views missing: run schemas.Migrate on the keyspace; until then every event is retried",
			"keyspace", p.cfg.Keyspace, "missing", missing)
	}
}

// retry runs fn until it succeeds or ctx ends, with the configured backoff;
// it returns ctx's error in the latter case.
func (p *Projector) retry(ctx context.Context, what string, fn func() error) error {
	delay := p.cfg.RetryInitialInterval
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.m.failures.Inc()
		p.log.Error("cannot "+what+"; retrying", "err", err, "in", delay)
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, p.cfg.RetryMaxInterval)
	}
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

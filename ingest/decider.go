package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/eventlog"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// DeciderConfig configures the ingest decider.
type DeciderConfig struct {
	Seeds []string
	// Group is the consumer group of all decider instances (default "parley-ingest").
	Group string
	// TransactionalID must be unique per running instance and stable across
	// its restarts: a restarted instance then fences its dead predecessor and
	// aborts its open transaction at once instead of after TransactionTimeout.
	// Default "parley-ingest-<hostname>".
	TransactionalID string
	// Topics default to the contract's (schemas.Commands, Events, IngestState, DeadLetters, Bans, Webhooks).
	CommandsTopic, EventsTopic, StateTopic, DeadLetterTopic, BansTopic, WebhooksTopic string
	// TransactionTimeout bounds how long a dead instance's open transaction
	// can hold back read_committed consumers (default 10s).
	TransactionTimeout time.Duration
	// MaxPollRecords bounds one transaction (default 2000).
	MaxPollRecords int
	// Membership is how the decider takes part in its group. With an
	// InstanceID (static membership) a restarted instance takes its
	// partitions back as soon as it rejoins; the zero value is a dynamic
	// member with deploy's 6 s session timeout. See README.md, Takeover.
	Membership deploy.Membership
	// MaxHealthyLag is the most commands that may wait on this instance's
	// partitions before /healthz reports it unhealthy (default 10,000).
	MaxHealthyLag int64
	// KafkaOptions are applied after the decider's own client options
	// (TLS, SASL, a dialer).
	KafkaOptions []kgo.Opt
	// KafkaLogLevel is the lowest level of the Kafka client's own lines
	// passed to Logger: error, warn (default), info, debug or none.
	KafkaLogLevel string
	Limits        Limits
	Logger        *slog.Logger
	// Registerer receives the decider's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// The defaults of DeciderConfig's numeric fields.
const (
	DefaultTransactionTimeout = 10 * time.Second
	DefaultMaxPollRecords     = 2000
	DefaultMaxHealthyLag      = 10000
)

// Defaults returns c with every unset field given its default.
func (c DeciderConfig) Defaults() DeciderConfig {
	if c.Group == "" {
		c.Group = "parley-ingest"
	}
	if c.TransactionalID == "" {
		h, _ := os.Hostname()
		c.TransactionalID = "parley-ingest-" + h
	}
	if c.CommandsTopic == "" {
		c.CommandsTopic = schemas.Commands.Name
	}
	if c.EventsTopic == "" {
		c.EventsTopic = schemas.Events.Name
	}
	if c.StateTopic == "" {
		c.StateTopic = schemas.IngestState.Name
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = schemas.DeadLetters.Name
	}
	if c.BansTopic == "" {
		c.BansTopic = schemas.Bans.Name
	}
	if c.WebhooksTopic == "" {
		c.WebhooksTopic = schemas.Webhooks.Name
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	c.Membership = c.Membership.Defaults()
	if c.MaxHealthyLag == 0 {
		c.MaxHealthyLag = DefaultMaxHealthyLag
	}
	c.Limits = c.Limits.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every invalid field at once.
func (c DeciderConfig) Validate() error {
	var errs []error
	if len(c.Seeds) == 0 {
		errs = append(errs, errors.New("ingest: DeciderConfig.Seeds is empty"))
	}
	if c.MaxPollRecords < 0 || c.TransactionTimeout < 0 || c.MaxHealthyLag < 0 {
		errs = append(errs, errors.New("ingest: DeciderConfig.MaxPollRecords, TransactionTimeout and MaxHealthyLag must be positive"))
	}
	if _, err := parseKafkaLogLevel(c.KafkaLogLevel); err != nil {
		errs = append(errs, err)
	}
	if err := c.Membership.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ingest: DeciderConfig.Membership: %w", err))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Decider turns commands into events, exactly once. See README.md.
type Decider struct {
	cfg  DeciderConfig
	sess *kgo.GroupTransactSession
	log  *slog.Logger
	m    deciderMetrics

	mu     sync.Mutex
	states map[int32]*partState // partition -> its state; absent: not restored

	cmdParts int32 // partitions of the commands topic; 0 until asked (decideBatch only)

	bans *BanFollower // the standing bans of every user (ban.go)
}

type deciderMetrics struct {
	commands *prometheus.CounterVec // by command type and outcome
	batches  prometheus.Histogram
	restore  prometheus.Histogram
	failed   prometheus.Counter // restores that failed
	aborted  prometheus.Counter
	poison   prometheus.Counter
	swept    prometheus.Counter
}

// NewDecider connects to Kafka; Run does the work.
func NewDecider(cfg DeciderConfig) (*Decider, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Decider{cfg: cfg, log: cfg.Logger, states: map[int32]*partState{}}
	d.m = deciderMetrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_ingest_commands_total",
			Help: "Commands decided, by command type and outcome (accepted, rejected, deduplicated, noop)."}, []string{"type", "outcome"}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_ingest_transaction_seconds",
			Help: "Time to decide and commit one transaction.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_ingest_restore_seconds",
			Help: "Time to restore one partition's state from the changelog.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_ingest_restore_failures_total",
			Help: "Batches whose partition state could not be restored from the changelog; their commands are decided again."}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_ingest_aborted_transactions_total",
			Help: "Transactions aborted (rebalance, fencing, produce failure); their commands are decided again."}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_ingest_undecodable_commands_total",
			Help: "Command records that are not a valid Command; sent to the dead-letter topic."}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_ingest_dedup_expired_total",
			Help: "Remembered sends forgotten because they left the dedup window."}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{d.m.commands, d.m.batches, d.m.restore, d.m.failed, d.m.aborted, d.m.poison, d.m.swept} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ingest: metrics: %w", err)
			}
		}
	}
	drop := func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, p := range lost[cfg.CommandsTopic] {
			delete(d.states, p)
		}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Seeds...),
		kgo.ClientID("parley-ingest"),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.CommandsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.OnPartitionsRevoked(drop),
		kgo.OnPartitionsLost(drop),
		// A produce that races the coordinator finishing the previous
		// transaction is refused CONCURRENT_TRANSACTIONS; franz-go retries
		// it after a metadata refresh, which by default may not happen
		// sooner than 5 s after the last one: a 5 s stall of every
		// partition of the transaction. Allow the refresh at once.
		kgo.MetadataMinAge(50 * time.Millisecond),
	}
	level, _ := parseKafkaLogLevel(cfg.KafkaLogLevel) // validated
	opts = append(opts, kgo.WithLogger(kafkaLog{cfg.Logger, level}))
	opts = append(opts, cfg.Membership.KafkaOptions()...)
	sess, err := kgo.NewGroupTransactSession(append(opts, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("ingest: decider: %w", err)
	}
	d.sess = sess
	bans, err := NewBanFollower(BanFollowerConfig{Seeds: cfg.Seeds, Topic: cfg.BansTopic, KafkaOptions: cfg.KafkaOptions,
		Logger: cfg.Logger.With("part", "bans")})
	if err != nil {
		sess.Close()
		return nil, err
	}
	d.bans = bans
	return d, nil
}

// Run decides commands until ctx ends. It returns nil on cancellation and an
// error only for failures it cannot retry.
func (d *Decider) Run(ctx context.Context) error {
	defer d.sess.Close()
	bctx, stopBans := context.WithCancel(ctx)
	bansDone := make(chan struct{})
	go func() {
		defer close(bansDone)
		if err := d.bans.Run(bctx); err != nil && bctx.Err() == nil {
			d.log.Error("bans: follower stopped", "err", err)
		}
	}()
	defer func() { stopBans(); <-bansDone }()
	if err := d.fence(ctx); err != nil {
		return nil // only the context ends it
	}
	// Decide nothing before every ban committed so far is held.
	select {
	case <-d.bans.Ready():
	case <-ctx.Done():
		return nil
	}
	for {
		fs := d.sess.PollRecords(ctx, d.cfg.MaxPollRecords)
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("ingest: decider client closed")
		}
		fs.EachError(func(t string, p int32, err error) {
			if deploy.ReportKafkaFetch(d.log, d.sess.Client(), t, err) {
				return
			}
			d.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			continue
		}
		fs = d.topUp(ctx, fs)
		if err := d.decideBatch(ctx, fs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.Warn("transaction not committed; its commands will be decided again", "err", err)
			d.rewind(fs)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// fence claims the transactional id before anything else: the broker then
// aborts a dead predecessor's open transaction at once. Without it the
// group's offsets of the partitions that transaction wrote stay unstable
// (UNSTABLE_OFFSET_COMMIT) until TransactionTimeout aborts it, and the
// partitions cannot be fetched before (measured: a static-membership
// restart stalled 11 s instead of 0.3 s). franz-go otherwise claims the id
// only at the first transaction, after the partitions are fetched.
func (d *Decider) fence(ctx context.Context) error {
	for {
		_, _, err := d.sess.Client().ProducerID(ctx)
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		if !deploy.ReportKafkaFetch(d.log, d.sess.Client(), "", err) {
			d.log.Warn("claiming the transactional id failed; retrying", "transactional_id", d.cfg.TransactionalID, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rewind puts the consumer back at the first record of every partition of
// an undecided batch, so that the next polls return those commands again.
// An aborted transaction rewinds to the group's committed offsets, but a
// batch can also fail before its transaction begins (a restore that cannot
// read the changelog), and a partition of a new group has no committed
// offset to go back to: without this, the next transaction would commit
// offsets past commands that were never decided.
func (d *Decider) rewind(fs kgo.Fetches) {
	to := map[string]map[int32]kgo.EpochOffset{}
	fs.EachRecord(func(r *kgo.Record) {
		ps := to[r.Topic]
		if ps == nil {
			ps = map[int32]kgo.EpochOffset{}
			to[r.Topic] = ps
		}
		if cur, ok := ps[r.Partition]; !ok || r.Offset < cur.Offset {
			ps[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
		}
	})
	d.sess.Client().SetOffsets(to)
}

// topUpWait bounds the second look for commands before a transaction.
const topUpWait = 6 * time.Millisecond

// topUp adds the commands that arrived while the previous transaction ran.
// The client buffers one fetch response at a time and sends the next fetch
// only when that one is polled, so what a poll returns was mostly fetched
// early in the previous transaction; whatever came later is one short
// fetch away, and without this it would wait for a whole transaction more.
// The short wait also lets the coordinator finish writing the previous
// commit's markers, so the next transaction's first produce is refused
// CONCURRENT_TRANSACTIONS less often. It costs at most topUpWait on an idle
// decider. BenchmarkCommandLatency, 500 commands/s: append → decided p99
// 75–107 ms without, 30–34 ms with it.
func (d *Decider) topUp(ctx context.Context, fs kgo.Fetches) kgo.Fetches {
	room := d.cfg.MaxPollRecords - fs.NumRecords()
	if room <= 0 {
		return fs
	}
	wctx, cancel := context.WithTimeout(ctx, topUpWait)
	defer cancel()
	more := d.sess.PollRecords(wctx, room)
	if more.NumRecords() == 0 {
		return fs
	}
	return append(fs, more...)
}

// decideBatch decides one poll's records in one transaction.
func (d *Decider) decideBatch(ctx context.Context, fs kgo.Fetches) error {
	start := time.Now()
	// Restore before the transaction begins, so a slow restore does not eat
	// into the transaction timeout.
	// The batch works on its own references: a revoke may drop a partition
	// from d.states meanwhile, and the session then aborts the transaction.
	local, err := d.restoreAll(ctx, partitionsOf(fs))
	if err != nil {
		d.m.failed.Inc()
		d.dropAll()
		return err
	}
	cmdParts, err := d.commandPartitions(ctx)
	if err != nil {
		return err
	}
	// Hold every ban committed so far (on any partition) before deciding.
	if err := d.bans.CatchUp(ctx); err != nil {
		return err
	}
	if err := d.sess.Begin(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var produceErr error
	var once sync.Once
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			once.Do(func() { produceErr = err })
		}
	}
	type counted struct{ typ, outcome string }
	var counts []counted
	now := d.cfg.Now()
	fs.EachRecord(func(r *kgo.Record) {
		ps := local[r.Partition]
		var cmd pb.Command
		if err := proto.Unmarshal(r.Value, &cmd); err != nil || string(r.Key) != cmd.GetConversationId() {
			d.m.poison.Inc()
			d.log.Error("undecodable command sent to dead letters", "partition", r.Partition, "offset", r.Offset, "err", err)
			d.sess.Produce(ctx, deadLetter(d.cfg.DeadLetterTopic, r, "undecodable command or key != conversation_id"), promise)
			return
		}
		conv := cmd.GetConversationId()
		received := receivedAt(r, now)
		var st *convState
		var delta delta
		ban, banned := d.bans.Ban(cmd.GetUserId())
		evs := refuseBanned(&cmd, ban, banned, now, received)
		if evs == nil {
			rev, revoked := d.bans.Revoked(cmd.GetUserId(), cmd.GetDeviceId())
			evs = refuseRevoked(&cmd, rev, revoked, baseOf(&cmd, now))
		}
		if evs == nil {
			st, evs, delta = decide(d.cfg.Limits, ps.convs[conv], &cmd, now, received)
		}
		if st != nil {
			ps.convs[conv] = st
			for _, ref := range delta.dedup {
				if e, ok := st.lookup(ref.user, ref.clientMsgID); ok {
					ps.track(conv, ref.user, ref.clientMsgID, e.at)
				}
			}
		}
		counts = append(counts, counted{schemas.CommandType(&cmd), outcome(evs)})
		for _, ev := range evs {
			v, err := proto.Marshal(ev)
			if err != nil {
				once.Do(func() { produceErr = err })
				return
			}
			d.sess.Produce(ctx, &kgo.Record{
				Topic: d.cfg.EventsTopic, Partition: r.Partition, Key: r.Key, Value: v,
				Headers: []kgo.RecordHeader{
					{Key: schemas.HeaderType, Value: []byte(schemas.EventType(ev))},
					{Key: schemas.HeaderSchemaVersion, Value: []byte(schemas.SchemaVersion)},
				},
			}, promise)
			// A ban's record on the bans topic, in this same transaction:
			// the deciders and gateways following it see it exactly when
			// its events are visible.
			// One partition (schemas.Bans): the follower reads it whole.
			// A webhook's record on the webhooks topic likewise, for the
			// dispatcher.
			topic, key, value, ok := d.cfg.BansTopic, "", []byte(nil), false
			if key, value, ok = banRecord(ev, v); !ok {
				key, value, ok = revocationRecord(ev, v)
			}
			if !ok {
				topic = d.cfg.WebhooksTopic
				key, value, ok = webhookRecord(ev, v)
			}
			if ok {
				d.sess.Produce(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(key), Value: value,
					Headers: []kgo.RecordHeader{
						{Key: schemas.HeaderType, Value: []byte(schemas.EventType(ev))},
						{Key: schemas.HeaderSchemaVersion, Value: []byte(schemas.SchemaVersion)},
					}}, promise)
			}
		}
		// The second step of a two-stream decision goes to the commands
		// topic in this same transaction: it is appended exactly when the
		// first step's events are, never without them, never twice.
		for _, dc := range delta.derived {
			v, err := proto.Marshal(dc)
			if err != nil {
				once.Do(func() { produceErr = err })
				return
			}
			d.sess.Produce(ctx, &kgo.Record{
				Topic: d.cfg.CommandsTopic, Partition: eventlog.PartitionFor(dc.GetConversationId(), cmdParts),
				Key: []byte(dc.GetConversationId()), Value: v, Timestamp: received,
				Headers: []kgo.RecordHeader{
					{Key: schemas.HeaderType, Value: []byte(schemas.CommandType(dc))},
					{Key: schemas.HeaderSchemaVersion, Value: []byte(schemas.SchemaVersion)},
				},
			}, promise)
		}
		for _, rec := range changelogRecords(d.cfg.StateTopic, r.Partition, conv, st, delta) {
			d.sess.Produce(ctx, rec, promise)
		}
	})
	// Forget what left the dedup window, a bounded number per transaction
	// so a long-idle partition catches up over a few batches.
	var swept int
	for p, ps := range local {
		gone := ps.sweep(d.cfg.Limits.DedupWindow, sweepPerBatch)
		swept += len(gone)
		for _, rec := range sweepRecords(d.cfg.StateTopic, p, ps, gone) {
			d.sess.Produce(ctx, rec, promise)
		}
	}
	committed, err := d.sess.End(ctx, produceErr == nil)
	if err == nil && produceErr != nil {
		err = produceErr
	}
	if !committed || err != nil {
		// Memory is now ahead of the log: forget it, and restore again
		// from the changelog when the records come back.
		d.m.aborted.Inc()
		d.dropAll()
		if err == nil {
			err = errors.New("transaction aborted (rebalance or fencing)")
		}
		return err
	}
	for _, c := range counts {
		d.m.commands.WithLabelValues(c.typ, c.outcome).Inc()
	}
	d.m.swept.Add(float64(swept))
	d.m.batches.Observe(time.Since(start).Seconds())
	return nil
}

// commandPartitions returns the partition count of the commands topic,
// which the keys of derived commands are hashed over (as the gateways'
// Appender does), asking the cluster once.
func (d *Decider) commandPartitions(ctx context.Context) (int32, error) {
	if d.cmdParts > 0 {
		return d.cmdParts, nil
	}
	ts, err := kadm.NewClient(d.sess.Client()).ListTopics(ctx, d.cfg.CommandsTopic)
	if err != nil {
		return 0, fmt.Errorf("ingest: partitions of %s: %w", d.cfg.CommandsTopic, err)
	}
	t, ok := ts[d.cfg.CommandsTopic]
	if !ok || t.Err != nil || len(t.Partitions) == 0 {
		return 0, fmt.Errorf("ingest: partitions of %s: topic not found", d.cfg.CommandsTopic)
	}
	d.cmdParts = int32(len(t.Partitions))
	return d.cmdParts, nil
}

func outcome(evs []*pb.Event) string {
	switch {
	case len(evs) == 0:
		return "noop"
	case evs[0].GetCommandRejected() != nil:
		return "rejected"
	case evs[0].GetMessageDeduplicated() != nil:
		return "deduplicated"
	}
	return "accepted"
}

func partitionsOf(fs kgo.Fetches) []int32 {
	var ps []int32
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			ps = append(ps, p.Partition)
		}
	})
	return ps
}

// sweepPerBatch bounds the tombstones of expired sends one transaction
// writes per partition.
const sweepPerBatch = 1000

// receivedAt is when the command was appended (its record's timestamp),
// never later than now: a gateway clock ahead of the decider's must not
// expire remembered sends early.
func receivedAt(r *kgo.Record, now time.Time) time.Time {
	if r.Timestamp.IsZero() || r.Timestamp.After(now) {
		return now
	}
	return r.Timestamp
}

// restoreParallel bounds the partitions restored at once: a takeover
// restores every partition of the instance in its first batch, and one
// partition's restore waits on Kafka about as long as it decodes.
const restoreParallel = 4

// restoreAll returns the state of each of ps, restoring those this instance
// does not hold, restoreParallel at a time.
func (d *Decider) restoreAll(ctx context.Context, ps []int32) (map[int32]*partState, error) {
	local := make(map[int32]*partState, len(ps))
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, restoreParallel)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			st, err := d.restored(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			local[p] = st
		}()
	}
	wg.Wait()
	return local, errors.Join(errs...)
}

// restored returns the state of partition p, restoring it from the
// changelog first if this instance does not hold it.
func (d *Decider) restored(ctx context.Context, p int32) (*partState, error) {
	d.mu.Lock()
	ps := d.states[p]
	d.mu.Unlock()
	if ps != nil {
		return ps, nil
	}
	t := time.Now()
	ps, n, err := restorePartition(ctx, d.cfg.Seeds, d.cfg.KafkaOptions, d.cfg.StateTopic, p, d.cfg.Now(), d.cfg.Limits.DedupPerSender)
	if err != nil {
		return nil, err
	}
	d.m.restore.Observe(time.Since(t).Seconds())
	d.log.Info("restored partition state", "partition", p, "conversations", len(ps.convs), "remembered_sends", len(ps.expiry),
		"records", n, "took", time.Since(t))
	d.mu.Lock()
	d.states[p] = ps
	d.mu.Unlock()
	return ps, nil
}

func (d *Decider) dropAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.states = map[int32]*partState{}
}

// deadLetter wraps a record that cannot be decided, with where it came from.
func deadLetter(topic string, r *kgo.Record, reason string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: 0, Key: r.Key, Value: r.Value, Headers: append(append([]kgo.RecordHeader{}, r.Headers...),
		kgo.RecordHeader{Key: "parley-dlq-source", Value: []byte(fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset))},
		kgo.RecordHeader{Key: "parley-dlq-reason", Value: []byte(reason)},
	)}
}

// kafkaLog passes the Kafka client's log lines at or above a level to slog.
type kafkaLog struct {
	log   *slog.Logger
	level kgo.LogLevel
}

func (l kafkaLog) Level() kgo.LogLevel { return l.level }

func (l kafkaLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var sl slog.Level
	switch level {
	case kgo.LogLevelError:
		sl = slog.LevelError
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	case kgo.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	l.log.Log(context.Background(), sl, msg, append(keyvals, "component", "kafka")...)
}

// parseKafkaLogLevel reads "error", "warn", "info", "debug" or "none".
func parseKafkaLogLevel(s string) (kgo.LogLevel, error) {
	switch s {
	case "", "warn":
		return kgo.LogLevelWarn, nil
	case "error":
		return kgo.LogLevelError, nil
	case "info":
		return kgo.LogLevelInfo, nil
	case "debug":
		return kgo.LogLevelDebug, nil
	case "none":
		return kgo.LogLevelNone, nil
	}
	return 0, fmt.Errorf("ingest: Kafka log level %q: want error, warn, info, debug or none", s)
}

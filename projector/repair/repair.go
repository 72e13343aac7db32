// Package repair heals views that lost rows. A reader that finds a
// conversation's messages rows missing below its last seq (the projector had
// committed past writes the views then lost) appends a RepairRequest to
// parley.repairs (Request). The Repairer, run beside the projector, reads the
// conversation's events again from parley.events — from a margin before the
// last row still present, or from the partition's start — and hands them to
// the same projector.Writer that builds the views, so the missing rows come
// back exactly as they were (every write is an idempotent upsert). The log has
// every event; nothing but the lost rows changes.
//
// At-least-once: a request's offset is committed after its repair, so a crash
// repeats it, which changes nothing. Requests for a conversation repaired
// moments ago are answered by that repair (Config.Coalesce).
package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Config configures a Repairer.
type Config struct {
	Seeds        []string
	KafkaOptions []kgo.Opt
	// RepairsTopic and EventsTopic: the deployment's (schemas.TopicSet).
	RepairsTopic, EventsTopic string
	// Group is the repairer's consumer group (deploy.GroupName(prefix, "repair")).
	Group string
	// Writer writes the views (the projector's keyspace). When nil, Run
	// opens a session with Cassandra and writes Keyspace.
	Writer    *projector.Writer
	Cassandra deploy.Cassandra
	Keyspace  string
	// Margin is how far before a request's NotBefore reading starts
	// (default 5 minutes: record timestamps and occurred_at differ by the
	// decider's transaction time, and clocks by less than that).
	Margin time.Duration
	// MaxScan bounds the records one repair reads (default 5,000,000); a
	// longer scan gives up and counts as failed.
	MaxScan int
	// Coalesce: a request for a conversation repaired less than this long
	// ago (up to at least its ToVersion) is answered by that repair
	// (default 10s).
	Coalesce time.Duration
	Logger   *slog.Logger
	// Registerer gets the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

func (c Config) defaults() Config {
	if c.Margin == 0 {
		c.Margin = 5 * time.Minute
	}
	if c.MaxScan == 0 {
		c.MaxScan = 5_000_000
	}
	if c.Coalesce == 0 {
		c.Coalesce = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Repairer applies repair requests.
type Repairer struct {
	cfg      Config
	log      *slog.Logger
	outcomes *prometheus.CounterVec
	seconds  prometheus.Histogram

	mu     sync.Mutex
	recent map[string]done // conversation → last repair
}

type done struct {
	at        time.Time
	toVersion int64
}

// New checks cfg and registers the metrics.
func New(cfg Config) (*Repairer, error) {
	cfg = cfg.defaults()
	if len(cfg.Seeds) == 0 || cfg.RepairsTopic == "" || cfg.EventsTopic == "" || cfg.Group == "" || (cfg.Writer == nil && cfg.Keyspace == "") {
		return nil, errors.New("repair: Seeds, RepairsTopic, EventsTopic, Group and a Writer or a Keyspace are required")
	}
	r := &Repairer{cfg: cfg, log: cfg.Logger.With("component", "repair"), recent: map[string]done{},
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "parley", Subsystem: "projector",
			Name: "repairs_total", Help: "Repair requests by outcome: repaired (events re-applied), coalesced (answered by a repair moments before), failed (retried), refused (malformed)."},
			[]string{"outcome"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "parley", Subsystem: "projector",
			Name: "repair_seconds", Help: "Time to repair one conversation.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.outcomes, r.seconds} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// Run consumes repair requests until ctx ends; it returns nil then.
func (r *Repairer) Run(ctx context.Context) error {
	if r.cfg.Writer == nil {
		s, err := r.cfg.Cassandra.Session()
		for err != nil {
			r.log.Error("cannot connect to Cassandra; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
			s, err = r.cfg.Cassandra.Session()
		}
		defer s.Close()
		w, err := projector.NewWriter(s, projector.WriterConfig{Keyspace: r.cfg.Keyspace})
		if err != nil {
			return err
		}
		r.cfg.Writer = w
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.Seeds...),
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(r.cfg.RepairsTopic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ClientID("parley-repair"),
	}, r.cfg.KafkaOptions...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	r.log.Info("repairer running", "topic", r.cfg.RepairsTopic, "group", r.cfg.Group)
	for {
		fs := cl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if deploy.ReportKafkaFetch(r.log, cl, t, err) {
				return
			}
			r.log.Warn("fetch", "topic", t, "partition", p, "err", err)
		})
		for _, rec := range fs.Records() {
			for {
				err := r.handle(ctx, rec)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return nil
				}
				r.outcomes.WithLabelValues("failed").Inc()
				r.log.Error("repair failed; retrying", "key", schemas.Clip(string(rec.Key)), "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(2 * time.Second):
				}
			}
			if err := cl.CommitRecords(ctx, rec); err != nil && ctx.Err() == nil {
				r.log.Warn("commit", "err", err) // the request is repeated, which changes nothing
			}
		}
	}
}

func (r *Repairer) handle(ctx context.Context, rec *kgo.Record) error {
	var req pb.RepairRequest
	if err := proto.Unmarshal(rec.Value, &req); err != nil || req.GetConversationId() != string(rec.Key) ||
		schemas.CheckConversationID("conversation_id", req.GetConversationId()) != nil {
		r.outcomes.WithLabelValues("refused").Inc()
		r.log.Warn("malformed repair request dropped", "partition", rec.Partition, "offset", rec.Offset)
		return nil
	}
	conv := req.GetConversationId()
	r.mu.Lock()
	last, ok := r.recent[conv]
	r.mu.Unlock()
	if ok && time.Since(last.at) < r.cfg.Coalesce && req.GetToVersion() > 0 && req.GetToVersion() <= last.toVersion {
		r.outcomes.WithLabelValues("coalesced").Inc()
		return nil
	}
	t0 := time.Now()
	n, upTo, err := r.Repair(ctx, rec.Partition, &req)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.recent[conv] = done{at: time.Now(), toVersion: upTo}
	for c, d := range r.recent {
		if time.Since(d.at) > r.cfg.Coalesce {
			delete(r.recent, c)
		}
	}
	r.mu.Unlock()
	r.outcomes.WithLabelValues("repaired").Inc()
	r.seconds.Observe(time.Since(t0).Seconds())
	r.log.Warn("conversation repaired from the log", "conversation", conv, "from_version", req.GetFromVersion(),
		"to_version", req.GetToVersion(), "events", n, "up_to_version", upTo, "by", schemas.Clip(req.GetRequestedBy()), "took", time.Since(t0))
	return nil
}

// Repair re-applies the conversation's events of partition (the events
// partition with the number of the request's) from the request's start to the
// end of the log as of now, and returns how many it applied and the highest
// version among them.
func (r *Repairer) Repair(ctx context.Context, partition int32, req *pb.RepairRequest) (applied int, upTo int64, err error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cfg.Seeds...), kgo.FetchIsolationLevel(kgo.ReadCommitted())},
		r.cfg.KafkaOptions...)...)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := r.cfg.EventsTopic
	// The last stable offset: an open transaction's records are not read
	// (read_committed), so the scan never waits for one.
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok {
		return 0, 0, fmt.Errorf("%s has no partition %d", topic, partition)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	first, _ := starts.Lookup(topic, partition)
	from := first.Offset
	if nb := req.GetNotBefore(); nb != nil && nb.IsValid() {
		at := nb.AsTime().Add(-r.cfg.Margin)
		offs, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return 0, 0, fmt.Errorf("offsets of %s after %s: %w", topic, at, err)
		}
		if o, ok := offs.Lookup(topic, partition); ok && o.Offset > from {
			from = o.Offset
		}
	}
	if from >= end.Offset {
		return 0, 0, nil // nothing in the log from there on
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}})
	conv := req.GetConversationId()
	var batch []projector.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := r.cfg.Writer.Apply(ctx, batch); err != nil {
			return err // poison records write nothing, as in the projector
		}
		applied += len(batch)
		batch = batch[:0]
		return nil
	}
	scanned := 0
	for {
		// The last records before end may be transaction markers, which a
		// consumer never sees: a partition that stays quiet for idleEnd
		// after the last record read is read to its end.
		pctx, cancel := context.WithTimeout(ctx, idleEnd)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return applied, upTo, ctx.Err()
		}
		if fs.Empty() || errors.Is(fs.Err0(), context.DeadlineExceeded) {
			return applied, upTo, flush()
		}
		if err := fs.Err0(); err != nil {
			return applied, upTo, err
		}
		reached := false
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset >= end.Offset {
				reached = true
				return
			}
			scanned++
			if rec.Offset == end.Offset-1 {
				reached = true
			}
			if string(rec.Key) != conv {
				return
			}
			var ev pb.Event
			if proto.Unmarshal(rec.Value, &ev) == nil && ev.GetVersion() > upTo {
				upTo = ev.GetVersion()
			}
			batch = append(batch, projector.Record{Key: rec.Key, Value: rec.Value})
		})
		if err := flush(); err != nil {
			return applied, upTo, err
		}
		if reached {
			return applied, upTo, nil
		}
		if scanned > r.cfg.MaxScan {
			return applied, upTo, fmt.Errorf("scanned %d records of partition %d without reaching the end of the log as of the request", scanned, partition)
		}
	}
}

// idleEnd: see Repair.
const idleEnd = 3 * time.Second

// Requester appends repair requests; gateways and query hold one.
type Requester struct {
	cl    *kgo.Client
	topic string
	by    string
}

// NewRequester produces to topic with cl (any producing client of the
// cluster); by names the asker in the request.
func NewRequester(cl *kgo.Client, topic, by string) *Requester {
	return &Requester{cl: cl, topic: topic, by: by}
}

// Request appends a request to repair conv from fromVersion (the first
// missing version) to toVersion (the last it should hold; 0 unknown),
// reading the log from a margin before notBefore (zero: from the start). It
// returns once the request is durable.
func (q *Requester) Request(ctx context.Context, conv string, fromVersion, toVersion int64, notBefore time.Time) error {
	req := &pb.RepairRequest{ConversationId: conv, FromVersion: fromVersion, ToVersion: toVersion, RequestedBy: q.by, RequestedAt: timestamppb.Now()}
	if !notBefore.IsZero() {
		req.NotBefore = timestamppb.New(notBefore)
	}
	v, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	return q.cl.ProduceSync(ctx, &kgo.Record{Topic: q.topic, Key: []byte(conv), Value: v}).FirstErr()
}

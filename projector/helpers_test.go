package projector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's Kafka topic and keyspace: migrated (testenv's
// MigratedCassandra) or without tables (testenv's Cassandra).
type env struct {
	t        testing.TB
	k        *testenv.KafkaEnv
	c        *testenv.CassandraEnv
	topic    string
	keyspace string
	s        *gocql.Session // not bound to a keyspace: statements name it
}

func newEnv(t testing.TB, migrate bool) *env {
	t.Helper()
	k := testenv.Kafka(t)
	var c *testenv.CassandraEnv
	if migrate {
		c = testenv.MigratedCassandra(t)
	} else {
		c = testenv.Cassandra(t)
	}
	return &env{t: t, k: k, c: c, topic: k.Topic("events", schemas.DefaultPartitions), keyspace: c.Keyspace, s: session(t, c.Hosts)}
}

func session(t testing.TB, hosts []string) *gocql.Session {
	t.Helper()
	s, err := newSession(Config{Hosts: hosts}.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func (e *env) migrate(keyspace string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := schemas.Migrate(ctx, e.s, keyspace); err != nil {
		e.t.Fatal(err)
	}
}

// config is a projector on the env's topic and keyspace, with its own group
// and dead-letter topic.
func (e *env) config() Config {
	group := e.k.Name("group")
	// Registered before start's stop, so it runs after the projector left.
	e.t.Cleanup(func() {
		if e.t.Failed() {
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.k.Seeds...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteGroups(ctx, group)
	})
	return Config{
		Seeds:                e.k.Seeds,
		EventsTopic:          e.topic,
		Group:                group,
		DeadLetterTopic:      e.k.Topic("dlq", 1),
		Hosts:                e.c.Hosts,
		Keyspace:             e.keyspace,
		RetryInitialInterval: 50 * time.Millisecond,
		RetryMaxInterval:     500 * time.Millisecond,
		Logger:               testenv.Logger(e.t),
	}
}

// start runs a projector until the returned stop is called (or the test
// ends) and checks that Run returned nil.
func (e *env) start(cfg Config) (*Projector, func()) {
	e.t.Helper()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			e.t.Errorf("Run did not return 30s after cancel")
		}
	}
	e.t.Cleanup(stop)
	return p, stop
}

// produce writes events keyed by conversation id, as ingest does, and
// returns the last offset written per partition.
func (e *env) produce(evs ...*pb.Event) map[int32]int64 {
	e.t.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		b, err := proto.Marshal(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		recs[i] = record(ev.GetConversationId(), b, schemas.EventType(ev))
	}
	return e.produceRecords(recs...)
}

func record(key string, value []byte, typ string) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Value: value, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderType, Value: []byte(typ)},
		{Key: schemas.HeaderSchemaVersion, Value: []byte(schemas.SchemaVersion)},
	}}
}

func (e *env) produceRecords(recs ...*kgo.Record) map[int32]int64 {
	e.t.Helper()
	cl := e.k.Client(kgo.DefaultProduceTopic(e.topic), kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	last := map[int32]int64{}
	for _, r := range res {
		last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
	}
	return last
}

// waitApplied waits until the checkpoints of group reach want.
func (e *env) waitApplied(keyspace, group string, want map[int32]int64, timeout time.Duration) {
	e.t.Helper()
	testenv.Eventually(e.t, timeout, func() string {
		got := e.checkpoints(keyspace, group)
		for p, o := range want {
			if got[p] < o {
				return fmt.Sprintf("checkpoints of %s: got %v, want %v", group, got, want)
			}
		}
		return ""
	})
}

func (e *env) checkpoints(keyspace, group string) map[int32]int64 {
	got := map[int32]int64{}
	iter := e.s.Query(fmt.Sprintf("SELECT partition, applied_offset FROM %s.checkpoints WHERE projector = ?", keyspace), group).Iter()
	var (
		p int32
		o int64
	)
	for iter.Scan(&p, &o) {
		got[p] = o
	}
	_ = iter.Close() // missing table: not applied yet
	return got
}

// viewTables are the tables that must be a pure function of the log.
var viewTables = []string{"messages", "changes", "conversations", "members", "inbox", "message_edits", "reactions",
	"pins", "mentions", "mentions_all", "replies", "conversation_prefs", "hidden_messages", "history_cleared", "blocks",
	"invites", "join_requests", "attachments", "attachment_blobs", "owner_attachments", "attachment_uploads"}

// dump reads every row of the views as sorted JSON lines, per table.
func (e *env) dump(keyspace string) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for _, table := range viewTables {
		iter := e.s.Query(fmt.Sprintf("SELECT JSON * FROM %s.%s", keyspace, table)).PageSize(5000).Iter()
		var row string
		rows := []string{}
		for iter.Scan(&row) {
			rows = append(rows, row)
		}
		if err := iter.Close(); err != nil {
			e.t.Fatalf("dump %s.%s: %v", keyspace, table, err)
		}
		slices.Sort(rows)
		out[table] = rows
	}
	return out
}

// sameRows reports the first difference between two dumps.
func sameRows(t testing.TB, what string, want, got map[string][]string) {
	t.Helper()
	for _, table := range viewTables {
		w, g := want[table], got[table]
		if len(w) != len(g) {
			t.Errorf("%s: %s has %d rows, want %d", what, table, len(g), len(w))
			continue
		}
		for i := range w {
			if w[i] != g[i] {
				t.Errorf("%s: %s row %d differs:\n got %s\nwant %s", what, table, i, g[i], w[i])
				break
			}
		}
	}
}

// rows reads the rows of table matching where (CQL, ALLOW FILTERING) as
// decoded JSON objects.
func (e *env) rows(keyspace, table, where string, args ...any) []map[string]any {
	e.t.Helper()
	q := fmt.Sprintf("SELECT JSON * FROM %s.%s WHERE %s ALLOW FILTERING", keyspace, table, where)
	iter := e.s.Query(q, args...).Iter()
	var (
		row string
		out []map[string]any
	)
	for iter.Scan(&row) {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(row), &m); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return out
}

func counterValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}

// Event builders. Times are derived from the seq so logs are reproducible.

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func at(seq int64) *timestamppb.Timestamp {
	return timestamppb.New(t0.Add(time.Duration(seq) * time.Second))
}

func base(conv string, seq int64, actor string) *pb.Event {
	return &pb.Event{ConversationId: conv, Seq: seq, ActorUserId: actor, ActorDeviceId: actor + "-phone",
		CommandId: fmt.Sprintf("cmd-%s-%d-%s", conv, seq, actor), OccurredAt: at(seq)}
}

func created(conv, creator string, kind pb.ConversationKind, title string, others ...string) *pb.Event {
	e := base(conv, 0, creator)
	e.Body = &pb.Event_ConversationCreated{ConversationCreated: &pb.ConversationCreated{
		Kind: kind, Title: title, MemberUserIds: append([]string{creator}, others...)}}
	return e
}

func group(conv, creator, title string, others ...string) *pb.Event {
	return created(conv, creator, pb.ConversationKind_CONVERSATION_KIND_GROUP, title, others...)
}

func sent(conv string, seq int64, sender, text string) *pb.Event {
	e := base(conv, seq, sender)
	e.Body = &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: fmt.Sprintf("c%d", seq), Text: text, ContentType: "text/plain"}}
	return e
}

func added(conv string, seq int64, actor string, users ...string) *pb.Event {
	e := base(conv, seq, actor)
	e.Body = &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: users}}
	return e
}

func removed(conv string, seq int64, actor, user string) *pb.Event {
	reason := pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED
	if actor == user {
		reason = pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT
	}
	e := base(conv, seq, actor)
	e.Body = &pb.Event_MemberRemoved{MemberRemoved: &pb.MemberRemoved{UserId: user, Reason: reason}}
	return e
}

func read(conv, user string, up int64) *pb.Event {
	e := base(conv, 0, user)
	e.Body = &pb.Event_ReadUpTo{ReadUpTo: &pb.ReadUpTo{UpToSeq: up}}
	return e
}

func delivered(conv, user string, up int64) *pb.Event {
	e := base(conv, 0, user)
	e.Body = &pb.Event_DeliveredUpTo{DeliveredUpTo: &pb.DeliveredUpTo{UpToSeq: up}}
	return e
}

func rejected(conv, user string) *pb.Event {
	e := base(conv, 0, user)
	e.Body = &pb.Event_CommandRejected{CommandRejected: &pb.CommandRejected{
		Code: pb.ErrorCode_ERROR_CODE_NOT_MEMBER, Message: "no", CommandType: schemas.TypeSendMessage}}
	return e
}

func deduplicated(conv, user string, seq int64) *pb.Event {
	e := base(conv, 0, user)
	e.Body = &pb.Event_MessageDeduplicated{MessageDeduplicated: &pb.MessageDeduplicated{ClientMsgId: fmt.Sprintf("c%d", seq), OriginalSeq: seq}}
	return e
}

// applyAll applies events with Apply, in the given order.
func (e *env) applyAll(keyspace string, evs []*pb.Event) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ev := range evs {
		b, err := proto.Marshal(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := Apply(ctx, e.s, keyspace, []byte(ev.GetConversationId()), b); err != nil {
			e.t.Fatalf("Apply %s: %v", strings.TrimSpace(ev.String()), err)
		}
	}
}

// applyEachWay applies log() (events keyed by key) on a keyspace of its
// own in each way a projector may meet them — forwards, backwards, and as
// one log-order batch — twice each, then runs check on that keyspace.
func (e *env) applyEachWay(t *testing.T, key string, log func() []*pb.Event, check func(t *testing.T, ks string)) {
	t.Helper()
	for _, mode := range []string{"forwards", "backwards", "batch"} {
		t.Run(mode, func(t *testing.T) {
			ks := testenv.MigratedCassandra(t).Keyspace
			evs := log()
			if mode == "backwards" {
				slices.Reverse(evs)
			}
			for range 2 {
				if mode != "batch" {
					e.applyAll(ks, evs)
					continue
				}
				w, err := NewWriter(e.s, WriterConfig{Keyspace: ks, LogOrder: true})
				if err != nil {
					t.Fatal(err)
				}
				recs := make([]Record, len(evs))
				for i, ev := range evs {
					b, _ := proto.Marshal(ev)
					recs[i] = Record{Key: []byte(key), Value: b}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if _, err := w.Apply(ctx, recs); err != nil {
					t.Fatal(err)
				}
				cancel()
			}
			check(t, ks)
		})
	}
}

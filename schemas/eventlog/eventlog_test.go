package eventlog_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/eventlog"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// log is one test's Parley log: its own topics, a decider deciding the
// commands an Appender appends, and three conversations on three different
// partitions.
type log struct {
	t         *testing.T
	k         *testenv.KafkaEnv
	topics    schemas.TopicSet
	group     string
	app       *ingest.Appender
	n         int // commands appended
	g1, d, g2 string
}

func newLog(t *testing.T) *log {
	k := testenv.Kafka(t)
	prefix := k.Name("eventlog") + "."
	l := &log{t: t, k: k, topics: schemas.Prefixed(prefix), group: prefix + "parley-ingest",
		d: schemas.DirectConversationID("alice", "bob")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ingest.Provision(ctx, k.Client(), -1, l.topics.All()...); err != nil {
		t.Fatal(err)
	}
	// Two group ids whose partitions differ from each other and from the
	// direct conversation's, so a user's export has to read several.
	seen := map[int32]bool{eventlog.PartitionFor(l.d, schemas.DefaultPartitions): true}
	for _, id := range []*string{&l.g1, &l.g2} {
		for {
			*id = schemas.NewGroupConversationID()
			if p := eventlog.PartitionFor(*id, schemas.DefaultPartitions); !seen[p] {
				seen[p] = true
				break
			}
		}
	}
	var err error
	l.app, err = ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: l.topics.Commands.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.app.Close(context.Background()) })
	d, err := ingest.NewDecider(ingest.DeciderConfig{Seeds: k.Seeds, Group: l.group, TransactionalID: prefix + "txn",
		CommandsTopic: l.topics.Commands.Name, EventsTopic: l.topics.Events.Name,
		StateTopic: l.topics.IngestState.Name, DeadLetterTopic: l.topics.DeadLetters.Name, BansTopic: l.topics.Bans.Name, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	return l
}

func (l *log) events() eventlog.Source {
	return eventlog.Source{Seeds: l.k.Seeds, Topic: l.topics.Events.Name}
}

func (l *log) do(user, conv string, body any) {
	l.t.Helper()
	l.n++
	c := &pb.Command{CommandId: fmt.Sprintf("c%d", l.n), UserId: user, DeviceId: user + "-phone", ConversationId: conv}
	switch b := body.(type) {
	case *pb.CreateConversation:
		c.Body = &pb.Command_CreateConversation{CreateConversation: b}
	case *pb.SendMessage:
		c.Body = &pb.Command_SendMessage{SendMessage: b}
	case *pb.MarkRead:
		c.Body = &pb.Command_MarkRead{MarkRead: b}
	default:
		l.t.Fatalf("no command for %T", body)
	}
	v, _ := proto.Marshal(c)
	if _, err := l.app.AppendSync(context.Background(), ingest.Record{Key: conv, Type: schemas.CommandType(c), Value: v}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *log) send(user, conv, clientID string) {
	l.t.Helper()
	l.do(user, conv, &pb.SendMessage{ClientMsgId: clientID, Text: "text of " + clientID})
}

// phase1 creates the three conversations and fills them: 30 messages in g1
// (alice and bob in turn, bob reading up to 15 in the middle, a retried send
// and a non-member's refused send), 5 in d from bob, 5 in g2.
func (l *log) phase1() {
	group := pb.ConversationKind_CONVERSATION_KIND_GROUP
	l.do("alice", l.g1, &pb.CreateConversation{Kind: group, Title: "one", MemberUserIds: []string{"bob", "carol"}})
	l.do("alice", l.d, &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{"bob"}})
	l.do("bob", l.g2, &pb.CreateConversation{Kind: group, Title: "two", MemberUserIds: []string{"carol"}})
	for i := 1; i <= 30; i++ {
		l.send([]string{"bob", "alice"}[i%2], l.g1, fmt.Sprintf("g1-%d", i))
		if i == 15 {
			l.do("bob", l.g1, &pb.MarkRead{UpToSeq: 15})
			l.send("alice", l.g1, "g1-1")      // a retry: MessageDeduplicated
			l.send("dave", l.g1, "not-member") // CommandRejected
		}
	}
	for i := 1; i <= 5; i++ {
		l.send("bob", l.d, fmt.Sprintf("d-%d", i))
		l.send([]string{"carol", "bob"}[i%2], l.g2, fmt.Sprintf("g2-%d", i))
	}
	l.decided()
}

// phase2 adds 10 messages to g1 (5 from bob), 3 to d and 2 to g2, all from
// bob: 10 MessageSent by bob in all.
func (l *log) phase2() {
	for i := 1; i <= 10; i++ {
		l.send([]string{"bob", "alice"}[i%2], l.g1, fmt.Sprintf("g1-late-%d", i))
	}
	for i := 1; i <= 3; i++ {
		l.send("bob", l.d, fmt.Sprintf("d-late-%d", i))
	}
	for i := 1; i <= 2; i++ {
		l.send("bob", l.g2, fmt.Sprintf("g2-late-%d", i))
	}
	l.decided()
}

// decided waits until the decider committed its position at the end of the
// commands topic: every command appended so far is decided and its events
// are committed (both are in the same transaction).
func (l *log) decided() {
	l.t.Helper()
	adm := kadm.NewClient(l.k.Client())
	testenv.Eventually(l.t, time.Minute, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, l.topics.Commands.Name)
		if err != nil {
			return fmt.Sprintf("end offsets of %s: %v", l.topics.Commands.Name, err)
		}
		committed, err := adm.FetchOffsets(ctx, l.group)
		if err != nil {
			return fmt.Sprintf("offsets of %s: %v", l.group, err)
		}
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				behind++
			}
		})
		if behind > 0 {
			return fmt.Sprintf("the decider is behind the commands in %d partitions", behind)
		}
		return ""
	})
}

// direct reads every partition of the events topic from its start to its
// last stable offset with a plain consumer: what Export is compared with.
func (l *log) direct() []*kgo.Record {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := l.topics.Events.Name
	ends, err := kadm.NewClient(l.k.Client()).ListCommittedOffsets(ctx, topic)
	if err != nil {
		l.t.Fatal(err)
	}
	left := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left++
		}
	})
	cl := l.k.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	var out []*kgo.Record
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			l.t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, _ := ends.Lookup(topic, r.Partition)
			if r.Offset >= end.Offset {
				return
			}
			if r.Offset == end.Offset-1 {
				left--
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

func (l *log) export(q eventlog.ExportQuery) []*eventlog.Record {
	l.t.Helper()
	var got []*eventlog.Record
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last eventlog.Progress
	q.Progress = func(p eventlog.Progress) { last = p }
	final, err := eventlog.Export(ctx, l.events(), q, func(r *eventlog.Record) error { got = append(got, r); return nil })
	if err != nil {
		l.t.Fatal(err)
	}
	if final != last || final.Matched != int64(len(got)) {
		l.t.Errorf("progress %+v, last reported %+v, %d records exported", final, last, len(got))
	}
	return got
}

func where(rs []*kgo.Record, keep func(*kgo.Record, *pb.Event) bool) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range rs {
		var e pb.Event
		if err := proto.Unmarshal(r.Value, &e); err != nil {
			panic(err)
		}
		if keep(r, &e) {
			out = append(out, r)
		}
	}
	return out
}

func key(conv string) func(*kgo.Record, *pb.Event) bool {
	return func(r *kgo.Record, _ *pb.Event) bool { return string(r.Key) == conv }
}

// sameRecords fails unless got are want, in the same order: same place in
// the log, same timestamp, key and headers, and a decoded event equal to the
// record's value.
func sameRecords(t *testing.T, got []*eventlog.Record, want []*kgo.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		var e pb.Event
		_ = proto.Unmarshal(w.Value, &e)
		if g.Topic != w.Topic || g.Partition != w.Partition || g.Offset != w.Offset || !g.Timestamp.Equal(w.Timestamp) ||
			g.Key != string(w.Key) || g.Type != schemas.EventType(&e) || len(g.Headers) != len(w.Headers) ||
			g.Error != "" || !proto.Equal(g.DecodedEvent(), &e) {
			t.Fatalf("record %d: got %s/%d@%d %s %q %v, want %s/%d@%d %s %q %v", i,
				g.Topic, g.Partition, g.Offset, g.Timestamp, g.Key, g.DecodedEvent(),
				w.Topic, w.Partition, w.Offset, w.Timestamp, w.Key, &e)
		}
	}
}

func countTypes(rs []*eventlog.Record) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r.Type]++
	}
	return m
}

// TestLog runs every scenario on one log, so the decider starts once.
func TestLog(t *testing.T) {
	l := newLog(t)
	l.phase1()
	// The boundary between the phases is a whole millisecond (record
	// timestamps have millisecond precision) that has passed before phase 2.
	boundary := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	testenv.Eventually(t, time.Second, func() string {
		if now := time.Now(); now.Before(boundary) {
			return fmt.Sprintf("the clock is at %s, before the boundary %s", now, boundary)
		}
		return ""
	})
	l.phase2()
	all := l.direct()

	t.Run("ExportConversation", func(t *testing.T) {
		want := where(all, key(l.g1))
		p := eventlog.PartitionFor(l.g1, schemas.DefaultPartitions)
		for _, r := range want {
			if r.Partition != p {
				t.Fatalf("an event of %s is in partition %d, PartitionFor says %d", l.g1, r.Partition, p)
			}
		}
		got := l.export(eventlog.ExportQuery{Conversation: l.g1})
		sameRecords(t, got, want)
		// And what was sent is there: created, 40 messages with seqs 1..40,
		// bob's read, the retry and the refusal.
		wantTypes := map[string]int{schemas.TypeConversationCreated: 1, schemas.TypeMessageSent: 40,
			schemas.TypeReadUpTo: 1, schemas.TypeMessageDeduplicated: 1, schemas.TypeCommandRejected: 1}
		if c := countTypes(got); !maps.Equal(c, wantTypes) {
			t.Errorf("types %v, want %v", c, wantTypes)
		}
		var seqs []int64
		for _, r := range got {
			if r.Seq() > 0 {
				seqs = append(seqs, r.Seq())
			}
		}
		if len(seqs) != 40 || seqs[0] != 1 || seqs[39] != 40 || !slices.IsSorted(seqs) {
			t.Errorf("seqs %v", seqs)
		}
	})

	t.Run("ExportSeqRange", func(t *testing.T) {
		conv := where(all, key(l.g1))
		// The slice 14..16 holds messages 14, 15 and 16 and, in log order
		// between them, bob's read up to 15, the retry and the refusal.
		var want []*kgo.Record
		in := false
		for _, r := range conv {
			var e pb.Event
			_ = proto.Unmarshal(r.Value, &e)
			if e.GetSeq() == 14 {
				in = true
			}
			if e.GetSeq() == 17 {
				break
			}
			if in {
				want = append(want, r)
			}
		}
		got := l.export(eventlog.ExportQuery{Conversation: l.g1, FromSeq: 14, ToSeq: 16})
		sameRecords(t, got, want)
		if len(got) != 6 {
			t.Errorf("%d records in 14..16, want 3 messages and 3 others: %v", len(got), countTypes(got))
		}
		if got := l.export(eventlog.ExportQuery{Conversation: l.g1, FromSeq: 39}); len(got) != 2 || got[0].Seq() != 39 {
			t.Errorf("from 39: %d records", len(got))
		}
		if got := l.export(eventlog.ExportQuery{Conversation: l.g1, ToSeq: 1}); len(got) != 2 || got[0].Type != schemas.TypeConversationCreated {
			t.Errorf("to 1: %d records", len(got))
		}
	})

	t.Run("ExportTimeRange", func(t *testing.T) {
		want := where(all, func(r *kgo.Record, _ *pb.Event) bool {
			return string(r.Key) == l.d && !r.Timestamp.Before(boundary)
		})
		got := l.export(eventlog.ExportQuery{Conversation: l.d, Since: boundary})
		sameRecords(t, got, want)
		if c := countTypes(got); c[schemas.TypeMessageSent] != 3 || len(got) != 3 {
			t.Errorf("phase 2 of d: %v", c)
		}
		before := l.export(eventlog.ExportQuery{Conversation: l.d, Until: boundary})
		if c := countTypes(before); c[schemas.TypeMessageSent] != 5 || c[schemas.TypeConversationCreated] != 1 || len(before) != 6 {
			t.Errorf("phase 1 of d: %v", c)
		}
	})

	t.Run("ExportUser", func(t *testing.T) {
		want := where(all, func(r *kgo.Record, e *pb.Event) bool {
			return e.GetActorUserId() == "bob" && !r.Timestamp.Before(boundary)
		})
		got := l.export(eventlog.ExportQuery{Actor: "bob", Since: boundary})
		// Several partitions interleave; per partition the order is the log's.
		slices.SortStableFunc(got, func(a, b *eventlog.Record) int { return int(a.Partition - b.Partition) })
		slices.SortStableFunc(want, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
		sameRecords(t, got, want)
		parts := map[int32]bool{}
		for _, r := range got {
			parts[r.Partition] = true
			if r.Type != schemas.TypeMessageSent {
				t.Errorf("bob's phase 2 has a %s", r.Type)
			}
		}
		if len(got) != 10 || len(parts) != 3 {
			t.Errorf("bob sent 10 messages in 3 conversations since the boundary; exported %d in %d partitions", len(got), len(parts))
		}
		all := l.export(eventlog.ExportQuery{Actor: "bob"})
		// Phase 1: created g2, 15 in g1, read, 5 in d, 3 in g2; phase 2: 10.
		if len(all) != 1+15+1+5+3+10 {
			t.Errorf("bob's whole history: %d records %v", len(all), countTypes(all))
		}
	})

	t.Run("TailFilters", func(t *testing.T) {
		want := where(all, func(r *kgo.Record, e *pb.Event) bool {
			return string(r.Key) == l.g1 && schemas.EventType(e) == schemas.TypeMessageSent
		})
		got := l.tail(eventlog.TailQuery{Filter: eventlog.Filter{Conversation: l.g1, Types: []string{schemas.TypeMessageSent}},
			From: eventlog.FromStart(), Limit: len(want)})
		sameRecords(t, got, want)

		receipts := where(all, func(_ *kgo.Record, e *pb.Event) bool {
			t := schemas.EventType(e)
			return t == schemas.TypeReadUpTo || t == schemas.TypeCommandRejected
		})
		got = l.tail(eventlog.TailQuery{Filter: eventlog.Filter{Types: []string{schemas.TypeReadUpTo, schemas.TypeCommandRejected}},
			From: eventlog.FromStart(), Limit: len(receipts)})
		slices.SortStableFunc(got, func(a, b *eventlog.Record) int { return int(a.Partition - b.Partition) })
		slices.SortStableFunc(receipts, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
		sameRecords(t, got, receipts)

		// From an offset of the conversation's partition: the first record is the one there.
		conv := where(all, key(l.d))
		got = l.tail(eventlog.TailQuery{Filter: eventlog.Filter{Conversation: l.d}, From: eventlog.FromOffset(conv[3].Offset), Limit: 2})
		sameRecords(t, got, conv[3:5])

		// From a time: phase 2 of g2.
		late := where(all, func(r *kgo.Record, _ *pb.Event) bool { return string(r.Key) == l.g2 && !r.Timestamp.Before(boundary) })
		got = l.tail(eventlog.TailQuery{Filter: eventlog.Filter{Conversation: l.g2}, From: eventlog.FromTime(boundary), Limit: len(late)})
		sameRecords(t, got, late)
		if len(late) != 2 {
			t.Errorf("g2 after the boundary: %d events", len(late))
		}
	})

	t.Run("TailCommands", func(t *testing.T) {
		src := eventlog.Source{Seeds: l.k.Seeds, Topic: l.topics.Commands.Name, Kind: eventlog.Commands}
		var got []*eventlog.Record
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q := eventlog.TailQuery{Filter: eventlog.Filter{Actor: "dave"}, From: eventlog.FromStart(), Limit: 1}
		if err := eventlog.Tail(ctx, src, q, func(r *eventlog.Record) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Type != schemas.TypeSendMessage || got[0].DecodedCommand().GetSendMessage().GetClientMsgId() != "not-member" {
			t.Fatalf("dave's command: %+v", got)
		}
		if line, err := got[0].MarshalLine(); err != nil || !strings.Contains(string(line), `"command":{`) {
			t.Fatalf("dave's command as a line: %s %v", line, err)
		}
	})

	t.Run("TailFromEnd", func(t *testing.T) {
		// Tail from the end sees only what is appended after it started:
		// keep sending until it prints one, which must be a new one.
		parent := l.t
		l.t = t // l.send fails this subtest, not its parent
		defer func() { l.t = parent }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		got := make(chan *eventlog.Record, 1)
		errc := make(chan error, 1)
		go func() {
			q := eventlog.TailQuery{Filter: eventlog.Filter{Conversation: l.g2, Types: []string{schemas.TypeMessageSent}}, Limit: 1}
			errc <- eventlog.Tail(ctx, l.events(), q, func(r *eventlog.Record) error { got <- r; return nil })
		}()
		// One send every 200 ms, each a chance for the tail to print;
		// the first it prints must be one of them.
		for i := 1; ; i++ {
			l.send("carol", l.g2, fmt.Sprintf("tail-%d", i))
			select {
			case r := <-got:
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				// g2 had 7 messages before: the first new one is seq 8.
				if r.Seq() < 8 || r.DecodedEvent().GetActorUserId() != "carol" {
					t.Fatalf("tail from the end printed seq %d by %s", r.Seq(), r.DecodedEvent().GetActorUserId())
				}
				return
			case <-ctx.Done():
				t.Fatal("tail printed nothing within a minute")
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

func (l *log) tail(q eventlog.TailQuery) []*eventlog.Record {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []*eventlog.Record
	if err := eventlog.Tail(ctx, l.events(), q, func(r *eventlog.Record) error { got = append(got, r); return nil }); err != nil {
		l.t.Fatal(err)
	}
	if ctx.Err() != nil {
		l.t.Fatalf("tail returned %d of %d records before the deadline", len(got), q.Limit)
	}
	return got
}

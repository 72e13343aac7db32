package analytics_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/eventlog"
	"github.com/parley-im/parley/schemas/examples/analytics"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestAnalyticsMessagesPerHour runs all of Parley, sends a workload through
// it as commands (what gateways append), and checks that the example's
// figures are exactly what was sent: 4 direct conversations with 3 messages
// each and 2 groups with 10 and 7, among receipts, a member added, a retried
// send and a refused one, none of which is a message.
func TestAnalyticsMessagesPerHour(t *testing.T) {
	k, c := testenv.Kafka(t), testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: c.Keyspace,
		TopicPrefix: k.Name("analytics") + "."})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)

	counter, err := analytics.New(analytics.Config{Seeds: k.Seeds, Topic: sys.Topics.Events.Name, Group: k.Name("analytics-job")})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- counter.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	w := newWorkload(t, k.Seeds, sys.Topics.Commands.Name)
	before := time.Now().UTC()
	direct, group := pb.ConversationKind_CONVERSATION_KIND_DIRECT, pb.ConversationKind_CONVERSATION_KIND_GROUP
	for _, peer := range []string{"bob", "carol", "dan", "erin"} {
		conv := schemas.DirectConversationID("alice", peer)
		w.do("alice", conv, &pb.CreateConversation{Kind: direct, MemberUserIds: []string{peer}})
		for i := 1; i <= 3; i++ {
			w.send([]string{"alice", peer}[i%2], conv, fmt.Sprintf("%s-%d", peer, i))
		}
		w.do(peer, conv, &pb.MarkRead{UpToSeq: 3})
	}
	g1, g2 := schemas.NewGroupConversationID(), schemas.NewGroupConversationID()
	w.do("alice", g1, &pb.CreateConversation{Kind: group, Title: "team", MemberUserIds: []string{"bob", "carol"}})
	w.do("bob", g2, &pb.CreateConversation{Kind: group, Title: "lunch", MemberUserIds: []string{"dan"}})
	for i := 1; i <= 10; i++ {
		w.send([]string{"alice", "bob", "carol"}[i%3], g1, fmt.Sprintf("g1-%d", i))
		if i == 5 {
			w.do("alice", g1, &pb.AddMembers{UserIds: []string{"erin"}}) // takes a seq, is no message
			w.send("erin", g1, "erin-hello")                             // erin's first: counted
			w.send("erin", g1, "erin-hello")                             // its retry: MessageDeduplicated
			w.send("mallory", g1, "spam")                                // not a member: CommandRejected
		}
	}
	for i := 1; i <= 7; i++ {
		w.send([]string{"bob", "dan"}[i%2], g2, fmt.Sprintf("g2-%d", i))
	}
	w.do("dan", g2, &pb.MarkDelivered{UpToSeq: 7})
	sentDirect, sentGroup := 4*3, 10+1+7

	// Every command decided, then every event of the log read by the job.
	adm := kadm.NewClient(k.Client())
	testenv.Eventually(t, time.Minute, func() string { return caughtUp(t, adm, sys.GroupOf("ingest"), sys.Topics.Commands.Name) })
	after := time.Now().UTC()
	total, err := eventlog.Export(ctx, eventlog.Source{Seeds: k.Seeds, Topic: sys.Topics.Events.Name}, eventlog.ExportQuery{}, func(*eventlog.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() string {
		if n := counter.Records(); n < int(total.Matched) {
			return fmt.Sprintf("the job read %d of %d events", n, total.Matched)
		}
		return ""
	})

	got := counter.Counts()
	if counter.Records() != int(total.Matched) {
		t.Errorf("the job read %d records, the log has %d", counter.Records(), total.Matched)
	}
	if h := before.Truncate(time.Hour); h.Equal(after.Truncate(time.Hour)) {
		want := map[analytics.Key]int{{Hour: h, Kind: "direct"}: sentDirect, {Hour: h, Kind: "group"}: sentGroup}
		if !maps.Equal(got, want) {
			t.Fatalf("counts %v, want %v", got, want)
		}
		return
	}
	// The workload straddled an hour: the figures are split, their sums are not.
	sums := map[string]int{}
	for k, n := range got {
		if k.Hour.Before(before.Truncate(time.Hour)) || k.Hour.After(after) {
			t.Errorf("a count in hour %s, outside the workload's %s..%s", k.Hour, before, after)
		}
		sums[k.Kind] += n
	}
	if want := map[string]int{"direct": sentDirect, "group": sentGroup}; !maps.Equal(sums, want) {
		t.Fatalf("counts %v, want in all %v", got, want)
	}
}

// workload appends commands as a gateway would.
type workload struct {
	t   *testing.T
	app *ingest.Appender
	n   int
}

func newWorkload(t *testing.T, seeds []string, topic string) *workload {
	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: seeds, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	return &workload{t: t, app: app}
}

func (w *workload) do(user, conv string, body any) {
	w.t.Helper()
	w.n++
	c := &pb.Command{CommandId: fmt.Sprintf("cmd-%d", w.n), UserId: user, DeviceId: user + "-phone", ConversationId: conv}
	switch b := body.(type) {
	case *pb.CreateConversation:
		c.Body = &pb.Command_CreateConversation{CreateConversation: b}
	case *pb.AddMembers:
		c.Body = &pb.Command_AddMembers{AddMembers: b}
	case *pb.SendMessage:
		c.Body = &pb.Command_SendMessage{SendMessage: b}
	case *pb.MarkRead:
		c.Body = &pb.Command_MarkRead{MarkRead: b}
	case *pb.MarkDelivered:
		c.Body = &pb.Command_MarkDelivered{MarkDelivered: b}
	default:
		w.t.Fatalf("no command for %T", body)
	}
	v, _ := proto.Marshal(c)
	if _, err := w.app.AppendSync(context.Background(), ingest.Record{Key: conv, Type: schemas.CommandType(c), Value: v}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *workload) send(user, conv, clientID string) {
	w.t.Helper()
	w.do(user, conv, &pb.SendMessage{ClientMsgId: clientID, Text: "text of " + clientID})
}

// caughtUp reports why group has not committed the end of every partition
// of topic yet ("" once it has). The decider commits its position in the
// transaction that writes the events, so then every command appended so far
// has its events.
func caughtUp(t *testing.T, adm *kadm.Client, group, topic string) string {
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		return fmt.Sprintf("offsets of %s: %v", group, err)
	}
	why := ""
	ends.Each(func(o kadm.ListedOffset) {
		if c, found := committed.Lookup(o.Topic, o.Partition); o.Offset > 0 && (!found || c.At < o.Offset) {
			why = fmt.Sprintf("the decider has committed %d of %d commands in %s/%d", c.At, o.Offset, o.Topic, o.Partition)
		}
	})
	return why
}

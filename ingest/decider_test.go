package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// pipeline is one test's set of topics, an Appender and a way to run deciders.
type pipeline struct {
	t                                         testing.TB
	k                                         *testenv.KafkaEnv
	commands, events, state, deadLetter, bans string
	app                                       *ingest.Appender
	txnID                                     string
}

func newPipeline(t testing.TB) *pipeline {
	k := testenv.Kafka(t)
	p := &pipeline{t: t, k: k,
		commands:   k.Topic("commands", schemas.DefaultPartitions),
		events:     k.Topic("events", schemas.DefaultPartitions),
		state:      k.Topic("state", schemas.DefaultPartitions),
		deadLetter: k.Topic("dlq", 1),
		bans:       k.Topic("bans", 1),
		txnID:      k.Name("txn"),
	}
	waitTopics(t, k, p.commands, p.events, p.state, p.deadLetter, p.bans)
	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: p.commands})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	p.app = app
	return p
}

// waitTopics waits until every partition of topics has a leader: a topic
// just created may not be known to every broker yet, and the Appender
// refuses a topic it cannot find (UNKNOWN_TOPIC_OR_PARTITION).
func waitTopics(t testing.TB, k *testenv.KafkaEnv, topics ...string) {
	t.Helper()
	adm := kadm.NewClient(k.Client())
	testenv.Eventually(t, 30*time.Second, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topics...)
		if err != nil {
			return fmt.Sprintf("metadata of %v: %v", topics, err)
		}
		for _, name := range topics {
			td, ok := md.Topics[name]
			if !ok || td.Err != nil || len(td.Partitions) == 0 {
				return fmt.Sprintf("topic %s not known yet", name)
			}
			for _, pd := range td.Partitions {
				if pd.Err != nil || pd.Leader < 0 {
					return fmt.Sprintf("%s/%d has no leader yet", name, pd.Partition)
				}
			}
		}
		return ""
	})
}

// startDecider runs a decider until the returned stop is called.
func (p *pipeline) startDecider(group string) (stop func()) { return p.startDeciderWith(group, 200) }

func (p *pipeline) startDeciderWith(group string, maxPoll int) (stop func()) {
	d, err := ingest.NewDecider(ingest.DeciderConfig{Seeds: p.k.Seeds, Group: group, TransactionalID: p.txnID,
		CommandsTopic: p.commands, EventsTopic: p.events, StateTopic: p.state, DeadLetterTopic: p.deadLetter, BansTopic: p.bans,
		MaxPollRecords: maxPoll, Logger: testenv.Logger(p.t)})
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	return func() { cancel(); <-done }
}

func (p *pipeline) append(ctx context.Context, c *pb.Command) {
	p.t.Helper()
	if err := p.tryAppend(ctx, c); err != nil {
		p.t.Fatal(err)
	}
}

// tryAppend is append for a goroutine the test spawned: it returns the error.
func (p *pipeline) tryAppend(ctx context.Context, c *pb.Command) error {
	v, _ := proto.Marshal(c)
	_, err := p.app.AppendSync(ctx, ingest.Record{Key: c.GetConversationId(), Type: schemas.CommandType(c), Value: v})
	return err
}

// decided is how many commands group has decided: the sum of its committed
// offsets on the commands topic, which the decider commits in the
// transaction that writes the events.
func (p *pipeline) decided(ctx context.Context, adm *kadm.Client, group string) (int64, error) {
	fo, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, nil // nothing committed yet
	}
	if err != nil {
		return 0, err
	}
	var n int64
	fo.Each(func(o kadm.OffsetResponse) {
		if o.Topic == p.commands && o.At > 0 {
			n += o.At
		}
	})
	return n, nil
}

// readEvents reads the events topic (read_committed) until want events
// arrived or ctx ends, then for two more seconds, so that duplicates show.
func (p *pipeline) readEvents(ctx context.Context, want int) []*pb.Event {
	evs, _ := p.readEventsTimed(ctx, want)
	return evs
}

// readEventsTimed is readEvents that also returns when the want-th event arrived.
func (p *pipeline) readEventsTimed(ctx context.Context, want int) ([]*pb.Event, time.Time) {
	p.t.Helper()
	cl := p.k.Client(kgo.ConsumeTopics(p.events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []*pb.Event
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			p.t.Fatalf("read %d of %d events before the deadline", len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e pb.Event
			if err := proto.Unmarshal(r.Value, &e); err != nil {
				p.t.Fatalf("event at %d/%d: %v", r.Partition, r.Offset, err)
			}
			out = append(out, &e)
		})
	}
	reached := time.Now()
	// Anything beyond want would be a duplicate: give it a moment to show.
	extra, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) {
		var e pb.Event
		_ = proto.Unmarshal(r.Value, &e)
		out = append(out, &e)
	})
	return out, reached
}

func command(id, user, conv string) *pb.Command {
	return &pb.Command{CommandId: id, UserId: user, DeviceId: user + "-d1", ConversationId: conv}
}

func createGroupCmd(id, conv, owner string, members []string) *pb.Command {
	c := command(id, owner, conv)
	c.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: conv, MemberUserIds: members}}
	return c
}

func sendCmd(id, user, conv, clientID string) *pb.Command {
	c := command(id, user, conv)
	c.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: clientID, Text: "text of " + clientID}}
	return c
}

// TestDeciderExactlyOnceAcrossRestarts appends sends to 20 conversations
// while deciders are stopped mid-stream and replaced; afterwards every
// conversation's messages have seqs 1..n with no gap and no duplicate, and
// retries sent after the restarts are recognised from the restored state.
func TestDeciderExactlyOnceAcrossRestarts(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	group := p.k.Name("ingest")
	const convs, perConv = 20, 60

	for c := 0; c < convs; c++ {
		p.append(ctx, createGroupCmd(fmt.Sprintf("create-%d", c), fmt.Sprintf("g:%02d", c), "u0", []string{"u1", "u2"}))
	}
	stop := p.startDecider(group)
	const sends = convs * perConv
	var appended atomic.Int64
	// A failing append cancels sending with its error, which ends the waits
	// below at once.
	sending, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for i := 0; i < perConv; i++ {
			for c := 0; c < convs; c++ {
				user := fmt.Sprintf("u%d", i%3)
				if err := p.tryAppend(sending, sendCmd(fmt.Sprintf("send-%d-%d", c, i), user, fmt.Sprintf("g:%02d", c), fmt.Sprintf("cm-%d-%d", c, i))); err != nil {
					fail(fmt.Errorf("append: %w", err))
					return
				}
				appended.Add(1)
			}
		}
	}()
	// Stop and replace the decider twice while the sends are still
	// arriving: once a third of them, then two thirds, are appended, and
	// the decider running then has committed some of the stream.
	adm := kadm.NewClient(p.k.Client())
	for i := int64(1); i <= 2; i++ {
		// The group's coordinator may still be loading (a retriable
		// COORDINATOR_NOT_AVAILABLE): read the offsets until it answers.
		var before int64
		testenv.Eventually(t, time.Minute, func() string {
			n, err := p.decided(ctx, adm, group)
			if err != nil {
				return fmt.Sprintf("offsets of %s: %v", group, err)
			}
			before = n
			return ""
		})
		err := testenv.WaitFor(sending, time.Minute, func() string {
			if n := appended.Load(); n < i*sends/3 {
				return fmt.Sprintf("%d of %d sends appended", n, sends)
			}
			n, err := p.decided(ctx, adm, group)
			if err != nil {
				return fmt.Sprintf("offsets of %s: %v", group, err)
			}
			if n <= before {
				return fmt.Sprintf("the running decider has decided nothing yet (%d commands decided before)", before)
			}
			return ""
		})
		if err != nil {
			t.Fatalf("%v (sender: %v)", err, context.Cause(sending))
		}
		t.Logf("replacing the decider with %d of %d sends appended", appended.Load(), sends)
		stop()
		stop = p.startDecider(group)
	}
	<-sendDone
	if err := context.Cause(sending); err != nil {
		t.Fatalf("sender: %v", err)
	}
	// Retries of already decided sends, after the restarts: the restored
	// dedup state must answer with the original seq.
	for c := 0; c < convs; c++ {
		p.append(ctx, sendCmd(fmt.Sprintf("retry-%d", c), "u0", fmt.Sprintf("g:%02d", c), fmt.Sprintf("cm-%d-0", c)))
	}
	defer stop()

	evs := p.readEvents(ctx, convs*(1+perConv+1))
	seqs := map[string][]int64{}
	byClient := map[string]int64{}
	dedups := 0
	for _, e := range evs {
		switch {
		case e.GetMessageSent() != nil:
			seqs[e.GetConversationId()] = append(seqs[e.GetConversationId()], e.GetSeq())
			if _, dup := byClient[e.GetMessageSent().GetClientMsgId()]; dup {
				t.Fatalf("client_msg_id %s sent twice", e.GetMessageSent().GetClientMsgId())
			}
			byClient[e.GetMessageSent().GetClientMsgId()] = e.GetSeq()
		case e.GetMessageDeduplicated() != nil:
			dedups++
			md := e.GetMessageDeduplicated()
			if want := byClient[md.GetClientMsgId()]; md.GetOriginalSeq() != want || want == 0 {
				t.Fatalf("dedup of %s says seq %d, original was %d", md.GetClientMsgId(), md.GetOriginalSeq(), want)
			}
		case e.GetCommandRejected() != nil:
			t.Fatalf("unexpected rejection: %v", e.GetCommandRejected())
		}
	}
	if len(evs) != convs*(1+perConv+1) {
		t.Fatalf("%d events, want %d (duplicates or losses)", len(evs), convs*(1+perConv+1))
	}
	if dedups != convs {
		t.Fatalf("%d retries recognised, want %d", dedups, convs)
	}
	for c, s := range seqs {
		if len(s) != perConv {
			t.Fatalf("%s: %d messages, want %d", c, len(s), perConv)
		}
		for i, seq := range s {
			if seq != int64(i+1) {
				t.Fatalf("%s: message %d has seq %d (not dense, or out of order)", c, i, seq)
			}
		}
	}
}

// TestDeciderRejectsAndDeadLetters: a non-member's send is answered with
// NOT_MEMBER for the sender; a record that is not a Command goes to the
// dead-letter topic and does not stop the decider.
func TestDeciderRejectsAndDeadLetters(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer p.startDecider(p.k.Name("ingest"))()

	p.append(ctx, createGroupCmd("c1", "g:x", "alice", []string{"bob"}))
	if _, err := p.app.AppendSync(ctx, ingest.Record{Key: "g:x", Value: []byte("\xffnot a protobuf")}); err != nil {
		t.Fatal(err)
	}
	p.append(ctx, sendCmd("s1", "mallory", "g:x", "m1"))
	p.append(ctx, sendCmd("s2", "bob", "g:x", "m2"))

	evs := p.readEvents(ctx, 3)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	r := evs[1].GetCommandRejected()
	if r.GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER || evs[1].GetActorUserId() != "mallory" || evs[1].GetCommandId() != "s1" {
		t.Fatalf("want NOT_MEMBER for mallory's s1, got %v", evs[1])
	}
	if evs[2].GetMessageSent() == nil || evs[2].GetSeq() != 1 {
		t.Fatalf("bob's message: want MessageSent seq 1, got %v", evs[2])
	}
	dl := p.k.Client(kgo.ConsumeTopics(p.deadLetter), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	fs := dl.PollFetches(ctx)
	if fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "\xffnot a protobuf" {
		t.Fatalf("dead letters: %d records", fs.NumRecords())
	}
}

// TestDeciderRestoreFailureLosesNothing: batches whose changelog cannot be
// read (here: the topic does not exist yet) fail before their transaction
// begins; once it can be read, every command is decided, none skipped.
func TestDeciderRestoreFailureLosesNothing(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.state = p.k.Name("state-late")
	reg := prometheus.NewRegistry()
	d := p.newDecider(t, p.txnID, func(c *ingest.DeciderConfig) { c.Registerer = reg })
	runDecider(t, d)
	p.append(ctx, createGroupCmd("c1", "g:late", "alice", []string{"bob"}))
	for i := range 5 {
		p.append(ctx, sendCmd(fmt.Sprintf("s%d", i), "bob", "g:late", fmt.Sprintf("m%d", i)))
	}
	testenv.Eventually(t, time.Minute, func() string {
		if n := counter(t, reg, "parley_ingest_restore_failures_total"); n < 3 {
			return fmt.Sprintf("%.0f batches failed to restore their state, want a few", n)
		}
		return ""
	})
	adm := kadm.NewClient(p.k.Client())
	if _, err := adm.CreateTopic(ctx, schemas.DefaultPartitions, 1, nil, p.state); err != nil {
		t.Fatal(err)
	}
	evs := p.readEvents(ctx, 6)
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6", len(evs))
	}
	for i, e := range evs[1:] {
		if e.GetMessageSent() == nil || e.GetSeq() != int64(i+1) {
			t.Fatalf("event %d: want MessageSent seq %d, got %v", i+1, i+1, e)
		}
	}
}

// TestDeciderLateResendDeduplicated: alice's message, then 1,000 messages of
// the group's other members (four times the old per-conversation window),
// then alice's phone resends it: MessageDeduplicated with the original seq —
// and again after the decider was replaced and restored its state from the
// changelog. A resend of a send recorded in the changelog's earlier format
// (a dedup value without a receive time) is recognised too.
func TestDeciderLateResendDeduplicated(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	group := p.k.Name("ingest")
	members := []string{"u1", "u2", "u3", "u4", "u5"}
	p.append(ctx, createGroupCmd("create", "g:busy", "alice", members))
	p.append(ctx, sendCmd("first", "alice", "g:busy", "queued-on-phone"))
	const others = 1000
	var wg sync.WaitGroup
	for i := range others {
		c := sendCmd(fmt.Sprintf("o%d", i), members[i%len(members)], "g:busy", fmt.Sprintf("other-%d", i))
		v, _ := proto.Marshal(c)
		wg.Add(1)
		p.app.Append(ctx, ingest.Record{Key: c.GetConversationId(), Value: v}, func(_ ingest.Position, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	p.append(ctx, sendCmd("resend-1", "alice", "g:busy", "queued-on-phone"))
	stop := p.startDecider(group)
	evs := p.readEvents(ctx, 2+others+1)
	stop()
	if len(evs) != 2+others+1 {
		t.Fatalf("%d events, want %d", len(evs), 2+others+1)
	}
	if md := evs[len(evs)-1].GetMessageDeduplicated(); md.GetOriginalSeq() != 1 || evs[len(evs)-1].GetCommandId() != "resend-1" {
		t.Fatalf("late resend: %v, want MessageDeduplicated of seq 1", evs[len(evs)-1])
	}

	// A send remembered in the earlier changelog format, in the same
	// partition as the conversation: its value has no receive time.
	pos, err := p.app.AppendSync(ctx, ingest.Record{Key: "g:busy", Value: mustMarshal(sendCmd("resend-2", "alice", "g:busy", "queued-on-phone"))})
	if err != nil {
		t.Fatal(err)
	}
	old := p.k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := old.ProduceSync(ctx, &kgo.Record{Topic: p.state, Partition: pos.Partition,
		Key: []byte("d\x00g:busy\x00u1\x00from-old-format"), Value: []byte(`{"s":7}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.append(ctx, sendCmd("resend-3", "u1", "g:busy", "from-old-format"))
	stop = p.startDecider(group) // a new instance: restores from the changelog
	defer stop()
	evs = p.readEvents(ctx, 2+others+3)
	if len(evs) != 2+others+3 {
		t.Fatalf("%d events, want %d", len(evs), 2+others+3)
	}
	for i, want := range map[int]int64{len(evs) - 2: 1, len(evs) - 1: 7} {
		if md := evs[i].GetMessageDeduplicated(); md.GetOriginalSeq() != want {
			t.Fatalf("after restore, event %d: %v, want MessageDeduplicated of seq %d", i, evs[i], want)
		}
	}
}

func mustMarshal(c *pb.Command) []byte {
	v, err := proto.Marshal(c)
	if err != nil {
		panic(err)
	}
	return v
}

// counter is the value of the counter name in reg (0 when not registered yet).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

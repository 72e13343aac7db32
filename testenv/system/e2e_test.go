package system_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// start runs a whole Parley on the shared Kafka and Cassandra, with topics
// of its own and a migrated keyspace of its own (testenv.MigratedCassandra:
// system.Start's provisioning finds it at the latest version).
func start(t testing.TB, gateways int) (*system.System, *testenv.CassandraEnv) {
	return startWith(t, system.Options{Gateways: gateways})
}

// startWith is start with more options; Seeds, Hosts, Keyspace and TopicPrefix are filled in.
func startWith(t testing.TB, opts system.Options) (*system.System, *testenv.CassandraEnv) {
	t.Helper()
	k, c := testenv.Kafka(t), testenv.MigratedCassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts.Seeds, opts.Hosts, opts.Keyspace, opts.TopicPrefix = k.Seeds, c.Hosts, c.Keyspace, k.Name("e2e")+"."
	if opts.Logger == nil {
		opts.Logger = testenv.Logger(t)
	}
	sys, err := system.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	return sys, c
}

// Shapes of query's answers, as far as these tests read them.
type inbox struct {
	Conversations []struct {
		ConversationID string `json:"conversation_id"`
		LastSeq        int64  `json:"last_seq"`
		ReadSeq        int64  `json:"read_seq"`
		Unread         int64  `json:"unread"`
	} `json:"conversations"`
}

type history struct {
	Messages []struct {
		Seq         int64  `json:"seq"`
		Type        string `json:"type"`
		Sender      string `json:"sender"`
		ClientMsgID string `json:"client_msg_id"`
		ContentType string `json:"content_type"`
		Text        string `json:"text"`
	} `json:"messages"`
}

type unread struct {
	Total int64 `json:"total"`
}

func send(id, text string) *pb.SendMessage { return &pb.SendMessage{ClientMsgId: id, Text: text} }

// waitAccepted waits for every call (resent on RATE_LIMITED) and returns the
// first that failed or was answered other than Accepted. Safe from any goroutine.
func waitAccepted(calls []*testenv.Call, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, c := range calls {
		f, err := c.Wait(ctx)
		if err != nil {
			return err
		}
		if f.GetAccepted() == nil {
			return fmt.Errorf("want Accepted, got %v", f)
		}
	}
	return nil
}

func direct(peer string) *pb.CreateConversation {
	return &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{peer}}
}

// allHistory pages through a conversation's whole history, oldest first.
func allHistory(t testing.TB, sys *system.System, user, conv string) (history, int) {
	var all history
	after := int64(0)
	for {
		var page history
		code := api(t, sys, user, fmt.Sprintf("/v1/conversations/%s/messages?after=%d&limit=200", conv, after), &page)
		if code != 200 {
			return all, code
		}
		all.Messages = append(all.Messages, page.Messages...)
		if len(page.Messages) < 200 {
			return all, 200
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

func inboxEntry(t testing.TB, sys *system.System, user, conv string) (last, unreadN int64, ok bool) {
	var in inbox
	if api(t, sys, user, "/v1/inbox?limit=200", &in) != 200 {
		return 0, 0, false
	}
	for _, it := range in.Conversations {
		if it.ConversationID == conv {
			return it.LastSeq, it.Unread, true
		}
	}
	return 0, 0, false
}

// TestE2EDirect: A sends to B; B's history and inbox show it with seq 1;
// unread for B is 1; B marks read → 0.
func TestE2EDirect(t *testing.T) {
	sys, _ := start(t, 1)
	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	if conv != schemas.DirectConversationID("alice", "bob") {
		t.Fatalf("direct conversation id %q", conv)
	}
	accepted(t, alice.MustDo(conv, send("m1", "hello bob")))

	testenv.Eventually(t, 2*time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", conv)
		if code != 200 || len(h.Messages) != 1 {
			return fmt.Sprintf("bob's history: status %d, %d items", code, len(h.Messages))
		}
		if it := h.Messages[0]; it.Seq != 1 || it.Text != "hello bob" || it.Sender != "alice" {
			return fmt.Sprintf("bob's history item %+v", it)
		}
		last, n, ok := inboxEntry(t, sys, "bob", conv)
		if !ok || last != 1 || n != 1 {
			return fmt.Sprintf("bob's inbox: present %v, last_seq %d, unread %d; want 1, 1", ok, last, n)
		}
		return ""
	})
	accepted(t, bob.MustDo(conv, &pb.MarkRead{UpToSeq: 1}))
	testenv.Eventually(t, 2*time.Minute, func() string {
		var u unread
		api(t, sys, "bob", "/v1/unread", &u)
		_, n, _ := inboxEntry(t, sys, "bob", conv)
		if u.Total != 0 || n != 0 {
			return fmt.Sprintf("after read: total %d, conversation %d", u.Total, n)
		}
		return ""
	})
	var u unread
	api(t, sys, "alice", "/v1/unread", &u)
	if u.Total != 0 {
		t.Fatalf("sender's own message counts as unread: %d", u.Total)
	}
}

// TestE2EGroup: 50 members, 200 messages from 10 senders: every member's
// inbox and history agree, seqs 1..200 with no gap.
func TestE2EGroup(t *testing.T) {
	sys, _ := start(t, 1)
	var members []string
	for i := 0; i < 50; i++ {
		members = append(members, fmt.Sprintf("u%02d", i))
	}
	senders := make([]*testenv.WSClient, 10)
	for i := range senders {
		senders[i] = connect(t, sys, 0, members[i], "phone")
	}
	conv := accepted(t, senders[0].MustDo("", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "all hands", MemberUserIds: members[1:]}))
	// Each sender keeps its 20 sends in flight at once, resending any the
	// rate limit refuses, as the documented client does.
	errs := make(chan error, len(senders))
	for i, d := range senders {
		go func() {
			var calls []*testenv.Call
			for j := 0; j < 20; j++ {
				calls = append(calls, d.Go(conv, send(fmt.Sprintf("s%d-%d", i, j), fmt.Sprintf("message %d from %s", j, d.Name()))))
			}
			errs <- waitAccepted(calls, time.Minute)
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var reference []string
	for _, m := range members {
		testenv.Eventually(t, 2*time.Minute, func() string {
			h, code := allHistory(t, sys, m, conv)
			if code != 200 || len(h.Messages) != 200 {
				return fmt.Sprintf("%s: status %d, %d items", m, code, len(h.Messages))
			}
			var got []string
			for i, it := range h.Messages {
				if it.Seq != int64(i+1) {
					return fmt.Sprintf("%s: item %d has seq %d", m, i, it.Seq)
				}
				got = append(got, it.ClientMsgID)
			}
			if reference == nil {
				reference = got
			} else if strings.Join(got, ",") != strings.Join(reference, ",") {
				return fmt.Sprintf("%s sees another history than %s", m, members[0])
			}
			last, _, ok := inboxEntry(t, sys, m, conv)
			if !ok || last != 200 {
				return fmt.Sprintf("%s: inbox last_seq %d (present %v)", m, last, ok)
			}
			return ""
		})
	}
}

// TestE2ERetry: a resend of the same client_msg_id, on the same connection
// and after reconnecting, gives one message with one seq.
func TestE2ERetry(t *testing.T) {
	sys, _ := start(t, 1)
	alice := connect(t, sys, 0, "alice", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	accepted(t, alice.MustDo(conv, send("only-once", "hi")))
	accepted(t, alice.MustDo(conv, send("only-once", "hi")))
	alice.Close()
	alice = connect(t, sys, 0, "alice", "phone")
	accepted(t, alice.MustDo(conv, send("only-once", "hi")))
	dedup := alice.WaitEvent("MessageDeduplicated", func(e *pb.Event) bool { return e.GetMessageDeduplicated() != nil })
	if dedup.GetMessageDeduplicated().GetOriginalSeq() != 1 {
		t.Fatalf("dedup answer %v", dedup)
	}
	accepted(t, alice.MustDo(conv, send("next", "after")))
	testenv.Eventually(t, 2*time.Minute, func() string {
		h, _ := allHistory(t, sys, "bob", conv)
		if len(h.Messages) != 2 || h.Messages[0].ClientMsgID != "only-once" || h.Messages[1].Seq != 2 {
			return fmt.Sprintf("history %+v; want only-once@1, next@2", h.Messages)
		}
		return ""
	})
}

// TestE2ENonMember: a non-member's send and read are refused with
// NOT_MEMBER, and nothing of them reaches the views.
func TestE2ENonMember(t *testing.T) {
	sys, _ := start(t, 1)
	alice, mallory := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 0, "mallory", "laptop")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	accepted(t, mallory.MustDo(conv, send("intrude", "let me in")))
	rej := mallory.WaitEvent("CommandRejected", func(e *pb.Event) bool { return e.GetCommandRejected() != nil })
	if rej.GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("send: %v", rej)
	}
	accepted(t, mallory.MustDo(conv, &pb.MarkRead{UpToSeq: 1}))
	rej = mallory.WaitEvent("CommandRejected", func(e *pb.Event) bool { return e.GetCommandRejected() != nil })
	if rej.GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("mark read: %v", rej)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := api(t, sys, "mallory", "/v1/conversations/"+conv+"/messages", &e); code != 403 || e.Error.Code != "NOT_MEMBER" {
		t.Fatalf("query as non-member: %d %+v", code, e)
	}
	// A later message of a member shows that the projector is past mallory's commands.
	accepted(t, alice.MustDo(conv, send("a1", "only members here")))
	testenv.Eventually(t, 2*time.Minute, func() string {
		h, _ := allHistory(t, sys, "bob", conv)
		if len(h.Messages) != 1 || h.Messages[0].Sender != "alice" || h.Messages[0].Seq != 1 {
			return fmt.Sprintf("history %+v; want alice's a1 at seq 1 only", h.Messages)
		}
		return ""
	})
}

// TestE2ETwoDevices: reading on one device makes the user's unread 0, and
// the other device is told.
func TestE2ETwoDevices(t *testing.T) {
	sys, _ := start(t, 1)
	alice := connect(t, sys, 0, "alice", "phone")
	phone, laptop := connect(t, sys, 0, "bob", "phone"), connect(t, sys, 0, "bob", "laptop")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	for i := 1; i <= 3; i++ {
		accepted(t, alice.MustDo(conv, send(fmt.Sprintf("m%d", i), "hi")))
	}
	testenv.Eventually(t, 2*time.Minute, func() string {
		if _, n, _ := inboxEntry(t, sys, "bob", conv); n != 3 {
			return fmt.Sprintf("bob's unread %d, want 3", n)
		}
		return ""
	})
	accepted(t, phone.MustDo(conv, &pb.MarkRead{UpToSeq: 3}))
	read := laptop.WaitEvent("ReadUpTo", func(e *pb.Event) bool { return e.GetReadUpTo() != nil })
	if read.GetReadUpTo().GetUpToSeq() != 3 || read.GetActorUserId() != "bob" {
		t.Fatalf("laptop got %v", read)
	}
	testenv.Eventually(t, 2*time.Minute, func() string {
		var u unread
		api(t, sys, "bob", "/v1/unread", &u)
		if u.Total != 0 {
			return fmt.Sprintf("bob's unread total %d after reading on the phone", u.Total)
		}
		return ""
	})
}

// TestE2ECrash SIGKILLs the decider and the projector — real processes,
// built from their mains — in the middle of 3,000 sends and starts them
// again: every accepted send appears exactly once with dense seqs, and the
// views equal a fresh rebuild from the log.
func TestE2ECrash(t *testing.T) {
	bins := buildMains(t, "ingest", "projector")
	k := testenv.Kafka(t)
	sys, c := startWith(t, system.Options{External: []string{"ingest", "projector"}})
	procs := map[string]*exec.Cmd{}
	run := func(name string) {
		cmd := exec.Command(bins[name])
		cmd.Env = append(os.Environ(),
			"PARLEY_KAFKA_SEEDS="+strings.Join(k.Seeds, ","),
			"PARLEY_CASSANDRA_HOSTS="+strings.Join(c.Hosts, ","),
			"PARLEY_KEYSPACE="+c.Keyspace,
			"PARLEY_TOPIC_PREFIX="+strings.TrimSuffix(sys.Topics.Commands.Name, schemas.Commands.Name),
			"PARLEY_INGEST_GROUP="+sys.GroupOf("ingest"),
			"PARLEY_INGEST_TRANSACTIONAL_ID="+sys.TxnIDOf("ingest"),
			"PARLEY_PROJECTOR_GROUP="+sys.GroupOf("projector"),
			// Nothing here reads their /metrics: any free port will do,
			// and the child binds it itself.
			"PARLEY_HTTP_ADDR=127.0.0.1:0",
		)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if testing.Verbose() {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[name] = cmd
	}
	kill := func(name string) {
		_ = procs[name].Process.Signal(syscall.SIGKILL)
		_ = procs[name].Wait()
	}
	run("ingest")
	run("projector")
	t.Cleanup(func() { kill("ingest"); kill("projector") })

	// The gateways keep their default limits (50/s, burst 100): each device
	// sends faster than that on a fast machine, and resends what the limit
	// refuses with the same clientMsgId, as the documented client does.
	const convs, perConv = 20, 150
	senders := make([]*testenv.WSClient, convs)
	ids := make([]string, convs)
	for i := range senders {
		senders[i] = connect(t, sys, 0, fmt.Sprintf("s%02d", i), "phone")
		ids[i] = accepted(t, senders[i].MustDo("", direct(fmt.Sprintf("r%02d", i))))
	}
	var wg sync.WaitGroup
	var ackedN atomic.Int64
	countAcked := func() int { return int(ackedN.Load()) }
	sendErrs := make(chan error, convs)
	for i, d := range senders {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for j := 0; j < perConv; j++ {
				if _, err := d.Send(ctx, ids[i], send(fmt.Sprintf("c%d-%d", i, j), "x")); err != nil {
					sendErrs <- fmt.Errorf("send %d of %s (the gateway must not depend on the decider): %w", j, d.Name(), err)
					return
				}
				ackedN.Add(1)
			}
		})
	}
	// Kill both once a third of the sends are durable; restart them while
	// the rest keep arriving.
	testenv.Eventually(t, time.Minute, func() string {
		if n := countAcked(); n < convs*perConv/3 {
			return fmt.Sprintf("%d sends acked", n)
		}
		return ""
	})
	t.Logf("SIGKILL ingest and projector with %d of %d sends acked", countAcked(), convs*perConv)
	atKill := countAcked()
	kill("ingest")
	kill("projector")
	// While both are down the gateway goes on accepting: wait for 100 more
	// acks (or the end of the sends) before starting them again.
	testenv.Eventually(t, time.Minute, func() string {
		if n := countAcked(); n < min(atKill+100, convs*perConv) {
			return fmt.Sprintf("%d sends acked with the decider down, %d before", n-atKill, atKill)
		}
		return ""
	})
	t.Logf("%d sends acked while the decider and projector were down", countAcked()-atKill)
	run("ingest")
	run("projector")
	wg.Wait()
	close(sendErrs)
	for err := range sendErrs {
		t.Error(err)
	}
	var resends int64
	for _, d := range senders {
		resends += d.Resends()
	}
	t.Logf("%d of %d sends acked in all, %d resends after RATE_LIMITED", countAcked(), convs*perConv, resends)
	if countAcked() != convs*perConv {
		t.Fatalf("only %d of %d sends acked: the gateway must not depend on the decider", countAcked(), convs*perConv)
	}
	for i, conv := range ids {
		testenv.Eventually(t, 90*time.Second, func() string {
			h, code := allHistory(t, sys, fmt.Sprintf("r%02d", i), conv)
			if code != 200 || len(h.Messages) != perConv {
				return fmt.Sprintf("%s: status %d, %d of %d accepted sends visible", conv, code, len(h.Messages), perConv)
			}
			for k, it := range h.Messages {
				if it.Seq != int64(k+1) || it.ClientMsgID != fmt.Sprintf("c%d-%d", i, k) {
					return fmt.Sprintf("%s: item %d is seq %d, %s (gap, duplicate or reorder)", conv, k, it.Seq, it.ClientMsgID)
				}
			}
			return ""
		})
	}
	assertRebuildEqual(t, sys, c)
}

// buildMains builds <name>/cmd/<name> binaries into a temp directory.
func buildMains(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, n := range names {
		bin := filepath.Join(dir, n)
		cmd := exec.Command("go", "build", "-o", bin, "github.com/parley-im/parley/"+n+"/cmd/"+n)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", n, err, b)
		}
		out[n] = bin
	}
	return out
}

// assertRebuildEqual projects the whole events topic into a new keyspace
// with a new consumer group and compares the core views (and the extra
// tables named) row for row with the live keyspace.
func assertRebuildEqual(t *testing.T, sys *system.System, live *testenv.CassandraEnv, extra ...string) {
	t.Helper()
	fresh := testenv.MigratedCassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := fresh.Session()
	p, err := projector.New(projector.Config{Seeds: testenv.Kafka(t).Seeds, EventsTopic: sys.Topics.Events.Name,
		Group: fresh.Keyspace + "-rebuild", DeadLetterTopic: sys.Topics.DeadLetters.Name, Hosts: fresh.Hosts, Keyspace: fresh.Keyspace})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(pctx) }()
	defer func() { pcancel(); <-done }()
	liveS := live.Session()
	testenv.Eventually(t, 2*time.Minute, func() string {
		for _, table := range append([]string{"messages", "changes", "conversations", "members", "inbox"}, extra...) {
			a, b := dump(t, liveS, live.Keyspace, table), dump(t, s, fresh.Keyspace, table)
			if d := diff(a, b); d != "" {
				return fmt.Sprintf("table %s: live vs rebuild differ: %s", table, d)
			}
		}
		return ""
	})
}

func dump(t testing.TB, s *gocql.Session, ks, table string) []string {
	iter := s.Query(fmt.Sprintf("SELECT JSON * FROM %s.%s", ks, table)).Iter()
	var rows []string
	var row string
	for iter.Scan(&row) {
		rows = append(rows, row)
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("dump %s.%s: %v", ks, table, err)
	}
	sort.Strings(rows)
	return rows
}

func diff(a, b []string) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d rows vs %d rows", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d:\n  %s\n  %s", i, a[i], b[i])
		}
	}
	return ""
}

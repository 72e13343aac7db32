package replay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is a whole Parley (real ingest decider, projector and query) on
// the shared Kafka and Cassandra, after a random workload of commands went
// through it and the projector applied every resulting event (or without a
// projector, for benchmarks).
type world struct {
	t      testing.TB
	sys    *system.System
	cfg    Config // Keyspace: the live keyspace
	s      *gocql.Session
	k      *testenv.KafkaEnv
	app    *ingest.Appender
	gen    *generator
	events int64 // data records in the events topic
}

func newWorld(t testing.TB, commands, conversations int, projector bool) *world {
	t.Helper()
	k, c := testenv.Kafka(t), testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var external []string
	if !projector {
		external = []string{"projector"}
	}
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: c.Keyspace,
		TopicPrefix: k.Name("replay") + ".", External: external})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	w := &world{t: t, sys: sys, k: k,
		cfg: Config{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: c.Keyspace, Topics: sys.Topics, Logger: testenv.Logger(t)}}
	if w.s, err = session(w.cfg.Defaults()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.s.Close)
	if w.app, err = ingest.NewAppender(ingest.AppenderConfig{Seeds: k.Seeds, Topic: sys.Topics.Commands.Name,
		Linger: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.app.Close(context.Background()) })

	w.gen = newGenerator(1, conversations)
	start := time.Now()
	cmds := w.gen.create()
	for len(cmds) < commands {
		cmds = append(cmds, w.gen.step()...)
	}
	w.append(cmds...)
	w.settle(projector)
	t.Logf("%d commands → %d events, decided and projected in %v", w.gen.commands, w.events, time.Since(start))
	return w
}

// append appends commands (in order per conversation) and waits until
// every one is durable.
func (w *world) append(cmds ...*pb.Command) {
	w.t.Helper()
	var failed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range cmds {
		b, err := proto.Marshal(c)
		if err != nil {
			w.t.Fatal(err)
		}
		w.app.Append(ctx, ingest.Record{Key: c.GetConversationId(), Type: schemas.CommandType(c), Value: b},
			func(_ ingest.Position, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
	}
	if err := w.app.Flush(ctx); err != nil || failed.Load() > 0 {
		w.t.Fatalf("append: %v (%d failed)", err, failed.Load())
	}
}

// settle waits until the decider has decided every command appended and,
// with projector, the live projector has applied every event.
func (w *world) settle(projector bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(w.k.Client())
	_, cmdEnd, err := offsets(ctx, adm, w.sys.Topics.Commands.Name)
	if err != nil {
		w.t.Fatal(err)
	}
	testenv.Eventually(w.t, 2*time.Minute, func() string {
		fo, err := adm.FetchOffsets(ctx, w.sys.GroupOf("ingest"))
		if err != nil {
			return err.Error()
		}
		for p, e := range cmdEnd {
			if o, ok := fo.Lookup(w.sys.Topics.Commands.Name, p); e > 0 && (!ok || o.At < e) {
				return fmt.Sprintf("ingest at %d of %d in partition %d", o.At, e, p)
			}
		}
		return ""
	})
	// The decider's last transaction is committed; its markers may still be
	// on their way to the events partitions: wait until none is open.
	testenv.Eventually(w.t, time.Minute, func() string {
		stable, err1 := adm.ListCommittedOffsets(ctx, w.sys.Topics.Events.Name)
		hw, err2 := adm.ListEndOffsets(ctx, w.sys.Topics.Events.Name)
		if err := errors.Join(err1, err2, stable.Error(), hw.Error()); err != nil {
			return err.Error()
		}
		msg := ""
		hw.Each(func(o kadm.ListedOffset) {
			if s, _ := stable.Lookup(o.Topic, o.Partition); s.Offset != o.Offset {
				msg = fmt.Sprintf("partition %d: a transaction is open (%d of %d)", o.Partition, s.Offset, o.Offset)
			}
		})
		return msg
	})
	last := w.lastRecords(ctx, adm)
	if !projector {
		return
	}
	if err := waitCheckpoints(ctx, w.s, w.cfg.Keyspace, w.sys.GroupOf("projector"), last, 2*time.Minute); err != nil {
		w.t.Fatal(err)
	}
}

// lastRecords reads the events topic: the offset of each partition's last
// record (transaction markers follow them), and counts the records.
func (w *world) lastRecords(ctx context.Context, adm *kadm.Client) map[int32]int64 {
	w.t.Helper()
	first, end, err := offsets(ctx, adm, w.sys.Topics.Events.Name)
	if err != nil {
		w.t.Fatal(err)
	}
	last := map[int32]int64{}
	var mu sync.Mutex
	var n atomic.Int64
	r := newReader(w.cfg.Defaults(), w.sys.Topics.Events.Name, first, end, false, 5000)
	err = r.run(ctx, func(_ context.Context, p int32, recs []*kgo.Record, _ int64) error {
		if len(recs) > 0 {
			mu.Lock()
			last[p] = recs[len(recs)-1].Offset
			mu.Unlock()
		}
		n.Add(int64(len(recs)))
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.events = n.Load()
	return last
}

// generator makes a random but plausible stream of commands: it mirrors
// the decider's membership rules so that most commands are accepted, and
// adds retries, stale marks and refusals on purpose.
type generator struct {
	rng      *rand.Rand
	convs    []*genConv
	users    []string
	commands int
	next     int
	groups   int
}

type genConv struct {
	id      string
	group   bool
	owner   string
	members []string // current, sorted
	sent    int64    // messages sent (an upper bound of the last seq)
	recent  []*pb.SendMessage
	senders []string // sender of recent[i]
}

// newGenerator makes conversations/2 groups and as many direct
// conversations, among as many users as conversations.
func newGenerator(seed uint64, conversations int) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed)), groups: conversations / 2}
	for i := range 2 * g.groups {
		g.users = append(g.users, fmt.Sprintf("u%02d", i))
	}
	return g
}

func (g *generator) cmd(conv, user string) *pb.Command {
	g.next++
	g.commands++
	return &pb.Command{CommandId: fmt.Sprintf("cmd-%07d", g.next), UserId: user, DeviceId: user + "-phone",
		ConversationId: conv, ReceivedAt: timestamppb.Now()}
}

// create opens the groups and the direct conversations.
func (g *generator) create() []*pb.Command {
	var out []*pb.Command
	for i := range g.groups {
		perm := g.rng.Perm(len(g.users))
		members := make([]string, 3+g.rng.IntN(6))
		for j := range members {
			members[j] = g.users[perm[j]]
		}
		c := &genConv{id: fmt.Sprintf("g:%032x", i+1), group: true, owner: members[0], members: slices.Sorted(slices.Values(members))}
		g.convs = append(g.convs, c)
		cmd := g.cmd(c.id, members[0])
		cmd.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{
			Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: fmt.Sprintf("group %d ✓", i), MemberUserIds: members[1:]}}
		out = append(out, cmd)
	}
	for i := range g.groups {
		a, b := g.users[2*i], g.users[2*i+1]
		c := &genConv{id: schemas.DirectConversationID(a, b), members: []string{a, b}}
		g.convs = append(g.convs, c)
		cmd := g.cmd(c.id, a)
		cmd.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{
			Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{b}}}
		out = append(out, cmd)
	}
	return out
}

// step returns the next command (two for a send followed by its retry).
func (g *generator) step() []*pb.Command {
	c := g.convs[g.rng.IntN(len(g.convs))]
	u := c.members[g.rng.IntN(len(c.members))]
	cmd := g.cmd(c.id, u)
	r := g.rng.IntN(100)
	if (r >= 48 && r < 56 && len(c.recent) == 0) || (r >= 86 && r < 92 && c.group && len(c.members) <= 2) ||
		(r >= 92 && r < 97 && len(c.members) == len(g.users)) {
		r = 0 // nothing to retry, too few to leave, no stranger: send instead
	}
	switch {
	case r < 48: // send
		g.next++
		m := &pb.SendMessage{ClientMsgId: fmt.Sprintf("m-%s-%d", u, g.next), Text: fmt.Sprintf("message %d from %s: ünïcödé", g.next, u)}
		cmd.Body = &pb.Command_SendMessage{SendMessage: m}
		c.sent++
		c.recent, c.senders = append(c.recent, m), append(c.senders, u)
		if len(c.recent) > 30 {
			c.recent, c.senders = c.recent[1:], c.senders[1:]
		}
	case r < 56: // a retry of a recent send, same client_msg_id: deduplicated (or refused if the sender left)
		i := g.rng.IntN(len(c.recent))
		cmd.UserId, cmd.DeviceId = c.senders[i], c.senders[i]+"-laptop"
		cmd.Body = &pb.Command_SendMessage{SendMessage: c.recent[i]}
	case r < 70: // read up to some seq: stale marks yield nothing
		cmd.Body = &pb.Command_MarkRead{MarkRead: &pb.MarkRead{UpToSeq: 1 + g.rng.Int64N(c.sent+2)}}
	case r < 80:
		cmd.Body = &pb.Command_MarkDelivered{MarkDelivered: &pb.MarkDelivered{UpToSeq: 1 + g.rng.Int64N(c.sent+2)}}
	case r < 86: // add members; sometimes only existing ones (refused)
		var add []string
		for range 1 + g.rng.IntN(2) {
			add = append(add, g.users[g.rng.IntN(len(g.users))])
		}
		cmd.Body = &pb.Command_AddMembers{AddMembers: &pb.AddMembers{UserIds: add}}
		if c.group {
			n := len(c.members)
			for _, a := range add {
				if !slices.Contains(c.members, a) {
					c.members = append(c.members, a)
				}
			}
			slices.Sort(c.members)
			if len(c.members) > n {
				c.sent++ // a notice takes a seq
			}
		}
	case r < 92: // leave, or the owner removes someone; refused in direct conversations
		target := u
		if g.rng.IntN(2) == 0 {
			target = c.members[g.rng.IntN(len(c.members))]
		}
		if target == u {
			cmd.Body = &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}
		} else {
			cmd.Body = &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMember{UserId: target}}
		}
		if c.group && (target == u || u == c.owner) {
			c.members = slices.DeleteFunc(c.members, func(m string) bool { return m == target })
			if target == c.owner {
				c.owner = "" // a re-added owner is a plain member
			}
			c.sent++
		}
	case r < 97: // a stranger sends: NOT_MEMBER
		var stranger string
		for stranger == "" || slices.Contains(c.members, stranger) { // never all users: see above
			stranger = g.users[g.rng.IntN(len(g.users))]
		}
		cmd.UserId, cmd.DeviceId = stranger, stranger+"-phone"
		cmd.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: fmt.Sprintf("x-%d", g.next), Text: "let me in"}}
	default: // invalid: an empty message
		cmd.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: fmt.Sprintf("e-%d", g.next)}}
	}
	return []*pb.Command{cmd}
}

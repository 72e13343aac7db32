package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
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
// the decider's rules (membership, who edits and recalls what, which
// reactions are there) so that most commands are accepted, and adds
// retries, stale marks, no-op actions and refusals on purpose.
//
// Its mirror only steers the mix: what the log must hold is checked by
// verify from the log alone, so a decider rule the mirror gets wrong makes
// more (or fewer) refusals, never a false failure.
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
	owner   string   // "" once the creator left (a re-added owner is a plain member)
	members []string // current, sorted
	sent    int64    // the last seq: sends and notices accepted
	recent  []*genMessage
}

// genMessage is a message the generator sent, as the decider should see it.
type genMessage struct {
	seq       int64
	sender    string
	send      *pb.SendMessage
	edits     []*pb.EditMessage // accepted, for retries
	recalled  bool
	reactions map[genReaction]bool // current
}

type genReaction struct{ user, emoji string }

// emoji are the reactions used: few, so reactions meet, and far fewer than
// a message may carry.
var emoji = []string{"👍", "❤️", "😂", "🎉", ":shipit:"}

// maxEdits bounds the edits the generator makes of one message (the
// decider allows far more).
const maxEdits = 4

// What step does, with its weight out of 100.
type genAction int

const (
	genSend genAction = iota // a quarter of them replies
	genResend
	genRead
	genDelivered
	genAddMembers
	genLeave
	genStranger
	genEmpty
	genEdit
	genRecall
	genReact
	genUnreact
)

var genWeights = []struct {
	action genAction
	weight int
}{
	{genSend, 34}, {genResend, 6}, {genRead, 10}, {genDelivered, 8}, {genAddMembers, 5}, {genLeave, 5},
	{genStranger, 3}, {genEmpty, 2}, {genEdit, 10}, {genRecall, 5}, {genReact, 9}, {genUnreact, 3},
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

// pick chooses what step does, by genWeights.
func (g *generator) pick() genAction {
	r := g.rng.IntN(100)
	for _, w := range genWeights {
		if r < w.weight {
			return w.action
		}
		r -= w.weight
	}
	return genSend
}

// step returns the next command (two for a command followed by its retry).
func (g *generator) step() []*pb.Command {
	c := g.convs[g.rng.IntN(len(g.convs))]
	u := c.members[g.rng.IntN(len(c.members))]
	cmd := g.cmd(c.id, u)
	a := g.pick()
	switch {
	case len(c.recent) == 0 && (a == genResend || a >= genEdit), // nothing to retry or to act on,
		a == genLeave && c.group && len(c.members) <= 2,    // too few to leave,
		a == genStranger && len(c.members) == len(g.users): // no stranger:
		a = genSend // send instead
	}
	switch a {
	case genSend:
		g.next++
		m := &pb.SendMessage{ClientMsgId: fmt.Sprintf("m-%s-%d", u, g.next), Text: fmt.Sprintf("message %d from %s: ünïcödé", g.next, u)}
		if to := g.message(c); to != nil && g.rng.IntN(4) == 0 {
			m.ReplyToSeq = to.seq
			m.Text = fmt.Sprintf("reply %d from %s to %d", g.next, u, to.seq)
			if to.recalled { // refused: a reply to a recalled message
				cmd.Body = &pb.Command_SendMessage{SendMessage: m}
				return []*pb.Command{cmd}
			}
		}
		cmd.Body = &pb.Command_SendMessage{SendMessage: m}
		c.sent++
		c.recent = append(c.recent, &genMessage{seq: c.sent, sender: u, send: m})
		if len(c.recent) > 30 {
			c.recent = c.recent[1:]
		}
	case genResend: // a retry of a recent send, same client_msg_id: deduplicated (or refused if the sender left)
		m := c.recent[g.rng.IntN(len(c.recent))]
		cmd.UserId, cmd.DeviceId = m.sender, m.sender+"-laptop"
		cmd.Body = &pb.Command_SendMessage{SendMessage: m.send}
	case genRead: // read up to some seq: stale marks yield nothing
		cmd.Body = &pb.Command_MarkRead{MarkRead: &pb.MarkRead{UpToSeq: 1 + g.rng.Int64N(c.sent+2)}}
	case genDelivered:
		cmd.Body = &pb.Command_MarkDelivered{MarkDelivered: &pb.MarkDelivered{UpToSeq: 1 + g.rng.Int64N(c.sent+2)}}
	case genAddMembers: // add members; sometimes only existing ones (refused)
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
	case genLeave: // leave, or the owner removes someone; refused in direct conversations
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
	case genStranger: // a stranger sends: NOT_MEMBER
		var stranger string
		for stranger == "" || slices.Contains(c.members, stranger) { // never all users: see above
			stranger = g.users[g.rng.IntN(len(g.users))]
		}
		cmd.UserId, cmd.DeviceId = stranger, stranger+"-phone"
		cmd.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: fmt.Sprintf("x-%d", g.next), Text: "let me in"}}
	case genEmpty: // invalid: an empty message
		cmd.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: fmt.Sprintf("e-%d", g.next)}}
	case genEdit:
		return g.edit(c, cmd)
	case genRecall:
		g.recall(c, cmd)
	case genReact:
		return g.react(c, cmd)
	case genUnreact:
		g.unreact(c, cmd)
	}
	return []*pb.Command{cmd}
}

// message picks a recent message of c, mostly one not recalled (nil when
// there is none).
func (g *generator) message(c *genConv) *genMessage {
	if len(c.recent) == 0 {
		return nil
	}
	m := c.recent[g.rng.IntN(len(c.recent))]
	if m.recalled && g.rng.IntN(4) != 0 {
		m = c.recent[g.rng.IntN(len(c.recent))] // a second draw: recalled ones come up less
	}
	return m
}

// as makes cmd a command of user.
func as(cmd *pb.Command, user string) {
	cmd.UserId, cmd.DeviceId = user, user+"-phone"
}

func (c *genConv) member(u string) bool { return slices.Contains(c.members, u) }

// edit: mostly the sender edits a message of theirs, sometimes sending
// the edit twice with the same client_msg_id (the retry is deduplicated),
// sometimes retrying an earlier edit; refused: an edit by another member,
// of a recalled message, or by a sender who left.
func (g *generator) edit(c *genConv, cmd *pb.Command) []*pb.Command {
	m := g.message(c)
	r := g.rng.IntN(100)
	if r < 15 { // by another member: PERMISSION_DENIED
		if i := slices.IndexFunc(c.members, func(u string) bool { return u != m.sender }); i >= 0 {
			as(cmd, c.members[i])
			cmd.Body = &pb.Command_EditMessage{EditMessage: &pb.EditMessage{Seq: m.seq, Text: "not yours", ClientMsgId: fmt.Sprintf("x-%d", g.next)}}
			return []*pb.Command{cmd}
		}
	}
	as(cmd, m.sender)
	if len(m.edits) > 0 && (r < 30 || len(m.edits) >= maxEdits) {
		// A late retry of an earlier edit: deduplicated, edits nothing.
		cmd.DeviceId = m.sender + "-laptop"
		cmd.Body = &pb.Command_EditMessage{EditMessage: m.edits[g.rng.IntN(len(m.edits))]}
		return []*pb.Command{cmd}
	}
	g.next++
	e := &pb.EditMessage{Seq: m.seq, Text: fmt.Sprintf("message %d edited (%d): ëdïtëd", m.seq, g.next),
		ClientMsgId: fmt.Sprintf("ed-%s-%d", m.sender, g.next)}
	if g.rng.IntN(4) == 0 {
		e.Text, e.ContentType = "**"+e.Text+"**", schemas.ContentMarkdown
	}
	cmd.Body = &pb.Command_EditMessage{EditMessage: e}
	if !m.recalled && c.member(m.sender) {
		m.edits = append(m.edits, e)
	}
	if r < 45 { // sent twice, as by a device that lost the answer
		again := g.cmd(c.id, m.sender)
		again.Body = &pb.Command_EditMessage{EditMessage: e}
		return []*pb.Command{cmd, again}
	}
	return []*pb.Command{cmd}
}

// recall: by the sender or the group's owner; refused by anyone else;
// again on a recalled message (accepted, no event).
func (g *generator) recall(c *genConv, cmd *pb.Command) {
	m := g.message(c)
	cmd.Body = &pb.Command_RecallMessage{RecallMessage: &pb.RecallMessage{Seq: m.seq}}
	switch r := g.rng.IntN(100); {
	case r < 55:
		as(cmd, m.sender)
	case r < 75 && c.owner != "":
		as(cmd, c.owner)
	default: // whoever step chose: refused unless the sender or the owner
	}
	if u := cmd.GetUserId(); c.member(u) && (u == m.sender || u == c.owner) {
		m.recalled, m.reactions = true, nil
	}
}

// react: a member adds an emoji, sometimes twice in a row (the second
// yields nothing), sometimes one already there; refused on a recalled
// message.
func (g *generator) react(c *genConv, cmd *pb.Command) []*pb.Command {
	m := g.message(c)
	u := cmd.GetUserId()
	e := emoji[g.rng.IntN(len(emoji))]
	cmd.Body = &pb.Command_AddReaction{AddReaction: &pb.AddReaction{Seq: m.seq, Emoji: e}}
	out := []*pb.Command{cmd}
	if g.rng.IntN(5) == 0 { // a retry
		again := g.cmd(c.id, u)
		again.Body = &pb.Command_AddReaction{AddReaction: &pb.AddReaction{Seq: m.seq, Emoji: e}}
		out = append(out, again)
	}
	if !m.recalled {
		if m.reactions == nil {
			m.reactions = map[genReaction]bool{}
		}
		m.reactions[genReaction{u, e}] = true
	}
	return out
}

// unreact: a member takes off one of its reactions, or one it does not
// have (no event).
func (g *generator) unreact(c *genConv, cmd *pb.Command) {
	m := g.message(c)
	e := emoji[g.rng.IntN(len(emoji))]
	if g.rng.IntN(4) != 0 {
		for _, r := range slices.SortedFunc(maps.Keys(m.reactions), func(a, b genReaction) int {
			return cmp.Or(strings.Compare(a.user, b.user), strings.Compare(a.emoji, b.emoji))
		}) {
			if c.member(r.user) {
				as(cmd, r.user)
				e = r.emoji
				break
			}
		}
	}
	cmd.Body = &pb.Command_RemoveReaction{RemoveReaction: &pb.RemoveReaction{Seq: m.seq, Emoji: e}}
	delete(m.reactions, genReaction{cmd.GetUserId(), e})
}

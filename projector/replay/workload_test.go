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
// the decider's rules (membership, roles and ownership, settings, mutes,
// who edits, recalls and pins what, which reactions are there) so that
// most commands are accepted, and adds retries, stale marks, no-op actions
// and refusals on purpose.
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
	owner   string           // a group's owner ("" in a direct conversation)
	admins  map[string]bool  // current admins
	joined  map[string]int64 // the seq that (last) added each current member
	muted   map[string]bool  // current members muted (until unmuted, or for an hour)
	members []string         // current, sorted
	sent    int64            // the last seq: sends and notices accepted
	recent  []*genMessage
	pins    int // messages pinned, also those no longer recent
	// Settings that change what is accepted: announcement_only, and who_may_add,
	// who_may_mention_all and who_may_pin ADMINS.
	announcement, addAdmins, mentionAllAdmins, pinAdmins bool
}

// privileged reports whether u is the owner or an admin of a group.
func (c *genConv) privileged(u string) bool { return c.group && (u == c.owner || c.admins[u]) }

// join adds u at seq, a plain member and not muted.
func (c *genConv) join(u string, seq int64) {
	c.members = append(c.members, u)
	slices.Sort(c.members)
	c.joined[u] = seq
	delete(c.admins, u)
	delete(c.muted, u)
}

// drop removes u; the owner's successor takes over, as the decider picks it:
// the admin who joined first, else the member who joined first, ties by
// user id.
func (c *genConv) drop(u string) {
	c.members = slices.DeleteFunc(c.members, func(m string) bool { return m == u })
	delete(c.admins, u)
	delete(c.muted, u)
	delete(c.joined, u)
	if u != c.owner {
		return
	}
	c.owner = ""
	for _, m := range c.members { // sorted: ties go to the lower id
		if c.owner == "" || (c.admins[m] && !c.admins[c.owner]) ||
			(c.admins[m] == c.admins[c.owner] && c.joined[m] < c.joined[c.owner]) {
			c.owner = m
		}
	}
	delete(c.admins, c.owner)
}

// pickPrivileged returns the owner or an admin of c, most of the time, else
// fallback.
func (g *generator) pickPrivileged(c *genConv, fallback string) string {
	if !c.group || g.rng.IntN(5) == 0 {
		return fallback
	}
	ps := []string{c.owner}
	for _, m := range c.members {
		if c.admins[m] {
			ps = append(ps, m)
		}
	}
	return ps[g.rng.IntN(len(ps))]
}

// genMessage is a message the generator sent, as the decider should see it.
type genMessage struct {
	seq       int64
	sender    string
	send      *pb.SendMessage
	edits     []*pb.EditMessage // accepted, for retries
	recalled  bool
	pinned    bool
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
	genRole
	genTransfer
	genOwnerLeave
	genSettings
	genMute
	genUnmute
	genPin
	genUnpin
)

var genWeights = []struct {
	action genAction
	weight int
}{
	{genSend, 26}, {genResend, 5}, {genRead, 9}, {genDelivered, 7}, {genAddMembers, 5}, {genLeave, 4},
	{genStranger, 2}, {genEmpty, 2}, {genEdit, 8}, {genRecall, 4}, {genReact, 8}, {genUnreact, 3},
	{genRole, 4}, {genTransfer, 1}, {genOwnerLeave, 1}, {genSettings, 3}, {genMute, 2}, {genUnmute, 2},
	{genPin, 3}, {genUnpin, 1},
}

// onMessage says whether a acts on an earlier message.
func onMessage(a genAction) bool {
	switch a {
	case genResend, genEdit, genRecall, genReact, genUnreact, genPin, genUnpin:
		return true
	}
	return false
}

// groupOnly says whether a is refused in a direct conversation.
func groupOnly(a genAction) bool {
	switch a {
	case genRole, genTransfer, genOwnerLeave, genSettings, genMute, genUnmute:
		return true
	}
	return false
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
		c := &genConv{id: fmt.Sprintf("g:%032x", i+1), group: true, owner: members[0], members: slices.Sorted(slices.Values(members)),
			admins: map[string]bool{}, joined: map[string]int64{}, muted: map[string]bool{}}
		g.convs = append(g.convs, c)
		cmd := g.cmd(c.id, members[0])
		cmd.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{
			Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: fmt.Sprintf("group %d ✓", i), MemberUserIds: members[1:]}}
		out = append(out, cmd)
	}
	for i := range g.groups {
		a, b := g.users[2*i], g.users[2*i+1]
		c := &genConv{id: schemas.DirectConversationID(a, b), members: []string{a, b},
			admins: map[string]bool{}, joined: map[string]int64{}, muted: map[string]bool{}}
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
	case len(c.recent) == 0 && onMessage(a), // nothing to retry or to act on,
		(a == genLeave || a == genOwnerLeave) && c.group && len(c.members) <= 2, // too few to leave,
		a == genStranger && len(c.members) == len(g.users),                      // no stranger,
		groupOnly(a) && !c.group && g.rng.IntN(4) != 0:                          // mostly not refused as unsupported:
		a = genSend // send instead
	}
	switch a {
	case genSend:
		return g.send(c, cmd)
	case genResend: // a retry of a recent send, same client_msg_id: deduplicated (or refused if the sender left)
		m := c.recent[g.rng.IntN(len(c.recent))]
		cmd.UserId, cmd.DeviceId = m.sender, m.sender+"-laptop"
		cmd.Body = &pb.Command_SendMessage{SendMessage: m.send}
	case genRead: // read up to some seq: stale marks yield nothing
		cmd.Body = &pb.Command_MarkRead{MarkRead: &pb.MarkRead{UpToSeq: 1 + g.rng.Int64N(c.sent+2)}}
	case genDelivered:
		cmd.Body = &pb.Command_MarkDelivered{MarkDelivered: &pb.MarkDelivered{UpToSeq: 1 + g.rng.Int64N(c.sent+2)}}
	case genAddMembers: // add members; sometimes only existing ones, or by a plain member while only admins may (refused)
		if c.addAdmins && g.rng.IntN(2) == 0 {
			as(cmd, g.pickPrivileged(c, u))
			u = cmd.GetUserId()
		}
		var add []string
		for range 1 + g.rng.IntN(2) {
			add = append(add, g.users[g.rng.IntN(len(g.users))])
		}
		cmd.Body = &pb.Command_AddMembers{AddMembers: &pb.AddMembers{UserIds: add}}
		if c.group && (!c.addAdmins || c.privileged(u)) {
			var fresh []string
			for _, a := range add {
				if !c.member(a) && !slices.Contains(fresh, a) {
					fresh = append(fresh, a)
				}
			}
			if len(fresh) > 0 {
				c.sent++ // a notice takes a seq
				for _, a := range fresh {
					c.join(a, c.sent)
				}
			}
		}
	case genLeave: // leave, or remove someone (the owner anyone, an admin plain members, others nobody); refused in direct conversations
		target := u
		if g.rng.IntN(2) == 0 {
			as(cmd, g.pickPrivileged(c, u))
			u, target = cmd.GetUserId(), c.members[g.rng.IntN(len(c.members))]
		}
		if target == u {
			cmd.Body = &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}
		} else {
			cmd.Body = &pb.Command_RemoveMember{RemoveMember: &pb.RemoveMember{UserId: target}}
		}
		if c.group && (target == u || u == c.owner || (c.admins[u] && target != c.owner && !c.admins[target])) {
			c.drop(target) // the owner's leave passes the ownership on
			c.sent++
		}
	case genOwnerLeave: // the owner leaves: an admin or the member who joined first owns the group
		if c.group {
			as(cmd, c.owner)
		}
		cmd.Body = &pb.Command_LeaveConversation{LeaveConversation: &pb.LeaveConversation{}}
		if c.group {
			c.drop(c.owner)
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
	case genRole:
		g.role(c, cmd)
	case genTransfer:
		g.transfer(c, cmd)
	case genSettings:
		g.settings(c, cmd)
	case genMute:
		g.mute(c, cmd)
	case genUnmute:
		g.unmute(c, cmd)
	case genPin, genUnpin:
		g.pin(c, cmd, a == genPin)
	}
	return []*pb.Command{cmd}
}

// send: a message, a quarter of them replies, some mentioning members
// (one twice, or the sender, which the decider drops) or @all; refused: a
// reply to a recalled message, a mention of a non-member, @all in a direct
// conversation or by a plain member while only admins may, and sends by
// muted members and by plain members of announcement-only groups.
func (g *generator) send(c *genConv, cmd *pb.Command) []*pb.Command {
	if len(c.muted) > 0 && g.rng.IntN(4) == 0 {
		muted := slices.Sorted(maps.Keys(c.muted))
		as(cmd, muted[g.rng.IntN(len(muted))])
	}
	u := cmd.GetUserId()
	g.next++
	m := &pb.SendMessage{ClientMsgId: fmt.Sprintf("m-%s-%d", u, g.next), Text: fmt.Sprintf("message %d from %s: ünïcödé", g.next, u)}
	ok := !c.muted[u] && (!c.announcement || c.privileged(u))
	if to := g.message(c); to != nil && g.rng.IntN(4) == 0 {
		m.ReplyToSeq = to.seq
		m.Text = fmt.Sprintf("reply %d from %s to %d", g.next, u, to.seq)
		ok = ok && !to.recalled
	}
	switch r := g.rng.IntN(20); {
	case r < 4: // @user: one to three members
		for range 1 + g.rng.IntN(3) {
			m.MentionUserIds = append(m.MentionUserIds, c.members[g.rng.IntN(len(c.members))])
		}
	case r == 4: // a non-member
		if s := g.users[g.rng.IntN(len(g.users))]; !c.member(s) {
			m.MentionUserIds, ok = []string{s}, false
		}
	case r < 7: // @all
		m.MentionAll = true
		ok = ok && c.group && (!c.mentionAllAdmins || c.privileged(u))
	}
	cmd.Body = &pb.Command_SendMessage{SendMessage: m}
	if !ok {
		return []*pb.Command{cmd}
	}
	c.sent++
	c.recent = append(c.recent, &genMessage{seq: c.sent, sender: u, send: m})
	if len(c.recent) > 30 {
		c.recent = c.recent[1:]
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

// recall: by the sender or a privileged member of a group; refused by
// anyone else; again on a recalled message (accepted, no event).
func (g *generator) recall(c *genConv, cmd *pb.Command) {
	m := g.message(c)
	cmd.Body = &pb.Command_RecallMessage{RecallMessage: &pb.RecallMessage{Seq: m.seq}}
	switch r := g.rng.IntN(100); {
	case r < 55:
		as(cmd, m.sender)
	case r < 80 && c.group:
		as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	default: // whoever step chose: refused unless the sender or privileged
	}
	if u := cmd.GetUserId(); c.member(u) && (u == m.sender || c.privileged(u)) && !m.recalled {
		m.recalled, m.reactions = true, nil
		if m.pinned { // a recall unpins
			m.pinned = false
			c.pins--
		}
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

// role: the owner makes a member an admin, or an admin a plain member
// again; sometimes the role the member has (no event); refused: by anyone
// else, of the owner, to the owner's role.
func (g *generator) role(c *genConv, cmd *pb.Command) {
	if c.group && g.rng.IntN(5) != 0 {
		as(cmd, c.owner)
	}
	u, target := cmd.GetUserId(), c.members[g.rng.IntN(len(c.members))]
	role := pb.MemberRole_MEMBER_ROLE_MEMBER
	if c.admins[target] != (g.rng.IntN(5) != 0) { // mostly the other role
		role = pb.MemberRole_MEMBER_ROLE_ADMIN
	}
	if g.rng.IntN(20) == 0 {
		role = pb.MemberRole_MEMBER_ROLE_OWNER
	}
	cmd.Body = &pb.Command_SetMemberRole{SetMemberRole: &pb.SetMemberRole{UserId: target, Role: role}}
	if !c.group || u != c.owner || target == c.owner {
		return
	}
	switch role {
	case pb.MemberRole_MEMBER_ROLE_ADMIN:
		c.admins[target] = true
	case pb.MemberRole_MEMBER_ROLE_MEMBER:
		delete(c.admins, target)
	}
}

// transfer: the owner hands the group to another member and becomes an
// admin; refused: by anyone else, to itself.
func (g *generator) transfer(c *genConv, cmd *pb.Command) {
	if c.group && g.rng.IntN(5) != 0 {
		as(cmd, c.owner)
	}
	u, target := cmd.GetUserId(), c.members[g.rng.IntN(len(c.members))]
	cmd.Body = &pb.Command_TransferOwnership{TransferOwnership: &pb.TransferOwnership{UserId: target}}
	if c.group && u == c.owner && target != u {
		c.admins[u] = true
		delete(c.admins, target)
		c.owner = target
	}
}

// settings: the owner or an admin sets some of a group's settings, each to
// a new value or to the one it has (nothing new: no event);
// announcement_only goes on rarely and off soon after, as it refuses most
// sends; the history visibility (which changes nothing the decider
// accepts) now and then. Refused: by a plain member, an empty title, an
// avatar URL of another scheme, a policy or the visibility set to
// UNSPECIFIED.
func (g *generator) settings(c *genConv, cmd *pb.Command) {
	as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	u := cmd.GetUserId()
	s, valid := &pb.GroupSettings{}, true
	some := func() bool { return g.rng.IntN(3) == 0 }
	announcement, add, mention, pin := c.announcement, c.addAdmins, c.mentionAllAdmins, c.pinAdmins
	policy := func(admins *bool) *pb.GroupPolicy {
		*admins = g.rng.IntN(2) == 0
		switch {
		case g.rng.IntN(20) == 0:
			valid = false
			return pb.GroupPolicy_GROUP_POLICY_UNSPECIFIED.Enum()
		case *admins:
			return pb.GroupPolicy_GROUP_POLICY_ADMINS.Enum()
		}
		return pb.GroupPolicy_GROUP_POLICY_MEMBERS.Enum()
	}
	if some() {
		g.next++
		title := fmt.Sprintf("group %d ✓", g.next)
		if g.rng.IntN(10) == 0 {
			title, valid = "", false
		}
		s.Title = &title
	}
	if some() {
		s.Description = proto.String(fmt.Sprintf("about %d", g.rng.IntN(3)))
	}
	if some() {
		url := []string{"https://example.com/a.png", "parley:avatar/7", "", "ftp://example.com/a.png"}[g.rng.IntN(4)]
		valid = valid && !strings.HasPrefix(url, "ftp:")
		s.AvatarUrl = &url
	}
	if c.announcement && g.rng.IntN(5) != 0 || !c.announcement && g.rng.IntN(16) == 0 {
		announcement = !c.announcement
		s.AnnouncementOnly = proto.Bool(announcement)
	}
	if some() {
		s.WhoMayAdd = policy(&add)
	}
	if some() {
		s.WhoMayMentionAll = policy(&mention)
	}
	if some() {
		s.WhoMayPin = policy(&pin)
	}
	if g.rng.IntN(6) == 0 {
		v := []pb.HistoryVisibility{pb.HistoryVisibility_HISTORY_VISIBILITY_ALL, pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN}[g.rng.IntN(2)]
		if g.rng.IntN(20) == 0 {
			v, valid = pb.HistoryVisibility_HISTORY_VISIBILITY_UNSPECIFIED, false
		}
		s.HistoryVisibility = v.Enum()
	}
	cmd.Body = &pb.Command_UpdateGroupSettings{UpdateGroupSettings: &pb.UpdateGroupSettings{Settings: s}}
	if valid && c.privileged(u) {
		c.announcement, c.addAdmins, c.mentionAllAdmins, c.pinAdmins = announcement, add, mention, pin
	}
}

// mayMute says whether u may mute or unmute target in c.
func (c *genConv) mayMute(u, target string) bool {
	return c.privileged(u) && target != c.owner && (!c.admins[target] || u == c.owner)
}

// mute: the owner or an admin mutes a member until unmuted or for an hour
// (beyond the test: the generator knows it is in force); muting again
// replaces the mute. Refused: by a plain member, of the owner, of an
// admin by an admin, until in the past.
func (g *generator) mute(c *genConv, cmd *pb.Command) {
	as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	u, target := cmd.GetUserId(), c.members[g.rng.IntN(len(c.members))]
	m, valid := &pb.MuteMember{UserId: target}, true
	switch r := g.rng.IntN(10); {
	case r < 3:
		m.Until = timestamppb.New(time.Now().Add(time.Hour))
	case r == 3:
		m.Until, valid = timestamppb.New(time.Now().Add(-time.Minute)), false
	}
	cmd.Body = &pb.Command_MuteMember{MuteMember: m}
	if valid && c.mayMute(u, target) {
		c.muted[target] = true
	}
}

// unmute: mostly of a muted member; of one not muted yields no event.
func (g *generator) unmute(c *genConv, cmd *pb.Command) {
	as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	u, target := cmd.GetUserId(), c.members[g.rng.IntN(len(c.members))]
	if muted := slices.Sorted(maps.Keys(c.muted)); len(muted) > 0 && g.rng.IntN(4) != 0 {
		target = muted[g.rng.IntN(len(muted))]
	}
	cmd.Body = &pb.Command_UnmuteMember{UnmuteMember: &pb.UnmuteMember{UserId: target}}
	if c.mayMute(u, target) {
		delete(c.muted, target)
	}
}

// pin: a member pins a recent message, or takes a pin off (mostly of a
// pinned one); a pin already there, or none to take off, yields no event.
// Refused: a recalled message, by a plain member while only admins may.
func (g *generator) pin(c *genConv, cmd *pb.Command, pin bool) {
	m := g.message(c)
	if !pin && g.rng.IntN(4) != 0 {
		if i := slices.IndexFunc(c.recent, func(r *genMessage) bool { return r.pinned }); i >= 0 {
			m = c.recent[i]
		}
	}
	if c.pinAdmins && g.rng.IntN(2) == 0 {
		as(cmd, g.pickPrivileged(c, cmd.GetUserId()))
	}
	allowed := !c.group || !c.pinAdmins || c.privileged(cmd.GetUserId())
	if !pin {
		cmd.Body = &pb.Command_UnpinMessage{UnpinMessage: &pb.UnpinMessage{Seq: m.seq}}
		if allowed && m.pinned {
			m.pinned = false
			c.pins--
		}
		return
	}
	cmd.Body = &pb.Command_PinMessage{PinMessage: &pb.PinMessage{Seq: m.seq}}
	if allowed && !m.recalled && !m.pinned && c.pins < 50 { // at the limit: TOO_MANY_PINS
		m.pinned = true
		c.pins++
	}
}

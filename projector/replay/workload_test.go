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
	// sent is each command appended, by command_id, for the tally.
	sent  map[string]*pb.Command
	tally tally
	// attachments counts the attachment commands and their events.
	attachments attachmentCounts
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
	// An upload expires as soon as the janitor asks (the decider's TTL is
	// below its millisecond clock), so the generator knows what each
	// ExpireAttachment does.
	sys, err := system.Start(ctx, system.Options{Seeds: k.Seeds, Hosts: c.Hosts, Keyspace: c.Keyspace,
		TopicPrefix: k.Name("replay") + ".", External: external, IngestLimits: ingest.Limits{AttachmentTTL: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	w := &world{t: t, sys: sys, k: k, sent: map[string]*pb.Command{},
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
	w.append(w.gen.create()...)
	// In rounds: what a round deferred to its end (blocks and forwards,
	// whose second step ingest appends) is appended once the rest of the
	// round is durable, and decided before the next round starts, so each
	// derived command lands between the two rounds in its stream.
	per := max(commands/workloadRounds, 1)
	for w.gen.commands < commands {
		now, later := w.gen.round(min(per, commands-w.gen.commands))
		w.append(now...)
		if len(later) > 0 {
			w.append(later...)
			w.decided()
		}
	}
	w.append(w.gen.finish()...)
	w.settle(projector)
	t.Logf("%d commands → %d events, decided and projected in %v", w.gen.commands, w.events, time.Since(start))
	t.Logf("commands by type: outcome events in the command's stream (→ in the stream of the command ingest derived from it)\n%s", w.tally)
	t.Logf("attachments: %s", w.attachments)
	return w
}

// workloadRounds is how many rounds newWorld appends its commands in.
const workloadRounds = 10

// append appends commands (in order per conversation) and waits until
// every one is durable.
func (w *world) append(cmds ...*pb.Command) {
	w.t.Helper()
	var failed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range cmds {
		w.sent[c.GetCommandId()] = c
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

// settle waits until the decider has decided every command appended and
// every command it derived from them and, with projector, the live
// projector has applied every event.
func (w *world) settle(projector bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(w.k.Client())
	w.decided()
	// The decider's last transaction is committed; its markers may still be
	// on their way to the events partitions: wait until none is open.
	testenv.Eventually(w.t, time.Minute, func() string {
		return openTransaction(ctx, adm, w.sys.Topics.Events.Name)
	})
	last := w.lastRecords(ctx, adm)
	if !projector {
		return
	}
	if err := waitCheckpoints(ctx, w.s, w.cfg.Keyspace, w.sys.GroupOf("projector"), last, 2*time.Minute); err != nil {
		w.t.Fatal(err)
	}
}

// decided waits until the decider has decided every command of the
// commands topic: those appended, and those it derived from them while
// deciding (DirectBlock, ForwardedMessage: it appends them there itself,
// in the transaction of their first step; they derive nothing).
//
// The decider commits, per partition, the offset after the last command
// it decided; a partition whose last record is a derived command ends in
// that transaction's marker, past the committed offset. So "decided" is:
// no transaction open on the commands topic, and no command at or after
// the committed offset of any partition. The committed offsets are read
// first: a command undecided then is in the topic when the rest is read,
// or in a transaction still open (its first step's offsets may be
// committed before its marker reaches the partition).
func (w *world) decided() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(w.k.Client())
	topic := w.sys.Topics.Commands.Name
	var prev map[int32]int64
	testenv.Eventually(w.t, 2*time.Minute, func() string {
		fo, err := adm.FetchOffsets(ctx, w.sys.GroupOf("ingest"))
		if err != nil {
			return err.Error()
		}
		if open := openTransaction(ctx, adm, topic); open != "" {
			return open
		}
		first, end, err := offsets(ctx, adm, topic)
		if err != nil {
			return err.Error()
		}
		at := map[int32]int64{}
		for p, e := range end {
			at[p] = first[p]
			if o, ok := fo.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
				at[p] = o.At
			}
			if at[p] >= e {
				delete(at, p)
			}
		}
		if len(at) == 0 {
			return ""
		}
		// While the decider commits, it is deciding: look again later
		// rather than read what it is reading.
		if !maps.Equal(at, prev) {
			prev = at
			return fmt.Sprintf("ingest committing: behind the end in %d partitions", len(at))
		}
		if p, o, ok := w.commandAfter(ctx, at, end); ok {
			return fmt.Sprintf("partition %d: command at offset %d, ingest committed %d", p, o, at[p])
		}
		return ""
	})
}

// commandAfter returns the first command (a data record, not a
// transaction marker) it finds in the commands topic from the offsets at
// to end, per partition.
func (w *world) commandAfter(ctx context.Context, at, end map[int32]int64) (int32, int64, bool) {
	w.t.Helper()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	found, p, o := false, int32(0), int64(0)
	r := newReader(w.cfg.Defaults(), w.sys.Topics.Commands.Name, at, end, false, 100)
	err := r.run(ctx, func(_ context.Context, part int32, recs []*kgo.Record, _ int64) error {
		mu.Lock()
		defer mu.Unlock()
		if len(recs) > 0 && !found {
			found, p, o = true, part, recs[0].Offset
			stop()
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil && !found {
		w.t.Fatal(err)
	}
	return p, o, found
}

// openTransaction names a partition of topic with a transaction open (""
// when none is).
func openTransaction(ctx context.Context, adm *kadm.Client, topic string) string {
	stable, err1 := adm.ListCommittedOffsets(ctx, topic)
	hw, err2 := adm.ListEndOffsets(ctx, topic)
	if err := errors.Join(err1, err2, stable.Error(), hw.Error()); err != nil {
		return err.Error()
	}
	msg := ""
	hw.Each(func(o kadm.ListedOffset) {
		if s, _ := stable.Lookup(o.Topic, o.Partition); s.Offset != o.Offset {
			msg = fmt.Sprintf("%s partition %d: a transaction is open (%d of %d)", topic, o.Partition, s.Offset, o.Offset)
		}
	})
	return msg
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
	w.tally = tally{}
	w.attachments = attachmentCounts{}
	own := map[string]bool{} // command_id → an outcome in its own stream
	r := newReader(w.cfg.Defaults(), w.sys.Topics.Events.Name, first, end, false, 5000)
	err = r.run(ctx, func(_ context.Context, p int32, recs []*kgo.Record, _ int64) error {
		mu.Lock()
		defer mu.Unlock()
		if len(recs) > 0 {
			last[p] = recs[len(recs)-1].Offset
		}
		for _, rec := range recs {
			ev := new(pb.Event)
			if proto.Unmarshal(rec.Value, ev) != nil {
				continue // verify's to report
			}
			if c := w.sent[ev.GetCommandId()]; c != nil {
				outcome := schemas.EventType(ev)
				if r := ev.GetCommandRejected(); r != nil {
					outcome += " " + strings.TrimPrefix(r.GetCode().String(), "ERROR_CODE_")
				}
				if ev.GetConversationId() == c.GetConversationId() {
					own[c.GetCommandId()] = true
				} else {
					outcome = "→ " + outcome
				}
				w.tally.add(schemas.CommandType(c), outcome)
				w.attachments.event(ev, c)
			}
		}
		n.Add(int64(len(recs)))
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	for id, c := range w.sent {
		w.tally.add(schemas.CommandType(c), "")
		w.attachments.command(c)
		if !own[id] {
			w.tally.add(schemas.CommandType(c), "no event")
		}
	}
	w.events = n.Load()
	return last
}

// tally counts, per command type, the commands appended ("") and their
// outcome events by type (and a refusal's code): those in the command's
// own stream, and those in the stream of the command ingest derived from
// it ("→ " and the type); "no event" counts the commands with no outcome in
// their own stream.
type tally map[string]map[string]int

func (t tally) add(typ, outcome string) {
	if t[typ] == nil {
		t[typ] = map[string]int{}
	}
	t[typ][outcome]++
}

// String writes a line per command type: its count, then each outcome's.
func (t tally) String() string {
	var b strings.Builder
	for _, typ := range slices.Sorted(maps.Keys(t)) {
		fmt.Fprintf(&b, "  %s %d:", typ, t[typ][""])
		sep := " "
		for _, o := range slices.Sorted(maps.Keys(t[typ])) {
			if o != "" {
				fmt.Fprintf(&b, "%s%s %d", sep, o, t[typ][o])
				sep = ", "
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// generator makes a random but plausible stream of commands: it mirrors
// the decider's rules (membership, roles and ownership, settings, mutes,
// who edits, recalls and pins what, which reactions are there, which
// blocks stand, which uploads are not sent yet) so that most commands are
// accepted, and adds retries, stale marks, no-op actions and refusals on
// purpose.
//
// Its mirror only steers the mix: what the log must hold is checked by
// verify from the log alone, so a decider rule the mirror gets wrong makes
// more (or fewer) refusals, never a false failure.
//
// It makes commands in rounds (round). Blocks, unblocks and forwards are
// decided in two streams, the second one when ingest has appended the
// command it derives; step defers them to the end of the round (flush),
// and the round's other commands are durable before they are appended, so
// the generator knows where their second step lands: after the round's
// commands of its stream, before the next round's.
type generator struct {
	rng      *rand.Rand
	convs    []*genConv
	users    []string
	commands int
	next     int
	groups   int
	// blocks are the blocks that stand: blocker → blocked users.
	blocks map[string]map[string]bool
	// directs are the direct conversations, by id.
	directs map[string]*genConv
	// created counts the direct conversations created after the start.
	created  int
	deferred []genIntent
	forwards []*madeForward // made, for late retries
	landing  []func()       // the forwards of the round that land, made at its end
	// blockLog is every block made, (blocker, blocked), in order.
	blockLog [][2]string
}

// genIntent is a block, an unblock or a forward step chose, made at the
// end of its round.
type genIntent struct {
	action genAction
	conv   *genConv
	user   string
}

// madeForward is a forward the generator made.
type madeForward struct {
	from   *genConv
	msg    *genMessage
	user   string
	target string
	body   *pb.ForwardMessage
	// landed says the target took it as a message: a retry is
	// deduplicated there.
	landed bool
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
	// who_may_mention_all and who_may_pin ADMINS; history visible since
	// join (what a forward may take).
	announcement, addAdmins, mentionAllAdmins, pinAdmins, sinceJoin bool
	// joinRequests: anyone may ask to join (GroupSettings.join_requests);
	// invites are the group's links by token, requests the users whose
	// request is pending.
	joinRequests bool
	invites      map[string]*madeInvite
	requests     map[string]bool
	// uploads are the attachments recorded and not sent yet (nor expired),
	// by id.
	uploads map[string]*pb.Attachment
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
	delete(c.muted, c.owner) // the owner is never muted
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
	edits     []*pb.EditMessage // accepted, for retries; the last one is its text
	recalled  bool
	pinned    bool
	reactions map[genReaction]bool // current
	atts      []*pb.Attachment     // the attachments it carries
}

type genReaction struct{ user, emoji string }

// emoji are the reactions used: few, so reactions meet, and far fewer than
// a message may carry.
var emoji = []string{"👍", "❤️", "😂", "🎉", ":shipit:"}

// maxEdits bounds the edits the generator makes of one message (the
// decider allows far more).
const maxEdits = 4

// content is the text and content type of m as the views show it (its
// last edit), which a forward carries.
func (m *genMessage) content() (string, string) {
	if n := len(m.edits); n > 0 {
		return m.edits[n-1].GetText(), m.edits[n-1].GetContentType()
	}
	return m.send.GetText(), m.send.GetContentType()
}

// What step does, with its weight (out of genWeightSum).
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
	genPrefs   // the sender's own settings of a conversation (user stream)
	genHide    // messages deleted for the sender (user stream)
	genBlock   // deferred: user stream, then the direct conversation
	genUnblock // deferred, likewise
	genForward // deferred: the source, then the target
	genDirect  // a new direct conversation, often between users a block stands between
	genInvite  // an invitation link (groups)
	genRevoke  // a link revoked
	genJoin    // a non-member joins by link, or asks to
	genDecide  // a pending request approved or declined
	genUpload  // the gateway records an upload (UploadAttachment)
	genExpire  // the gateway's janitor expires an upload (ExpireAttachment)
)

var genWeights = []struct {
	action genAction
	weight int
}{
	{genSend, 26}, {genResend, 5}, {genRead, 9}, {genDelivered, 7}, {genAddMembers, 5}, {genLeave, 4},
	{genStranger, 2}, {genEmpty, 2}, {genEdit, 8}, {genRecall, 4}, {genReact, 8}, {genUnreact, 3},
	{genRole, 4}, {genTransfer, 1}, {genOwnerLeave, 1}, {genSettings, 3}, {genMute, 2}, {genUnmute, 2},
	{genPin, 3}, {genUnpin, 1}, {genPrefs, 3}, {genHide, 2}, {genBlock, 1}, {genUnblock, 1}, {genForward, 3},
	{genDirect, 1}, {genInvite, 1}, {genRevoke, 1}, {genJoin, 2}, {genDecide, 1}, {genUpload, 6}, {genExpire, 2},
}

// genWeightSum is the sum of genWeights.
var genWeightSum = func() int {
	n := 0
	for _, w := range genWeights {
		n += w.weight
	}
	return n
}()

// onMessage says whether a acts on an earlier message.
func onMessage(a genAction) bool {
	switch a {
	case genResend, genEdit, genRecall, genReact, genUnreact, genPin, genUnpin, genForward:
		return true
	}
	return false
}

// groupOnly says whether a is refused in a direct conversation.
func groupOnly(a genAction) bool {
	switch a {
	case genRole, genTransfer, genOwnerLeave, genSettings, genMute, genUnmute, genInvite, genRevoke, genJoin, genDecide:
		return true
	}
	return false
}

// newGenerator makes conversations/2 groups and as many direct
// conversations, among as many users as conversations.
func newGenerator(seed uint64, conversations int) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed)), groups: conversations / 2,
		blocks: map[string]map[string]bool{}, directs: map[string]*genConv{}}
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
		out = append(out, g.createDirect(g.users[2*i], g.users[2*i+1]))
	}
	return out
}

// createDirect opens the direct conversation of a and b (a < b).
func (g *generator) createDirect(a, b string) *pb.Command {
	c := &genConv{id: schemas.DirectConversationID(a, b), members: []string{a, b},
		admins: map[string]bool{}, joined: map[string]int64{}, muted: map[string]bool{}}
	g.convs = append(g.convs, c)
	g.directs[c.id] = c
	cmd := g.cmd(c.id, a)
	cmd.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{
		Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{b}}}
	return cmd
}

// round returns about n commands: now, to append first, and later, what
// step deferred to the round's end, to append once now is durable.
func (g *generator) round(n int) (now, later []*pb.Command) {
	for end := g.commands + n; g.commands+len(g.deferred) < end; {
		now = append(now, g.step()...)
	}
	return now, g.flush()
}

// pick chooses what step does, by genWeights.
func (g *generator) pick() genAction {
	r := g.rng.IntN(genWeightSum)
	for _, w := range genWeights {
		if r < w.weight {
			return w.action
		}
		r -= w.weight
	}
	return genSend
}

// step returns the next command (two for a command followed by its retry,
// none for one deferred to the end of the round).
func (g *generator) step() []*pb.Command {
	c := g.convs[g.rng.IntN(len(g.convs))]
	u := c.members[g.rng.IntN(len(c.members))]
	a := g.pick()
	switch {
	case len(c.recent) == 0 && onMessage(a), // nothing to retry or to act on,
		(a == genLeave || a == genOwnerLeave) && c.group && len(c.members) <= 2, // too few to leave,
		a == genStranger && len(c.members) == len(g.users),                      // no stranger,
		groupOnly(a) && !c.group && g.rng.IntN(4) != 0,                          // mostly not refused as unsupported,
		a == genDirect && g.created >= g.groups/3:                               // enough new conversations:
		a = genSend // send instead
	}
	switch a {
	case genBlock, genUnblock, genForward:
		g.deferred = append(g.deferred, genIntent{a, c, u})
		return nil
	case genPrefs:
		return []*pb.Command{g.prefs(c, u)}
	case genHide:
		return []*pb.Command{g.hide(c, u)}
	case genDirect:
		return []*pb.Command{g.direct()}
	}
	cmd := g.cmd(c.id, u)
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
					delete(c.requests, a) // an addition ends a request
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
	case genInvite:
		return g.invite(c, cmd)
	case genRevoke:
		g.revoke(c, cmd)
	case genJoin:
		return g.join(c, cmd)
	case genDecide:
		g.decide(c, cmd)
	case genUpload:
		return g.upload(c, cmd)
	case genExpire:
		g.expire(c, cmd)
	}
	return []*pb.Command{cmd}
}

// send: a message, a quarter of them replies, some mentioning members
// (one twice, or the sender, which the decider drops) or @all, some
// carrying the sender's uploads (attach); refused: a reply to a recalled
// message, a mention of a non-member, @all in a direct conversation or by
// a plain member while only admins may, attachments that are not the
// sender's unsent uploads, and sends by muted members, by plain members of
// announcement-only groups and in direct conversations a block stands in.
func (g *generator) send(c *genConv, cmd *pb.Command) []*pb.Command {
	if len(c.muted) > 0 && g.rng.IntN(4) == 0 {
		muted := slices.Sorted(maps.Keys(c.muted))
		as(cmd, muted[g.rng.IntN(len(muted))])
	}
	u := cmd.GetUserId()
	g.next++
	m := &pb.SendMessage{ClientMsgId: fmt.Sprintf("m-%s-%d", u, g.next), Text: fmt.Sprintf("message %d from %s: ünïcödé", g.next, u)}
	ok := !g.blockedIn(c) && !c.muted[u] && (!c.announcement || c.privileged(u))
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
	atts, found := g.attach(c, u, m)
	ok = ok && found
	cmd.Body = &pb.Command_SendMessage{SendMessage: m}
	if !ok {
		return []*pb.Command{cmd}
	}
	c.sendAttachments(atts)
	c.sent++
	c.recent = append(c.recent, &genMessage{seq: c.sent, sender: u, send: m, atts: atts})
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

// recall: by the sender or a privileged member of a group, often of a
// message with attachments (the decider deletes them with it); refused by
// anyone else; again on a recalled message (accepted, no event).
func (g *generator) recall(c *genConv, cmd *pb.Command) {
	m := g.withAttachments(c, g.message(c))
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
		delete(c.muted, target) // the owner is never muted
		c.owner = target
	}
}

// settings: the owner or an admin sets some of a group's settings, each to
// a new value or to the one it has (nothing new: no event);
// announcement_only goes on rarely and off soon after, as it refuses most
// sends; the history visibility (which decides only what a member may
// forward) now and then. Refused: by a plain member, an empty title, an
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
	joinRequests := c.joinRequests
	if g.rng.IntN(6) == 0 {
		joinRequests = !c.joinRequests
		s.JoinRequests = proto.Bool(joinRequests)
	}
	sinceJoin := c.sinceJoin
	if g.rng.IntN(6) == 0 {
		v := []pb.HistoryVisibility{pb.HistoryVisibility_HISTORY_VISIBILITY_ALL, pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN}[g.rng.IntN(2)]
		sinceJoin = v == pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN
		if g.rng.IntN(20) == 0 {
			v, valid = pb.HistoryVisibility_HISTORY_VISIBILITY_UNSPECIFIED, false
		}
		s.HistoryVisibility = v.Enum()
	}
	cmd.Body = &pb.Command_UpdateGroupSettings{UpdateGroupSettings: &pb.UpdateGroupSettings{Settings: s}}
	if valid && c.privileged(u) {
		c.announcement, c.addAdmins, c.mentionAllAdmins, c.pinAdmins = announcement, add, mention, pin
		c.sinceJoin, c.joinRequests = sinceJoin, joinRequests
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

// blockedIn says whether a block stands between the two users of c, a
// direct conversation.
func (g *generator) blockedIn(c *genConv) bool {
	if c.group {
		return false
	}
	a, b := c.members[0], c.members[1]
	return g.blocks[a][b] || g.blocks[b][a]
}

// userCmd is a command of user on its own stream.
func (g *generator) userCmd(user string) *pb.Command { return g.cmd(schemas.UserStreamID(user), user) }

// misroute keys cmd, a command of a user stream, by the conversation it
// names (INVALID_ARGUMENT) or by another user's stream (PERMISSION_DENIED),
// now and then; it reports whether it did.
func (g *generator) misroute(cmd *pb.Command, conv string) bool {
	switch g.rng.IntN(40) {
	case 0:
		cmd.ConversationId = conv
	case 1:
		other := g.users[g.rng.IntN(len(g.users))]
		if other == cmd.GetUserId() {
			return false
		}
		cmd.ConversationId = schemas.UserStreamID(other)
	default:
		return false
	}
	return true
}

// prefs: a member changes its own settings of c: some of the mute (forever,
// until a time, or off), the pin, the archive mark and the unread mark.
// Refused: nothing set, a negative seq, a mute forever and until, an
// invalid time, a malformed conversation id, the command keyed by the
// conversation or by another user's stream.
func (g *generator) prefs(c *genConv, u string) *pb.Command {
	cmd := g.userCmd(u)
	p := &pb.UpdateConversationPrefs{ConversationId: c.id}
	switch r := g.rng.IntN(10); {
	case r < 2:
		p.Mute = &pb.Mute{Forever: true}
	case r < 4:
		p.Mute = &pb.Mute{Until: timestamppb.New(time.Now().Add(time.Duration(1+g.rng.IntN(48)) * time.Hour))}
	case r < 5:
		p.Mute = &pb.Mute{} // unmuted
	}
	some := func() bool { return g.rng.IntN(3) == 0 }
	if some() {
		p.Pinned = proto.Bool(g.rng.IntN(3) != 0)
	}
	if some() {
		p.ArchivedUpToSeq = proto.Int64([]int64{0, c.sent}[g.rng.IntN(2)])
	}
	if some() {
		p.UnreadMarkedAtSeq = proto.Int64(g.rng.Int64N(c.sent + 1))
	}
	if p.Mute == nil && p.Pinned == nil && p.ArchivedUpToSeq == nil && p.UnreadMarkedAtSeq == nil && g.rng.IntN(8) != 0 {
		p.Pinned = proto.Bool(true) // mostly something is set
	}
	switch g.rng.IntN(40) {
	case 0:
		p.ArchivedUpToSeq = proto.Int64(-1)
	case 1:
		p.Mute = &pb.Mute{Forever: true, Until: timestamppb.Now()}
	case 2:
		p.Mute = &pb.Mute{Until: &timestamppb.Timestamp{Nanos: -1}}
	case 3:
		p.ConversationId = "g:no-such-form"
	}
	cmd.Body = &pb.Command_UpdateConversationPrefs{UpdateConversationPrefs: p}
	g.misroute(cmd, c.id)
	return cmd
}

// hide: a member deletes messages of c for itself: a few seqs (a duplicate
// now and then, which the decider drops), everything up to a seq ("clear
// history"), or both. Refused: nothing to hide, a seq below 1, a negative
// up_to_seq, more than 100 seqs, a malformed conversation id, the command
// keyed by the conversation or by another user's stream.
func (g *generator) hide(c *genConv, u string) *pb.Command {
	cmd := g.userCmd(u)
	h := &pb.HideMessages{ConversationId: c.id}
	last := max(c.sent, 1)
	if g.rng.IntN(4) != 0 {
		for range 1 + g.rng.IntN(3) {
			h.Seqs = append(h.Seqs, 1+g.rng.Int64N(last))
		}
		if g.rng.IntN(8) == 0 {
			h.Seqs = append(h.Seqs, h.Seqs[0])
		}
	}
	if len(h.Seqs) == 0 || g.rng.IntN(6) == 0 {
		h.UpToSeq = 1 + g.rng.Int64N(last)
	}
	switch g.rng.IntN(40) {
	case 0:
		h.Seqs, h.UpToSeq = nil, 0
	case 1:
		h.Seqs = append(h.Seqs, 0)
	case 2:
		h.UpToSeq = -1
	case 3:
		for s := range int64(101) {
			h.Seqs = append(h.Seqs, 1+s%last)
		}
	case 4:
		h.ConversationId = "d:" + strings.Repeat("Z", schemas.ConversationIDHexDigits)
	}
	cmd.Body = &pb.Command_HideMessages{HideMessages: h}
	g.misroute(cmd, c.id)
	return cmd
}

// direct: a new direct conversation, half of the time between users a
// block stands between (the block was recorded in it before: it is
// created all the same and refuses sends at once); now and then one that
// exists (CONVERSATION_EXISTS).
func (g *generator) direct() *pb.Command {
	if g.rng.IntN(6) == 0 {
		ids := slices.Sorted(maps.Keys(g.directs))
		c := g.directs[ids[g.rng.IntN(len(ids))]]
		cmd := g.cmd(c.id, c.members[1])
		cmd.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{
			Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{c.members[0]}}}
		return cmd
	}
	var pairs [][2]string
	if g.rng.IntN(2) == 0 {
		pairs = g.standing()
	}
	for len(pairs) == 0 {
		a, b := g.users[g.rng.IntN(len(g.users))], g.users[g.rng.IntN(len(g.users))]
		if a != b {
			pairs = append(pairs, [2]string{a, b})
		}
	}
	p := pairs[g.rng.IntN(len(pairs))]
	a, b := min(p[0], p[1]), max(p[0], p[1])
	if c := g.directs[schemas.DirectConversationID(a, b)]; c != nil { // exists: CONVERSATION_EXISTS
		cmd := g.cmd(c.id, a)
		cmd.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{
			Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{b}}}
		return cmd
	}
	g.created++
	return g.createDirect(a, b)
}

// standing lists the blocks that stand, (blocker, blocked), sorted.
func (g *generator) standing() [][2]string {
	var out [][2]string
	for _, a := range slices.Sorted(maps.Keys(g.blocks)) {
		for _, b := range slices.Sorted(maps.Keys(g.blocks[a])) {
			out = append(out, [2]string{a, b})
		}
	}
	return out
}

// flush makes the commands step deferred to the end of the round: blocks
// and unblocks, then forwards. A forward goes neither to a direct
// conversation whose block changed in the round (the DirectBlock and the
// ForwardedMessage reach it from different partitions, in either order) nor
// to a conversation another forward of the round went to (likewise: which
// takes which seq is not known), so the generator knows what each forward
// does.
func (g *generator) flush() []*pb.Command {
	var out []*pb.Command
	changed, used := map[string]bool{}, map[string]bool{}
	for _, in := range g.deferred {
		switch in.action {
		case genBlock:
			out = append(out, g.block(in.conv, in.user, changed))
		case genUnblock:
			out = append(out, g.unblock(in.conv, in.user, changed))
		}
	}
	for _, in := range g.deferred {
		if in.action == genForward {
			out = append(out, g.forward(in.conv, in.user, changed, used)...)
		}
	}
	for _, land := range g.landing {
		land()
	}
	g.deferred, g.landing = nil, nil
	return out
}

// setBlock records a block by a of b standing, or lifted, and the direct
// conversation of the two as changed.
func (g *generator) setBlock(a, b string, on bool, changed map[string]bool) {
	if g.blocks[a][b] == on {
		return
	}
	if on {
		if g.blocks[a] == nil {
			g.blocks[a] = map[string]bool{}
		}
		g.blocks[a][b] = true
		g.blockLog = append(g.blockLog, [2]string{a, b})
	} else {
		delete(g.blocks[a], b)
		if len(g.blocks[a]) == 0 {
			delete(g.blocks, a)
		}
	}
	changed[schemas.DirectConversationID(a, b)] = true
}

// blockTarget is whom u blocks or unblocks: mostly the other user of c, a
// direct conversation, else anyone (also without a direct conversation
// with u, or u itself: refused).
func (g *generator) blockTarget(c *genConv, u string) string {
	if !c.group && g.rng.IntN(5) != 0 {
		if c.members[0] == u {
			return c.members[1]
		}
		return c.members[0]
	}
	return g.users[g.rng.IntN(len(g.users))]
}

// block: u blocks someone (blockTarget); a block that stands already
// yields nothing. Refused: u itself, an id of the wrong form, the command
// keyed by a conversation or by another user's stream.
func (g *generator) block(c *genConv, u string, changed map[string]bool) *pb.Command {
	cmd := g.userCmd(u)
	target := g.blockTarget(c, u)
	if g.rng.IntN(40) == 0 {
		target = "no such user"
	}
	cmd.Body = &pb.Command_BlockUser{BlockUser: &pb.BlockUser{UserId: target}}
	if !g.misroute(cmd, c.id) && target != u && schemas.CheckID("user_id", target) == nil {
		g.setBlock(u, target, true, changed)
	}
	return cmd
}

// unblock: mostly a block that stands is lifted by its blocker, else u
// unblocks someone (blockTarget) it may not block (no event); refused as a
// block.
func (g *generator) unblock(c *genConv, u string, changed map[string]bool) *pb.Command {
	target := g.blockTarget(c, u)
	if s := g.standing(); len(s) > 0 && g.rng.IntN(4) != 0 {
		b := s[g.rng.IntN(len(s))]
		u, target = b[0], b[1]
	}
	cmd := g.userCmd(u)
	cmd.Body = &pb.Command_UnblockUser{UnblockUser: &pb.UnblockUser{UserId: target}}
	if !g.misroute(cmd, c.id) {
		g.setBlock(u, target, false, changed)
	}
	return cmd
}

// forward: u forwards a recent message of c (mostly one not recalled,
// often one with attachments, which the forward carries as u's copies,
// recorded in the target with its message) to another conversation,
// mostly one it is in; sometimes twice (the retry is
// deduplicated in the target), sometimes an earlier forward again
// (forwardAgain). Refused in c: by a non-member, of a recalled message, of
// a seq past the end, of a message from before u joined while the history
// is visible since join, to c itself or to a malformed id, an origin
// naming another sender. Refused in the target: by a non-member (also of a
// conversation that does not exist), a muted member, a plain member of an
// announcement-only group, between users a block stands between.
func (g *generator) forward(c *genConv, u string, changed, used map[string]bool) []*pb.Command {
	if len(g.forwards) > 0 && g.rng.IntN(10) == 0 {
		if f := g.forwards[g.rng.IntN(len(g.forwards))]; !used[f.target] && !changed[f.target] {
			return []*pb.Command{g.forwardAgain(f, used)}
		}
	}
	free := func(t *genConv) bool { return t != c && !used[t.id] && !changed[t.id] }
	var mine, others []*genConv
	for _, t := range g.convs {
		switch {
		case !free(t):
		case t.member(u):
			mine = append(mine, t)
		default:
			others = append(others, t)
		}
	}
	var to *genConv
	target := ""
	switch r := g.rng.IntN(40); {
	case r == 0:
		target = c.id
	case r == 1:
		target = "g:" + strings.Repeat("x", schemas.ConversationIDHexDigits)
	case r == 2:
		g.next++
		target = fmt.Sprintf("g:%032x", 1<<40+g.next) // no such conversation
	case (r < 8 || len(mine) == 0) && len(others) > 0:
		to = others[g.rng.IntN(len(others))]
	case len(mine) > 0:
		to = mine[g.rng.IntN(len(mine))]
	default:
		return nil // nowhere to forward to in this round
	}
	if to != nil {
		target = to.id
	}
	m := g.withAttachments(c, g.message(c))
	if g.rng.IntN(30) == 0 { // by a stranger
		if i := slices.IndexFunc(g.users, func(s string) bool { return !c.member(s) }); i >= 0 {
			u = g.users[i]
		}
	}
	text, ct := m.content()
	g.next++
	// The gateway fills in the message's content and copies of its
	// attachments; a message of attachments alone has no text.
	f := &madeForward{from: c, msg: m, user: u, target: target, body: &pb.ForwardMessage{Seq: m.seq, TargetConversationId: target,
		ClientMsgId: fmt.Sprintf("f-%s-%d", u, g.next), Text: text, ContentType: ct, Attachments: g.copies(m.atts, u),
		Origin: &pb.ForwardOrigin{ConversationId: c.id, Seq: m.seq, SenderUserId: m.sender, SentAt: timestamppb.Now()}}}
	valid := true
	switch g.rng.IntN(40) {
	case 0: // past the end: NOT_FOUND
		f.body.Seq, f.body.Origin.Seq, valid = c.sent+3, c.sent+3, false
	case 1:
		f.body.Origin.SenderUserId, valid = m.sender+"x", false
	}
	used[target] = true
	cmd := g.cmd(c.id, u)
	cmd.Body = &pb.Command_ForwardMessage{ForwardMessage: f.body}
	out := []*pb.Command{cmd}
	if valid && g.forwardable(f) {
		f.landed = g.lands(f)
		g.forwards = append(g.forwards, f)
	}
	if g.rng.IntN(6) == 0 { // sent twice, as by a device that lost the answer: deduplicated in the target
		again := g.cmd(c.id, u)
		again.Body = &pb.Command_ForwardMessage{ForwardMessage: f.body}
		out = append(out, again)
	}
	return out
}

// forwardable says whether the source of f takes it: f's user is a member
// and may see the message, which is not recalled.
func (g *generator) forwardable(f *madeForward) bool {
	c, m := f.from, f.msg
	return c.member(f.user) && !m.recalled && (!c.sinceJoin || m.seq >= c.joined[f.user]) &&
		f.target != c.id && schemas.CheckConversationID("target", f.target) == nil
}

// lands says whether the target of f takes it as a new message, which
// takes its place there once the round's forwards are made (landing): it
// reaches the target after them, so none of them forwards it.
func (g *generator) lands(f *madeForward) bool {
	i := slices.IndexFunc(g.convs, func(c *genConv) bool { return c.id == f.target })
	if i < 0 {
		return false
	}
	t, u := g.convs[i], f.user
	if !t.member(u) || g.blockedIn(t) || t.muted[u] || t.announcement && !t.privileged(u) {
		return false
	}
	g.landing = append(g.landing, func() {
		t.sent++
		t.recent = append(t.recent, &genMessage{seq: t.sent, sender: u, send: &pb.SendMessage{ClientMsgId: f.body.GetClientMsgId(),
			Text: f.body.GetText(), ContentType: f.body.GetContentType()}, atts: f.body.GetAttachments()})
		if len(t.recent) > 30 {
			t.recent = t.recent[1:]
		}
	})
	return true
}

// forwardAgain: a late retry of f, with the message's text as it is now:
// deduplicated in the target when it landed there, else decided anew in
// both (refused in the source if the message was recalled since).
func (g *generator) forwardAgain(f *madeForward, used map[string]bool) *pb.Command {
	used[f.target] = true
	body := proto.Clone(f.body).(*pb.ForwardMessage)
	body.Text, body.ContentType = f.msg.content()
	body.Attachments = g.copies(f.msg.atts, f.user) // the gateway copies them anew
	f.body = body
	cmd := g.cmd(f.from.id, f.user)
	cmd.DeviceId = f.user + "-laptop"
	cmd.Body = &pb.Command_ForwardMessage{ForwardMessage: body}
	if !f.landed && g.forwardable(f) {
		f.landed = g.lands(f)
	}
	return cmd
}

// finish lifts the blocks that stand at the end of the run, all but at most
// two between users without a direct conversation (so the blocks view
// keeps some rows): sends in every direct conversation are accepted again.
func (g *generator) finish() []*pb.Command {
	var out []*pb.Command
	kept := 0
	for _, b := range g.standing() {
		if g.directs[schemas.DirectConversationID(b[0], b[1])] == nil && kept < 2 {
			kept++
			continue
		}
		cmd := g.userCmd(b[0])
		cmd.Body = &pb.Command_UnblockUser{UnblockUser: &pb.UnblockUser{UserId: b[1]}}
		g.setBlock(b[0], b[1], false, map[string]bool{})
		out = append(out, cmd)
	}
	return out
}

// oneSided returns streams that each hold one side only of a two-stream
// decision of the run, for a verify of some streams: the target of a
// forward that landed, without its source; the source of another, without
// its target; the stream of a blocker, without the direct conversation of
// its block; and a direct conversation a block stood in, without its
// blocker's stream.
func (g *generator) oneSided() []string {
	var ids []string
	in, out := map[string]bool{}, map[string]bool{}
	take := func(id, without string) bool {
		if in[id] || out[id] || in[without] {
			return false
		}
		in[id], out[without] = true, true
		ids = append(ids, id)
		return true
	}
	for _, f := range g.forwards {
		if f.landed && take(f.target, f.from.id) {
			break
		}
	}
	for _, f := range g.forwards {
		if f.landed && take(f.from.id, f.target) {
			break
		}
	}
	for _, b := range g.blockLog {
		if d := schemas.DirectConversationID(b[0], b[1]); g.directs[d] != nil && take(schemas.UserStreamID(b[0]), d) {
			break
		}
	}
	for _, b := range g.blockLog {
		if d := schemas.DirectConversationID(b[0], b[1]); g.directs[d] != nil && take(d, schemas.UserStreamID(b[0])) {
			break
		}
	}
	return ids
}

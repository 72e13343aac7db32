package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/eventlog"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestDeciderTwoStreamDecisions: a block decided on the blocker's user
// stream reaches the direct conversation, and a forward decided in its
// source reaches its target, each in another partition, each exactly once:
// the derived command is appended in the transaction of the first step,
// and a decider replaced in between leaves nothing half done.
func TestDeciderTwoStreamDecisions(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Users and a group whose streams are in three different partitions.
	var alice, bob, dm, uA, g string
	part := func(key string) int32 { return eventlog.PartitionFor(key, schemas.DefaultPartitions) }
	for i := 0; ; i++ {
		alice, bob = fmt.Sprintf("alice%d", i), fmt.Sprintf("bob%d", i)
		dm, uA = schemas.DirectConversationID(alice, bob), schemas.UserStreamID(alice)
		g = fmt.Sprintf("g:%032x", i+1)
		if part(dm) != part(uA) && part(dm) != part(g) {
			break
		}
	}
	group := p.k.Name("ingest")
	stop := p.startDecider(group)
	defer func() { stop() }()

	create := command("c-dm", alice, dm)
	create.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{bob}}}
	p.append(ctx, create)
	p.append(ctx, createGroupCmd("c-g", g, alice, []string{bob}))
	p.append(ctx, sendCmd("s-g", bob, g, "m1"))
	forward := func(id, user, clientID string) *pb.Command {
		c := command(id, user, g)
		c.Body = &pb.Command_ForwardMessage{ForwardMessage: &pb.ForwardMessage{Seq: 1, TargetConversationId: dm, ClientMsgId: clientID,
			Text: "text of m1", Origin: &pb.ForwardOrigin{ConversationId: g, Seq: 1, SenderUserId: bob}}}
		return c
	}
	block := func(id string, on bool) *pb.Command {
		c := command(id, alice, uA)
		if on {
			c.Body = &pb.Command_BlockUser{BlockUser: &pb.BlockUser{UserId: bob}}
		} else {
			c.Body = &pb.Command_UnblockUser{UnblockUser: &pb.UnblockUser{UserId: bob}}
		}
		return c
	}
	p.append(ctx, forward("f1", alice, "fw1"))
	p.readEvents(ctx, 5)
	p.append(ctx, block("b1", true))
	p.readEvents(ctx, 7) // the block stands in the direct conversation
	p.append(ctx, sendCmd("s-dm", bob, dm, "m2"))
	p.append(ctx, forward("f2", bob, "fw2"))
	p.readEvents(ctx, 10)
	// A new decider restores every stream from the changelog.
	stop()
	stop = p.startDecider(group)
	p.append(ctx, forward("f1-retry", alice, "fw1"))
	p.append(ctx, block("b2", true)) // redundant: no event, no derived command
	p.readEvents(ctx, 12)
	p.append(ctx, block("u1", false))
	p.readEvents(ctx, 14)
	p.append(ctx, sendCmd("s-dm2", bob, dm, "m3"))
	evs := p.readEvents(ctx, 15)

	byStream := map[string][]string{}
	for _, e := range evs {
		name := map[string]string{dm: "dm", uA: "uA", g: "g"}[e.GetConversationId()]
		s := fmt.Sprintf("%s/%s", e.GetCommandId(), schemas.EventType(e))
		if r := e.GetCommandRejected(); r != nil {
			s += ":" + r.GetCode().String()
		}
		if ms := e.GetMessageSent(); ms != nil && ms.GetForwardedFrom() != nil {
			if ms.GetForwardedFrom().GetConversationId() != g || ms.GetForwardedFrom().GetSeq() != 1 || e.GetSeq() != 1 {
				t.Fatalf("forwarded message %v", e)
			}
			s += ":forwarded"
		}
		if v := e.GetVersion(); (e.GetDirectBlockChanged() != nil || e.GetMessageForwarded() != nil) && v != 0 {
			t.Fatalf("%s has version %d", s, v)
		}
		byStream[name] = append(byStream[name], s)
	}
	// Events of one stream are in order; streams interleave by partition.
	want := map[string][]string{
		"dm": {"c-dm/ConversationCreated", "f1/MessageSent:forwarded", "b1/DirectBlockChanged",
			"s-dm/CommandRejected:ERROR_CODE_BLOCKED", "f2/CommandRejected:ERROR_CODE_BLOCKED", "f1-retry/MessageDeduplicated",
			"u1/DirectBlockChanged", "s-dm2/MessageSent"},
		"uA": {"b1/UserBlocked", "u1/UserUnblocked"},
		"g":  {"c-g/ConversationCreated", "s-g/MessageSent", "f1/MessageForwarded", "f2/MessageForwarded", "f1-retry/MessageForwarded"},
	}
	if fmt.Sprint(byStream) != fmt.Sprint(want) {
		t.Fatalf("events by stream\n got %v\nwant %v", byStream, want)
	}
	// Each derived command is in the commands topic once.
	cl := p.k.Client(kgo.ConsumeTopics(p.commands), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	derived := map[string]int{}
	var seen int
	for seen < 16 { // 11 appended by the test, 5 derived
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d commands", seen)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			var c pb.Command
			if err := proto.Unmarshal(r.Value, &c); err != nil {
				t.Fatal(err)
			}
			if c.GetDirectBlock() != nil || c.GetForwardedMessage() != nil {
				derived[fmt.Sprintf("%s->%d", c.GetCommandId(), r.Partition)]++
				if r.Partition != part(c.GetConversationId()) || string(r.Key) != c.GetConversationId() {
					t.Fatalf("derived command %s keyed %q in partition %d", c.GetCommandId(), r.Key, r.Partition)
				}
			}
		})
	}
	extra, cancelExtra := context.WithTimeout(ctx, 2*time.Second)
	defer cancelExtra()
	cl.PollFetches(extra).EachRecord(func(*kgo.Record) { seen++ })
	wantDerived := fmt.Sprint(map[string]int{fmt.Sprintf("b1->%d", part(dm)): 1, fmt.Sprintf("f1->%d", part(dm)): 1, fmt.Sprintf("f2->%d", part(dm)): 1,
		fmt.Sprintf("f1-retry->%d", part(dm)): 1, fmt.Sprintf("u1->%d", part(dm)): 1})
	if fmt.Sprint(derived) != wantDerived || seen != 16 {
		t.Fatalf("%d commands; derived %v, want %s", seen, derived, wantDerived)
	}
}

package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/eventlog"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// outcomes follows the events topic and hands out the events of a command.
type outcomes struct {
	mu sync.Mutex
	by map[string][]*pb.Event
	cl *kgo.Client
}

func followEvents(t *testing.T, p *pipeline) *outcomes {
	o := &outcomes{by: map[string][]*pb.Event{}, cl: p.k.Client(kgo.ConsumeTopics(p.events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			o.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var e pb.Event
				if proto.Unmarshal(r.Value, &e) == nil {
					o.mu.Lock()
					o.by[e.GetCommandId()] = append(o.by[e.GetCommandId()], &e)
					o.mu.Unlock()
				}
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return o
}

// await waits for the first event of command id and returns its type (the
// rejection's code for a CommandRejected).
func (o *outcomes) await(t *testing.T, id string) (string, *pb.Event) {
	t.Helper()
	var ev *pb.Event
	testenv.Eventually(t, time.Minute, func() string {
		o.mu.Lock()
		defer o.mu.Unlock()
		if evs := o.by[id]; len(evs) > 0 {
			ev = evs[0]
			return ""
		}
		return "no event of " + id + " yet"
	})
	if r := ev.GetCommandRejected(); r != nil {
		return r.GetCode().String(), ev
	}
	return schemas.EventType(ev), ev
}

// groupAcross has owner create (command id) a group with member, in
// another partition than member's user stream, so that what is decided on
// that stream must cross partitions to reach the group's decider.
func groupAcross(ctx context.Context, t *testing.T, p *pipeline, o *outcomes, id, owner, member string) string {
	t.Helper()
	var g string
	for {
		g = schemas.NewGroupConversationID()
		if testPartition(g) != testPartition(schemas.UserStreamID(member)) {
			break
		}
	}
	p.append(ctx, createGroupCmd(id, g, owner, []string{member}))
	if got, _ := o.await(t, id); got != schemas.TypeConversationCreated {
		t.Fatalf("create: %s", got)
	}
	return g
}

func banOf(id, user, reason string) *pb.Command {
	c := command(id, user, schemas.UserStreamID(user))
	c.ServicePrincipal = "ops"
	c.Body = &pb.Command_BanUser{BanUser: &pb.BanUser{Reason: reason}}
	return c
}

// TestDeciderBans runs the ban end to end on Kafka: a ban decided on the
// user's stream is written to the bans topic in its transaction, the
// decider of the group's partition refuses the banned user's commands
// appended after the ban is visible (also after a restart, from the bans
// topic alone), others' commands go on, and after the unban the user sends
// again.
func TestDeciderBans(t *testing.T) {
	p := newPipeline(t)
	o := followEvents(t, p)
	ctx := context.Background()
	group := p.k.Name("ingest")
	stop := p.startDecider(group)
	// A group in another partition than bob's stream: the ban must cross.
	g := groupAcross(ctx, t, p, o, "c1", "alice", "bob")
	p.append(ctx, banOf("b1", "bob", "spam"))
	if got, ev := o.await(t, "b1"); got != schemas.TypeUserBanned || ev.GetActorService() != "ops" || ev.GetActorUserId() != "bob" {
		t.Fatalf("ban: %s %v", got, ev)
	}
	p.append(ctx, sendCmd("s1", "bob", g, "m1"))
	if got, _ := o.await(t, "s1"); got != "ERROR_CODE_USER_BANNED" {
		t.Fatalf("bob's send after the ban: %s", got)
	}
	p.append(ctx, sendCmd("s2", "alice", g, "m2"))
	if got, _ := o.await(t, "s2"); got != schemas.TypeMessageSent {
		t.Fatalf("alice's send: %s", got)
	}

	// A new decider learns the ban from the bans topic.
	stop()
	stop = p.startDecider(group)
	defer func() { stop() }()
	p.append(ctx, sendCmd("s3", "bob", g, "m3"))
	if got, _ := o.await(t, "s3"); got != "ERROR_CODE_USER_BANNED" {
		t.Fatalf("bob's send after a restart: %s", got)
	}

	unban := command("u1", "bob", schemas.UserStreamID("bob"))
	unban.ServicePrincipal = "ops"
	unban.Body = &pb.Command_UnbanUser{UnbanUser: &pb.UnbanUser{}}
	p.append(ctx, unban)
	if got, _ := o.await(t, "u1"); got != schemas.TypeUserUnbanned {
		t.Fatalf("unban: %s", got)
	}
	p.append(ctx, sendCmd("s4", "bob", g, "m4"))
	if got, ev := o.await(t, "s4"); got != schemas.TypeMessageSent || ev.GetSeq() != 2 {
		t.Fatalf("bob's send after the unban: %s %v", got, ev)
	}

	// The bans topic holds the ban, then bob's tombstone; a follower
	// reading it from the start sees both, in order.
	var mu sync.Mutex
	var seen []string
	f, err := ingest.NewBanFollower(ingest.BanFollowerConfig{Seeds: p.k.Seeds, Topic: p.bans,
		OnChange: func(user string, b ingest.Ban, banned bool) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s:%v:%s:%s", user, banned, b.Reason, b.By))
		}})
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(fctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-f.Ready():
	case <-time.After(time.Minute):
		t.Fatal("the follower is not ready")
	}
	mu.Lock()
	got := fmt.Sprint(seen)
	mu.Unlock()
	if got != "[bob:true:spam:ops bob:false::]" {
		t.Fatalf("the follower saw %s", got)
	}
	if _, banned := f.Ban("bob"); banned {
		t.Fatal("bob still banned")
	}
}

// testPartition is the partition of key in the test's topics.
func testPartition(key string) int32 { return eventlog.PartitionFor(key, schemas.DefaultPartitions) }

// TestBanFollowerMissingTopic: a bans topic not created holds no ban (no
// ban can commit without it): the follower is ready at once and catches up.
func TestBanFollowerMissingTopic(t *testing.T) {
	k := testenv.Kafka(t)
	f, err := ingest.NewBanFollower(ingest.BanFollowerConfig{Seeds: k.Seeds, Topic: k.Name("no-bans")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-f.Ready():
	case <-time.After(time.Minute):
		t.Fatal("the follower of a missing topic is not ready")
	}
	if err := f.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, banned := f.Ban("bob"); banned {
		t.Fatal("a ban from nowhere")
	}
}

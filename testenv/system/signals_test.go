package system_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// waitSignal returns the first signal on d that matches, failing after 30s.
func (d *device) waitSignal(what string, match func(*pb.Signal) bool) *pb.Signal {
	d.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-d.signals:
			if match(s) {
				return s
			}
		case <-deadline:
			d.t.Fatalf("%s/%s: %s did not arrive in 30s", d.user, d.name, what)
			return nil
		}
	}
}

func presenceIs(user string, st pb.PresenceState) func(*pb.Signal) bool {
	return func(s *pb.Signal) bool {
		return s.GetPresence().GetUserId() == user && s.GetPresence().GetState() == st
	}
}

// watch sends WatchPresence and returns the answer, by user.
func (d *device) watch(users ...string) map[string]*pb.UserPresence {
	d.t.Helper()
	f := d.do("", &pb.WatchPresence{UserIds: users})
	if f.GetPresences() == nil {
		d.t.Fatalf("%s/%s: want Presences, got %v", d.user, d.name, f)
	}
	out := map[string]*pb.UserPresence{}
	for _, p := range f.GetPresences().GetUsers() {
		out[p.GetUserId()] = p
	}
	return out
}

// readTopic reads every record of topic that is there now.
func readTopic(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	cl := testenv.Kafka(t).Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}

// TestSignalsTyping: typing crosses gateways to the other member, not to
// the typist's own devices nor to non-members, and leaves no trace in the
// event log or in history.
func TestSignalsTyping(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	phone := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	bob := connect(t, sys, 1, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	conv := accepted(t, phone.do("", direct("bob")))
	for _, d := range []*device{phone, laptop, bob} {
		d.waitEvent(func(e *pb.Event) bool { return e.GetConversationCreated() != nil })
	}

	phone.sendAsync(conv, &pb.Typing{Active: true})
	sig := bob.waitSignal("alice's typing", func(s *pb.Signal) bool { return s.GetTyping() != nil }).GetTyping()
	if sig.GetConversationId() != conv || sig.GetUserId() != "alice" || sig.GetDeviceId() != "phone" || !sig.GetActive() {
		t.Fatalf("bob got typing %v", sig)
	}
	if !sig.GetExpiresAt().AsTime().After(time.Now()) {
		t.Fatalf("typing already expired: %v", sig.GetExpiresAt().AsTime())
	}
	phone.sendAsync(conv, &pb.Typing{Active: false})
	bob.waitSignal("alice stopping", func(s *pb.Signal) bool { return s.GetTyping() != nil && !s.GetTyping().GetActive() })
	// The laptop is on bob's gateway, which handled both records by now.
	select {
	case s := <-laptop.signals:
		t.Fatalf("the typist's own laptop got %v", s)
	default:
	}

	if f := carol.do(conv, &pb.Typing{Active: true}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("non-member typing: want NOT_MEMBER, got %v", f)
	}
	if f := carol.do("", &pb.Typing{Active: true}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("typing without a conversation: want INVALID_ARGUMENT, got %v", f)
	}

	accepted(t, phone.do(conv, send("m1", "hello")))
	bob.waitEvent(isMessage(conv))
	h, code := allHistory(t, sys, "bob", conv)
	if code != 200 || len(h.Messages) != 1 || h.Messages[0].Seq != 1 || h.Messages[0].ClientMsgID != "m1" {
		t.Fatalf("history after typing: %d %+v", code, h.Messages)
	}
	var types []string
	for _, r := range readTopic(t, sys.Topics.Events.Name) {
		if string(r.Key) == conv {
			ev := &pb.Event{}
			if err := proto.Unmarshal(r.Value, ev); err != nil {
				t.Fatal(err)
			}
			types = append(types, string(ev.ProtoReflect().WhichOneof(ev.ProtoReflect().Descriptor().Oneofs().ByName("body")).Name()))
		}
	}
	if len(types) != 2 || types[0] != "conversation_created" || types[1] != "message_sent" {
		t.Fatalf("events of the conversation: %v (typing must not be an event)", types)
	}
	typing := 0
	for _, r := range readTopic(t, sys.Topics.Signals.Name) {
		sig := &pb.GatewaySignal{}
		if proto.Unmarshal(r.Value, sig) == nil && sig.GetTyping().GetConversationId() == conv {
			typing++
		}
	}
	if typing != 2 {
		t.Fatalf("%d typing records of the conversation on the signals topic, want 2", typing)
	}
}

// TestSignalsPresence: presence aggregates a user's devices across
// gateways, and reaches watchers live.
func TestSignalsPresence(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	bob := connect(t, sys, 0, "bob", "phone")
	got := bob.watch("alice", "nobody")
	if got["alice"].GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE || got["nobody"].GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE {
		t.Fatalf("before anyone connects: %v", got)
	}
	phone := connect(t, sys, 1, "alice", "phone")
	bob.waitSignal("alice online", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_ONLINE))
	phone.sendAsync("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_AWAY})
	bob.waitSignal("alice away", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_AWAY))
	laptop := connect(t, sys, 0, "alice", "laptop")
	bob.waitSignal("alice online on her laptop", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_ONLINE))
	if p := bob.watch("alice")["alice"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_ONLINE {
		t.Fatalf("watch while online: %v", p)
	}
	laptop.close()
	bob.waitSignal("alice away again (phone)", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_AWAY))
	before := time.Now()
	phone.close()
	off := bob.waitSignal("alice offline", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_OFFLINE)).GetPresence()
	if ls := off.GetLastSeen().AsTime(); off.GetLastSeen() == nil || ls.Before(before.Add(-time.Second)) || ls.After(time.Now()) {
		t.Fatalf("last seen %v, want about %v", off.GetLastSeen(), before)
	}
	if f := bob.do("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_OFFLINE}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("SetPresence OFFLINE: want INVALID_ARGUMENT, got %v", f)
	}
	many := make([]string, gateway.DefaultSignals.MaxPresenceWatch+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	if f := bob.do("", &pb.WatchPresence{UserIds: many}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("watching too many: want INVALID_ARGUMENT, got %v", f)
	}
}

// TestSignalsPresenceExpiry: a gateway that stops without a word (a crash)
// leaves its devices online only until their TTL runs out; a gateway that
// restarts learns who is online from the signals topic alone.
func TestSignalsPresenceExpiry(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 1,
		GatewaySignals: gateway.Signals{PresenceTTL: 3 * time.Second, PresenceRefresh: time.Second}})
	cl := testenv.Kafka(t).Client(kgo.DefaultProduceTopic(sys.Topics.Signals.Name))
	defer cl.Close()
	// What a gateway that then crashed would have written: its devices,
	// stated once and never again.
	state := func(user string, ttl time.Duration) time.Time {
		at := time.Now()
		v, _ := proto.Marshal(&pb.GatewaySignal{GatewayId: "crashed-" + user, At: timestamppb.New(at),
			Body: &pb.GatewaySignal_Presence{Presence: &pb.DevicePresences{Ttl: durationpb.New(ttl),
				Devices: []*pb.DevicePresence{{UserId: user, DeviceId: "phone", State: pb.PresenceState_PRESENCE_STATE_ONLINE}}}}})
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte("crashed-" + user), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return at
	}

	bob := connect(t, sys, 0, "bob", "phone")
	bob.watch("dave")
	at := state("dave", 3*time.Second)
	bob.waitSignal("dave online", presenceIs("dave", pb.PresenceState_PRESENCE_STATE_ONLINE))
	off := bob.waitSignal("dave offline by expiry", presenceIs("dave", pb.PresenceState_PRESENCE_STATE_OFFLINE)).GetPresence()
	if !off.GetLastSeen().AsTime().Equal(at.Truncate(time.Nanosecond)) {
		t.Fatalf("dave last seen %v, want the crashed gateway's last statement %v", off.GetLastSeen().AsTime(), at)
	}

	// erin's entry holds for a minute; restart the gateway and she is still
	// online there, though nothing restated her after the restart.
	bob.watch("erin")
	state("erin", time.Minute)
	bob.waitSignal("erin online", presenceIs("erin", pb.PresenceState_PRESENCE_STATE_ONLINE))
	bob.close()
	if err := sys.StopComponent("gateway-0"); err != nil {
		t.Fatal(err)
	}
	if err := sys.StartComponent("gateway-0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sys.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	again := connect(t, sys, 0, "bob", "laptop")
	eventually(t, 20*time.Second, func() string {
		if p := again.watch("erin")["erin"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_ONLINE {
			return "after the restart erin is " + p.GetState().String()
		}
		return ""
	})
}

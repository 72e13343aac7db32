package system_test

import (
	"context"
	"fmt"
	"strings"
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

func presenceIs(user string, st pb.PresenceState) func(*pb.Signal) bool {
	return func(s *pb.Signal) bool {
		return s.GetPresence().GetUserId() == user && s.GetPresence().GetState() == st
	}
}

// watch sends WatchPresence and returns the answer, by user.
func watch(t testing.TB, d *testenv.WSClient, users ...string) map[string]*pb.UserPresence {
	t.Helper()
	f := d.MustDo("", &pb.WatchPresence{UserIds: users})
	if f.GetPresences() == nil {
		t.Fatalf("%s: want Presences, got %v", d.Name(), f)
	}
	out := map[string]*pb.UserPresence{}
	for _, p := range f.GetPresences().GetUsers() {
		out[p.GetUserId()] = p
	}
	return out
}

// share gives d's user a direct conversation with each of users and waits
// until the views list them as co-members: presence is private to users
// who share a conversation.
func share(t testing.TB, sys *system.System, d *testenv.WSClient, users ...string) {
	t.Helper()
	me := strings.SplitN(d.Name(), "/", 2)[0]
	for _, u := range users {
		conv := accepted(t, d.MustDo("", direct(u)))
		testenv.Eventually(t, time.Minute, func() string {
			var c struct {
				Members []struct {
					UserID string `json:"user_id"`
				} `json:"members"`
			}
			if code := api(t, sys, me, "/v1/conversations/"+conv, &c); code != 200 || len(c.Members) != 2 {
				return fmt.Sprintf("%s and %s: conversation status %d, %d members", me, u, code, len(c.Members))
			}
			return ""
		})
	}
}

// readTopicUntil reads topic (committed records only) from the start until
// last is true of a record, and returns the records up to it; it fails after
// 30 s. Records of one key are in order, so when last names the final record
// of a key every earlier one of that key is among those returned.
func readTopicUntil(t *testing.T, topic string, last func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl := testenv.Kafka(t).Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: the awaited record is not among %d read in a minute", topic, len(recs))
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !done {
				recs = append(recs, r)
				done = last(r)
			}
		})
		if done {
			return recs
		}
	}
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
	conv := accepted(t, phone.MustDo("", direct("bob")))
	for _, d := range []*testenv.WSClient{phone, laptop, bob} {
		d.WaitEvent("ConversationCreated", func(e *pb.Event) bool { return e.GetConversationCreated() != nil })
	}

	phone.Start(conv, &pb.Typing{Active: true}) // answered only if refused
	sig := bob.WaitSignal("alice's typing", func(s *pb.Signal) bool { return s.GetTyping() != nil }).GetTyping()
	if sig.GetConversationId() != conv || sig.GetUserId() != "alice" || sig.GetDeviceId() != "phone" || !sig.GetActive() {
		t.Fatalf("bob got typing %v", sig)
	}
	if !sig.GetExpiresAt().AsTime().After(time.Now()) {
		t.Fatalf("typing already expired: %v", sig.GetExpiresAt().AsTime())
	}
	phone.Start(conv, &pb.Typing{Active: false})
	bob.WaitSignal("alice stopping", func(s *pb.Signal) bool { return s.GetTyping() != nil && !s.GetTyping().GetActive() })
	// The laptop is on bob's gateway, which has handled both records by now:
	// had it routed one to the laptop, it would be on its way.
	laptop.ExpectNoSignal("the typist's own laptop", time.Second, func(s *pb.Signal) bool { return s.GetTyping() != nil })

	if f := carol.MustDo(conv, &pb.Typing{Active: true}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("non-member typing: want NOT_MEMBER, got %v", f)
	}
	if f := carol.MustDo("", &pb.Typing{Active: true}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("typing without a conversation: want INVALID_ARGUMENT, got %v", f)
	}

	accepted(t, phone.MustDo(conv, send("m1", "hello")))
	bob.WaitEvent("a message of "+conv, isMessage(conv))
	// The live event does not wait for the projector.
	testenv.Eventually(t, time.Minute, func() string {
		h, code := allHistory(t, sys, "bob", conv)
		if code != 200 || len(h.Messages) != 1 || h.Messages[0].Seq != 1 || h.Messages[0].ClientMsgID != "m1" {
			return fmt.Sprintf("history after typing: %d %+v", code, h.Messages)
		}
		return ""
	})
	var types []string
	// m1 is the conversation's last event; a typing event would be before it.
	for _, r := range readTopicUntil(t, sys.Topics.Events.Name, func(r *kgo.Record) bool {
		ev := &pb.Event{}
		return string(r.Key) == conv && proto.Unmarshal(r.Value, ev) == nil && ev.GetMessageSent().GetClientMsgId() == "m1"
	}) {
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
	// Up to the stop, which bob has seen, so it is on the topic.
	for _, r := range readTopicUntil(t, sys.Topics.Signals.Name, func(r *kgo.Record) bool {
		sig := &pb.GatewaySignal{}
		return proto.Unmarshal(r.Value, sig) == nil && sig.GetTyping().GetConversationId() == conv && !sig.GetTyping().GetActive()
	}) {
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
	share(t, sys, bob, "alice")
	got := watch(t, bob, "alice", "nobody")
	if got["alice"].GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE || got["nobody"].GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE {
		t.Fatalf("before anyone connects: %v", got)
	}
	phone := connect(t, sys, 1, "alice", "phone")
	bob.WaitSignal("alice online", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_ONLINE))
	phone.Start("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_AWAY}) // answered only if refused
	bob.WaitSignal("alice away", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_AWAY))
	laptop := connect(t, sys, 0, "alice", "laptop")
	bob.WaitSignal("alice online on her laptop", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_ONLINE))
	if p := watch(t, bob, "alice")["alice"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_ONLINE {
		t.Fatalf("watch while online: %v", p)
	}
	laptop.Close()
	bob.WaitSignal("alice away again (phone)", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_AWAY))
	before := time.Now()
	phone.Close()
	off := bob.WaitSignal("alice offline", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_OFFLINE)).GetPresence()
	if ls := off.GetLastSeen().AsTime(); off.GetLastSeen() == nil || ls.Before(before.Add(-time.Second)) || ls.After(time.Now()) {
		t.Fatalf("last seen %v, want about %v", off.GetLastSeen(), before)
	}
	if f := bob.MustDo("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_OFFLINE}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("SetPresence OFFLINE: want INVALID_ARGUMENT, got %v", f)
	}
	many := make([]string, gateway.DefaultSignals.MaxPresenceWatch+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	if f := bob.MustDo("", &pb.WatchPresence{UserIds: many}); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("watching too many: want INVALID_ARGUMENT, got %v", f)
	}
}

// TestSignalsPresenceStates: busy and do-not-disturb reach watchers on
// another gateway as stated; invisible shows as offline, with the last-seen
// of the moment it went invisible, until the device is visible again.
func TestSignalsPresenceStates(t *testing.T) {
	t.Parallel()
	// Restated every second, so the quiet window below spans several.
	sig := gateway.Signals{PresenceRefresh: time.Second, PresenceTTL: 3 * time.Second}
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewaySignals: sig})
	bob := connect(t, sys, 0, "bob", "phone")
	share(t, sys, bob, "alice")
	watch(t, bob, "alice")
	phone := connect(t, sys, 1, "alice", "phone")
	bob.WaitSignal("alice online", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_ONLINE))
	for _, st := range []pb.PresenceState{pb.PresenceState_PRESENCE_STATE_BUSY, pb.PresenceState_PRESENCE_STATE_DO_NOT_DISTURB} {
		phone.Start("", &pb.SetPresence{State: st}) // answered only if refused
		bob.WaitSignal("alice "+st.String(), presenceIs("alice", st))
	}
	before := time.Now()
	phone.Start("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_INVISIBLE})
	off := bob.WaitSignal("alice invisible, shown offline", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_OFFLINE)).GetPresence()
	if ls := off.GetLastSeen().AsTime(); off.GetLastSeen() == nil || ls.Before(before.Add(-time.Second)) || ls.After(time.Now()) {
		t.Fatalf("last seen %v, want about %v", off.GetLastSeen(), before)
	}
	// Her restatements while invisible (PresenceRefresh) move nothing.
	bob.ExpectNoSignal("any presence of invisible alice", 3*sig.PresenceRefresh, func(s *pb.Signal) bool {
		return s.GetPresence().GetUserId() == "alice"
	})
	if p := watch(t, bob, "alice")["alice"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE || !p.GetLastSeen().AsTime().Equal(off.GetLastSeen().AsTime()) {
		t.Fatalf("watch while invisible: %v, want offline, last seen %v", p, off.GetLastSeen().AsTime())
	}
	phone.Start("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_ONLINE})
	bob.WaitSignal("alice visible again", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_ONLINE))
}

// statePresence writes what a gateway that then crashed would have written:
// user's phone online, stated once and never again.
func statePresence(t *testing.T, cl *kgo.Client, user string, ttl time.Duration) time.Time {
	t.Helper()
	at := time.Now()
	v, _ := proto.Marshal(&pb.GatewaySignal{GatewayId: "crashed-" + user, At: timestamppb.New(at),
		Body: &pb.GatewaySignal_Presence{Presence: &pb.DevicePresences{Ttl: durationpb.New(ttl),
			Devices: []*pb.DevicePresence{{UserId: user, DeviceId: "phone", State: pb.PresenceState_PRESENCE_STATE_ONLINE}}}}})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte("crashed-" + user), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestSignalsPresenceExpiry: a gateway that stops without a word (a crash)
// leaves its devices online only until their TTL runs out.
func TestSignalsPresenceExpiry(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 1,
		GatewaySignals: gateway.Signals{PresenceTTL: 3 * time.Second, PresenceRefresh: time.Second}})
	cl := testenv.Kafka(t).Client(kgo.DefaultProduceTopic(sys.Topics.Signals.Name))
	bob := connect(t, sys, 0, "bob", "phone")
	share(t, sys, bob, "dave")
	watch(t, bob, "dave")
	at := statePresence(t, cl, "dave", 3*time.Second)
	bob.WaitSignal("dave online", presenceIs("dave", pb.PresenceState_PRESENCE_STATE_ONLINE))
	off := bob.WaitSignal("dave offline by expiry", presenceIs("dave", pb.PresenceState_PRESENCE_STATE_OFFLINE)).GetPresence()
	if !off.GetLastSeen().AsTime().Equal(at.Truncate(time.Nanosecond)) {
		t.Fatalf("dave last seen %v, want the crashed gateway's last statement %v", off.GetLastSeen().AsTime(), at)
	}
}

// TestSignalsPresenceRestart: a gateway that restarts learns who is online
// from the signals topic alone. The TTL (gateway and statement alike) is
// ten minutes, so however long the restart takes on a loaded machine the
// statement is still within the TTL the restarted gateway reads back.
func TestSignalsPresenceRestart(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 1,
		GatewaySignals: gateway.Signals{PresenceTTL: 10 * time.Minute, PresenceRefresh: time.Minute}})
	cl := testenv.Kafka(t).Client(kgo.DefaultProduceTopic(sys.Topics.Signals.Name))
	bob := connect(t, sys, 0, "bob", "phone")
	share(t, sys, bob, "erin")
	watch(t, bob, "erin")
	statePresence(t, cl, "erin", 10*time.Minute)
	bob.WaitSignal("erin online", presenceIs("erin", pb.PresenceState_PRESENCE_STATE_ONLINE))
	bob.Close()
	if err := sys.StopComponent("gateway-0"); err != nil {
		t.Fatal(err)
	}
	if err := sys.StartComponent("gateway-0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sys.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing restated erin after the restart.
	again := connect(t, sys, 0, "bob", "laptop")
	testenv.Eventually(t, time.Minute, func() string {
		if p := watch(t, again, "erin")["erin"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_ONLINE {
			return "after the restart erin is " + p.GetState().String()
		}
		return ""
	})
}

// TestSignalsPresencePrivate: a user who shares no conversation with alice
// sees her offline, without lastSeen, and gets no change of hers, while a
// co-member watching in the same way sees her online.
func TestSignalsPresencePrivate(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice := connect(t, sys, 1, "alice", "phone")
	bob := connect(t, sys, 0, "bob", "phone")
	mallory := connect(t, sys, 0, "mallory", "phone")
	share(t, sys, bob, "alice")
	if p := watch(t, bob, "alice")["alice"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_ONLINE {
		t.Fatalf("bob, a co-member, sees alice %v", p)
	}
	if p := watch(t, mallory, "alice", "mallory")["alice"]; p.GetState() != pb.PresenceState_PRESENCE_STATE_OFFLINE || p.GetLastSeen() != nil {
		t.Fatalf("mallory, a stranger, sees alice %v", p)
	}
	alice.Start("", &pb.SetPresence{State: pb.PresenceState_PRESENCE_STATE_BUSY})
	bob.WaitSignal("alice busy", presenceIs("alice", pb.PresenceState_PRESENCE_STATE_BUSY))
	// The change reached bob, on the gateway mallory is on too.
	mallory.ExpectNoSignal("alice's presence", time.Second, func(s *pb.Signal) bool { return s.GetPresence().GetUserId() == "alice" })
}

package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// TestEventsReachActorDevices: an event reaches every session of its actor
// user (the sender's other devices too), and nobody else's.
func TestEventsReachActorDevices(t *testing.T) {
	t.Parallel()
	e := start(t)
	phone := e.dial("alice", "phone")
	laptop := e.dial("alice", "laptop", gateway.SubprotocolProto)
	bob := e.dial("bob", "phone")

	e.produceEvent(messageSent("c1", 1, "alice", "phone", "hello"))
	for _, c := range []*client{phone, laptop} {
		ev := c.nextEvent()
		if ev.GetSeq() != 1 || ev.GetMessageSent().GetText() != "hello" || ev.GetActorDeviceId() != "phone" {
			t.Fatalf("got %v", ev)
		}
	}
	// Same conversation, so same partition and order: bob's first event
	// must be his own, proving alice's did not reach him.
	e.produceEvent(messageSent("c1", 2, "bob", "phone", "hi alice"))
	if ev := bob.nextEvent(); ev.GetSeq() != 2 {
		t.Fatalf("bob got %v first", ev)
	}
}

// TestEventsAnswersOnlyToActorDevice: CommandRejected and
// MessageDeduplicated answer one device's command and go to it alone.
func TestEventsAnswersOnlyToActorDevice(t *testing.T) {
	t.Parallel()
	e := start(t)
	phone := e.dial("alice", "phone")
	laptop := e.dial("alice", "laptop")

	e.produceEvent(&pb.Event{ConversationId: "c1", CommandId: "x1", ActorUserId: "alice", ActorDeviceId: "phone",
		Body: &pb.Event_CommandRejected{CommandRejected: &pb.CommandRejected{Code: pb.ErrorCode_ERROR_CODE_NOT_MEMBER,
			ClientMsgId: "m9", CommandType: "SendMessage"}}})
	e.produceEvent(&pb.Event{ConversationId: "c1", CommandId: "x2", ActorUserId: "alice", ActorDeviceId: "phone",
		Body: &pb.Event_MessageDeduplicated{MessageDeduplicated: &pb.MessageDeduplicated{ClientMsgId: "m1", OriginalSeq: 1}}})
	e.produceEvent(messageSent("c1", 3, "alice", "phone", "for all devices"))

	if ev := phone.nextEvent(); ev.GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("phone got %v", ev)
	}
	if ev := phone.nextEvent(); ev.GetMessageDeduplicated().GetOriginalSeq() != 1 {
		t.Fatalf("phone got %v", ev)
	}
	if ev := phone.nextEvent(); ev.GetSeq() != 3 {
		t.Fatalf("phone got %v", ev)
	}
	if ev := laptop.nextEvent(); ev.GetSeq() != 3 {
		t.Fatalf("laptop got %v first; the answers were for the phone only", ev)
	}
}

// TestSessionReplaced: a second connection of the same (user, device)
// replaces the first, which is closed with 4000; events go to the new one.
func TestSessionReplaced(t *testing.T) {
	t.Parallel()
	e := start(t)
	first := e.dial("alice", "phone")
	second := e.dial("alice", "phone")
	if ce := first.closed(); ce.Code != gateway.CloseReplaced {
		t.Fatalf("first closed with %v, want 4000", ce)
	}
	e.produceEvent(messageSent("c1", 1, "alice", "phone", "to the newest"))
	if ev := second.nextEvent(); ev.GetSeq() != 1 {
		t.Fatalf("got %v", ev)
	}
	checkFor(t, 5*time.Second, func() error {
		if v := e.metric("parley_gateway_sessions"); v != 1 {
			return errorf("sessions gauge %v", v)
		}
		return nil
	})
	if v := e.metric("parley_gateway_sessions_replaced_total"); v != 1 {
		t.Fatalf("sessions_replaced_total %v", v)
	}
}

// TestSlowConsumerDisconnected: a device that stops reading is closed when
// its queue fills, and meanwhile another session gets its events on time.
func TestSlowConsumerDisconnected(t *testing.T) {
	t.Parallel()
	e := start(t, withLimits(gateway.Limits{OutboundQueue: 16}), withSmallSocketBuffers())
	slow := e.dialRaw("slow", "d") // never reads
	if tc, ok := slow.conn.NetConn().(interface{ SetReadBuffer(int) error }); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fast := e.dial("fast", "d")

	// One conversation, so one partition: the consumer must get through the
	// whole flood for the slow device before it reaches the fast device's
	// event, which therefore arrives only if the flood never blocked it.
	text := strings.Repeat("x", 4096)
	const n = 300
	for i := range n {
		e.producer.Produce(t.Context(), recordOf(messageSent("c", int64(i+1), "slow", "d", text)), nil)
	}
	e.produceEvent(messageSent("c", n+1, "fast", "d", "still on time"))
	produced := time.Now()
	if ev := fast.nextEvent(); ev.GetMessageSent().GetText() != "still on time" {
		t.Fatalf("fast got %v", ev)
	}
	t.Logf("fast device got its event %v after it was produced, behind %d events for the slow one", time.Since(produced), n)
	checkFor(t, 10*time.Second, func() error {
		if v := e.metric("parley_gateway_slow_consumer_disconnects_total"); v != 1 {
			return errorf("slow_consumer_disconnects_total %v", v)
		}
		if v := e.metric("parley_gateway_sessions"); v != 1 {
			return errorf("sessions gauge %v", v)
		}
		return nil
	})
	// The slow device, reading at last, finds the end of the connection
	// after what was in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := slow.Ended(ctx); err == nil {
		t.Fatal("the slow connection ended without an error")
	}
	// The fast session is unaffected.
	fast.sendText(`{"requestId":"p","ping":{}}`)
	if fast.next().GetPong() == nil {
		t.Fatal("fast session broken")
	}
}

// TestHeartbeat: a device that answers pings stays connected past the idle
// timeout; one that neither reads nor writes is closed after it.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	e := start(t, withLimits(gateway.Limits{PingInterval: 100 * time.Millisecond, IdleTimeout: 400 * time.Millisecond}))
	alive := e.dial("alice", "phone") // reads, so gorilla answers pings
	aliveSince := time.Now()
	mute := e.dialRaw("alice", "laptop")
	// The mute device reads (so the test sees its end) but never answers:
	// no pong to the gateway's pings, no echo of its close frame (the
	// gateway drops an idle connection right after it, so echoing fails).
	mute.conn.SetCloseHandler(func(int, string) error { return nil })
	mute.conn.SetPingHandler(func(string) error { return nil })
	mute.startReading()
	if mute.next().GetWelcome() == nil {
		t.Fatal("no welcome")
	}
	if ce := mute.closed(); ce.Code != websocket.CloseGoingAway || ce.Text != "idle timeout" {
		t.Fatalf("closed with %v", ce)
	}
	// alive connected before mute, so it has now been connected longer than
	// the idle timeout that ended mute's session, and is still served.
	if d := time.Since(aliveSince); d < 400*time.Millisecond {
		t.Fatalf("mute closed %s after connecting, before its idle timeout", d)
	}
	alive.sendText(`{"requestId":"p","ping":{}}`)
	if alive.next().GetPong() == nil {
		t.Fatal("no pong")
	}
}

// TestTokenExpiry: the session ends when its token does.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	e := start(t)
	tok, _ := e.issuer.Issue("alice", "phone", 1500*time.Millisecond)
	c := wrap(t, testenv.DialWS(t, e.ws, testenv.WSOptions{Token: tok, Name: "alice/phone"}))
	if c.next().GetWelcome() == nil {
		t.Fatal("no welcome")
	}
	if e := c.refused(pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED); e.GetRequestId() != "" {
		t.Fatalf("error %v", e)
	}
	if ce := c.closed(); ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("closed with %v", ce)
	}
}

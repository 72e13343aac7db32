package system_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/system"
)

// fast lifts the rate limit for tests that send in bulk.
var fast = gateway.Limits{RatePerSecond: 10_000, Burst: 10_000}

func group(title string, members ...string) *pb.CreateConversation {
	return &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: title, MemberUserIds: members}
}

// collect returns the events on d that match until it has n, failing after 30s.
func (d *device) collect(n int, match func(*pb.Event) bool) []*pb.Event {
	d.t.Helper()
	var out []*pb.Event
	for len(out) < n {
		out = append(out, d.waitEvent(match))
	}
	return out
}

// quiet returns every event that arrives on d within dur.
func (d *device) quiet(dur time.Duration) []*pb.Event {
	var out []*pb.Event
	deadline := time.After(dur)
	for {
		select {
		case e := <-d.events:
			out = append(out, e)
		case <-deadline:
			return out
		}
	}
}

func isMessage(conv string) func(*pb.Event) bool {
	return func(e *pb.Event) bool { return e.GetConversationId() == conv && e.GetMessageSent() != nil }
}

// TestFanoutGroupTwoGateways: 5 users with 2 devices each over 2 gateways;
// every device gets every message exactly once and in seq order, the
// sender's other device included.
func TestFanoutGroupTwoGateways(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	var devs []*device
	for i := range 5 {
		for j, name := range []string{"phone", "tab"} {
			devs = append(devs, connect(t, sys, (i+j)%2, fmt.Sprintf("u%d", i), name))
		}
	}
	conv := accepted(t, devs[0].do("", group("five", "u1", "u2", "u3", "u4")))
	for _, d := range devs {
		d.waitEvent(func(e *pb.Event) bool { return e.GetConversationCreated() != nil })
	}
	var answers []chan *pb.ServerFrame
	for k := range 50 {
		answers = append(answers, devs[(k%5)*2].sendAsync(conv, send(fmt.Sprintf("m%d", k), "hi")))
	}
	for _, a := range answers {
		accepted(t, <-a)
	}
	for _, d := range devs {
		evs := d.collect(50, isMessage(conv))
		ids := map[string]bool{}
		for i, e := range evs {
			ids[e.GetMessageSent().GetClientMsgId()] = true
			if i > 0 && e.GetSeq() != evs[i-1].GetSeq()+1 {
				t.Fatalf("%s/%s: seq %d after %d", d.user, d.name, e.GetSeq(), evs[i-1].GetSeq())
			}
		}
		if len(ids) != 50 {
			t.Fatalf("%s/%s: %d distinct messages", d.user, d.name, len(ids))
		}
	}
	for _, d := range devs {
		for _, e := range d.quiet(100 * time.Millisecond) {
			if e.GetMessageSent() != nil {
				t.Fatalf("%s/%s: message seq %d twice", d.user, d.name, e.GetSeq())
			}
		}
	}
}

// TestFanoutMembership: a removed member gets its MemberRemoved and nothing
// after; an added member gets everything from its MembersAdded on.
func TestFanoutMembership(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	a, b, c, d := connect(t, sys, 0, "a", "phone"), connect(t, sys, 1, "b", "phone"),
		connect(t, sys, 0, "c", "phone"), connect(t, sys, 1, "d", "phone")
	conv := accepted(t, a.do("", group("g", "b", "c")))
	accepted(t, a.do(conv, send("m1", "one")))
	b.waitEvent(isMessage(conv))
	c.waitEvent(isMessage(conv))
	accepted(t, a.do(conv, &pb.RemoveMember{UserId: "c"}))
	c.waitEvent(func(e *pb.Event) bool { return e.GetMemberRemoved().GetUserId() == "c" })
	accepted(t, a.do(conv, &pb.AddMembers{UserIds: []string{"d"}}))
	d.waitEvent(func(e *pb.Event) bool { return e.GetMembersAdded() != nil })
	accepted(t, a.do(conv, send("m2", "two")))
	b.waitEvent(isMessage(conv))
	d.waitEvent(isMessage(conv))
	for _, e := range c.quiet(200 * time.Millisecond) {
		if e.GetConversationId() == conv {
			t.Fatalf("removed member got %v", e)
		}
	}
}

// TestFanoutReceipts: in a 1:1, the sender's device sees the peer's ReadUpTo live.
func TestFanoutReceipts(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 1, "bob", "phone")
	conv := accepted(t, alice.do("", direct("bob")))
	accepted(t, alice.do(conv, send("m1", "hello")))
	seq := bob.waitEvent(isMessage(conv)).GetSeq()
	accepted(t, bob.do(conv, &pb.MarkRead{UpToSeq: seq}))
	alice.waitEvent(func(e *pb.Event) bool {
		return e.GetActorUserId() == "bob" && e.GetReadUpTo().GetUpToSeq() == seq
	})
}

// TestResumeOffline: a device misses 500 messages in 20 conversations,
// resumes with its cursors, gets exactly those in order, then live.
func TestResumeOffline(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: fast})
	r := connect(t, sys, 0, "r", "phone")
	s := connect(t, sys, 1, "s", "phone")
	cursors := map[string]int64{}
	var convs []string
	for i := range 20 {
		conv := accepted(t, s.do("", group(fmt.Sprintf("g%d", i), "r")))
		convs = append(convs, conv)
		cursors[conv] = r.waitEvent(func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetConversationCreated() != nil
		}).GetSeq()
	}
	r.close()
	var answers []chan *pb.ServerFrame
	for k := range 25 {
		for _, conv := range convs {
			answers = append(answers, s.sendAsync(conv, send(fmt.Sprintf("%s-%d", conv, k), "missed")))
		}
	}
	for _, a := range answers {
		accepted(t, <-a)
	}
	// Offline long enough for the views to have everything it missed.
	eventually(t, 30*time.Second, func() string {
		for _, conv := range convs {
			if last, _, _ := inboxEntry(t, sys, "s", conv); last != cursors[conv]+25 {
				return fmt.Sprintf("%s at %d, want %d", conv, last, cursors[conv]+25)
			}
		}
		return ""
	})
	r = connectResuming(t, sys, 1, "r", "phone")
	begin := time.Now()
	evs, resumed := r.resume(cursors)
	t.Logf("resume of %d events took %s", len(evs), time.Since(begin))
	checkResumed(t, evs, cursors, 25)
	for _, c := range resumed.GetCursors() {
		if c.GetLastSeq() != cursors[c.GetConversationId()]+25 {
			t.Fatalf("Resumed cursor %v, want %d", c, cursors[c.GetConversationId()]+25)
		}
	}
	accepted(t, s.do(convs[0], send("live", "after")))
	if e := r.waitEvent(isMessage(convs[0])); e.GetSeq() != cursors[convs[0]]+26 {
		t.Fatalf("live seq %d after resume at %d", e.GetSeq(), cursors[convs[0]]+25)
	}
}

// checkResumed: per conversation, exactly seqs cursor+1 … cursor+n, in order.
func checkResumed(t *testing.T, evs []*pb.Event, cursors map[string]int64, n int64) {
	t.Helper()
	next := map[string]int64{}
	for c, s := range cursors {
		next[c] = s + 1
	}
	for _, e := range evs {
		c := e.GetConversationId()
		if e.GetSeq() != next[c] {
			t.Fatalf("%s: seq %d, want %d", c, e.GetSeq(), next[c])
		}
		next[c]++
	}
	for c, s := range cursors {
		if next[c] != s+n+1 {
			t.Fatalf("%s: caught up to %d, want %d", c, next[c]-1, s+n)
		}
	}
}

// TestResumeWhileSending: senders keep going during the catch-up; every
// conversation still arrives dense, in order, without duplicates.
func TestResumeWhileSending(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: fast})
	r := connect(t, sys, 0, "r", "phone")
	s := connect(t, sys, 1, "s", "phone")
	const before, during = 40, 60
	cursors := map[string]int64{}
	var convs []string
	for i := range 5 {
		conv := accepted(t, s.do("", group(fmt.Sprintf("g%d", i), "r")))
		convs = append(convs, conv)
		cursors[conv] = r.waitEvent(func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetConversationCreated() != nil
		}).GetSeq()
	}
	r.close()
	var answers []chan *pb.ServerFrame
	for k := range before {
		for _, conv := range convs {
			answers = append(answers, s.sendAsync(conv, send(fmt.Sprintf("%s-%d", conv, k), "before")))
		}
	}
	for _, a := range answers {
		accepted(t, <-a)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := before; k < before+during; k++ {
			for _, conv := range convs {
				accepted(t, s.do(conv, send(fmt.Sprintf("%s-%d", conv, k), "during")))
			}
		}
	})
	time.Sleep(20 * time.Millisecond)
	r = connectResuming(t, sys, 1, "r", "phone")
	evs, _ := r.resume(cursors)
	wg.Wait()
	got := map[string]map[int64]bool{}
	for _, c := range convs {
		got[c] = map[int64]bool{}
	}
	add := func(e *pb.Event) {
		if e.GetMessageSent() == nil {
			return
		}
		c := e.GetConversationId()
		if got[c][e.GetSeq()] {
			t.Fatalf("%s: seq %d twice", c, e.GetSeq())
		}
		if e.GetSeq() != cursors[c]+int64(len(got[c]))+1 {
			t.Fatalf("%s: seq %d after %d (out of order or a gap)", c, e.GetSeq(), cursors[c]+int64(len(got[c])))
		}
		got[c][e.GetSeq()] = true
	}
	for _, e := range evs {
		add(e)
	}
	total := func() int {
		n := 0
		for _, m := range got {
			n += len(m)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for total() < len(convs)*(before+during) && time.Now().Before(deadline) {
		for _, e := range r.quiet(100 * time.Millisecond) {
			add(e)
		}
	}
	for _, e := range r.quiet(100 * time.Millisecond) {
		add(e)
	}
	for _, c := range convs {
		for sq := cursors[c] + 1; sq <= cursors[c]+before+during; sq++ {
			if !got[c][sq] {
				t.Fatalf("%s: seq %d missing (%d of %d)", c, sq, len(got[c]), before+during)
			}
		}
	}
	t.Logf("%d events during resume, %d in all", len(evs), total())
}

package system_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// fast lifts the rate limit for tests that send in bulk.
var fast = gateway.Limits{RatePerSecond: 10_000, Burst: 10_000}

func group(title string, members ...string) *pb.CreateConversation {
	return &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: title, MemberUserIds: members}
}

// quiet is how long a negative check waits after its barrier (an event
// that left the same gateway later has arrived) for a straggler to show.
const quiet = time.Second

// collect returns the events on d that match until it has n, failing after WSOptions.Timeout.
func collect(t testing.TB, d *testenv.WSClient, n int, what string, match func(*pb.Event) bool) []*pb.Event {
	t.Helper()
	var out []*pb.Event
	for len(out) < n {
		out = append(out, d.WaitEvent(fmt.Sprintf("%s %d of %d", what, len(out)+1, n), match))
	}
	return out
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
	var devs []*testenv.WSClient
	for i := range 5 {
		for j, name := range []string{"phone", "tab"} {
			devs = append(devs, connect(t, sys, (i+j)%2, fmt.Sprintf("u%d", i), name))
		}
	}
	conv := accepted(t, devs[0].MustDo("", group("five", "u1", "u2", "u3", "u4")))
	for _, d := range devs {
		d.WaitEvent("ConversationCreated", func(e *pb.Event) bool { return e.GetConversationCreated() != nil })
	}
	var calls []*testenv.Call
	for k := range 50 {
		calls = append(calls, devs[(k%5)*2].Go(conv, send(fmt.Sprintf("m%d", k), "hi")))
	}
	if err := waitAccepted(calls, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		evs := collect(t, d, 50, "message", isMessage(conv))
		ids := map[string]bool{}
		for i, e := range evs {
			ids[e.GetMessageSent().GetClientMsgId()] = true
			if i > 0 && e.GetSeq() != evs[i-1].GetSeq()+1 {
				t.Fatalf("%s: seq %d after %d", d.Name(), e.GetSeq(), evs[i-1].GetSeq())
			}
		}
		if len(ids) != 50 {
			t.Fatalf("%s: %d distinct messages", d.Name(), len(ids))
		}
	}
	// Every device has had the last message, so a duplicate sent with it
	// would be queued already; the quiet window catches one written late.
	for _, d := range devs {
		d.ExpectNoEvent("a message twice", quiet, isMessage(conv))
	}
}

// TestFanoutMembership: a removed member gets its MemberRemoved and nothing
// after; an added member gets everything from its MembersAdded on.
func TestFanoutMembership(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	a, b, c, d := connect(t, sys, 0, "a", "phone"), connect(t, sys, 1, "b", "phone"),
		connect(t, sys, 0, "c", "phone"), connect(t, sys, 1, "d", "phone")
	conv := accepted(t, a.MustDo("", group("g", "b", "c")))
	accepted(t, a.MustDo(conv, send("m1", "one")))
	b.WaitEvent("a message of "+conv, isMessage(conv))
	c.WaitEvent("a message of "+conv, isMessage(conv))
	accepted(t, a.MustDo(conv, &pb.RemoveMember{UserId: "c"}))
	c.WaitEvent("MemberRemoved", func(e *pb.Event) bool { return e.GetMemberRemoved().GetUserId() == "c" })
	accepted(t, a.MustDo(conv, &pb.AddMembers{UserIds: []string{"d"}}))
	d.WaitEvent("MembersAdded", func(e *pb.Event) bool { return e.GetMembersAdded() != nil })
	accepted(t, a.MustDo(conv, send("m2", "two")))
	b.WaitEvent("a message of "+conv, isMessage(conv))
	d.WaitEvent("a message of "+conv, isMessage(conv))
	// a is on c's gateway: once a has m2, that gateway has routed it, so m2
	// would be on its way to c if it were routed there.
	a.WaitEvent("m2 back at its sender", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "m2" })
	c.ExpectNoEvent("the removed member", quiet, func(e *pb.Event) bool { return e.GetConversationId() == conv })
}

// TestFanoutReceipts: in a 1:1, the sender's device sees the peer's ReadUpTo live.
func TestFanoutReceipts(t *testing.T) {
	t.Parallel()
	sys, _ := start(t, 2)
	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 1, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	accepted(t, alice.MustDo(conv, send("m1", "hello")))
	seq := bob.WaitEvent("a message of "+conv, isMessage(conv)).GetSeq()
	accepted(t, bob.MustDo(conv, &pb.MarkRead{UpToSeq: seq}))
	alice.WaitEvent("bob's ReadUpTo", func(e *pb.Event) bool {
		return e.GetActorUserId() == "bob" && e.GetReadUpTo().GetUpToSeq() == seq
	})
}

// TestResumeOffline: a device misses 500 messages in 20 conversations,
// resumes with its cursors (the version of each ConversationCreated it
// saw), gets exactly those in order, then live.
func TestResumeOffline(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: fast})
	r := connect(t, sys, 0, "r", "phone")
	s := connect(t, sys, 1, "s", "phone")
	cursors := map[string]int64{}
	var convs []string
	for i := range 20 {
		conv := accepted(t, s.MustDo("", group(fmt.Sprintf("g%d", i), "r")))
		convs = append(convs, conv)
		cursors[conv] = r.WaitEvent("ConversationCreated", func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetConversationCreated() != nil
		}).GetVersion()
	}
	r.Close()
	var calls []*testenv.Call
	for k := range 25 {
		for _, conv := range convs {
			calls = append(calls, s.Go(conv, send(fmt.Sprintf("%s-%d", conv, k), "missed")))
		}
	}
	if err := waitAccepted(calls, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Offline long enough for the views to have everything it missed.
	testenv.Eventually(t, 2*time.Minute, func() string {
		for _, conv := range convs {
			if last, _, _ := inboxEntry(t, sys, "s", conv); last != 25 {
				return fmt.Sprintf("%s at seq %d, want 25", conv, last)
			}
		}
		return ""
	})
	r = connectResuming(t, sys, 1, "r", "phone")
	begin := time.Now()
	evs, resumed := resume(t, r, cursors)
	t.Logf("resume of %d events took %s", len(evs), time.Since(begin))
	checkResumed(t, evs, cursors, 25)
	for _, c := range resumed.GetCursors() {
		if c.GetVersion() != cursors[c.GetConversationId()]+25 {
			t.Fatalf("Resumed cursor %v, want version %d", c, cursors[c.GetConversationId()]+25)
		}
	}
	accepted(t, s.MustDo(convs[0], send("live", "after")))
	if e := r.WaitEvent("a message of "+convs[0], isMessage(convs[0])); e.GetSeq() != 26 || e.GetVersion() != cursors[convs[0]]+26 {
		t.Fatalf("live seq %d version %d after resume at version %d", e.GetSeq(), e.GetVersion(), cursors[convs[0]]+25)
	}
}

// checkResumed: per conversation, exactly versions cursor+1 … cursor+n, in
// order.
func checkResumed(t *testing.T, evs []*pb.Event, cursors map[string]int64, n int64) {
	t.Helper()
	next := map[string]int64{}
	for c, v := range cursors {
		next[c] = v + 1
	}
	for _, e := range evs {
		c := e.GetConversationId()
		if e.GetVersion() != next[c] {
			t.Fatalf("%s: version %d, want %d", c, e.GetVersion(), next[c])
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
	cursors := map[string]int64{}  // the seq the device has
	versions := map[string]int64{} // and the version
	var convs []string
	for i := range 5 {
		conv := accepted(t, s.MustDo("", group(fmt.Sprintf("g%d", i), "r")))
		convs = append(convs, conv)
		created := r.WaitEvent("ConversationCreated", func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetConversationCreated() != nil
		})
		cursors[conv], versions[conv] = created.GetSeq(), created.GetVersion()
	}
	r.Close()
	var calls []*testenv.Call
	for k := range before {
		for _, conv := range convs {
			calls = append(calls, s.Go(conv, send(fmt.Sprintf("%s-%d", conv, k), "before")))
		}
	}
	if err := waitAccepted(calls, time.Minute); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var sentDuring atomic.Int64
	sendErr := make(chan error, 1)
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for k := before; k < before+during; k++ {
			for _, conv := range convs {
				if _, err := s.Send(ctx, conv, send(fmt.Sprintf("%s-%d", conv, k), "during")); err != nil {
					sendErr <- err
					return
				}
				sentDuring.Add(1)
			}
		}
	})
	// Resume once the senders are under way.
	testenv.Eventually(t, time.Minute, func() string {
		if n := sentDuring.Load(); n < 10 {
			select {
			case err := <-sendErr:
				t.Fatal(err)
			default:
			}
			return fmt.Sprintf("%d sends during the resume acked", n)
		}
		return ""
	})
	r = connectResuming(t, sys, 1, "r", "phone")
	evs, _ := resume(t, r, versions)
	wg.Wait()
	select {
	case err := <-sendErr:
		t.Fatal(err)
	default:
	}
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
	isOurs := func(e *pb.Event) bool { return e.GetMessageSent() != nil && got[e.GetConversationId()] != nil }
	for total() < len(convs)*(before+during) {
		add(r.WaitEvent(fmt.Sprintf("message %d of %d", total()+1, len(convs)*(before+during)), isOurs))
	}
	// Every seq has arrived once; a duplicate would have come with them.
	r.ExpectNoEvent("a message twice", quiet, isOurs)
	for _, c := range convs {
		for sq := cursors[c] + 1; sq <= cursors[c]+before+during; sq++ {
			if !got[c][sq] {
				t.Fatalf("%s: seq %d missing (%d of %d)", c, sq, len(got[c]), before+during)
			}
		}
	}
	t.Logf("%d events during resume, %d in all", len(evs), total())
}

// TestResumeCarriesEveryChange: a device that was offline gets, on resume,
// not only the messages it missed but every change of the conversation —
// here the other members' read and delivered receipts — in version order,
// exactly once; a second Resume from the cursor it was given sends nothing,
// and live events follow from the next version.
func TestResumeCarriesEveryChange(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: fast})
	r := connect(t, sys, 0, "r", "phone")
	s := connect(t, sys, 1, "s", "phone")
	u := connect(t, sys, 1, "u", "phone")
	conv := accepted(t, s.MustDo("", group("changes", "r", "u")))
	cursor := r.WaitEvent("ConversationCreated", func(e *pb.Event) bool {
		return e.GetConversationId() == conv && e.GetConversationCreated() != nil
	}).GetVersion()
	r.Close()
	for i := range 3 {
		accepted(t, s.MustDo(conv, send(fmt.Sprintf("m%d", i), "while r is away")))
	}
	u.WaitEvent("the third message", func(e *pb.Event) bool { return e.GetConversationId() == conv && e.GetSeq() == 3 })
	accepted(t, u.MustDo(conv, &pb.MarkDelivered{UpToSeq: 2}))
	accepted(t, u.MustDo(conv, &pb.MarkRead{UpToSeq: 3}))
	// What r missed: 3 messages, then u's two receipts — five versions.
	var last int64
	u.WaitEvent("u's read receipt", func(e *pb.Event) bool {
		last = e.GetVersion()
		return e.GetConversationId() == conv && e.GetReadUpTo() != nil
	})
	if last != cursor+5 {
		t.Fatalf("u's read receipt at version %d, want %d", last, cursor+5)
	}

	var evs []*pb.Event
	var resumed *pb.Resumed
	// The views may still lag the log: resume (from a new device session
	// each time) until the catch-up has every change.
	testenv.Eventually(t, time.Minute, func() string {
		d := connectResuming(t, sys, 0, "r", "phone")
		evs, resumed = resume(t, d, map[string]int64{conv: cursor})
		d.Close()
		if len(evs) < 5 {
			return fmt.Sprintf("%d of 5 changes resumed", len(evs))
		}
		return ""
	})
	var got []string
	for i, e := range evs {
		if e.GetVersion() != cursor+int64(i)+1 {
			t.Fatalf("change %d has version %d, want %d: %v", i, e.GetVersion(), cursor+int64(i)+1, e)
		}
		got = append(got, schemas.EventType(e))
	}
	want := []string{"MessageSent", "MessageSent", "MessageSent", "DeliveredUpTo", "ReadUpTo"}
	if !slices.Equal(got, want) {
		t.Fatalf("resumed %v, want %v", got, want)
	}
	if rd := evs[4].GetReadUpTo(); evs[4].GetActorUserId() != "u" || rd.GetUpToSeq() != 3 {
		t.Fatalf("read receipt %v, want u up to 3", evs[4])
	}
	if len(resumed.GetCursors()) != 1 || resumed.GetCursors()[0].GetVersion() != last {
		t.Fatalf("Resumed %v, want version %d", resumed, last)
	}

	// From the cursor it was given: nothing twice, then live.
	d := connectResuming(t, sys, 0, "r", "phone")
	again, resumed := resume(t, d, map[string]int64{conv: last})
	if len(again) != 0 || len(resumed.GetFailed()) != 0 {
		t.Fatalf("resume from version %d sent %v (failed %v), want nothing", last, again, resumed.GetFailed())
	}
	accepted(t, s.MustDo(conv, send("live", "after")))
	if e := d.WaitEvent("the live message", isMessage(conv)); e.GetVersion() != last+1 || e.GetSeq() != 4 {
		t.Fatalf("live event at version %d seq %d, want version %d seq 4", e.GetVersion(), e.GetSeq(), last+1)
	}
}

// TestResumeMembershipWhileAway: while a device is away its user is removed
// from one group (after a message there) and added to a new one. Its Resume
// with its old cursors catches the first group up to the removal and lists
// it as removed — nothing said there after the removal reaches it —, and
// lists the new group as added, with the version to resume it from.
func TestResumeMembershipWhileAway(t *testing.T) {
	t.Parallel()
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: fast})
	r := connect(t, sys, 0, "r", "phone")
	s := connect(t, sys, 1, "s", "phone")
	cursors := map[string]int64{}
	var left, kept string
	for i, title := range []string{"left", "kept"} {
		conv := accepted(t, s.MustDo("", group(title, "r")))
		cursors[conv] = r.WaitEvent("ConversationCreated", func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetConversationCreated() != nil
		}).GetVersion()
		if i == 0 {
			left = conv
		} else {
			kept = conv
		}
	}
	r.Close()
	accepted(t, s.MustDo(left, send("before", "said before the removal")))
	accepted(t, s.MustDo(left, &pb.RemoveMember{UserId: "r"}))
	accepted(t, s.MustDo(left, send("after", "said after the removal")))
	accepted(t, s.MustDo(kept, send("kept", "still here")))
	added := accepted(t, s.MustDo("", group("added", "r")))
	var afterVersion int64
	s.WaitEvent("the message after the removal", func(e *pb.Event) bool {
		afterVersion = e.GetVersion()
		return e.GetConversationId() == left && e.GetMessageSent().GetClientMsgId() == "after"
	})

	var evs []*pb.Event
	var resumed *pb.Resumed
	testenv.Eventually(t, time.Minute, func() string {
		d := connectResuming(t, sys, 0, "r", "phone")
		evs, resumed = resume(t, d, cursors)
		d.Close()
		if len(resumed.GetRemoved()) != 1 || len(resumed.GetAdded()) != 1 || len(resumed.GetFailed()) != 0 {
			return fmt.Sprintf("resumed %v", resumed)
		}
		// The projector writes a batch's rows in any order, and other
		// conversations' rows apart: wait until every view Resume reads
		// has the versions, then check them below.
		if resumed.GetAdded()[0].GetVersion() != 1 || resumed.GetRemoved()[0].GetVersion() != cursors[left]+2 ||
			len(resumed.GetCursors()) != 1 || resumed.GetCursors()[0].GetVersion() != cursors[kept]+1 {
			return fmt.Sprintf("the views are not current yet: resumed %v", resumed)
		}
		return ""
	})
	var gotLeft []string
	for _, e := range evs {
		if e.GetConversationId() != left {
			continue
		}
		if e.GetVersion() >= afterVersion {
			t.Fatalf("an event after the removal reached the removed member: %v", e)
		}
		gotLeft = append(gotLeft, schemas.EventType(e))
	}
	if want := []string{"MessageSent", "MemberRemoved"}; !slices.Equal(gotLeft, want) {
		t.Fatalf("the removed group resumed %v, want %v", gotLeft, want)
	}
	if rm := resumed.GetRemoved()[0]; rm.GetConversationId() != left || rm.GetVersion() != cursors[left]+2 {
		t.Fatalf("removed %v, want %s at version %d", rm, left, cursors[left]+2)
	}
	if a := resumed.GetAdded()[0]; a.GetConversationId() != added || a.GetVersion() != 1 {
		t.Fatalf("added %v, want %s at version 1", a, added)
	}
	if len(resumed.GetCursors()) != 1 || resumed.GetCursors()[0].GetConversationId() != kept ||
		resumed.GetCursors()[0].GetVersion() != cursors[kept]+1 {
		t.Fatalf("cursors %v, want %s at version %d", resumed.GetCursors(), kept, cursors[kept]+1)
	}
	// Resumed again from where it now stands: nothing is sent twice.
	d := connectResuming(t, sys, 0, "r", "phone")
	again, r2 := resume(t, d, map[string]int64{left: cursors[left] + 2, kept: cursors[kept] + 1, added: 1})
	if len(again) != 0 || len(r2.GetRemoved()) != 1 || len(r2.GetAdded()) != 0 {
		t.Fatalf("second resume sent %v, answered %v", again, r2)
	}
}

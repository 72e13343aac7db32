package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// groupLog builds a synthetic log of one group as ingest would decide it:
// each event takes the next version (and the next seq when it is a
// timeline item).
type groupLog struct {
	conv      string
	seq, v    int64
	events    []*pb.Event
	projected int // events written to the views so far
}

func (l *groupLog) add(actor string, body proto.Message) *pb.Event {
	l.v++
	e := &pb.Event{ConversationId: l.conv, CommandId: fmt.Sprintf("c%d", l.v), ActorUserId: actor, ActorDeviceId: "pc",
		OccurredAt: timestamppb.New(time.Now()), Version: l.v}
	if err := schemas.SetBody(e, body); err != nil {
		panic(err)
	}
	if schemas.IsTimelineEvent(schemas.EventType(e)) {
		l.seq++
		e.Seq = l.seq
	}
	l.events = append(l.events, e)
	return e
}

func (l *groupLog) send(actor, text string) *pb.Event {
	return l.add(actor, &pb.MessageSent{ClientMsgId: fmt.Sprintf("m%d", l.v+1), Text: text, ContentType: "text/plain"})
}

func (l *groupLog) visibility(actor string, v pb.HistoryVisibility) *pb.Event {
	return l.add(actor, &pb.GroupSettingsChanged{Settings: &pb.GroupSettings{HistoryVisibility: &v}})
}

// project writes the events not written yet to the views, as the
// projector does.
func (l *groupLog) project(t *testing.T, s *gocql.Session, keyspace string) {
	t.Helper()
	w, err := projector.NewWriter(s, projector.WriterConfig{Keyspace: keyspace, LogOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []projector.Record
	for _, e := range l.events[l.projected:] {
		b, _ := proto.Marshal(e)
		recs = append(recs, projector.Record{Key: []byte(e.GetConversationId()), Value: b})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if poison, err := w.Apply(ctx, recs); err != nil || len(poison) > 0 {
		t.Fatalf("projecting: %v %v", err, poison)
	}
	l.projected = len(l.events)
}

// describeChange names one event a device got: its version and type, and
// the message and text it changes; a withheld event is only its version,
// and must carry nothing but its envelope.
func describeChange(t *testing.T, e *pb.Event) string {
	t.Helper()
	if e.GetWithheld() != nil {
		if e.GetActorUserId() != "" || e.GetActorDeviceId() != "" || e.GetOccurredAt() != nil || e.GetSeq() != 0 ||
			e.GetCommandId() == "" || e.GetConversationId() == "" {
			t.Errorf("withheld event with more (or less) than its envelope: %v", e)
		}
		return fmt.Sprintf("%d withheld", e.GetVersion())
	}
	out := fmt.Sprintf("%d %s", e.GetVersion(), schemas.EventType(e))
	if q := schemas.MessageSeq(e); q > 0 {
		out += fmt.Sprintf(" of %d", q)
	}
	if ed := e.GetMessageEdited(); ed != nil {
		out += fmt.Sprintf(" %q", ed.GetText())
	}
	return out
}

// liveUntil reads c's events of conv up to version last, described.
func liveUntil(t *testing.T, c *client, conv string, last int64) []string {
	t.Helper()
	var got []string
	c.WaitEvent(fmt.Sprintf("version %d of %s", last, conv), func(e *pb.Event) bool {
		if e.GetConversationId() != conv {
			return false
		}
		got = append(got, describeChange(t, e))
		return e.GetVersion() >= last
	})
	return got
}

// resumeChanges resumes c from version cursor of conv and returns the
// catch-up, described.
func resumeChanges(t *testing.T, c *client, conv string, cursor int64) []string {
	t.Helper()
	c.send(&pb.ClientFrame{RequestId: "r", Body: &pb.ClientFrame_Resume{Resume: &pb.Resume{
		Cursors: []*pb.ConversationCursor{{ConversationId: conv, Version: cursor}}}}})
	f := c.next()
	if r := f.GetResumed(); r == nil || len(r.GetFailed()) > 0 {
		t.Fatalf("%s: want Resumed without failures, got %v", c.Name(), f)
	}
	var got []string
	for _, e := range c.DrainEvents() {
		got = append(got, describeChange(t, e))
	}
	return got
}

// TestWithheldSinceJoin: in a group whose history visibility is
// since_join, erin, added after the creation, gets every change of a
// message from before her join — edit, reaction added and removed, pin,
// unpin, recall — withheld, on both her devices (JSON and protobuf), and
// those of later messages whole; the versions stay dense. A Resume from an
// old cursor sends her exactly what she got live; alice, there from the
// creation, gets everything whole, live and resumed. Switched to all, the
// changes of earlier messages reach erin whole, and withheld again once
// switched back. A conversation the gateway never saw created is loaded
// from the views with the joined seqs and the setting.
func TestWithheldSinceJoin(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	st := &setup{}
	views(st)
	keyspace := st.cfg.Keyspace
	e := start(t, views)
	alice := e.dial("alice", "phone")
	erinPhone := e.dial("erin", "phone", gateway.SubprotocolProto)
	erinTab := e.dial("erin", "tablet")

	const conv = "g:000000000000000000000000000000e1"
	l := &groupLog{conv: conv}
	l.add("alice", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "since join", MemberUserIds: []string{"alice", "bob"}})
	l.send("alice", "first") // seq 1
	l.send("bob", "second")  // seq 2
	l.visibility("alice", pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)
	l.add("alice", &pb.MembersAdded{UserIds: []string{"erin"}}) // seq 3, version 5
	l.send("bob", "after")                                      // seq 4
	l.send("bob", "to recall")                                  // seq 5
	l.add("alice", &pb.MessageEdited{MessageSeq: 1, Text: "first, edited", ContentType: "text/plain", ClientMsgId: "e1", EditNumber: 1})
	l.add("bob", &pb.MessageEdited{MessageSeq: 4, Text: "after, edited", ContentType: "text/plain", ClientMsgId: "e2", EditNumber: 1})
	l.add("alice", &pb.ReactionAdded{MessageSeq: 2, Emoji: "+1"})
	l.add("alice", &pb.ReactionAdded{MessageSeq: 4, Emoji: "+1"})
	l.add("alice", &pb.ReactionRemoved{MessageSeq: 2, Emoji: "+1"})
	l.add("alice", &pb.MessagePinned{MessageSeq: 2})
	l.add("alice", &pb.MessagePinned{MessageSeq: 4})
	l.add("alice", &pb.MessageUnpinned{MessageSeq: 2})
	l.add("alice", &pb.MessageRecalled{MessageSeq: 2, SenderUserId: "bob"})
	last := l.add("bob", &pb.MessageRecalled{MessageSeq: 5, SenderUserId: "bob"}).GetVersion()
	for _, ev := range l.events {
		e.produceEvent(ev)
	}
	wantErin := []string{"5 MembersAdded", "6 MessageSent", "7 MessageSent", "8 withheld", `9 MessageEdited of 4 "after, edited"`,
		"10 withheld", "11 ReactionAdded of 4", "12 withheld", "13 withheld", "14 MessagePinned of 4", "15 withheld", "16 withheld",
		"17 MessageRecalled of 5"}
	for _, c := range []*client{erinPhone, erinTab} {
		if got := liveUntil(t, c, conv, last); !slices.Equal(got, wantErin) {
			t.Errorf("%s live:\n got %v\nwant %v", c.Name(), got, wantErin)
		}
	}
	var wantAlice []string
	for _, ev := range l.events {
		wantAlice = append(wantAlice, describeChange(t, ev))
	}
	if got := liveUntil(t, alice, conv, last); !slices.Equal(got, wantAlice) {
		t.Errorf("alice live:\n got %v\nwant %v", got, wantAlice)
	}

	// Resumed from the views, from an old cursor: the same.
	l.project(t, s, keyspace)
	for _, cursor := range []int64{0, 6} {
		laptop := e.dial("erin", fmt.Sprintf("laptop%d", cursor))
		want := wantErin[max(0, cursor-4):]
		if got := resumeChanges(t, laptop, conv, cursor); !slices.Equal(got, want) {
			t.Errorf("erin resumed from %d:\n got %v\nwant %v", cursor, got, want)
		}
		laptop.Close()
	}
	laptop := e.dial("alice", "laptop")
	if got := resumeChanges(t, laptop, conv, 0); !slices.Equal(got, wantAlice) {
		t.Errorf("alice resumed from 0:\n got %v\nwant %v", got, wantAlice)
	}
	laptop.Close()
	checkFor(t, 10*time.Second, func() error { // only the three devices that read on get what follows
		if n := e.metric("parley_gateway_sessions"); n != 3 {
			return errorf("%v sessions, want 3", n)
		}
		return nil
	})

	// The setting as it stands applies, both ways.
	l.visibility("alice", pb.HistoryVisibility_HISTORY_VISIBILITY_ALL)
	l.add("bob", &pb.ReactionAdded{MessageSeq: 1, Emoji: "ok"})
	l.visibility("alice", pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)
	last = l.add("bob", &pb.ReactionRemoved{MessageSeq: 1, Emoji: "ok"}).GetVersion()
	for _, ev := range l.events[l.projected:] {
		e.produceEvent(ev)
	}
	want := []string{"18 GroupSettingsChanged", "19 ReactionAdded of 1", "20 GroupSettingsChanged", "21 withheld"}
	for _, c := range []*client{erinPhone, erinTab} {
		if got := liveUntil(t, c, conv, last); !slices.Equal(got, want) {
			t.Errorf("%s live after the switches:\n got %v\nwant %v", c.Name(), got, want)
		}
	}

	// A conversation this gateway never saw created: its membership, the
	// joined seqs and the setting are loaded from the views.
	const loaded = "g:000000000000000000000000000000e2"
	l2 := &groupLog{conv: loaded}
	l2.add("alice", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "loaded", MemberUserIds: []string{"alice"}})
	l2.send("alice", "before")
	l2.visibility("alice", pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)
	l2.add("alice", &pb.MembersAdded{UserIds: []string{"erin"}}) // seq 2
	l2.send("alice", "after")                                    // seq 3, version 5
	l2.project(t, s, keyspace)
	l2.add("alice", &pb.ReactionAdded{MessageSeq: 1, Emoji: "+1"})
	l2.add("alice", &pb.ReactionAdded{MessageSeq: 3, Emoji: "+1"})
	for _, ev := range l2.events[l2.projected:] {
		e.produceEvent(ev)
	}
	for _, c := range []*client{erinPhone, alice} {
		want := []string{"6 withheld", "7 ReactionAdded of 3"}
		if c == alice {
			want[0] = "6 ReactionAdded of 1"
		}
		if got := liveUntil(t, c, loaded, 7); !slices.Equal(got, want) {
			t.Errorf("%s, a conversation loaded from the views:\n got %v\nwant %v", c.Name(), got, want)
		}
	}

	// Every withheld frame is counted: 7 live on each of erin's two devices,
	// 6 in each of her two resumes, 1 of the loaded conversation on each
	// device.
	const withheld = 7*2 + 6*2 + 1*2
	checkFor(t, 10*time.Second, func() error {
		if v := e.metric("parley_gateway_events_withheld_total"); v != withheld {
			return errorf("events_withheld_total %v, want %d", v, withheld)
		}
		return nil
	})
}

// TestWithheldUnknownMembership: when the membership of a group cannot be
// known (no views), a change of a message reaches its actor withheld, never
// whole; one of a direct conversation, where everyone sees everything,
// whole.
func TestWithheldUnknownMembership(t *testing.T) {
	t.Parallel()
	e := start(t)
	alice := e.dial("alice", "phone")
	const conv = "g:000000000000000000000000000000e3"
	react := func(conv string, v int64) *pb.Event {
		return &pb.Event{ConversationId: conv, CommandId: fmt.Sprintf("r%d", v), ActorUserId: "alice", ActorDeviceId: "phone", Version: v,
			Body: &pb.Event_ReactionAdded{ReactionAdded: &pb.ReactionAdded{MessageSeq: 1, Emoji: "+1"}}}
	}
	e.produceEvent(react(conv, 7))
	if ev := alice.nextEvent(); ev.GetWithheld() == nil || ev.GetVersion() != 7 || ev.GetCommandId() != "r7" {
		t.Fatalf("a reaction in a group of unknown membership reached its actor as %v, want withheld", ev)
	}
	direct := schemas.DirectConversationID("alice", "bob")
	e.produceEvent(react(direct, 3))
	if ev := alice.nextEvent(); ev.GetReactionAdded() == nil || !strings.HasPrefix(ev.GetConversationId(), "d:") {
		t.Fatalf("a reaction in a direct conversation reached its actor as %v, want it whole", ev)
	}
}

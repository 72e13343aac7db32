package gateway

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func ev(seq int64, actor, device string, body proto.Message) *pb.Event {
	e := &pb.Event{ConversationId: "g:1", Seq: seq, ActorUserId: actor, ActorDeviceId: device}
	if err := schemas.SetBody(e, body); err != nil {
		panic(err) // a test table naming a body that is not an event's
	}
	return e
}

func TestRecipients(t *testing.T) {
	abc := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name    string
		ev      *pb.Event
		members []string
		max     int
		want    route
	}{
		{"message to every member", ev(3, "a", "phone", &pb.MessageSent{}), abc, 100, route{Users: abc}},
		{"unknown membership: actor only", ev(3, "a", "phone", &pb.MessageSent{}), nil, 100, route{Users: []string{"a"}}},
		{"rejection to the actor's device", ev(0, "a", "phone", &pb.CommandRejected{}), abc, 100, route{Users: []string{"a"}, Device: "phone"}},
		{"dedup to the actor's device", ev(0, "a", "phone", &pb.MessageDeduplicated{}), abc, 100, route{Users: []string{"a"}, Device: "phone"}},
		{"read receipt to members", ev(0, "b", "tab", &pb.ReadUpTo{UpToSeq: 3}), abc, 3, route{Users: abc}},
		{"read receipt, large group: actor only", ev(0, "b", "tab", &pb.ReadUpTo{UpToSeq: 3}), abc, 2, route{Users: []string{"b"}}},
		{"delivered, large group: actor only", ev(0, "b", "tab", &pb.DeliveredUpTo{UpToSeq: 3}), abc, 2, route{Users: []string{"b"}}},
		{"actor not a member still hears", ev(4, "z", "pc", &pb.MemberRemoved{UserId: "z"}), abc, 100, route{Users: []string{"a", "b", "c", "z"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := recipients(tc.ev, tc.members, tc.max)
			if !slices.Equal(got.Users, tc.want.Users) || got.Device != tc.want.Device {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// fakeViews serves members from a map: the members of byConv, all from
// the creation, at last_seq last; or, for the conversations in byView,
// that read.
type fakeViews struct {
	views
	byConv map[string][]string
	byView map[string]memberView
	last   int64
	loads  int
}

func (f *fakeViews) members(_ context.Context, conv string) ([]string, int64, bool, error) {
	f.loads++
	m, ok := f.byConv[conv]
	return m, f.last, ok, nil
}

func (f *fakeViews) membership(_ context.Context, conv string) (memberView, bool, error) {
	f.loads++
	if mv, ok := f.byView[conv]; ok {
		mv.joined = maps.Clone(mv.joined)
		return mv, true, nil
	}
	m, ok := f.byConv[conv]
	mv := memberView{joined: map[string]int64{}, group: true, lastSeq: f.last}
	for _, u := range m {
		mv.joined[u] = 0
	}
	return mv, ok, nil
}

func TestMembershipApply(t *testing.T) {
	fv := &fakeViews{byConv: map[string][]string{"g:1": {"a", "b"}}, last: 5}
	m := newMembership(fv, 2)
	ctx := context.Background()
	steps := []struct {
		ev   *pb.Event
		want []string
	}{
		{ev(6, "a", "p", &pb.MessageSent{}), []string{"a", "b"}},                             // loaded
		{ev(7, "a", "p", &pb.MembersAdded{UserIds: []string{"c"}}), []string{"a", "b", "c"}}, // added hear it
		{ev(8, "c", "p", &pb.MessageSent{}), []string{"a", "b", "c"}},
		{ev(9, "a", "p", &pb.MemberRemoved{UserId: "b"}), []string{"a", "b", "c"}}, // removed hears its removal
		{ev(10, "a", "p", &pb.MessageSent{}), []string{"a", "c"}},                  // and nothing after
		{ev(0, "c", "p", &pb.ReadUpTo{UpToSeq: 10}), []string{"a", "c"}},
	}
	for i, s := range steps {
		if got := m.apply(ctx, s.ev); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: got %v, want %v", i, got, s.want)
		}
	}
	if fv.loads != 1 {
		t.Errorf("%d loads, want 1", fv.loads)
	}
	// Created conversations need no load; the cache stays at its cap.
	for _, c := range []string{"g:2", "g:3"} {
		e := ev(0, "x", "p", &pb.ConversationCreated{MemberUserIds: []string{"y"}})
		e.ConversationId = c
		if got := m.apply(ctx, e); !slices.Equal(got, []string{"x", "y"}) {
			t.Fatalf("%s: got %v", c, got)
		}
	}
	if m.size() != 2 || fv.loads != 1 {
		t.Errorf("size %d loads %d, want 2 and 1", m.size(), fv.loads)
	}
	// g:1 was evicted: loaded again.
	m.apply(ctx, ev(11, "a", "p", &pb.MessageSent{}))
	if fv.loads != 2 {
		t.Errorf("%d loads, want 2 after eviction", fv.loads)
	}
}

func TestMembershipStaleReload(t *testing.T) {
	fv := &fakeViews{byConv: map[string][]string{"g:1": {"a"}}, last: 2}
	m := newMembership(fv, 10)
	now := time.Now()
	m.now = func() time.Time { return now }
	ctx := context.Background()
	// seq 9 but the view is at 2: stale, and b's addition at 5 is missing.
	if got := m.apply(ctx, ev(9, "a", "p", &pb.MessageSent{})); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("got %v", got)
	}
	fv.byConv["g:1"], fv.last = []string{"a", "b"}, 10
	if got := m.apply(ctx, ev(10, "a", "p", &pb.MessageSent{})); !slices.Equal(got, []string{"a"}) || fv.loads != 1 {
		t.Fatalf("reloaded too soon: %v, %d loads", got, fv.loads)
	}
	now = now.Add(staleReloadEvery)
	if got := m.apply(ctx, ev(11, "a", "p", &pb.MessageSent{})); !slices.Equal(got, []string{"a", "b"}) || fv.loads != 2 {
		t.Fatalf("after reload: %v, %d loads", got, fv.loads)
	}
	now = now.Add(staleReloadEvery)
	m.apply(ctx, ev(12, "a", "p", &pb.MessageSent{}))
	if fv.loads != 2 {
		t.Errorf("reloaded a fresh entry: %d loads", fv.loads)
	}
}

// versioned is ev at version v.
func versioned(v int64, e *pb.Event) *pb.Event {
	e.Version = v
	return e
}

func sinceJoin(on bool) *pb.GroupSettingsChanged {
	hv := pb.HistoryVisibility_HISTORY_VISIBILITY_ALL
	if on {
		hv = pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN
	}
	return &pb.GroupSettingsChanged{Settings: &pb.GroupSettings{HistoryVisibility: &hv}}
}

// TestMembershipWithheld: the cache follows joins, removals and the
// history visibility from the events, and withholds a change of a message
// exactly as query hides it: in a since_join group, from a member added
// later, below its latest joined seq; never from the members of the
// creation, in a direct conversation, with all, or for events that change
// no message. What it cannot answer (a conversation it does not hold, a
// user it does not list) is withheld.
func TestMembershipWithheld(t *testing.T) {
	m := newMembership(nil, 10)
	ctx := context.Background()
	all := []string{"alice", "bob", "erin"}
	edit := func(seq int64) *pb.Event { return ev(0, "alice", "p", &pb.MessageEdited{MessageSeq: seq, Text: "x"}) }
	check := func(step string, e *pb.Event, users []string, want ...string) {
		t.Helper()
		got := slices.Sorted(maps.Keys(m.withheld(e, users)))
		if !slices.Equal(got, want) {
			t.Errorf("%s: withheld from %v, want %v", step, got, want)
		}
	}
	m.apply(ctx, ev(0, "alice", "p", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, MemberUserIds: []string{"bob"}}))
	m.apply(ctx, ev(1, "alice", "p", &pb.MessageSent{}))
	m.apply(ctx, ev(2, "alice", "p", &pb.MessageSent{}))
	m.apply(ctx, ev(3, "alice", "p", &pb.MembersAdded{UserIds: []string{"erin"}}))
	check("all", edit(2), all)
	m.apply(ctx, ev(0, "alice", "p", sinceJoin(true)))
	check("since_join, before the join", edit(2), all, "erin")
	check("since_join, the join's seq", edit(3), all)
	for _, body := range []proto.Message{&pb.MessageRecalled{MessageSeq: 1}, &pb.ReactionAdded{MessageSeq: 1, Emoji: "+"},
		&pb.ReactionRemoved{MessageSeq: 1, Emoji: "+"}, &pb.MessagePinned{MessageSeq: 1}, &pb.MessageUnpinned{MessageSeq: 1}} {
		check(schemas.EventType(ev(0, "bob", "p", body)), ev(0, "bob", "p", body), all, "erin")
	}
	check("a message", ev(4, "alice", "p", &pb.MessageSent{ReplyToSeq: 1}), all)
	check("a receipt", ev(0, "erin", "p", &pb.ReadUpTo{UpToSeq: 2}), all)
	check("a user the cache does not list", edit(4), []string{"alice", "zed"}, "zed")
	m.apply(ctx, ev(0, "alice", "p", sinceJoin(false)))
	check("switched back to all", edit(2), all)
	m.apply(ctx, ev(0, "alice", "p", sinceJoin(true)))
	// erin leaves and is added again: her floor is the new join.
	m.apply(ctx, ev(5, "erin", "p", &pb.MemberRemoved{UserId: "erin", Reason: pb.MemberRemovedReason_MEMBER_REMOVED_REASON_LEFT}))
	m.apply(ctx, ev(6, "alice", "p", &pb.MembersAdded{UserIds: []string{"erin"}}))
	check("re-added", edit(4), all, "erin")
	check("re-added, after", edit(6), all)
	// bob, from the creation, removed and added again, joined later too.
	m.apply(ctx, ev(7, "alice", "p", &pb.MemberRemoved{UserId: "bob", Reason: pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED}))
	m.apply(ctx, ev(8, "alice", "p", &pb.MembersAdded{UserIds: []string{"bob"}}))
	check("a creation member added again", edit(7), all, "bob")

	unknown := ev(0, "alice", "p", &pb.MessageEdited{MessageSeq: 9})
	unknown.ConversationId = "g:2"
	check("a conversation the cache does not hold", unknown, []string{"alice"}, "alice")
	d := ev(0, "alice", "p", &pb.MessageEdited{MessageSeq: 1})
	d.ConversationId = schemas.DirectConversationID("alice", "bob")
	check("a direct conversation", d, []string{"alice", "bob"})
}

// TestMembershipStaleFloors: an entry loaded from views behind the log
// withholds changes of messages from the members added later until a
// reload from views that cover the event that loaded it; the membership
// changes it applied meanwhile are applied again over that reload, so the
// setting the views have not applied yet still holds.
func TestMembershipStaleFloors(t *testing.T) {
	fv := &fakeViews{byView: map[string]memberView{
		"g:1": {joined: map[string]int64{"alice": 0, "erin": 3}, group: true, lastSeq: 4, lastVersion: 5}}}
	m := newMembership(fv, 10)
	now := time.Now()
	m.now = func() time.Time { return now }
	ctx := context.Background()
	users := []string{"alice", "erin", "frank"}
	edit := func(v, seq int64) *pb.Event {
		return versioned(v, ev(0, "alice", "p", &pb.MessageEdited{MessageSeq: seq, Text: "x"}))
	}
	apply := func(e *pb.Event) map[string]bool {
		t.Helper()
		m.apply(ctx, e)
		return m.withheld(e, users)
	}
	// Loaded for version 9 from views at 5: versions 6 to 8 may hold a
	// join or the setting.
	if got := apply(edit(9, 4)); !maps.Equal(got, map[string]bool{"erin": true, "frank": true}) {
		t.Fatalf("behind: withheld from %v, want erin and frank", got)
	}
	m.apply(ctx, versioned(10, ev(7, "alice", "p", &pb.MembersAdded{UserIds: []string{"frank"}})))
	m.apply(ctx, versioned(11, ev(0, "alice", "p", sinceJoin(true))))
	// The views reach version 10 (frank's join), not 11 (the setting).
	fv.byView["g:1"] = memberView{joined: map[string]int64{"alice": 0, "erin": 3, "frank": 7}, group: true, lastSeq: 7, lastVersion: 10}
	if got := apply(edit(12, 5)); !maps.Equal(got, map[string]bool{"erin": true, "frank": true}) || fv.loads != 1 {
		t.Fatalf("reloaded too soon: withheld from %v, %d loads", got, fv.loads)
	}
	now = now.Add(staleReloadEvery)
	if got := apply(edit(13, 5)); !maps.Equal(got, map[string]bool{"frank": true}) || fv.loads != 2 {
		t.Fatalf("after the reload: withheld from %v (%d loads), want frank alone: since_join from version 11", got, fv.loads)
	}
	now = now.Add(staleReloadEvery)
	if got := apply(edit(14, 8)); got != nil || fv.loads != 2 {
		t.Errorf("withheld %v, %d loads: the reloaded entry is exact", got, fv.loads)
	}
}

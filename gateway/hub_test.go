package gateway

import (
	"context"
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

// fakeViews serves members from a map.
type fakeViews struct {
	views
	byConv map[string][]string
	last   int64
	loads  int
}

func (f *fakeViews) members(_ context.Context, conv string) ([]string, int64, bool, error) {
	f.loads++
	m, ok := f.byConv[conv]
	return m, f.last, ok, nil
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

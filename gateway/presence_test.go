package gateway

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const (
	online  = pb.PresenceState_PRESENCE_STATE_ONLINE
	away    = pb.PresenceState_PRESENCE_STATE_AWAY
	offline = pb.PresenceState_PRESENCE_STATE_OFFLINE
)

func stated(ttl time.Duration, devs ...*pb.DevicePresence) *pb.DevicePresences {
	return &pb.DevicePresences{Ttl: durationpb.New(ttl), Devices: devs}
}

func dev(user, device string, st pb.PresenceState) *pb.DevicePresence {
	return &pb.DevicePresence{UserId: user, DeviceId: device, State: st}
}

// presenceLog records what a table delivers to watchers.
type presenceLog []*pb.UserPresence

func (l *presenceLog) deliver(c presenceChange) { *l = append(*l, c.presence) }

func (l *presenceLog) take(t *testing.T, want ...pb.PresenceState) {
	t.Helper()
	if len(*l) != len(want) {
		t.Fatalf("delivered %v, want states %v", *l, want)
	}
	for i, p := range *l {
		if p.GetState() != want[i] {
			t.Fatalf("delivered %v, want states %v", *l, want)
		}
	}
	*l = nil
}

func TestPresenceAggregatesDevicesAndGateways(t *testing.T) {
	var log presenceLog
	tb := newPresenceTable(time.Hour, log.deliver)
	w := &session{}
	var answer []*pb.UserPresence
	tb.watch(w, []string{"alice", "alice"}, func(ps []*pb.UserPresence) { answer = ps })
	if len(answer) != 1 || answer[0].GetState() != offline || answer[0].GetLastSeen() != nil {
		t.Fatalf("unknown user: %v", answer)
	}
	t0 := time.Unix(1000, 0)
	tb.apply("g1", t0, stated(time.Minute, dev("alice", "phone", away)))
	log.take(t, away)
	tb.apply("g2", t0, stated(time.Minute, dev("alice", "laptop", online)))
	log.take(t, online)
	// A restatement changes nothing.
	tb.apply("g2", t0.Add(time.Second), stated(time.Minute, dev("alice", "laptop", online)))
	log.take(t)
	// The same device reconnected to g2 while g1 still had it: g1's
	// OFFLINE removes only g1's entry.
	tb.apply("g2", t0.Add(2*time.Second), stated(time.Minute, dev("alice", "phone", online)))
	tb.apply("g1", t0.Add(3*time.Second), stated(time.Minute, dev("alice", "phone", offline)))
	log.take(t)
	tb.apply("g2", t0.Add(4*time.Second), stated(time.Minute, dev("alice", "phone", offline), dev("alice", "laptop", offline)))
	log.take(t, offline)
	tb.watch(w, []string{"alice"}, func(ps []*pb.UserPresence) { answer = ps })
	if answer[0].GetState() != offline || !answer[0].GetLastSeen().AsTime().Equal(t0.Add(4*time.Second)) {
		t.Fatalf("after leaving: %v", answer[0])
	}
}

func TestPresenceExpires(t *testing.T) {
	var log presenceLog
	tb := newPresenceTable(time.Hour, log.deliver)
	tb.watch(&session{}, []string{"dave"}, func([]*pb.UserPresence) {})
	t0 := time.Unix(1000, 0)
	tb.apply("crashed", t0, stated(10*time.Second, dev("dave", "phone", online)))
	log.take(t, online)
	tb.expire(t0.Add(9 * time.Second))
	log.take(t)
	tb.apply("crashed", t0.Add(5*time.Second), stated(10*time.Second, dev("dave", "phone", online)))
	tb.expire(t0.Add(14 * time.Second))
	log.take(t)
	tb.expire(t0.Add(15 * time.Second))
	log.take(t, offline)
}

func TestPresenceForgetsUnwatchedOfflineUsers(t *testing.T) {
	tb := newPresenceTable(time.Minute, nil)
	t0 := time.Unix(1000, 0)
	tb.apply("g", t0, stated(10*time.Second, dev("a", "d", online), dev("b", "d", online)))
	s := &session{}
	tb.watch(s, []string{"b"}, func([]*pb.UserPresence) {})
	tb.expire(t0.Add(2 * time.Minute))
	if _, ok := tb.users["a"]; ok {
		t.Fatal("an unwatched user offline for longer than forget is kept")
	}
	if _, ok := tb.users["b"]; !ok {
		t.Fatal("a watched user's last-seen time was forgotten")
	}
	tb.unwatch(s)
	if len(tb.watchers) != 0 || len(tb.watching) != 0 {
		t.Fatalf("unwatch left %v %v", tb.watchers, tb.watching)
	}
}

// TestPresenceStates: the aggregate follows the documented precedence, and
// an invisible user is offline to watchers with a last-seen frozen at the
// moment it went invisible.
func TestPresenceStates(t *testing.T) {
	var log presenceLog
	tb := newPresenceTable(time.Hour, log.deliver)
	w := &session{}
	tb.watch(w, []string{"bob"}, func([]*pb.UserPresence) {})
	busy, dnd, invisible := pb.PresenceState_PRESENCE_STATE_BUSY, pb.PresenceState_PRESENCE_STATE_DO_NOT_DISTURB, pb.PresenceState_PRESENCE_STATE_INVISIBLE
	t0 := time.Unix(1000, 0)
	// Invisible from the start: never seen.
	tb.apply("g1", t0, stated(time.Minute, dev("bob", "phone", invisible)))
	log.take(t)
	tb.apply("g1", t0.Add(time.Second), stated(time.Minute, dev("bob", "phone", away)))
	log.take(t, away)
	tb.apply("g1", t0.Add(2*time.Second), stated(time.Minute, dev("bob", "laptop", online)))
	log.take(t, online)
	tb.apply("g1", t0.Add(3*time.Second), stated(time.Minute, dev("bob", "tablet", busy)))
	log.take(t, busy)
	tb.apply("g1", t0.Add(4*time.Second), stated(time.Minute, dev("bob", "phone", dnd)))
	log.take(t, dnd)
	tb.apply("g1", t0.Add(5*time.Second), stated(time.Minute, dev("bob", "laptop", invisible)))
	log.take(t, offline)
	// Restated while invisible: nothing moves, last-seen included.
	tb.apply("g1", t0.Add(9*time.Second), stated(time.Minute, dev("bob", "laptop", invisible), dev("bob", "phone", online)))
	log.take(t)
	var answer []*pb.UserPresence
	tb.watch(w, []string{"bob"}, func(ps []*pb.UserPresence) { answer = ps })
	if answer[0].GetState() != offline || !answer[0].GetLastSeen().AsTime().Equal(t0.Add(5*time.Second)) {
		t.Fatalf("invisible bob: %v, want offline last seen at +5s", answer[0])
	}
	// Visible again (the phone went online meanwhile): tablet busy, phone
	// online, laptop away — busy comes first.
	tb.apply("g1", t0.Add(10*time.Second), stated(time.Minute, dev("bob", "laptop", away)))
	log.take(t, busy)
}

// TestPresenceBlocks: a block read from the events ends the blocked
// user's watches of the blocker at once (answered OFFLINE without
// lastSeen, and no change follows), and a watch set while it is remembered
// does not follow the blocker; other watchers are untouched, and an
// unblock lets a new watch follow again.
func TestPresenceBlocks(t *testing.T) {
	var log presenceLog
	tb := newPresenceTable(time.Hour, log.deliver)
	now := time.Now()
	tb.apply("g1", now, stated(time.Minute, dev("bob", "pc", online)))
	alice, carol := &session{user: "alice"}, &session{user: "carol"}
	var answer []*pb.UserPresence
	tb.watch(alice, []string{"bob"}, func(ps []*pb.UserPresence) { answer = ps })
	if len(answer) != 1 || answer[0].GetState() != online {
		t.Fatalf("answer %v", answer)
	}
	tb.watch(carol, []string{"bob"}, func([]*pb.UserPresence) {})

	tb.block("bob", "alice", now)
	log.take(t, offline)
	tb.apply("g1", now.Add(time.Second), stated(time.Minute, dev("bob", "pc", away)))
	log.take(t, away) // carol's, alone
	tb.mu.Lock()
	_, followed := tb.watchers["bob"][alice]
	tb.mu.Unlock()
	if followed {
		t.Fatal("alice still follows bob after his block")
	}

	tb.watch(alice, []string{"bob", "carol"}, func(ps []*pb.UserPresence) { answer = ps })
	if len(answer) != 2 || answer[0].GetUserId() != "bob" || answer[0].GetState() != offline || answer[0].GetLastSeen() != nil {
		t.Fatalf("answer %v, want bob OFFLINE without lastSeen", answer)
	}
	tb.unblock("bob", "alice")
	tb.watch(alice, []string{"bob"}, func(ps []*pb.UserPresence) { answer = ps })
	if len(answer) != 1 || answer[0].GetState() != away {
		t.Fatalf("answer after unblock %v", answer)
	}
	// Remembered blocks expire (the blocks view answers for them then).
	tb.block("bob", "carol", now)
	log.take(t, offline)
	tb.expire(now.Add(blockMemory + time.Second))
	tb.mu.Lock()
	n := len(tb.blocks)
	tb.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d blockers remembered past blockMemory", n)
	}
}

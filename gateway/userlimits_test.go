package gateway

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// drain takes tokens of user's bucket at share until one is refused and
// returns how many it got.
func drain(t *testing.T, l *userLimiter, user string, share float64, now time.Time) int {
	t.Helper()
	n := 0
	for {
		ok, wait := l.allow(user, share, now)
		if !ok {
			if wait <= 0 {
				t.Fatalf("a refusal without a positive retry hint: %s", wait)
			}
			return n
		}
		n++
		if n > 1_000_000 {
			t.Fatal("the bucket never refused")
		}
	}
}

func TestUserLimiterWholeBudget(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newUserLimiter(10, 20)
	l.acquire("alice", t0)
	if n := drain(t, l, "alice", 1, t0); n != 20 {
		t.Fatalf("burst: %d tokens, want 20", n)
	}
	if n := drain(t, l, "alice", 1, t0.Add(time.Second)); n != 10 {
		t.Fatalf("after 1 s at 10/s: %d tokens, want 10", n)
	}
	// Another user has a bucket of its own.
	if n := drain(t, l, "bob", 1, t0); n != 20 {
		t.Fatalf("bob: %d tokens, want 20", n)
	}
}

// TestUserLimiterShares runs one user on two gateways, half its sessions
// on each: together they never pass more than the burst plus the rate over
// the time elapsed.
func TestUserLimiterShares(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const rate, burst = 40.0, 20
	a, b := newUserLimiter(rate, burst), newUserLimiter(rate, burst)
	a.acquire("alice", t0)
	b.acquire("alice", t0)
	total := 0
	now := t0
	for i := 0; i < 1000; i++ { // 10 s in steps of 10 ms, each gateway trying 5 frames a step
		for j := 0; j < 5; j++ {
			if ok, _ := a.allow("alice", share(1, 1), now); ok {
				total++
			}
			if ok, _ := b.allow("alice", share(1, 1), now); ok {
				total++
			}
		}
		now = now.Add(10 * time.Millisecond)
	}
	elapsed := now.Sub(t0).Seconds()
	if max := burst + rate*elapsed; float64(total) > max {
		t.Fatalf("two gateways passed %d frames in %.1f s, over the budget %.0f", total, elapsed, max)
	}
	if min := rate*elapsed - 2; float64(total) < min {
		t.Fatalf("two gateways passed %d frames in %.1f s, less than the rate allows (%.0f)", total, elapsed, min)
	}
}

func TestUserLimiterShareShrinks(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newUserLimiter(10, 100)
	l.acquire("alice", t0)
	// Full (100 tokens) while alone; then 3 more sessions elsewhere: the
	// bucket is cut to a quarter at once.
	if n := drain(t, l, "alice", share(1, 3), t0); n != 25 {
		t.Fatalf("a quarter share: %d tokens, want 25", n)
	}
	// A share below one token still passes one frame once it refilled.
	l2 := newUserLimiter(10, 2)
	l2.acquire("bob", t0)
	if n := drain(t, l2, "bob", share(1, 9), t0); n != 1 {
		t.Fatalf("a tenth of 2 tokens: %d, want 1", n)
	}
	if ok, _ := l2.allow("bob", share(1, 9), t0.Add(500*time.Millisecond)); ok {
		t.Fatal("half a token after 0.5 s at 1/s passed a frame")
	}
	if ok, _ := l2.allow("bob", share(1, 9), t0.Add(1100*time.Millisecond)); !ok {
		t.Fatal("a token after 1.1 s at 1/s refused")
	}
}

func TestUserLimiterReconnectDoesNotRefill(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newUserLimiter(10, 20)
	l.acquire("alice", t0)
	drain(t, l, "alice", 1, t0)
	l.release("alice")
	l.sweep(t0.Add(100 * time.Millisecond)) // not full yet: kept
	l.acquire("alice", t0.Add(100*time.Millisecond))
	if n := drain(t, l, "alice", 1, t0.Add(100*time.Millisecond)); n != 1 {
		t.Fatalf("a reconnect 100 ms later got %d tokens, want 1", n)
	}
	l.release("alice")
	l.sweep(t0.Add(10 * time.Second)) // full by now and unheld: forgotten
	if len(l.users) != 0 {
		t.Fatalf("sweep kept %d buckets", len(l.users))
	}
	l.acquire("alice", t0)
	l.sweep(t0.Add(time.Hour)) // held: kept
	if len(l.users) != 1 {
		t.Fatal("sweep forgot a held bucket")
	}
}

func TestUserLimiterOff(t *testing.T) {
	l := newUserLimiter(-1, 0)
	for i := 0; i < 1000; i++ {
		if ok, _ := l.allow("alice", 0.01, time.Now()); !ok {
			t.Fatal("a negative rate limited")
		}
	}
}

func TestUserSessionsAndConnections(t *testing.T) {
	s := &Server{cfg: Config{Limits: Limits{UserMaxConnections: 3}}.Defaults(), hub: newHub(), instance: "gw-a",
		presence: newPresenceTable(time.Hour, nil)}
	s.hub.register(&session{user: "alice", device: "phone"})
	now := time.Now()
	ttl := durationpb.New(time.Minute)
	online := pb.PresenceState_PRESENCE_STATE_ONLINE
	// gw-b has alice's laptop and, reconnecting, her phone; gw-a's own
	// records (read back) are not counted twice.
	s.presence.apply("gw-b", now, &pb.DevicePresences{Ttl: ttl, Devices: []*pb.DevicePresence{
		{UserId: "alice", DeviceId: "laptop", State: online}, {UserId: "alice", DeviceId: "phone", State: online},
		{UserId: "bob", DeviceId: "tab", State: online}}})
	s.presence.apply("gw-a", now, &pb.DevicePresences{Ttl: ttl, Devices: []*pb.DevicePresence{
		{UserId: "alice", DeviceId: "phone", State: online}}})
	if l, r := s.userSessions("alice", ""); l != 1 || r != 1 {
		t.Fatalf("alice: %d local, %d remote; want 1, 1", l, r)
	}
	if got := share(s.userSessions("alice", "")); got != 0.5 {
		t.Fatalf("share %g, want 0.5", got)
	}
	if _, many := s.tooManyConnections("alice", "tablet"); many {
		t.Fatal("a third device refused under a limit of 3")
	}
	s.presence.apply("gw-c", now, &pb.DevicePresences{Ttl: ttl, Devices: []*pb.DevicePresence{
		{UserId: "alice", DeviceId: "watch", State: pb.PresenceState_PRESENCE_STATE_INVISIBLE}}})
	msg, many := s.tooManyConnections("alice", "tablet")
	if !many || !strings.Contains(msg, "at most 3") {
		t.Fatalf("a fourth device: %q, %v; want refused", msg, many)
	}
	// A device that is connected already reconnects (it replaces itself).
	if _, many := s.tooManyConnections("alice", "watch"); many {
		t.Fatal("the watch's reconnect refused")
	}
	// Its gateway states it offline: room again.
	s.presence.apply("gw-c", now, &pb.DevicePresences{Ttl: ttl, Devices: []*pb.DevicePresence{
		{UserId: "alice", DeviceId: "watch", State: pb.PresenceState_PRESENCE_STATE_OFFLINE}}})
	if _, many := s.tooManyConnections("alice", "tablet"); many {
		t.Fatal("refused after a device left")
	}
	// Entries expire with their gateway's silence.
	s.presence.apply("gw-c", now, &pb.DevicePresences{Ttl: ttl, Devices: []*pb.DevicePresence{
		{UserId: "alice", DeviceId: "watch", State: online}}})
	s.presence.expire(now.Add(2 * time.Minute))
	if l, r := s.userSessions("alice", ""); l != 1 || r != 0 {
		t.Fatalf("after expiry: %d local, %d remote; want 1, 0", l, r)
	}
}

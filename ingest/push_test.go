package ingest

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// onDevice is c sent from device dev of its user.
func onDevice(dev string, c *pb.Command) *pb.Command {
	c.DeviceId = dev
	return c
}

func fcmTarget(dev, token string) *pb.PushTarget {
	return &pb.PushTarget{DeviceId: dev, Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: token}
}

func webPushTarget(t *testing.T, dev, endpoint string) *pb.PushTarget {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return &pb.PushTarget{DeviceId: dev, Provider: pb.PushProvider_PUSH_PROVIDER_WEB_PUSH, Endpoint: endpoint,
		P256Dh: base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), Auth: base64.RawURLEncoding.EncodeToString(auth)}
}

// register is user's RegisterPushTarget of target from device dev.
func register(user, dev string, target *pb.PushTarget) *pb.Command {
	return onDevice(dev, cmd(user, schemas.UserStreamID(user), &pb.RegisterPushTarget{Target: target}))
}

func unregister(user, dev, target string, reason pb.PushUnregisterReason, token string) *pb.Command {
	return onDevice(dev, cmd(user, schemas.UserStreamID(user), &pb.UnregisterPushTarget{DeviceId: target, Reason: reason, Token: token}))
}

// pushSummary is streamSummary with each push event's device (and the
// reason of an unregistration): "uA:PushTargetRegistered:phone/v1".
func pushSummary(evs []*pb.Event) []string {
	s := streamSummary(evs)
	for i, e := range evs {
		switch b := e.GetBody().(type) {
		case *pb.Event_PushTargetRegistered:
			s[i] = fmt.Sprintf("%s:+%s/v%d", tag(e.GetConversationId()), b.PushTargetRegistered.GetTarget().GetDeviceId(), e.GetVersion())
		case *pb.Event_PushTargetUnregistered:
			u := b.PushTargetUnregistered
			s[i] = fmt.Sprintf("%s:-%s:%s/v%d", tag(e.GetConversationId()), u.GetDeviceId(),
				strings.TrimPrefix(u.GetReason().String(), "PUSH_UNREGISTER_REASON_"), e.GetVersion())
		}
	}
	return s
}

const (
	logout       = pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT
	invalidToken = pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN
	replacedBy   = pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED
)

func TestDecidePushTargets(t *testing.T) {
	laptop := webPushTarget(t, "laptop", "https://push.example/sub/1")
	badWeb := proto.Clone(laptop).(*pb.PushTarget)
	badWeb.Auth = "c2hvcnQ" // 5 bytes
	withLocale := fcmTarget("phone", "tok-1")
	withLocale.Locale = proto.String("de-CH")
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"register two devices; the same target again is no event; a new token or locale replaces", Limits{},
			[]*pb.Command{register("alice", "phone", fcmTarget("phone", "tok-1")), register("alice", "laptop", laptop),
				register("alice", "phone", fcmTarget("phone", "tok-1")), register("alice", "phone", fcmTarget("phone", "tok-2")),
				register("alice", "phone", withLocale), register("alice", "laptop", laptop)},
			[]string{"uA:+phone/v1", "uA:+laptop/v2", "uA:+phone/v3", "uA:+phone/v4"}},
		{"unregister on logout; again, and of a device without a target, is no event", Limits{},
			[]*pb.Command{register("alice", "phone", fcmTarget("phone", "tok-1")), unregister("alice", "phone", "phone", logout, ""),
				unregister("alice", "phone", "phone", logout, ""), unregister("alice", "tablet", "tablet", replacedBy, "")},
			[]string{"uA:+phone/v1", "uA:-phone:LOGOUT/v2"}},
		{"a device registers and unregisters for itself only", Limits{},
			[]*pb.Command{register("alice", "phone", fcmTarget("laptop", "tok-1")), register("alice", "laptop", laptop),
				unregister("alice", "phone", "laptop", logout, ""), unregister("alice", "phone", "laptop", replacedBy, "")},
			[]string{"uA:" + rejDenied + "/v0", "uA:+laptop/v1", "uA:" + rejDenied + "/v0", "uA:" + rejDenied + "/v0"}},
		{"another user's stream is refused", Limits{},
			[]*pb.Command{onDevice("phone", cmd("alice", streamBob, &pb.RegisterPushTarget{Target: fcmTarget("phone", "t")})),
				onDevice("phone", cmd("alice", direct, &pb.RegisterPushTarget{Target: fcmTarget("phone", "t")}))},
			[]string{"uB:" + rejDenied + "/v0", "dAB:" + rejInvalid + "/v0"}},
		{"malformed targets and unregistrations", Limits{},
			[]*pb.Command{register("alice", "phone", nil), register("alice", "phone", fcmTarget("phone", "")),
				register("alice", "phone", fcmTarget("", "t")), register("alice", "laptop", badWeb),
				register("alice", "phone", &pb.PushTarget{DeviceId: "phone", Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: "abc"}),
				unregister("alice", "phone", "", logout, ""), unregister("alice", "phone", "phone", 0, ""),
				unregister("alice", "phone", "phone", logout, "tok"), unregister("alice", "notifier", "phone", invalidToken, "")},
			[]string{"uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejID + "/v0", "uA:" + rejInvalid + "/v0",
				"uA:" + rejInvalid + "/v0", "uA:" + rejID + "/v0", "uA:" + rejInvalid + "/v0", "uA:" + rejInvalid + "/v0",
				"uA:" + rejInvalid + "/v0"}},
		{"invalid token: removes the target only while it has the refused token", Limits{},
			[]*pb.Command{register("alice", "phone", fcmTarget("phone", "tok-1")), register("alice", "phone", fcmTarget("phone", "tok-2")),
				unregister("alice", "notifier", "phone", invalidToken, "tok-1"), unregister("alice", "notifier", "phone", invalidToken, "tok-2"),
				register("alice", "laptop", laptop), unregister("alice", "notifier", "laptop", invalidToken, laptop.GetEndpoint())},
			[]string{"uA:+phone/v1", "uA:+phone/v2", "uA:-phone:INVALID_TOKEN/v3", "uA:+laptop/v4", "uA:-laptop:INVALID_TOKEN/v5"}},
		{"the same token on another device is taken from it, in the same decision", Limits{},
			[]*pb.Command{register("alice", "phone", fcmTarget("phone", "tok-1")), register("alice", "phone2", fcmTarget("phone2", "tok-1")),
				register("bob", "phone", fcmTarget("phone", "tok-1"))},
			[]string{"uA:+phone/v1", "uA:-phone:REPLACED/v2", "uA:+phone2/v3", "uB:+phone/v1"}},
		{"at most MaxPushTargets per user; replacing a device's target or a taken token is no new one", Limits{MaxPushTargets: 2},
			[]*pb.Command{register("alice", "a", fcmTarget("a", "t1")), register("alice", "b", fcmTarget("b", "t2")),
				register("alice", "c", fcmTarget("c", "t3")), register("alice", "b", fcmTarget("b", "t4")),
				register("alice", "c", fcmTarget("c", "t1")), unregister("alice", "b", "b", logout, ""), register("alice", "d", fcmTarget("d", "t5"))},
			[]string{"uA:+a/v1", "uA:+b/v2", "uA:" + rejLimit + "/v0", "uA:+b/v3", "uA:-a:REPLACED/v4", "uA:+c/v5",
				"uA:-b:LOGOUT/v6", "uA:+d/v7"}},
		{"push targets share the stream's versions with its other events", Limits{},
			[]*pb.Command{blockCmd("alice", "bob"), register("alice", "phone", fcmTarget("phone", "t")),
				prefsCmd("alice", streamAlice, &pb.UpdateConversationPrefs{ConversationId: direct, Pinned: proto.Bool(true)})},
			[]string{"uA:UserBlocked@0/v1", "dAB:DirectBlockChanged@0/v0", "uA:+phone/v2", "uA:ConversationPrefsChanged@0/v3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStreams(t, tc.l)
			if got := pushSummary(s.do(tc.cmds...)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestDecidePushTargetBodies checks what the events carry: the target with
// the decider's registered_at, the provider of a target removed.
func TestDecidePushTargetBodies(t *testing.T) {
	s := newStreams(t, Limits{})
	at := time.Unix(1_700_000_000, 0) // newStreams' clock
	target := fcmTarget("phone", "tok-1")
	target.Locale = proto.String("fr")
	target.RegisteredAt = nil
	r := register("alice", "phone", target)
	evs := s.do(r, unregister("alice", "phone", "phone", logout, ""))
	reg := evs[0].GetPushTargetRegistered().GetTarget()
	want := proto.Clone(target).(*pb.PushTarget)
	want.RegisteredAt = reg.GetRegisteredAt()
	if !proto.Equal(reg, want) || !reg.GetRegisteredAt().AsTime().Equal(at) || evs[0].GetActorUserId() != "alice" ||
		evs[0].GetActorDeviceId() != "phone" || evs[0].GetCommandId() != r.GetCommandId() || evs[0].GetConversationId() != streamAlice {
		t.Fatalf("PushTargetRegistered %v", evs[0])
	}
	if u := evs[1].GetPushTargetUnregistered(); u.GetDeviceId() != "phone" || u.GetProvider() != pb.PushProvider_PUSH_PROVIDER_FCM || u.GetReason() != logout {
		t.Fatalf("PushTargetUnregistered %v", evs[1])
	}
	// A device's own registered_at is not taken.
	target = fcmTarget("tablet", "tok-9")
	target.RegisteredAt = evs[0].GetOccurredAt()
	target.RegisteredAt.Seconds -= 3600
	evs = s.do(register("alice", "tablet", target))
	if got := evs[0].GetPushTargetRegistered().GetTarget().GetRegisteredAt().AsTime(); !got.Equal(at) {
		t.Fatalf("registered_at %v, want the receive time %v", got, at)
	}
}

// TestPushTargetsRestore: the targets come back from the changelog, and
// decisions after the restore go on from them.
func TestPushTargetsRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	laptop := webPushTarget(t, "laptop", "https://push.example/sub/1")
	for _, c := range []*pb.Command{register("alice", "phone", fcmTarget("phone", "tok-1")), register("alice", "laptop", laptop),
		register("alice", "tablet", fcmTarget("tablet", "tok-2")), unregister("alice", "tablet", "tablet", logout, ""),
		register("bob", "phone", fcmTarget("phone", "tok-3"))} {
		r.do(c, at)
	}
	targets := func(ps *partState) string {
		var b strings.Builder
		for _, id := range slices.Sorted(maps.Keys(ps.convs)) {
			st := ps.convs[id]
			for _, dev := range slices.Sorted(maps.Keys(st.push)) {
				fmt.Fprintf(&b, "%s v%d %s %v\n", tag(id), st.lastVersion, dev, st.push[dev])
			}
		}
		return b.String()
	}
	live := targets(r.ps)
	ps := r.restore(at)
	if got := targets(ps); got != live || strings.Count(live, "\n") != 3 || strings.Contains(live, "tablet") {
		t.Fatalf("restored\n%s\nlive\n%s", got, live)
	}
	r.ps = ps
	evs := r.do(register("alice", "laptop", laptop), at)                                          // the same: no event
	evs = append(evs, r.do(register("alice", "phone2", fcmTarget("phone2", "tok-1")), at)...)     // takes phone's token
	evs = append(evs, r.do(unregister("alice", "laptop", "laptop", logout, ""), at)...)           // the next version
	evs = append(evs, r.do(unregister("bob", "notifier", "phone", invalidToken, "tok-3"), at)...) // bob's, restored
	want := "[uA:-phone:REPLACED/v5 uA:+phone2/v6 uA:-laptop:LOGOUT/v7 uB:-phone:INVALID_TOKEN/v2]"
	if got := fmt.Sprint(pushSummary(evs)); got != want {
		t.Fatalf("after restore\n got %s\nwant %s", got, want)
	}
}

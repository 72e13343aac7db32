package system_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/push"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/pushserver"
	"github.com/parley-im/parley/testenv/system"
)

// pushServers are a local FCM and a local APNs, and the senders that talk
// to them.
type pushServers struct {
	fcm  *pushserver.FCM
	apns *pushserver.APNs
}

func startPushServers(t testing.TB) (*pushServers, []push.Sender) {
	t.Helper()
	s := &pushServers{fcm: pushserver.StartFCM(t), apns: pushserver.StartAPNs(t)}
	fcm, err := push.NewFCM(push.FCMConfig{Credentials: s.fcm.ServiceAccountJSON(), Endpoint: s.fcm.URL(),
		TokenURL: s.fcm.TokenURL(), RootCAs: s.fcm.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	apns, err := push.NewAPNs(push.APNsConfig{Key: s.apns.KeyPEM(), KeyID: s.apns.KeyID, TeamID: s.apns.TeamID,
		Production: s.apns.URL(), Sandbox: s.apns.URL(), RootCAs: s.apns.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	return s, []push.Sender{fcm, apns}
}

// waitRequests waits until srv accepted n requests in all and returns them.
func waitRequests(t testing.TB, srv interface {
	WaitFor(context.Context, int) ([]pushserver.Request, error)
	Rejections() []string
}, n int) []pushserver.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got, err := srv.WaitFor(ctx, n)
	if err != nil {
		t.Fatalf("%v; accepted %+v; rejected %q", err, got, srv.Rejections())
	}
	return got
}

// offlineSeen waits until the signals topic holds the OFFLINE statement of
// user's device: from then on, a message decided is one the device was
// not connected for.
func offlineSeen(t *testing.T, sys *system.System, user, device string) {
	t.Helper()
	readTopicUntil(t, sys.Topics.Signals.Name, func(r *kgo.Record) bool {
		sig := &pb.GatewaySignal{}
		if proto.Unmarshal(r.Value, sig) != nil {
			return false
		}
		for _, d := range sig.GetPresence().GetDevices() {
			if d.GetUserId() == user && d.GetDeviceId() == device && d.GetState() == pb.PresenceState_PRESENCE_STATE_OFFLINE {
				return true
			}
		}
		return false
	})
}

const testAPNsToken = "5f0c3e5d7a9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"

// TestE2ENotifier: bob's phone (FCM) and iPad (APNs) are registered and
// disconnected, his laptop (FCM too) is connected. alice writes in their
// group: the local FCM and APNs servers each get exactly one correctly
// authenticated push, with bob's unread total as badge and the full
// preview; the laptop gets none. bob mutes the group: a plain message
// pushes nothing, a mention of him pushes. He reads on the laptop: both
// devices get a silent update with the new badge. The FCM server then
// calls the phone's token invalid: the notifier unregisters it, which is
// in the log (the laptop sees the event) and in the view.
func TestE2ENotifier(t *testing.T) {
	t.Parallel()
	srv, senders := startPushServers(t)
	sys, live := startWith(t, system.Options{Gateways: 2, Notifier: &notify.Config{Senders: senders, RetryInitial: 50 * time.Millisecond}})
	tables, err := projector.NewTables(live.Session(), live.Keyspace)
	if err != nil {
		t.Fatal(err)
	}
	alice := connect(t, sys, 0, "alice", "laptop")
	laptop := connect(t, sys, 1, "bob", "laptop")
	phone := connect(t, sys, 0, "bob", "phone")
	ipad := connect(t, sys, 1, "bob", "ipad")
	accepted(t, phone.MustDo("", &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "fcm-phone"}}))
	accepted(t, ipad.MustDo("", &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_APNS,
		Token: testAPNsToken, ApnsTopic: "com.example.chat", ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX}}))
	accepted(t, laptop.MustDo("", &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "fcm-laptop"}}))
	phone.Close()
	ipad.Close()
	offlineSeen(t, sys, "bob", "phone")
	offlineSeen(t, sys, "bob", "ipad")
	testenv.Eventually(t, time.Minute, func() string {
		got, err := tables.PushTargets(t.Context(), "bob")
		if err != nil || len(got) != 3 {
			return fmt.Sprintf("bob's push targets: %+v %v", got, err)
		}
		return ""
	})

	conv := accepted(t, alice.MustDo("", &pb.CreateConversation{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "Ops",
		MemberUserIds: []string{"bob"}}))
	accepted(t, alice.MustDo(conv, send("m1", "deploy at 5")))
	fcm, apns := waitRequests(t, srv.fcm, 1), waitRequests(t, srv.apns, 1)
	var unread struct {
		Total int64 `json:"total"`
	}
	// The push proves the notifier saw m1, not that the projector has it.
	testenv.Eventually(t, time.Minute, func() string {
		if code := api(t, sys, "bob", "/v1/unread", &unread); code != 200 || unread.Total < 1 {
			return fmt.Sprintf("bob's unread: %d %+v", code, unread)
		}
		return ""
	})
	for _, r := range []pushserver.Request{fcm[0], apns[0]} {
		if r.Title != "Ops" || r.Body != "alice: deploy at 5" || r.Badge != unread.Total || r.Collapse != conv || r.Silent ||
			r.NotificationID == "" {
			t.Fatalf("push %+v; want title Ops, body \"alice: deploy at 5\", badge %d, collapse %s", r, unread.Total, conv)
		}
	}
	if fcm[0].Address != "fcm-phone" || apns[0].Address != testAPNsToken || apns[0].ProtoMajor != 2 {
		t.Fatalf("pushed to %s (FCM) and %s over HTTP/%d (APNs)", fcm[0].Address, apns[0].Address, apns[0].ProtoMajor)
	}

	// Muted: a plain message pushes nothing, a mention does. Pushes of one
	// user are sent in order, so had the plain one been pushed, it would
	// come before the mention.
	if _, err := laptop.SetPrefs(t.Context(), conv, &pb.UpdateConversationPrefs{Mute: &pb.Mute{Forever: true}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() string {
		prefs, err := tables.ConversationPrefs(t.Context(), "bob")
		if err != nil || !prefs[conv].MutedForever {
			return fmt.Sprintf("bob's prefs: %+v %v", prefs, err)
		}
		return ""
	})
	accepted(t, alice.MustDo(conv, send("m2", "lunch?")))
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "m3", Text: "@bob the deploy", MentionUserIds: []string{"bob"}}))
	fcm, apns = waitRequests(t, srv.fcm, 2), waitRequests(t, srv.apns, 2)
	for _, r := range []pushserver.Request{fcm[1], apns[1]} {
		if r.Body != "alice: @bob the deploy" || r.Silent {
			t.Fatalf("after the mute, pushed %+v; want the mention only", r)
		}
	}

	// bob reads everything on the laptop: a silent update, badge 0, on both.
	last := laptop.WaitEvent("the mention", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "m3" }).GetSeq()
	accepted(t, laptop.MustDo(conv, &pb.MarkRead{UpToSeq: last}))
	fcm, apns = waitRequests(t, srv.fcm, 3), waitRequests(t, srv.apns, 3)
	for _, r := range []pushserver.Request{fcm[2], apns[2]} {
		if !r.Silent || r.Badge != 0 || r.Collapse != conv {
			t.Fatalf("after the read, pushed %+v; want a silent update with badge 0", r)
		}
	}

	// The phone's token is gone: the FCM answer unregisters it, in the log.
	srv.fcm.Answer("fcm-phone", pushserver.InvalidToken)
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "m4", Text: "@bob still there?", MentionUserIds: []string{"bob"}}))
	laptop.WaitEvent("the phone's INVALID_TOKEN unregistration", func(e *pb.Event) bool {
		u := e.GetPushTargetUnregistered()
		return u.GetDeviceId() == "phone" && u.GetReason() == pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN
	})
	testenv.Eventually(t, time.Minute, func() string {
		got, err := tables.PushTargets(t.Context(), "bob")
		if err != nil || slices.ContainsFunc(got, func(p projector.PushTarget) bool { return p.DeviceID == "phone" }) || len(got) != 2 {
			return fmt.Sprintf("bob's push targets: %+v %v", got, err)
		}
		return ""
	})
	waitRequests(t, srv.apns, 4)
	for _, r := range srv.fcm.Requests() {
		if r.Address == "fcm-laptop" {
			t.Fatalf("the connected laptop was pushed: %+v", r)
		}
	}
	if got := len(srv.fcm.Requests()); got != 3 {
		t.Fatalf("FCM accepted %d pushes, want 3", got)
	}
	if rej := append(srv.fcm.Rejections(), srv.apns.Rejections()...); len(rej) != 0 {
		t.Fatalf("the servers refused requests as malformed: %q", strings.Join(rej, "; "))
	}
}

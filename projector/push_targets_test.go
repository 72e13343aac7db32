package projector

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func pushRegistered(user string, t *pb.PushTarget) *pb.Event {
	e := onStream(user)
	e.Body = &pb.Event_PushTargetRegistered{PushTargetRegistered: &pb.PushTargetRegistered{Target: t}}
	return e
}

func pushUnregistered(user, dev string, p pb.PushProvider, r pb.PushUnregisterReason) *pb.Event {
	e := onStream(user)
	e.Body = &pb.Event_PushTargetUnregistered{PushTargetUnregistered: &pb.PushTargetUnregistered{DeviceId: dev, Provider: p, Reason: r}}
	return e
}

// pushLog is alice's stream: her phone registers FCM, then APNs (a new
// provider replaces every column), her laptop web push, her tablet FCM
// and logs out, her phone's token moves to a second phone (REPLACED).
func pushLog() []*pb.Event {
	fcm, apns, web := pb.PushProvider_PUSH_PROVIDER_FCM, pb.PushProvider_PUSH_PROVIDER_APNS, pb.PushProvider_PUSH_PROVIDER_WEB_PUSH
	evs := versioned(
		/* 1 */ pushRegistered("alice", &pb.PushTarget{DeviceId: "phone", Provider: fcm, Token: "fcm-1", Locale: proto.String("de"), RegisteredAt: at(101)}),
		/* 2 */ pushRegistered("alice", &pb.PushTarget{DeviceId: "phone", Provider: apns, Token: "ab12", ApnsTopic: "com.example.chat",
			ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX, RegisteredAt: at(102)}),
		/* 3 */ pushRegistered("alice", &pb.PushTarget{DeviceId: "laptop", Provider: web, Endpoint: "https://push.example/1", P256Dh: "BKey",
			Auth: "QXV0aA", RegisteredAt: at(103)}),
		/* 4 */ pushRegistered("alice", &pb.PushTarget{DeviceId: "tablet", Provider: fcm, Token: "fcm-2", RegisteredAt: at(104)}),
		/* 5 */ pushUnregistered("alice", "tablet", fcm, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT),
		/* 6 */ pushUnregistered("alice", "phone", apns, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED),
		/* 7 */ pushRegistered("alice", &pb.PushTarget{DeviceId: "phone2", Provider: apns, Token: "ab12", ApnsTopic: "com.example.chat",
			ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION, RegisteredAt: at(107)}),
	)
	for _, ev := range evs {
		ev.OccurredAt = at(100 + ev.GetVersion())
		ev.CommandId = fmt.Sprintf("cmd-p-%d", ev.GetVersion())
	}
	return evs
}

// TestViewsPushTargets applies alice's push targets forwards, backwards and
// as a log-order batch, twice each: the rows are the newest registration
// of each device with a target, whole, and no row of the devices that
// unregistered.
func TestViewsPushTargets(t *testing.T) {
	e := newEnv(t, true)
	stream := schemas.UserStreamID("alice")
	e.applyEachWay(t, stream, pushLog, func(t *testing.T, ks string) {
		rows := map[string]map[string]any{}
		for _, r := range e.rows(ks, "push_targets", "user_id = ?", "alice") {
			rows[r["device_id"].(string)] = r
		}
		if len(rows) != 2 {
			t.Fatalf("push_targets %v: want laptop and phone2", rows)
		}
		compare(t, stream, "push_targets", rows["laptop"], row{"provider": "web_push", "device_token": nil, "apns_topic": nil, "apns_environment": nil,
			"endpoint": "https://push.example/1", "p256dh": "BKey", "auth": "QXV0aA", "locale": nil, "registered_at": ts(103), "version": 3})
		compare(t, stream, "push_targets", rows["phone2"], row{"provider": "apns", "device_token": "ab12", "apns_topic": "com.example.chat",
			"apns_environment": "production", "endpoint": nil, "p256dh": nil, "auth": nil, "locale": nil, "registered_at": ts(107), "version": 7})

		tables, err := NewTables(e.s, ks)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tables.PushTargets(t.Context(), "alice")
		if err != nil || len(got) != 2 {
			t.Fatalf("PushTargets = %+v, %v", got, err)
		}
		want := []PushTarget{
			{DeviceID: "laptop", Provider: "web_push", Endpoint: "https://push.example/1", P256DH: "BKey", Auth: "QXV0aA",
				RegisteredAt: at(103).AsTime(), Version: 3},
			{DeviceID: "phone2", Provider: "apns", Token: "ab12", APNSTopic: "com.example.chat", APNSEnvironment: "production",
				RegisteredAt: at(107).AsTime(), Version: 7},
		}
		for i := range want {
			if g := got[i]; g.DeviceID != want[i].DeviceID || g.Provider != want[i].Provider || g.Token != want[i].Token ||
				g.APNSTopic != want[i].APNSTopic || g.APNSEnvironment != want[i].APNSEnvironment || g.Endpoint != want[i].Endpoint ||
				g.P256DH != want[i].P256DH || g.Auth != want[i].Auth || g.Locale != "" || !g.RegisteredAt.Equal(want[i].RegisteredAt) ||
				g.Version != want[i].Version {
				t.Errorf("PushTargets[%d] = %+v, want %+v", i, g, want[i])
			}
		}
		changes, err := tables.ChangesAfter(t.Context(), stream, 0, 7, 100)
		if err != nil || len(changes) != 7 {
			t.Fatalf("changes of the stream: %d, %v (every push event is a change devices resume)", len(changes), err)
		}
	})
}

// TestViewsPushTargetsPoison: a push event off its actor's stream, without
// a version, a device or a provider, is poison.
func TestViewsPushTargetsPoison(t *testing.T) {
	ok := pushRegistered("alice", &pb.PushTarget{DeviceId: "phone", Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "t"})
	ok.Version = 1
	for name, mutate := range map[string]func(*pb.Event){
		"another stream": func(e *pb.Event) { e.ConversationId = schemas.UserStreamID("bob") },
		"no version":     func(e *pb.Event) { e.Version = 0 },
		"no device":      func(e *pb.Event) { e.GetPushTargetRegistered().GetTarget().DeviceId = "" },
		"no provider":    func(e *pb.Event) { e.GetPushTargetRegistered().GetTarget().Provider = 0 },
		"unregister without device": func(e *pb.Event) {
			e.Body = &pb.Event_PushTargetUnregistered{PushTargetUnregistered: &pb.PushTargetUnregistered{}}
		},
	} {
		ev := proto.Clone(ok).(*pb.Event)
		mutate(ev)
		b, _ := proto.Marshal(ev)
		if _, err := decode([]byte(ev.GetConversationId()), b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	b, _ := proto.Marshal(ok)
	if _, err := decode([]byte(ok.GetConversationId()), b); err != nil {
		t.Fatalf("a good registration: %v", err)
	}
}

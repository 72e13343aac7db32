package system_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// pushHTTP calls /v1/push/targets of gateway gw as user's device.
func pushHTTP(t *testing.T, sys *system.System, gw int, user, device, method, body string) (int, string) {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, sys.GatewayURLs[gw]+"/v1/push/targets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestE2EPushTargets: bob registers FCM over the WebSocket on his phone and
// web push over HTTP from his laptop (before it connects); his other
// devices see each registration live; the view holds both rows; a new token
// replaces the phone's row; a bad token is refused INVALID_ARGUMENT with a
// message that says why; alice cannot register for bob's device, nor with
// bob's stream; an unregistration removes the row; a rebuild from the log
// equals the live push_targets.
func TestE2EPushTargets(t *testing.T) {
	t.Parallel()
	sys, live := start(t, 2)
	bobStream := schemas.UserStreamID("bob")
	phone := connect(t, sys, 0, "bob", "phone")
	tablet := connect(t, sys, 1, "bob", "tablet")
	alice := connect(t, sys, 1, "alice", "phone")
	tables, err := projector.NewTables(live.Session(), live.Keyspace)
	if err != nil {
		t.Fatal(err)
	}
	rows := func() map[string]projector.PushTarget {
		t.Helper()
		got, err := tables.PushTargets(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]projector.PushTarget{}
		for _, r := range got {
			out[r.DeviceID] = r
		}
		return out
	}
	registered := func(d *testenv.WSClient, dev, token string) *pb.Event {
		t.Helper()
		return d.WaitEvent(dev+"'s PushTargetRegistered", func(e *pb.Event) bool {
			r := e.GetPushTargetRegistered().GetTarget()
			return e.GetConversationId() == bobStream && r.GetDeviceId() == dev && (token == "" || r.GetToken() == token)
		})
	}

	// The phone over the WebSocket.
	reg := &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "fcm-phone-1"}}
	if a := accepted(t, phone.MustDo("", reg)); a != bobStream {
		t.Fatalf("accepted on %s, want bob's stream %s", a, bobStream)
	}
	ev := registered(tablet, "phone", "fcm-phone-1")
	if ev.GetActorDeviceId() != "phone" || ev.GetVersion() < 1 || ev.GetPushTargetRegistered().GetTarget().GetRegisteredAt() == nil {
		t.Fatalf("PushTargetRegistered %v", ev)
	}
	registered(phone, "phone", "fcm-phone-1") // its own devices, the registering one too

	// The laptop over HTTP, before it connects: answered with the decision.
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	p256dh, authB64 := base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(auth)
	web := fmt.Sprintf(`{"target":{"provider":"PUSH_PROVIDER_WEB_PUSH","endpoint":"https://push.example/sub/laptop","p256dh":%q,"auth":%q,"locale":"en-GB"}}`,
		p256dh, authB64)
	status, body := pushHTTP(t, sys, 1, "bob", "laptop", http.MethodPut, web)
	var got pb.PushTargetRegistered
	if err := protojson.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || got.GetTarget().GetDeviceId() != "laptop" ||
		got.GetTarget().GetP256Dh() != p256dh || got.GetTarget().GetRegisteredAt() == nil {
		t.Fatalf("PUT answered %d %s", status, body)
	}
	registered(phone, "laptop", "")
	registered(tablet, "laptop", "")

	testenv.Eventually(t, time.Minute, func() string {
		r := rows()
		if r["phone"].Token != "fcm-phone-1" || r["phone"].Provider != "fcm" || r["laptop"].Endpoint != "https://push.example/sub/laptop" ||
			r["laptop"].P256DH != p256dh || r["laptop"].Auth != authB64 || r["laptop"].Locale != "en-GB" || len(r) != 2 {
			return fmt.Sprintf("push_targets of bob: %+v", r)
		}
		return ""
	})
	// The same registration again over HTTP: answered from what the log
	// made of it, nothing appended.
	if status, body := pushHTTP(t, sys, 0, "bob", "laptop", http.MethodPut, web); status != http.StatusOK || !strings.Contains(body, "push.example/sub/laptop") {
		t.Fatalf("PUT again answered %d %s", status, body)
	}

	// A new token replaces the phone's row.
	reg.Target.Token = "fcm-phone-2"
	accepted(t, phone.MustDo("", reg))
	registered(tablet, "phone", "fcm-phone-2")
	testenv.Eventually(t, time.Minute, func() string {
		if r := rows(); r["phone"].Token != "fcm-phone-2" || len(r) != 2 {
			return fmt.Sprintf("push_targets of bob: %+v", r)
		}
		return ""
	})

	// A bad token: refused before anything is appended, saying why.
	f := phone.MustDo("", &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: "not-hex",
		ApnsTopic: "com.example.chat", ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION}})
	if e := f.GetError(); e.GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT || !strings.Contains(e.GetMessage(), "64 hex digits") {
		t.Fatalf("a bad APNs token: %v", f)
	}
	status, body = pushHTTP(t, sys, 0, "bob", "laptop", http.MethodPut, `{"target":{"provider":"PUSH_PROVIDER_FCM","token":"has space"}}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "ERROR_CODE_INVALID_ARGUMENT") || !strings.Contains(body, "printable ASCII") {
		t.Fatalf("a bad FCM token over HTTP: %d %s", status, body)
	}

	// alice cannot register for bob's device: not on her own stream with
	// his device id, not on his stream.
	f = alice.MustDo("", &pb.RegisterPushTarget{Target: &pb.PushTarget{DeviceId: "tablet", Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "evil"}})
	if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("alice registering bob's tablet: %v", f)
	}
	f = alice.MustDo(bobStream, &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "evil"}})
	if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("alice registering on bob's stream: %v", f)
	}
	// Nor may a device claim the notifier's reason.
	f = phone.MustDo("", &pb.UnregisterPushTarget{Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN, Token: "fcm-phone-2"})
	if f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("INVALID_TOKEN from a device: %v", f)
	}

	// Logout of the phone over the WebSocket, of the laptop over HTTP.
	accepted(t, phone.MustDo("", &pb.UnregisterPushTarget{Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT}))
	tablet.WaitEvent("the phone's PushTargetUnregistered", func(e *pb.Event) bool {
		u := e.GetPushTargetUnregistered()
		return u.GetDeviceId() == "phone" && u.GetProvider() == pb.PushProvider_PUSH_PROVIDER_FCM &&
			u.GetReason() == pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT
	})
	testenv.Eventually(t, time.Minute, func() string {
		if r := rows(); len(r) != 1 || r["laptop"].DeviceID != "laptop" {
			return fmt.Sprintf("push_targets of bob after the phone's logout: %+v", r)
		}
		return ""
	})
	status, body = pushHTTP(t, sys, 1, "bob", "laptop", http.MethodDelete, "")
	var un pb.PushTargetUnregistered
	if err := protojson.Unmarshal([]byte(body), &un); status != http.StatusOK || err != nil || un.GetDeviceId() != "laptop" ||
		un.GetProvider() != pb.PushProvider_PUSH_PROVIDER_WEB_PUSH {
		t.Fatalf("DELETE answered %d %s", status, body)
	}
	testenv.Eventually(t, time.Minute, func() string {
		if r := rows(); len(r) != 0 {
			return fmt.Sprintf("push_targets of bob after both logouts: %+v", r)
		}
		return ""
	})
	// The phone logs in again; rebuilt from the log, the view is the same.
	reg.Target.Token = "fcm-phone-3"
	accepted(t, phone.MustDo("", reg))
	testenv.Eventually(t, time.Minute, func() string {
		if r := rows(); len(r) != 1 || r["phone"].Token != "fcm-phone-3" {
			return fmt.Sprintf("push_targets of bob after the phone's login: %+v", r)
		}
		return ""
	})
	// A device that was away resumes its stream and gets every push event.
	// The push_targets row is written before the stream's last version is
	// (projector README, Batches), so the resume is retried until it covers
	// the last registration.
	want := "PushTargetRegistered PushTargetRegistered PushTargetRegistered PushTargetUnregistered PushTargetUnregistered PushTargetRegistered"
	testenv.Eventually(t, time.Minute, func() string {
		evs, _ := resume(t, connect(t, sys, 0, "bob", "watch"), map[string]int64{bobStream: 0})
		var kinds []string
		for _, e := range evs {
			if e.GetConversationId() == bobStream {
				kinds = append(kinds, schemas.EventType(e))
			}
		}
		if got := strings.Join(kinds, " "); got != want {
			return fmt.Sprintf("resumed %s, want %s", got, want)
		}
		return ""
	})
	assertRebuildEqual(t, sys, live, "push_targets")
}

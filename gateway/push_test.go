package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func fcmPush(dev, tok string) *pb.RegisterPushTarget {
	return &pb.RegisterPushTarget{Target: &pb.PushTarget{DeviceId: dev, Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: tok}}
}

// TestPushFrames: registerPush and unregisterPush frames go to the
// device's own stream, for the device itself, without registered_at; a
// bad target, another device, another stream and INVALID_TOKEN are
// refused before anything is appended.
func TestPushFrames(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.dial("alice", "phone")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	own := schemas.UserStreamID("alice")
	reg := fcmPush("", "tok-1")
	reg.Target.RegisteredAt = timestamppb.New(time.Unix(1, 0)) // the decider's: dropped
	for _, tc := range []struct {
		name string
		conv string
		body proto.Message
		code pb.ErrorCode // UNSPECIFIED: accepted
	}{
		{"register, device id filled in", "", reg, 0},
		{"register naming the device and the stream", own, fcmPush("phone", "tok-2"), 0},
		{"unregister on logout", "", &pb.UnregisterPushTarget{Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT}, 0},
		{"another device's", "", fcmPush("laptop", "tok-3"), pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
		{"another user's stream", schemas.UserStreamID("bob"), fcmPush("", "tok-3"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"a conversation", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", fcmPush("", "tok-3"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"a token with a space", "", fcmPush("", "tok 3"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"no target", "", &pb.RegisterPushTarget{}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"an APNs token that is not hex", "", &pb.RegisterPushTarget{Target: &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_APNS,
			Token: strings.Repeat("x", 64), ApnsTopic: "com.example.chat", ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX}},
			pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"invalid token is the notifier's", "", &pb.UnregisterPushTarget{Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN,
			Token: "tok-1"}, pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
		{"unregister another device", "", &pb.UnregisterPushTarget{DeviceId: "laptop", Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT},
			pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
		{"unregister without a reason", "", &pb.UnregisterPushTarget{}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
	} {
		f, err := c.Do(ctx, tc.conv, tc.body)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		switch {
		case tc.code == 0 && (f.GetAccepted() == nil || f.GetAccepted().GetConversationId() != own):
			t.Errorf("%s: got %v, want Accepted on %s", tc.name, f, own)
		case tc.code != 0 && f.GetError().GetCode() != tc.code:
			t.Errorf("%s: got %v, want %v", tc.name, f, tc.code)
		case tc.code != 0:
			t.Logf("%s: %s", tc.name, f.GetError().GetMessage())
		}
	}
	recs := e.commandRecords(3)
	var types []string
	for _, r := range recs {
		cmd := &pb.Command{}
		if err := proto.Unmarshal(r.Value, cmd); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != own || cmd.GetUserId() != "alice" || cmd.GetDeviceId() != "phone" {
			t.Fatalf("record %q: %v", r.Key, cmd)
		}
		if tg := cmd.GetRegisterPush().GetTarget(); cmd.GetRegisterPush() != nil && (tg.GetDeviceId() != "phone" || tg.GetRegisteredAt() != nil) {
			t.Fatalf("registered %v: want device phone and no registered_at", tg)
		}
		if u := cmd.GetUnregisterPush(); u != nil && u.GetDeviceId() != "phone" {
			t.Fatalf("unregistered %v: want device phone", u)
		}
		types = append(types, schemas.CommandType(cmd))
	}
	if got := strings.Join(types, ","); got != "RegisterPushTarget,RegisterPushTarget,UnregisterPushTarget" {
		t.Fatalf("appended %s", got)
	}
}

// TestPushHTTP: PUT and DELETE /v1/push/targets append the device's
// command and answer once its decision is on the events topic (here
// produced as the decider would); refusals come before anything is
// appended, with their status and code.
func TestPushHTTP(t *testing.T) {
	t.Parallel()
	e := start(t)
	own := schemas.UserStreamID("bob")
	do := func(method, tok, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+"/v1/push/targets", strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := e.token("bob", "laptop")
	for _, tc := range []struct {
		name, method, tok, body string
		status                  int
		code                    string
	}{
		{"no token", http.MethodPut, "", `{"target":{"provider":"PUSH_PROVIDER_FCM","token":"t"}}`, 401, "ERROR_CODE_UNAUTHENTICATED"},
		{"not JSON", http.MethodPut, tok, `{"target":`, 400, "ERROR_CODE_INVALID_ARGUMENT"},
		{"an unknown field", http.MethodPut, tok, `{"target":{"provider":"PUSH_PROVIDER_FCM","token":"t","colour":"red"}}`, 400, "ERROR_CODE_INVALID_ARGUMENT"},
		{"a bad endpoint", http.MethodPut, tok, `{"target":{"provider":"PUSH_PROVIDER_WEB_PUSH","endpoint":"http://push.example/1","p256dh":"x","auth":"y"}}`,
			400, "ERROR_CODE_INVALID_ARGUMENT"},
		{"another device", http.MethodPut, tok, `{"target":{"deviceId":"phone","provider":"PUSH_PROVIDER_FCM","token":"t"}}`, 403, "ERROR_CODE_PERMISSION_DENIED"},
		{"too large", http.MethodPut, tok, `{"target":{"provider":"PUSH_PROVIDER_FCM","token":"` + strings.Repeat("a", 20000) + `"}}`, 413,
			"ERROR_CODE_FRAME_TOO_LARGE"},
	} {
		status, body := do(tc.method, tc.tok, tc.body)
		var got pb.Error
		if err := protojson.Unmarshal([]byte(body), &got); status != tc.status || err != nil || got.GetCode().String() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}
	if n := e.commandCount(); n != 0 {
		t.Fatalf("%d commands appended by refused requests", n)
	}

	// A registration: answered with the decider's event.
	type answer struct {
		status int
		body   string
	}
	answers := make(chan answer, 1)
	go func() {
		s, b := do(http.MethodPut, tok, `{"target":{"provider":"PUSH_PROVIDER_FCM","token":"tok-1","locale":"de"}}`)
		answers <- answer{s, b}
	}()
	cmd := &pb.Command{}
	if err := proto.Unmarshal(e.commandRecords(1)[0].Value, cmd); err != nil {
		t.Fatal(err)
	}
	tg := cmd.GetRegisterPush().GetTarget()
	if cmd.GetConversationId() != own || cmd.GetDeviceId() != "laptop" || tg.GetDeviceId() != "laptop" || tg.GetToken() != "tok-1" || tg.GetLocale() != "de" {
		t.Fatalf("appended %v", cmd)
	}
	decided := proto.Clone(tg).(*pb.PushTarget)
	decided.RegisteredAt = timestamppb.New(time.Unix(1_700_000_000, 0))
	// The REPLACED of another device comes first: not the answer.
	e.produceEvent(&pb.Event{ConversationId: own, Version: 1, CommandId: cmd.GetCommandId(), ActorUserId: "bob", ActorDeviceId: "laptop",
		Body: &pb.Event_PushTargetUnregistered{PushTargetUnregistered: &pb.PushTargetUnregistered{DeviceId: "old",
			Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED}}})
	e.produceEvent(&pb.Event{ConversationId: own, Version: 2, CommandId: cmd.GetCommandId(), ActorUserId: "bob", ActorDeviceId: "laptop",
		Body: &pb.Event_PushTargetRegistered{PushTargetRegistered: &pb.PushTargetRegistered{Target: decided}}})
	a := <-answers
	var reg pb.PushTargetRegistered
	if err := protojson.Unmarshal([]byte(a.body), &reg); a.status != 200 || err != nil || !proto.Equal(reg.GetTarget(), decided) {
		t.Fatalf("PUT answered %d %s, want 200 with %v", a.status, a.body, decided)
	}

	// A refusal by the decider: its code, with a status.
	go func() {
		s, b := do(http.MethodPut, tok, `{"target":{"provider":"PUSH_PROVIDER_FCM","token":"tok-2"}}`)
		answers <- answer{s, b}
	}()
	if err := proto.Unmarshal(e.commandRecords(2)[1].Value, cmd); err != nil {
		t.Fatal(err)
	}
	e.produceEvent(&pb.Event{ConversationId: own, CommandId: cmd.GetCommandId(), ActorUserId: "bob", ActorDeviceId: "laptop",
		Body: &pb.Event_CommandRejected{CommandRejected: &pb.CommandRejected{Code: pb.ErrorCode_ERROR_CODE_LIMIT_REACHED, Message: "bob has 20 push targets"}}})
	a = <-answers
	if a.status != http.StatusConflict || !strings.Contains(a.body, "ERROR_CODE_LIMIT_REACHED") {
		t.Fatalf("PUT answered %d %s, want 409 LIMIT_REACHED", a.status, a.body)
	}

	// An unregistration (no views here: it waits for the decision).
	go func() {
		s, b := do(http.MethodDelete, tok, "")
		answers <- answer{s, b}
	}()
	if err := proto.Unmarshal(e.commandRecords(3)[2].Value, cmd); err != nil {
		t.Fatal(err)
	}
	if u := cmd.GetUnregisterPush(); u.GetDeviceId() != "laptop" || u.GetReason() != pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT {
		t.Fatalf("appended %v", cmd)
	}
	e.produceEvent(&pb.Event{ConversationId: own, Version: 3, CommandId: cmd.GetCommandId(), ActorUserId: "bob", ActorDeviceId: "laptop",
		Body: &pb.Event_PushTargetUnregistered{PushTargetUnregistered: &pb.PushTargetUnregistered{DeviceId: "laptop",
			Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Reason: pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT}}})
	a = <-answers
	var un map[string]any
	if err := json.Unmarshal([]byte(a.body), &un); a.status != 200 || err != nil || un["deviceId"] != "laptop" || un["reason"] != "PUSH_UNREGISTER_REASON_LOGOUT" {
		t.Fatalf("DELETE answered %d %s", a.status, a.body)
	}
	if s, b := do(http.MethodDelete, tok+"x", ""); s != 401 {
		t.Fatalf("DELETE with a bad token: %d %s", s, b)
	}
}

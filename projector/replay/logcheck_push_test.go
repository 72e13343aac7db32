package replay

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestVerifyLogCheckPush: push target logs, valid and broken.
func TestVerifyLogCheckPush(t *testing.T) {
	ua := schemas.UserStreamID("a")
	at := timestamppb.New(time.Unix(1_700_000_000, 0))
	fcm := func(dev, tok string) *pb.PushTarget {
		return &pb.PushTarget{DeviceId: dev, Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: tok, RegisteredAt: at}
	}
	// ev is an event of a's stream, version v, by device dev.
	ev := func(cmd string, v int64, dev string, body any) *pb.Event {
		e := &pb.Event{ConversationId: ua, Version: v, CommandId: cmd, ActorUserId: "a", ActorDeviceId: dev}
		switch b := body.(type) {
		case *pb.PushTarget:
			e.Body = &pb.Event_PushTargetRegistered{PushTargetRegistered: &pb.PushTargetRegistered{Target: b}}
		case *pb.PushTargetUnregistered:
			e.Body = &pb.Event_PushTargetUnregistered{PushTargetUnregistered: b}
		}
		return e
	}
	gone := func(dev string, r pb.PushUnregisterReason) *pb.PushTargetUnregistered {
		return &pb.PushTargetUnregistered{DeviceId: dev, Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Reason: r}
	}
	logout, invalid, replaced := pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN,
		pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED
	cmd := func(id string, body any) *pb.Command {
		c := &pb.Command{CommandId: id, UserId: "a", ConversationId: ua}
		switch b := body.(type) {
		case *pb.RegisterPushTarget:
			c.Body = &pb.Command_RegisterPush{RegisterPush: b}
		case *pb.UnregisterPushTarget:
			c.Body = &pb.Command_UnregisterPush{UnregisterPush: b}
		}
		return c
	}
	for _, tc := range []struct {
		name     string
		events   []*pb.Event
		commands []*pb.Command
		want     string // "" for a valid log
	}{
		{"register, replace, a token moved to another device, logout, invalid token",
			[]*pb.Event{ev("r1", 1, "phone", fcm("phone", "t1")), ev("r2", 2, "phone", fcm("phone", "t2")),
				ev("r3", 3, "phone2", gone("phone", replaced)), ev("r3", 4, "phone2", fcm("phone2", "t2")),
				ev("r4", 5, "phone2", gone("phone2", logout)), ev("r5", 6, "tab", fcm("tab", "t3")), ev("r6", 7, "notifier", gone("tab", invalid))},
			[]*pb.Command{cmd("r1", &pb.RegisterPushTarget{}), cmd("r2", &pb.RegisterPushTarget{}), cmd("r3", &pb.RegisterPushTarget{}),
				cmd("r4", &pb.UnregisterPushTarget{}), cmd("r5", &pb.RegisterPushTarget{}), cmd("r6", &pb.UnregisterPushTarget{}),
				cmd("r7", &pb.RegisterPushTarget{}), cmd("r8", &pb.UnregisterPushTarget{})}, ""},
		{"a registration for another device", []*pb.Event{ev("r1", 1, "phone", fcm("laptop", "t1"))}, nil, "registers for itself only"},
		{"a malformed target", []*pb.Event{ev("r1", 1, "phone", fcm("phone", ""))}, nil, "FCM registration token"},
		{"the same target again", []*pb.Event{ev("r1", 1, "phone", fcm("phone", "t1")), ev("r2", 2, "phone", fcm("phone", "t1"))}, nil,
			"this very target already"},
		{"an address another device holds", []*pb.Event{ev("r1", 1, "phone", fcm("phone", "t1")), ev("r2", 2, "tab", fcm("tab", "t1"))}, nil,
			"must be REPLACED first"},
		{"an unregistration of no target", []*pb.Event{ev("u1", 1, "phone", gone("phone", logout))}, nil, "has no push target"},
		{"a logout of another device", []*pb.Event{ev("r1", 1, "phone", fcm("phone", "t1")), ev("u1", 2, "tab", gone("phone", logout))}, nil,
			"logs out itself only"},
		{"two registrations for one command", []*pb.Event{ev("r1", 1, "phone", fcm("phone", "t1")), ev("r1", 2, "tab", fcm("tab", "t2"))},
			[]*pb.Command{cmd("r1", &pb.RegisterPushTarget{})}, "has 2 outcome events"},
		{"outside a user stream", []*pb.Event{func() *pb.Event {
			e := ev("r1", 1, "phone", fcm("phone", "t1"))
			e.ConversationId = "g:1"
			return e
		}()}, nil, "comes before the conversation's ConversationCreated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, tc.commands, tc.want, false)
		})
	}
}

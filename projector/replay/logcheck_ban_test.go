package replay

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// userEvent is an event of user a's stream ua, acted by a through service,
// with one of the user-stream bodies.
func userEvent(ua, cmd string, v int64, service string, body any) *pb.Event {
	e := &pb.Event{ConversationId: ua, Version: v, CommandId: cmd, ActorUserId: "a", ActorService: service}
	switch b := body.(type) {
	case *pb.UserBanned:
		e.Body = &pb.Event_UserBanned{UserBanned: b}
	case *pb.UserUnbanned:
		e.Body = &pb.Event_UserUnbanned{UserUnbanned: b}
	case *pb.DeviceRevoked:
		e.Body = &pb.Event_DeviceRevoked{DeviceRevoked: b}
	case *pb.DeviceRestored:
		e.Body = &pb.Event_DeviceRestored{DeviceRestored: b}
	default:
		panic(fmt.Sprintf("userEvent: %T", body))
	}
	return e
}

// TestVerifyLogCheckBans: ban logs, valid and broken.
func TestVerifyLogCheckBans(t *testing.T) {
	ua := schemas.UserStreamID("a")
	until := timestamppb.New(time.Unix(1_700_003_600, 0))
	ev := func(cmd string, v int64, service string, body any) *pb.Event {
		return userEvent(ua, cmd, v, service, body)
	}
	for _, tc := range []struct {
		name   string
		events []*pb.Event
		want   string // "" for a valid log
	}{
		{"ban, a new end, unban, ban again",
			[]*pb.Event{ev("b1", 1, "ops", &pb.UserBanned{Reason: "spam"}), ev("b2", 2, "ops", &pb.UserBanned{Reason: "spam", Until: until}),
				ev("u1", 3, "ops", &pb.UserUnbanned{}), ev("b3", 4, "ops", &pb.UserBanned{})}, ""},
		{"a ban by no service", []*pb.Event{ev("b1", 1, "", &pb.UserBanned{})}, "only a service bans"},
		{"the same ban again", []*pb.Event{ev("b1", 1, "ops", &pb.UserBanned{Reason: "x"}), ev("b2", 2, "ops", &pb.UserBanned{Reason: "x"})},
			"a ban only when it changes"},
		{"an unban of no ban", []*pb.Event{ev("u1", 1, "ops", &pb.UserUnbanned{})}, "an unban only of a banned user"},
		{"outside a user stream", []*pb.Event{func() *pb.Event {
			e := ev("b1", 1, "ops", &pb.UserBanned{})
			e.ConversationId = "g:1"
			return e
		}()}, "comes before the conversation's ConversationCreated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, nil, tc.want, false)
		})
	}
}

// TestVerifyLogCheckRevocations: device revocation logs, valid and broken.
func TestVerifyLogCheckRevocations(t *testing.T) {
	ua := schemas.UserStreamID("a")
	ev := func(cmd string, v int64, service string, body any) *pb.Event {
		return userEvent(ua, cmd, v, service, body)
	}
	for _, tc := range []struct {
		name   string
		events []*pb.Event
		want   string // "" for a valid log
	}{
		{"revoke, another reason, another device, restore, revoke again",
			[]*pb.Event{ev("r1", 1, "ops", &pb.DeviceRevoked{DeviceId: "phone", Reason: "lost"}),
				ev("r2", 2, "ops", &pb.DeviceRevoked{DeviceId: "phone", Reason: "stolen"}),
				ev("r3", 3, "ops", &pb.DeviceRevoked{DeviceId: "tablet"}), ev("u1", 4, "ops", &pb.DeviceRestored{DeviceId: "phone"}),
				ev("r4", 5, "ops", &pb.DeviceRevoked{DeviceId: "phone"})}, ""},
		{"a revocation by no service", []*pb.Event{ev("r1", 1, "", &pb.DeviceRevoked{DeviceId: "phone"})}, "only a service revokes"},
		{"the same revocation again", []*pb.Event{ev("r1", 1, "ops", &pb.DeviceRevoked{DeviceId: "phone", Reason: "x"}),
			ev("r2", 2, "ops", &pb.DeviceRevoked{DeviceId: "phone", Reason: "x"})}, "a revocation only when it changes"},
		{"a restore of a device not revoked", []*pb.Event{ev("r1", 1, "ops", &pb.DeviceRevoked{DeviceId: "phone"}),
			ev("u1", 2, "ops", &pb.DeviceRestored{DeviceId: "tablet"})}, "a restore only of a revoked device"},
		{"outside a user stream", []*pb.Event{func() *pb.Event {
			e := ev("r1", 1, "ops", &pb.DeviceRevoked{DeviceId: "phone"})
			e.ConversationId = "g:1"
			return e
		}()}, "comes before the conversation's ConversationCreated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, nil, tc.want, false)
		})
	}
}

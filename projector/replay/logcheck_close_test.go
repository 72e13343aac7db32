package replay

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestVerifyLogCheckClose: logs of closing, reopening and deleting, valid
// and broken.
func TestVerifyLogCheckClose(t *testing.T) {
	var l actionLog
	ev := func(cmd, actor, service string, body proto.Message) *pb.Event {
		e := &pb.Event{ConversationId: testConv, CommandId: cmd, ActorUserId: actor, ActorService: service}
		if err := schemas.SetBody(e, body); err != nil {
			t.Fatal(err)
		}
		return e
	}
	closeBy := func(cmd, actor string) *pb.Event { return ev(cmd, actor, "", &pb.ConversationClosed{}) }
	closeByService := func(cmd string) *pb.Event { return ev(cmd, "ops", "ops", &pb.ConversationClosed{Reason: "archived"}) }
	reopenBy := func(cmd, actor string) *pb.Event { return ev(cmd, actor, "", &pb.ConversationReopened{}) }
	deleteBy := func(cmd, service string, members ...string) *pb.Event {
		return ev(cmd, "ops", service, &pb.ConversationDeleted{MemberUserIds: members})
	}
	rejected := func(cmd string) *pb.Event {
		return testEvent(cmd, 0, "b", &pb.CommandRejected{Code: pb.ErrorCode_ERROR_CODE_CONVERSATION_CLOSED})
	}
	for _, tc := range []struct {
		name   string
		events []*pb.Event
		want   string
	}{
		{"the owner closes, a read and a refusal, the owner reopens, a send, a service closes and deletes",
			l.versions(l.group("a", "b"), l.send("s1", 1, "b"), closeBy("x1", "a"), l.read("r1", "a", 1), rejected("s8"), reopenBy("x2", "a"),
				l.send("s2", 2, "b"), closeByService("x3"), deleteBy("x4", "ops", "a", "b"), rejected("s9")), ""},
		{"a send while closed",
			l.versions(l.group("a", "b"), closeBy("x1", "a"), l.send("s1", 1, "b")), "the conversation is closed"},
		{"closed by a member not the owner",
			l.versions(l.group("a", "b"), closeBy("x1", "b")), "neither a service nor the group's owner"},
		{"a direct conversation closed by a member",
			l.versions(l.direct("a", "b"), closeBy("x1", "a")), "neither a service nor the group's owner"},
		{"closed twice", l.versions(l.group("a", "b"), closeByService("x1"), closeByService("x2")), "closed already"},
		{"reopened while open", l.versions(l.group("a", "b"), reopenBy("x1", "a")), "not closed"},
		{"deleted by no service", l.versions(l.group("a", "b"), deleteBy("x1", "", "a", "b")), "not a service"},
		{"a deletion naming other members", l.versions(l.group("a", "b"), deleteBy("x1", "ops", "a")), "the current members are [a b]"},
		{"an event after the deletion",
			l.versions(l.group("a", "b"), deleteBy("x1", "ops", "a", "b"), l.read("r1", "a", 0)), "was deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLog(t, tc.events, nil, tc.want, false)
		})
	}
}

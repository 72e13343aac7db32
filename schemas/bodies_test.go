package schemas_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestSetBodyTotal lists every field of every body oneof from the
// descriptors and checks SetBody puts a body of that field's type into that
// very field: a body added to the proto that the helper cannot wrap, or two
// fields sharing a message type (which it could not tell apart), fail here.
func TestSetBodyTotal(t *testing.T) {
	for _, m := range []proto.Message{&pb.ClientFrame{}, &pb.ServerFrame{}, &pb.Event{}, &pb.Command{}, &pb.Signal{}, &pb.GatewaySignal{}} {
		od := m.ProtoReflect().Descriptor().Oneofs().ByName("body")
		if od == nil {
			t.Fatalf("%T has no body oneof", m)
		}
		seen := map[protoreflect.FullName]protoreflect.Name{}
		for i := range od.Fields().Len() {
			fd := od.Fields().Get(i)
			if fd.Kind() != protoreflect.MessageKind {
				t.Errorf("%T.%s is not a message", m, fd.Name())
				continue
			}
			if other, dup := seen[fd.Message().FullName()]; dup {
				t.Errorf("%T: %s and %s both hold %s", m, other, fd.Name(), fd.Message().FullName())
			}
			seen[fd.Message().FullName()] = fd.Name()
			mt, err := protoregistry.GlobalTypes.FindMessageByName(fd.Message().FullName())
			if err != nil {
				t.Fatal(err)
			}
			msg := proto.Clone(m)
			proto.Reset(msg)
			if err := schemas.SetBody(msg, mt.New().Interface()); err != nil {
				t.Errorf("%T.%s: %v", m, fd.Name(), err)
				continue
			}
			if got := msg.ProtoReflect().WhichOneof(od); got == nil || got.Name() != fd.Name() {
				t.Errorf("%T: a %s body landed in %v, want %s", m, fd.Message().Name(), got, fd.Name())
			}
		}
		if len(seen) == 0 {
			t.Errorf("%T: empty body oneof", m)
		}
	}
}

func TestSetBodyRefuses(t *testing.T) {
	if err := schemas.SetBody(&pb.ClientFrame{}, &pb.MessageSent{}); err == nil {
		t.Error("an event body went into a client frame")
	}
	if err := schemas.SetBody(&pb.ClientFrame{}, nil); err == nil {
		t.Error("a nil body was taken")
	}
	if err := schemas.SetBody(&pb.Welcome{}, &pb.Ping{}); err == nil {
		t.Error("a message without a body oneof took one")
	}
	f, err := schemas.NewClientFrame("r1", "d:x", &pb.SendMessage{ClientMsgId: "m1", Text: "hi"})
	if err != nil || f.GetRequestId() != "r1" || f.GetConversationId() != "d:x" || f.GetSendMessage().GetClientMsgId() != "m1" {
		t.Fatalf("NewClientFrame: %v, %v", f, err)
	}
}

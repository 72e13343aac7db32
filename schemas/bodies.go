package schemas

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-im/parley/schemas/parleyv1"
)

// SetBody puts body into the "body" oneof of m (a ClientFrame, ServerFrame,
// Event, Command, Signal or GatewaySignal): the oneof field whose message
// type is body's. It reads the descriptor rather than switching on types, so
// a body added to the proto is wrapped without touching this file; it fails
// for a message without a body oneof, or a body no field of it takes.
func SetBody(m, body proto.Message) error {
	r := m.ProtoReflect()
	od := r.Descriptor().Oneofs().ByName("body")
	if od == nil {
		return fmt.Errorf("schemas: %s has no body oneof", r.Descriptor().FullName())
	}
	if body == nil {
		return fmt.Errorf("schemas: nil body for %s", r.Descriptor().FullName())
	}
	b := body.ProtoReflect()
	fields := od.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == b.Descriptor().FullName() {
			r.Set(fd, protoreflect.ValueOfMessage(b))
			return nil
		}
	}
	return fmt.Errorf("schemas: %s is not a body of %s", b.Descriptor().FullName(), r.Descriptor().FullName())
}

// NewClientFrame wraps body (a *parleyv1.SendMessage, *parleyv1.Ping, …)
// into the ClientFrame a device sends.
func NewClientFrame(requestID, conversationID string, body proto.Message) (*parleyv1.ClientFrame, error) {
	f := &parleyv1.ClientFrame{RequestId: requestID, ConversationId: conversationID}
	if err := SetBody(f, body); err != nil {
		return nil, err
	}
	return f, nil
}

package gateway

import (
	"sync"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// WebSocket subprotocols a device may ask for. Without one, frames are JSON.
const (
	SubprotocolJSON  = "parley.v1.json"
	SubprotocolProto = "parley.v1.proto"
)

// codec is how one session's outgoing frames are encoded.
type codec int

const (
	codecJSON codec = iota
	codecProto
	numCodecs
)

func codecFor(subprotocol string) codec {
	if subprotocol == SubprotocolProto {
		return codecProto
	}
	return codecJSON
}

func (c codec) messageType() int {
	if c == codecProto {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

var (
	// Field names per the proto JSON mapping (lowerCamelCase), enums by name.
	jsonOut = protojson.MarshalOptions{}
	// Unknown fields are an error: a misspelt field must not silently turn
	// a command into another one (or into nothing).
	jsonIn = protojson.UnmarshalOptions{DiscardUnknown: false}
)

// decodeClientFrame decodes by the WebSocket message type, whatever was
// negotiated: text frames are protojson, binary frames protobuf. Binary
// frames keep unknown fields (protobuf's forward compatibility); JSON
// refuses them.
func decodeClientFrame(messageType int, data []byte) (*pb.ClientFrame, error) {
	f := &pb.ClientFrame{}
	var err error
	if messageType == websocket.BinaryMessage {
		err = proto.Unmarshal(data, f)
	} else {
		err = jsonIn.Unmarshal(data, f)
	}
	return f, err
}

// outbound is one ServerFrame on its way to one or more sessions. It is
// encoded at most once per codec however many sessions it goes to, so a
// fan-out to many devices costs one encoding, not one per device.
type outbound struct {
	frame *pb.ServerFrame
	kind  string // metrics label: the body's name
	slot  bool   // an answer to an appended command: frees an answer slot once written
	once  [numCodecs]sync.Once
	data  [numCodecs][]byte
	err   [numCodecs]error
}

func newOutbound(f *pb.ServerFrame) *outbound {
	return &outbound{frame: f, kind: oneofName(f)}
}

func (o *outbound) bytes(c codec) ([]byte, error) {
	o.once[c].Do(func() {
		if c == codecProto {
			o.data[c], o.err[c] = proto.Marshal(o.frame)
		} else {
			o.data[c], o.err[c] = jsonOut.Marshal(o.frame)
		}
	})
	return o.data[c], o.err[c]
}

// oneofName is the message name of the "body" oneof of a frame, e.g.
// "SendMessage" or "Accepted": the label of the frame metrics.
func oneofName(m proto.Message) string {
	r := m.ProtoReflect()
	od := r.Descriptor().Oneofs().ByName("body")
	if od == nil {
		return "none"
	}
	fd := r.WhichOneof(od)
	if fd == nil {
		return "none"
	}
	return string(fd.Message().Name())
}

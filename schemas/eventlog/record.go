package eventlog

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Record is one record of parley.events or parley.commands with its place in
// the log. It marshals to one line of JSON: the place, then the value as
// protojson (field names in lowerCamelCase, enums by name, int64 as strings),
// in "event" or "command" depending on the topic.
type Record struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"` // the record's timestamp in the log
	Key       string    `json:"key"`       // the conversation id
	Headers   []Header  `json:"headers"`
	// Type is the parley-type header, or the body's type when the header is missing.
	Type string `json:"type"`
	// Event or Command is the value as protojson, filled by MarshalLine:
	// records a filter drops are never rendered.
	Event   json.RawMessage `json:"event,omitempty"`
	Command json.RawMessage `json:"command,omitempty"`
	// Error says why the value could not be decoded; Value then holds it as
	// it is (base64 in JSON), so nothing is lost from the evidence.
	Error string `json:"error,omitempty"`
	Value []byte `json:"value,omitempty"`

	event   *pb.Event
	command *pb.Command
}

// Header is one record header. A list rather than a map, because Kafka
// allows a header name to repeat.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DecodedEvent returns the event decoded from the record, or nil when the
// record is not an event or could not be decoded.
func (r *Record) DecodedEvent() *pb.Event { return r.event }

// DecodedCommand returns the command decoded from the record, or nil when the
// record is not a command or could not be decoded.
func (r *Record) DecodedCommand() *pb.Command { return r.command }

// Actor is the user who caused the record: Event.actor_user_id or
// Command.user_id; "" when the value could not be decoded.
func (r *Record) Actor() string {
	if r.event != nil {
		return r.event.GetActorUserId()
	}
	return r.command.GetUserId()
}

// Seq is the event's seq (0 for events that take none, and for commands).
func (r *Record) Seq() int64 { return r.event.GetSeq() }

// Value kinds: what the values of a topic are.
type Kind int

const (
	Events   Kind = iota // parley.v1.Event
	Commands             // parley.v1.Command
)

// Decode turns a Kafka record of a topic of the given kind into a Record. A
// value that does not decode is not an error: the Record carries the error
// and the raw value.
func Decode(kind Kind, r *kgo.Record) *Record {
	out := &Record{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(),
		Key: string(r.Key), Headers: make([]Header, 0, len(r.Headers)),
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, Header{Key: h.Key, Value: string(h.Value)})
		if h.Key == schemas.HeaderType {
			out.Type = string(h.Value)
		}
	}
	var m proto.Message
	switch kind {
	case Commands:
		out.command = &pb.Command{}
		m = out.command
	default:
		out.event = &pb.Event{}
		m = out.event
	}
	if err := proto.Unmarshal(r.Value, m); err != nil {
		out.event, out.command = nil, nil
		out.Error = fmt.Sprintf("undecodable %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
		out.Value = r.Value
		return out
	}
	if out.Type == "" {
		if kind == Commands {
			out.Type = schemas.CommandType(out.command)
		} else {
			out.Type = schemas.EventType(out.event)
		}
	}
	return out
}

// MarshalLine returns r as one line of JSON, with the newline.
func (r *Record) MarshalLine() ([]byte, error) {
	var err error
	switch {
	case r.event != nil && r.Event == nil:
		r.Event, err = protojson.Marshal(r.event)
	case r.command != nil && r.Command == nil:
		r.Command, err = protojson.Marshal(r.command)
	}
	if err != nil {
		return nil, fmt.Errorf("eventlog: %s/%d@%d to JSON: %w", r.Topic, r.Partition, r.Offset, err)
	}
	b, err := json.Marshal(r) // also compacts the protojson, whose spacing is deliberately unstable
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

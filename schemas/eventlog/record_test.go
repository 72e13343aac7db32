package eventlog_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/eventlog"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// TestPartitionForKafka checks PartitionFor against the murmur2 values of
// Kafka's own test suite (UtilsTest.testMurmur2): partition =
// (hash & 0x7fffffff) % partitions, as Kafka's default partitioner.
func TestPartitionForKafka(t *testing.T) {
	for key, hash := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		for _, n := range []int32{1, 7, 12, 1000} {
			if got, want := eventlog.PartitionFor(key, n), (hash&0x7fffffff)%n; got != want {
				t.Errorf("PartitionFor(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
	}
}

func TestRecordLine(t *testing.T) {
	e := &pb.Event{ConversationId: "g:1", Seq: 7, ActorUserId: "alice", OccurredAt: timestamppb.New(time.Unix(1, 0)),
		Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: "m", Text: "hi", ContentType: "text/plain"}}}
	v, _ := proto.Marshal(e)
	kr := &kgo.Record{Topic: "parley.events", Partition: 3, Offset: 42, Timestamp: time.UnixMilli(1700000000123), Key: []byte("g:1"), Value: v,
		Headers: []kgo.RecordHeader{{Key: schemas.HeaderType, Value: []byte("MessageSent")}, {Key: schemas.HeaderSchemaVersion, Value: []byte("1")}}}
	line, err := eventlog.Decode(eventlog.Events, kr).MarshalLine()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(line), "\n") != 1 || !strings.HasSuffix(string(line), "\n") {
		t.Fatalf("not one line: %q", line)
	}
	var got struct {
		Topic     string
		Partition int32
		Offset    int64
		Timestamp string
		Key       string
		Type      string
		Headers   []struct{ Key, Value string }
		Event     struct {
			Seq         string
			ActorUserID string `json:"actorUserId"`
			MessageSent struct{ Text string }
		}
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	if got.Topic != "parley.events" || got.Partition != 3 || got.Offset != 42 || got.Timestamp != "2023-11-14T22:13:20.123Z" ||
		got.Key != "g:1" || got.Type != "MessageSent" || len(got.Headers) != 2 || got.Event.Seq != "7" ||
		got.Event.ActorUserID != "alice" || got.Event.MessageSent.Text != "hi" {
		t.Errorf("line %s decoded to %+v", line, got)
	}

	// A value that does not decode is kept, with the reason.
	kr.Value = []byte{0xff, 0xff}
	r := eventlog.Decode(eventlog.Events, kr)
	if r.Error == "" || string(r.Value) != "\xff\xff" || r.Event != nil || r.DecodedEvent() != nil || r.Type != "MessageSent" {
		t.Errorf("undecodable value: %+v", r)
	}
	if (eventlog.Filter{Actor: "alice"}).Match(r) || !(eventlog.Filter{Conversation: "g:1", Types: []string{"MessageSent"}}).Match(r) {
		t.Error("an undecodable record matches by key and type only")
	}
}

func TestExportQueryValidate(t *testing.T) {
	now := time.Now()
	for _, q := range []eventlog.ExportQuery{
		{FromSeq: 3},
		{Conversation: "g:1", FromSeq: 5, ToSeq: 4},
		{Conversation: "g:1", FromSeq: -1},
		{Actor: "bob", Since: now, Until: now},
	} {
		if q.Validate() == nil {
			t.Errorf("%+v: no error", q)
		}
	}
	if err := (eventlog.ExportQuery{Conversation: "g:1", FromSeq: 4, ToSeq: 4, Since: now, Until: now.Add(time.Second)}).Validate(); err != nil {
		t.Error(err)
	}
}

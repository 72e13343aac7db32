package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestCommandUsage: a bad command line or environment is exit status 2 with
// a message that names the problem, before anything connects to Kafka.
func TestCommandUsage(t *testing.T) {
	seeds := env(map[string]string{"PARLEY_KAFKA_SEEDS": "127.0.0.1:1"})
	for _, c := range []struct {
		args []string
		env  func(string) string
		want string
	}{
		{nil, seeds, "usage: eventlog"},
		{[]string{"dump"}, seeds, `unknown command "dump"`},
		{[]string{"export", "-conversation", "g:1"}, env(nil), "PARLEY_KAFKA_SEEDS is not set"},
		{[]string{"export"}, seeds, "export needs -conversation or -user"},
		{[]string{"export", "-user", "bob", "-from-seq", "2"}, seeds, "a seq range needs a conversation"},
		{[]string{"export", "-user", "bob", "-since", "yesterday"}, seeds, `-since: "yesterday" is neither`},
		{[]string{"export", "-user", "bob", "-since", "1h", "-until", "2h"}, seeds, "since must be before until"},
		{[]string{"export", "-user", "bob", "extra"}, seeds, `unexpected argument "extra"`},
		{[]string{"export", "-bogus"}, seeds, "flag provided but not defined: -bogus"},
		{[]string{"tail", "-topic", "state"}, seeds, `-topic must be events or commands, not "state"`},
		{[]string{"tail", "-from", "soon"}, seeds, `-from: "soon" is not end, start, an offset or a time`},
		{[]string{"tail", "-n", "-1"}, seeds, "-n must not be negative"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), c.args, c.env, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.want) || out.Len() != 0 {
			t.Errorf("eventlog %v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
}

// line is the part of a JSON line these tests read.
type line struct {
	Partition int32
	Offset    int64
	Key       string
	Type      string
	Event     struct {
		Seq         string
		ActorUserID string `json:"actorUserId"`
	}
	Raw struct {
		Event json.RawMessage
	} `json:"-"`
}

func lines(t *testing.T, b []byte) []line {
	t.Helper()
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %s: %v", sc.Bytes(), err)
		}
		_ = json.Unmarshal(sc.Bytes(), &l.Raw)
		out = append(out, l)
	}
	return out
}

// TestCommandExportAndTail runs the command on a topic with events written
// here: 1 creation and 20 messages in one conversation (alice and bob in
// turn), 5 messages from bob in another.
func TestCommandExportAndTail(t *testing.T) {
	k := testenv.Kafka(t)
	prefix := k.Name("eventlog-cmd") + "."
	topics := schemas.Prefixed(prefix)
	cl := k.Client(kgo.DefaultProduceTopic(topics.Events.Name))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ingest.Provision(ctx, cl, -1, topics.Events); err != nil {
		t.Fatal(err)
	}
	g1, g2 := schemas.NewGroupConversationID(), schemas.NewGroupConversationID()
	var recs []*kgo.Record
	add := func(e *pb.Event) {
		v, _ := proto.Marshal(e)
		recs = append(recs, &kgo.Record{Key: []byte(e.ConversationId), Value: v,
			Headers: []kgo.RecordHeader{{Key: schemas.HeaderType, Value: []byte(schemas.EventType(e))}}})
	}
	add(&pb.Event{ConversationId: g1, ActorUserId: "alice", Body: &pb.Event_ConversationCreated{
		ConversationCreated: &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP}}})
	for i := 1; i <= 20; i++ {
		add(&pb.Event{ConversationId: g1, Seq: int64(i), ActorUserId: []string{"bob", "alice"}[i%2],
			Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{Text: fmt.Sprint(i)}}})
		if i <= 5 {
			add(&pb.Event{ConversationId: g2, Seq: int64(i), ActorUserId: "bob",
				Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{Text: fmt.Sprint(i)}}})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"PARLEY_KAFKA_SEEDS": strings.Join(k.Seeds, ","), "PARLEY_TOPIC_PREFIX": prefix})
	cmd := func(args ...string) []line {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, args, e, &out, &errOut); code != 0 {
			t.Fatalf("eventlog %v: exit %d: %s", args, code, errOut.String())
		}
		if args[0] == "export" && !slices.Contains(args, "-quiet") && !strings.Contains(errOut.String(), "eventlog: done: scanned") {
			t.Errorf("eventlog %v: no summary on stderr: %q", args, errOut.String())
		}
		return lines(t, out.Bytes())
	}

	got := cmd("export", "-conversation", g1)
	if len(got) != 21 || got[0].Type != schemas.TypeConversationCreated {
		t.Fatalf("export of g1: %d lines", len(got))
	}
	// Each line is where the record is, and its event reads back as the
	// value written there.
	var g1recs []*kgo.Record
	for _, r := range recs {
		if string(r.Key) == g1 {
			g1recs = append(g1recs, r)
		}
	}
	for i, l := range got {
		var back, want pb.Event
		if err := protojson.Unmarshal(l.Raw.Event, &back); err != nil {
			t.Fatalf("line %d: event %s: %v", i, l.Raw.Event, err)
		}
		_ = proto.Unmarshal(g1recs[i].Value, &want)
		if l.Key != g1 || l.Partition != g1recs[i].Partition || l.Offset != g1recs[i].Offset || !proto.Equal(&back, &want) {
			t.Fatalf("line %d of the export of g1: %+v %v, want %d@%d %v", i, l, &back, g1recs[i].Partition, g1recs[i].Offset, &want)
		}
	}
	if got := cmd("export", "-conversation", g1, "-from-seq", "18", "-quiet"); len(got) != 3 || got[0].Event.Seq != "18" {
		t.Errorf("g1 from seq 18: %+v", got)
	}
	got = cmd("export", "-user", "bob", "-type", "MessageSent")
	if len(got) != 10+5 {
		t.Errorf("bob's messages: %d lines", len(got))
	}
	for _, l := range got {
		if l.Event.ActorUserID != "bob" {
			t.Errorf("bob's export has %+v", l)
		}
	}

	got = cmd("tail", "-conversation", g2, "-from", "start", "-n", "5")
	if len(got) != 5 || got[4].Event.Seq != "5" || got[0].Key != g2 {
		t.Errorf("tail of g2: %+v", got)
	}
	got = cmd("tail", "-type", "ConversationCreated", "-from", "start", "-n", "1")
	if len(got) != 1 || got[0].Key != g1 {
		t.Errorf("tail of creations: %+v", got)
	}
}

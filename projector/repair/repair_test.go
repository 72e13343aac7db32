package repair_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/repair"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRepairRestoresLostRows builds the views of two conversations from the
// log, deletes rows of one (a write the views lost), asks for a repair, and
// checks the rows come back as they were while the other conversation is
// left alone; a second request moments later is coalesced.
func TestRepairRestoresLostRows(t *testing.T) {
	k := testenv.Kafka(t)
	c := testenv.Cassandra(t)
	events, repairs := k.Topic("events", 3), k.Topic("repairs", 3)
	s := c.Session()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := schemas.Migrate(ctx, s, c.Keyspace); err != nil {
		t.Fatal(err)
	}
	w, err := projector.NewWriter(s, projector.WriterConfig{Keyspace: c.Keyspace})
	if err != nil {
		t.Fatal(err)
	}
	convA, convB := schemas.DirectConversationID("ann", "bob"), schemas.DirectConversationID("cy", "dee")
	base := time.Now().Add(-time.Hour)
	var recs []*kgo.Record
	var all []projector.Record
	for _, x := range []struct{ conv, a, b string }{{convA, "ann", "bob"}, {convB, "cy", "dee"}} {
		evs := []*pb.Event{{ConversationId: x.conv, Version: 1, ActorUserId: x.a, OccurredAt: timestamppb.New(base),
			Body: &pb.Event_ConversationCreated{ConversationCreated: &pb.ConversationCreated{
				Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT, MemberUserIds: []string{x.a, x.b}}}}}
		for seq := int64(1); seq <= 60; seq++ {
			evs = append(evs, &pb.Event{ConversationId: x.conv, Seq: seq, Version: seq + 1, ActorUserId: x.a, ActorDeviceId: "phone",
				CommandId: fmt.Sprintf("%s-%d", x.a, seq), OccurredAt: timestamppb.New(base.Add(time.Duration(seq) * time.Second)),
				Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: fmt.Sprintf("m%d", seq), Text: fmt.Sprint("text ", seq)}}})
		}
		for _, ev := range evs {
			v, _ := proto.Marshal(ev)
			recs = append(recs, &kgo.Record{Topic: events, Key: []byte(x.conv), Value: v, Timestamp: ev.OccurredAt.AsTime()})
			// The views lose the writes of seqs 20…25 of convA (as a
			// crashed Cassandra without a durable commitlog would).
			if x.conv == convA && ev.Seq >= 20 && ev.Seq <= 25 {
				continue
			}
			all = append(all, projector.Record{Key: []byte(x.conv), Value: v})
		}
	}
	cl := k.Client()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Apply(ctx, all); err != nil {
		t.Fatal(err)
	}
	rows := func(conv string) map[int64]string {
		out := map[int64]string{}
		for b := int64(0); b <= schemas.Bucket(60); b++ {
			iter := s.Query(fmt.Sprintf("SELECT seq, text FROM %s.messages WHERE conversation_id = ? AND bucket = ?", c.Keyspace), conv, b).Iter()
			var seq int64
			var text string
			for iter.Scan(&seq, &text) {
				out[seq] = text
			}
			if err := iter.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	if n, nb := len(rows(convA)), len(rows(convB)); n != 54 || nb != 60 {
		t.Fatalf("views hold %d and %d messages, want 54 and 60", n, nb)
	}

	reg := prometheus.NewRegistry()
	r, err := repair.New(repair.Config{Seeds: k.Seeds, RepairsTopic: repairs, EventsTopic: events,
		Group: k.Name("repair"), Writer: w, Registerer: reg, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()
	req := repair.NewRequester(cl, repairs, "test")
	// The last row before the gap is seq 19 (version 20).
	if err := req.Request(ctx, convA, 21, 61, base.Add(19*time.Second)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() string {
		if n := outcome(t, reg, "repaired"); n != 1 {
			return fmt.Sprintf("%v repairs done", n)
		}
		return ""
	})
	after := rows(convA)
	for seq := int64(1); seq <= 60; seq++ {
		if want := fmt.Sprint("text ", seq); after[seq] != want {
			t.Errorf("seq %d: %q after the repair, want %q", seq, after[seq], want)
		}
	}
	if afterB := rows(convB); len(afterB) != 60 {
		t.Errorf("the other conversation has %d rows", len(afterB))
	}
	// Asked again at once (another device hit the same gap): coalesced.
	if err := req.Request(ctx, convA, 21, 61, base.Add(19*time.Second)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() string {
		if n := outcome(t, reg, "coalesced"); n != 1 {
			return fmt.Sprintf("%v coalesced", n)
		}
		return ""
	})
}

func outcome(t testing.TB, g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "parley_projector_repairs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "outcome", name) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

package projector

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func seqsOf(ms []Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func seqRange(from, to int64, skip ...int64) []int64 {
	var out []int64
	step := int64(1)
	if from > to {
		step = -1
	}
	for s := from; s != to+step; s += step {
		if !slices.Contains(skip, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestTables: the read side the gateway and query use, on rows the write
// side made — the bucket walk across a bucket boundary, around a missing
// seq and down to a lowest seq, the membership check, the inbox,
// checkpoints.
func TestTables(t *testing.T) {
	e := newEnv(t, true)
	conv := schemas.NewGroupConversationID()
	// Seqs 1..5 and 990..1005 but 1002: across buckets 0 and 1. The walks
	// below never reach 6..989, which are left out to keep the test short.
	const last, missing = 1005, 1002
	evs := []*pb.Event{group(conv, "alice", "Club", "bob", "carol")}
	for s := int64(1); s <= last; s++ {
		switch {
		case s == missing, s > 5 && s < 990:
		case s == 3:
			evs = append(evs, removed(conv, s, "carol", "carol"))
		default:
			evs = append(evs, sent(conv, s, "bob", "hi"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applyParallel(t, e, evs)

	tb, err := NewTables(e.s, e.keyspace)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Check(ctx); err != nil {
		t.Fatalf("Check on a migrated keyspace: %v", err)
	}
	c, found, err := tb.Conversation(ctx, conv)
	if err != nil || !found || c.Kind != "group" || c.Title != "Club" || c.CreatorUserID != "alice" || c.LastSeq != last || c.LastMessageSeq != last {
		t.Fatalf("Conversation = %+v, %v, %v", c, found, err)
	}
	if got, found, err := tb.LastSeq(ctx, conv); got != last || !found || err != nil {
		t.Errorf("LastSeq = %d, %v, %v", got, found, err)
	}
	if got, found, err := tb.LastSeq(ctx, schemas.NewGroupConversationID()); got != 0 || found || err != nil {
		t.Errorf("LastSeq of no conversation = %d, %v, %v", got, found, err)
	}

	walks := []struct {
		name string
		run  func() ([]Message, error)
		want []int64
	}{
		{"after 990, contiguous: stops before the missing seq", func() ([]Message, error) {
			return tb.MessagesAfter(ctx, conv, 990, last, 100, true)
		}, seqRange(991, 1001)},
		{"after 990: every row", func() ([]Message, error) { return tb.MessagesAfter(ctx, conv, 990, last, 100, false) },
			seqRange(991, last, missing)},
		{"after 995, limit 3", func() ([]Message, error) { return tb.MessagesAfter(ctx, conv, 995, last, 3, true) }, seqRange(996, 998)},
		{"after 0, limit 2", func() ([]Message, error) { return tb.MessagesAfter(ctx, conv, 0, last, 2, true) }, seqRange(1, 2)},
		{"after the last seq", func() ([]Message, error) { return tb.MessagesAfter(ctx, conv, last, last, 10, false) }, nil},
		{"after MaxInt64", func() ([]Message, error) { return tb.MessagesAfter(ctx, conv, math.MaxInt64, last, 10, false) }, nil},
		{"newest 7: down across the bucket boundary", func() ([]Message, error) {
			return tb.MessagesBefore(ctx, conv, math.MaxInt64, 0, last, 7)
		}, seqRange(last, 998, missing)},
		{"before 4", func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, 4, 0, last, 10) }, seqRange(3, 1)},
		{"before 1", func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, 1, 0, last, 10) }, nil},
		{"bounded by lastSeq", func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, math.MaxInt64, 0, 999, 2) }, seqRange(999, 998)},
		{"from 992: ends there, in the bucket below", func() ([]Message, error) {
			return tb.MessagesBefore(ctx, conv, math.MaxInt64, 992, last, 100)
		}, seqRange(last, 992, missing)},
		{"from 1000: ends at the bucket boundary", func() ([]Message, error) {
			return tb.MessagesBefore(ctx, conv, math.MaxInt64, 1000, last, 100)
		}, seqRange(last, 1000, missing)},
		{"from 6: none of 1..5", func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, 995, 6, last, 100) }, seqRange(994, 990)},
		{"from 995, limit 3", func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, 1001, 995, last, 3) }, seqRange(1000, 998)},
		{"before from", func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, 995, 995, last, 10) }, nil},
	}
	for _, w := range walks {
		got, err := w.run()
		if err != nil || !slices.Equal(seqsOf(got), w.want) {
			t.Errorf("%s: %v, %v; want %v", w.name, seqsOf(got), err, w.want)
		}
	}
	ms, _ := tb.MessagesBefore(ctx, conv, 4, 0, last, 2)
	if len(ms) != 2 || ms[0].Type != schemas.TypeMemberRemoved || ms[1].Text != "hi" || ms[1].ClientMsgID != "c2" ||
		ms[1].ActorUserID != "bob" || len(ms[1].Event) == 0 {
		t.Errorf("rows before 4: %+v", ms)
	}

	for user, want := range map[string]bool{"alice": true, "bob": true, "carol": false, "mallory": false} {
		if got, err := tb.IsMember(ctx, conv, user); got != want || err != nil {
			t.Errorf("IsMember(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
	if m, found, err := tb.Member(ctx, conv, "alice"); !found || err != nil || m.Role != "owner" || m.Removed {
		t.Errorf("Member(alice) = %+v, %v, %v", m, found, err)
	}
	members, err := tb.Members(ctx, conv)
	if err != nil || len(members) != 3 || members[0].UserID != "alice" || !members[2].Removed || members[1].ReadSeq != last {
		t.Errorf("Members = %+v, %v", members, err)
	}
	inbox, err := tb.Inbox(ctx, "carol")
	if err != nil || len(inbox) != 1 || inbox[0].ConversationID != conv || !inbox[0].Removed || inbox[0].Title != "Club" {
		t.Errorf("Inbox(carol) = %+v, %v", inbox, err)
	}
	iter, err := tb.RowsJSON(ctx, "inbox", "carol", conv)
	var js string
	if err != nil || !iter.Scan(&js) || !strings.Contains(js, `"removed": true`) {
		t.Errorf("RowsJSON(inbox, carol, conv) = %q, %v", js, err)
	}
	if err := iter.Close(); err != nil {
		t.Error(err)
	}
	if _, err := tb.RowsJSON(ctx, "nope"); err == nil {
		t.Error("RowsJSON of an unknown table")
	}
	if _, err := tb.RowsJSON(ctx, "messages", conv); err == nil {
		t.Error("RowsJSON of messages with half its partition key")
	}
	if cp, err := tb.Checkpoints(ctx, "no-such-group"); err != nil || len(cp) != 0 {
		t.Errorf("Checkpoints of an unknown group = %v, %v", cp, err)
	}

	if _, err := NewTables(e.s, "bad-name"); err == nil {
		t.Error("NewTables accepted an invalid keyspace name")
	}
	empty, err := NewTables(e.s, "parley_no_such_keyspace")
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Check(ctx); err == nil {
		t.Error("Check passed on a keyspace without the views")
	}
}

// applyParallel applies evs with 8 writers: views are order-independent.
func applyParallel(t testing.TB, e *env, evs []*pb.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		work  = make(chan *pb.Event)
	)
	for range 8 {
		wg.Go(func() {
			for ev := range work {
				b, _ := proto.Marshal(ev)
				if err := Apply(ctx, e.s, e.keyspace, []byte(ev.GetConversationId()), b); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		})
	}
	for _, ev := range evs {
		work <- ev
	}
	close(work)
	wg.Wait()
	if first != nil {
		t.Fatalf("apply: %v", first)
	}
}

// BenchmarkTablesWalk: the bucket walk on a real Cassandra — a resume
// catch-up of 1,000 rows (contiguous, across a bucket boundary) and a
// history page of 200.
func BenchmarkTablesWalk(b *testing.B) {
	e := newEnv(b, true)
	conv := schemas.NewGroupConversationID()
	const last = 1500
	evs := []*pb.Event{group(conv, "alice", "Bench", "bob")}
	for s := int64(1); s <= last; s++ {
		evs = append(evs, sent(conv, s, "bob", "a message of about forty bytes of text"))
	}
	applyParallel(b, e, evs)
	tb, err := NewTables(e.s, e.keyspace)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		rows int
		walk func() ([]Message, error)
	}{
		{"ResumeAfter400Rows1000", 1000, func() ([]Message, error) { return tb.MessagesAfter(ctx, conv, 400, last, 1000, true) }},
		{"HistoryPage200", 200, func() ([]Message, error) { return tb.MessagesBefore(ctx, conv, math.MaxInt64, 0, last, 200) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rows, err := c.walk()
				if err != nil || len(rows) != c.rows {
					b.Fatalf("%d rows, %v; want %d", len(rows), err, c.rows)
				}
			}
			b.ReportMetric(float64(c.rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

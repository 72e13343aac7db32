package ingest

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// partRun decides commands of one partition as the decider does: each
// command with its receive time, remembered sends tracked, the sweep after
// every command; every changelog record is kept in order.
type partRun struct {
	t   *testing.T
	l   Limits
	ps  *partState
	log []*kgo.Record
}

func newPartRun(t *testing.T, l Limits) *partRun {
	return &partRun{t: t, l: l.withDefaults(), ps: newPartState()}
}

func (r *partRun) do(c *pb.Command, received time.Time) []*pb.Event {
	conv := c.GetConversationId()
	st, evs, d := decide(r.l, r.ps.convs[conv], c, received, received)
	if st != nil {
		r.ps.convs[conv] = st
		for _, ref := range d.dedup {
			if e, ok := st.lookup(ref.user, ref.clientMsgID); ok {
				r.ps.track(conv, ref.user, ref.clientMsgID, e.at)
			}
		}
	}
	r.log = append(r.log, changelogRecords("state", 0, conv, st, d)...)
	r.log = append(r.log, sweepRecords("state", 0, r.ps, r.ps.sweep(r.l.DedupWindow, sweepPerBatch))...)
	// A derived command is decided after the command it came from, as the
	// decider reads it back (here: from the same partition).
	for _, dc := range d.derived {
		evs = append(evs, r.do(dc, received)...)
	}
	return evs
}

// restore rebuilds the partition from the changelog kept so far, keeping
// only the newest record per key, as compaction would.
func (r *partRun) restore(now time.Time) *partState {
	r.t.Helper()
	last := map[string]int{}
	for i, rec := range r.log {
		last[string(rec.Key)] = i
	}
	b := newStateBuilder()
	for i, rec := range r.log {
		if last[string(rec.Key)] != i {
			continue
		}
		if err := b.apply(rec.Key, rec.Value); err != nil {
			r.t.Fatal(err)
		}
	}
	return b.done(now, r.l.DedupPerSender)
}

// TestDedupLateResendInBusyGroup: alice's phone resends a message an hour
// later, after the group's other members sent thousands: the resend is the
// original message, live and after a restore from the changelog.
func TestDedupLateResendInBusyGroup(t *testing.T) {
	r := newPartRun(t, Limits{})
	t0 := time.Unix(1_700_000_000, 0)
	members := make([]string, 50)
	for i := range members {
		members[i] = fmt.Sprintf("u%02d", i)
	}
	r.do(createGroup(members...), t0)
	if got := summary(r.do(send("alice", "g:1", "queued"), t0)); fmt.Sprint(got) != "[MessageSent@1]" {
		t.Fatalf("first send: %v", got)
	}
	for i := range 5000 {
		r.do(send(members[i%len(members)], "g:1", fmt.Sprintf("other-%d", i)), t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	late := t0.Add(time.Hour)
	if got := summary(r.do(send("alice", "g:1", "queued"), late)); fmt.Sprint(got) != "[Dedup->1]" {
		t.Fatalf("late resend: %v, want the original seq 1", got)
	}
	r.ps = r.restore(late)
	if got := summary(r.do(send("alice", "g:1", "queued"), late)); fmt.Sprint(got) != "[Dedup->1]" {
		t.Fatalf("late resend after restore: %v, want the original seq 1", got)
	}
}

// TestDedupWindowByTime: a resend is recognised for the whole window (here
// 7 days) and forgotten after it, with a tombstone for its record; the
// window follows the commands' receive times.
func TestDedupWindowByTime(t *testing.T) {
	r := newPartRun(t, Limits{})
	t0 := time.Unix(1_700_000_000, 0)
	day := 24 * time.Hour
	r.do(createDirect(), t0)
	r.do(send("alice", direct, "m1"), t0)
	r.do(send("bob", direct, "b1"), t0.Add(6*day))
	if got := summary(r.do(send("alice", direct, "m1"), t0.Add(6*day+23*time.Hour))); fmt.Sprint(got) != "[Dedup->1]" {
		t.Fatalf("resend within the window: %v", got)
	}
	n := len(r.log)
	r.do(send("bob", direct, "b2"), t0.Add(7*day+time.Minute)) // moves the partition's clock past m1's window
	var tomb bool
	for _, rec := range r.log[n:] {
		if string(rec.Key) == dedupChangelogKey(direct, "alice", "m1") && rec.Value == nil {
			tomb = true
		}
	}
	if !tomb {
		t.Fatal("no tombstone for the expired send")
	}
	if _, ok := r.ps.convs[direct].lookup("bob", "b1"); !ok {
		t.Fatal("bob's b1 (day 6) forgotten early")
	}
	if got := summary(r.do(send("alice", direct, "m1"), t0.Add(7*day+2*time.Minute))); fmt.Sprint(got) != "[MessageSent@4]" {
		t.Fatalf("resend after the window: %v, want a new message", got)
	}
	// The restored state has exactly what memory has.
	restored := r.restore(t0.Add(7*day + 3*time.Minute))
	if !reflect.DeepEqual(dedupOf(restored.convs[direct]), dedupOf(r.ps.convs[direct])) {
		t.Fatalf("restored %v, live %v", dedupOf(restored.convs[direct]), dedupOf(r.ps.convs[direct]))
	}
}

func dedupOf(st *convState) map[dedupRef]dedupEntry {
	out := map[dedupRef]dedupEntry{}
	for u, sd := range st.dedup {
		for id, e := range sd.ids {
			out[dedupRef{u, id}] = e
		}
	}
	return out
}

// TestDedupCapPerSender: a sender past DedupPerSender loses its oldest id
// (with a tombstone), others keep theirs; the cap holds after a restore,
// also when it was lowered since the records were written.
func TestDedupCapPerSender(t *testing.T) {
	r := newPartRun(t, Limits{DedupPerSender: 3})
	t0 := time.Unix(1_700_000_000, 0)
	r.do(createDirect(), t0)
	r.do(send("bob", direct, "b1"), t0)
	for i := range 5 {
		r.do(send("alice", direct, fmt.Sprintf("m%d", i)), t0.Add(time.Duration(i)*time.Second))
	}
	st := r.ps.convs[direct]
	if len(st.dedup["alice"].ids) != 3 || len(st.dedup["bob"].ids) != 1 {
		t.Fatalf("remembered: alice %d, bob %d", len(st.dedup["alice"].ids), len(st.dedup["bob"].ids))
	}
	if _, ok := st.lookup("alice", "m1"); ok {
		t.Fatal("m1 should be evicted")
	}
	if got := summary(r.do(send("alice", direct, "m2"), t0.Add(time.Minute))); fmt.Sprint(got) != "[Dedup->4]" {
		t.Fatalf("resend of m2: %v", got)
	}
	restored := r.restore(t0.Add(time.Minute))
	if !reflect.DeepEqual(dedupOf(restored.convs[direct]), dedupOf(st)) {
		t.Fatalf("restored %v, live %v", dedupOf(restored.convs[direct]), dedupOf(st))
	}
	// Lowered to 1: the restore keeps alice's newest, and the next sweep
	// past the window tombstones the records of the two it dropped.
	r.l.DedupPerSender = 1
	r.ps = r.restore(t0.Add(time.Minute))
	if got := dedupOf(r.ps.convs[direct]); len(got) != 2 || got[dedupRef{"alice", "m4"}].seq != 6 {
		t.Fatalf("after lowering the cap: %v", got)
	}
	n := len(r.log)
	r.do(send("bob", direct, "b2"), t0.Add(8*24*time.Hour))
	tombs := map[string]bool{}
	for _, rec := range r.log[n:] {
		if rec.Value == nil {
			tombs[string(rec.Key)] = true
		}
	}
	for _, id := range []string{"m2", "m3", "m4"} {
		if !tombs[dedupChangelogKey(direct, "alice", id)] {
			t.Errorf("no tombstone for alice's %s", id)
		}
	}
}

// TestChangelogOldRecordsRestore: records written before the dedup time
// window (a dedup value with a seq only) restore, count as received at the
// restore, and leave one window later.
func TestChangelogOldRecordsRestore(t *testing.T) {
	b := newStateBuilder()
	for _, kv := range [][2]string{
		{"c\x00g:old", `{"k":2,"t":"team","s":3}`},
		{"m\x00g:old\x00alice", `{"r":1,"j":0,"rd":3,"dl":3}`},
		{"m\x00g:old\x00bob", `{"r":2,"j":0,"rd":1,"dl":2}`},
		{"d\x00g:old\x00alice\x00a1", `{"s":1}`},
		{"d\x00g:old\x00bob\x00b1", `{"s":2}`},
		{"d\x00g:old\x00alice\x00a2", `{"s":3,"future":"ignored"}`},
	} {
		if err := b.apply([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1_700_000_000, 0)
	ps := b.done(now, DefaultLimits.DedupPerSender)
	st := ps.convs["g:old"]
	if st.lastSeq != 3 || st.title != "team" || len(st.members) != 2 || st.members["bob"].delivered != 2 {
		t.Fatalf("state %+v", st)
	}
	r := &partRun{t: t, l: DefaultLimits, ps: ps}
	if got := summary(r.do(cmd("alice", "g:old", &pb.SendMessage{ClientMsgId: "a1", Text: "x"}), now)); fmt.Sprint(got) != "[Dedup->1]" {
		t.Fatalf("resend of an old record's send: %v", got)
	}
	if got := summary(r.do(cmd("alice", "g:old", &pb.SendMessage{ClientMsgId: "a3", Text: "x"}), now)); fmt.Sprint(got) != "[MessageSent@4]" {
		t.Fatalf("new send: %v", got)
	}
	r.do(cmd("bob", "g:old", &pb.SendMessage{ClientMsgId: "b2", Text: "x"}), now.Add(DefaultLimits.DedupWindow+time.Second))
	if got := dedupOf(st); len(got) != 1 || got[dedupRef{"bob", "b2"}].seq != 5 {
		t.Fatalf("after one window: %v", got)
	}
}

// TestChangelogSentRecords: the attachments of a send the cap drops at a
// restore (lowered since) are written to their sent record by the next
// transaction, so they outlive the sweep of the send's record and a second
// restore; the owner's recall then deletes them.
func TestChangelogSentRecords(t *testing.T) {
	g := "g:1"
	t0 := time.Unix(1_700_000_000, 0)
	r := newPartRun(t, Limits{DedupPerSender: 3})
	for _, c := range []*pb.Command{createGroup("bob"), uploadCmd("bob", g, attachment("bob", '1')), sendWith("bob", g, "b1", "x", '1'),
		send("bob", g, "b2")} {
		r.do(c, t0)
	}
	r.l.DedupPerSender = 1
	r.ps = r.restore(t0)
	if len(r.ps.owed) != 1 || r.ps.owed[0] != (seqRef{g, 1}) {
		t.Fatalf("owed %v, want seq 1's sent record", r.ps.owed)
	}
	n := len(r.log)
	r.do(cmd("alice", g, &pb.MarkRead{UpToSeq: 2}), t0)
	sentKey := seqChangelogKey(prefixSent, g, 1)
	if !slices.ContainsFunc(r.log[n:], func(rec *kgo.Record) bool { return string(rec.Key) == sentKey && rec.Value != nil }) || len(r.ps.owed) != 0 {
		t.Fatalf("the next transaction wrote no sent record (owed %v)", r.ps.owed)
	}
	// Past the window: the sweep tombstones seq 1's dedup record (and
	// forgets b2); the sent record holds the attachment.
	later := t0.Add(r.l.DedupWindow + time.Second)
	r.do(send("alice", g, "a1"), later)
	r.ps = r.restore(later)
	if got := uploadsOf(r.ps.convs[g]); !strings.Contains(got, "sent at 1 by bob") || strings.Contains(got, "bob/b") {
		t.Fatalf("restored\n%s", got)
	}
	evs := r.do(recallCmd("alice", g, 1), later)
	if got, want := attachSummary(evs), []string{"Recalled:1", "Deleted:1:RECALLED:bob"}; !slices.Equal(got, want) {
		t.Fatalf("recall: %v, want %v", got, want)
	}
	checkDeleted(t, evs)
}

// TestChangelogOldRecordsAttachments: a changelog written before sent
// records existed (the attachments only in the dedup records, a recalled
// message's still there) restores; an eviction then keeps the attachments
// of the message not recalled, and only those, for the owner's recall.
func TestChangelogOldRecordsAttachments(t *testing.T) {
	att := func(n byte) string {
		return fmt.Sprintf(`{"i":"%s","s":"%s","t":"%s"}`, strings.Repeat(string(n), 32), strings.Repeat(string(n), 64), strings.Repeat("f", 64))
	}
	now := time.Unix(1_700_000_000, 0)
	r := newPartRun(t, Limits{DedupPerSender: 2})
	for _, kv := range [][2]string{
		{"c\x00g:old", `{"k":2,"t":"team","s":3,"v":5}`},
		{"m\x00g:old\x00alice", `{"r":1,"j":0,"rd":3,"dl":3}`},
		{"m\x00g:old\x00bob", `{"r":2,"j":0,"rd":3,"dl":3}`},
		{"d\x00g:old\x00bob\x00b1", fmt.Sprintf(`{"s":1,"t":%d,"a":[%s]}`, now.UnixMilli(), att('3'))},
		{"d\x00g:old\x00bob\x00b2", fmt.Sprintf(`{"s":2,"t":%d,"a":[%s,%s]}`, now.UnixMilli()+1, att('1'), att('2'))},
		{"d\x00g:old\x00bob\x00b3", fmt.Sprintf(`{"s":3,"t":%d}`, now.UnixMilli()+2)},
		{"x\x00g:old\x001", `{"u":"bob"}`},
	} {
		r.log = append(r.log, &kgo.Record{Key: []byte(kv[0]), Value: []byte(kv[1])})
	}
	// The cap of 2 drops b1 at the restore: recalled, so nothing is kept.
	r.ps = r.restore(now)
	if st := r.ps.convs["g:old"]; st == nil || len(st.sent) != 0 || len(r.ps.owed) != 0 {
		t.Fatalf("restored %v, owed %v", uploadsOf(st), r.ps.owed)
	}
	// b4 evicts b2, whose attachments are kept and recorded.
	r.do(cmd("bob", "g:old", &pb.SendMessage{ClientMsgId: "b4", Text: "x"}), now)
	r.ps = r.restore(now)
	st := r.ps.convs["g:old"]
	if got, want := slices.Collect(maps.Keys(st.sent)), []int64{2}; !slices.Equal(got, want) || len(st.sent[2].atts) != 2 {
		t.Fatalf("kept %v\n%s", got, uploadsOf(st))
	}
	var evs []*pb.Event
	for _, seq := range []int64{1, 2, 2} {
		evs = append(evs, r.do(recallCmd("alice", "g:old", seq), now)...)
	}
	if got, want := attachSummary(evs), []string{"Recalled:2", "Deleted:1:RECALLED:bob", "Deleted:2:RECALLED:bob"}; !slices.Equal(got, want) {
		t.Fatalf("recalls: %v, want %v", got, want)
	}
	checkDeleted(t, evs)
}

// BenchmarkStateBuilder measures the CPU side of a restore: applying
// changelog records (20 sends per conversation by 4 senders: a header, a
// member and a remembered send per send) and building the partition state.
//
//	go test ./ingest -short -run '^$' -bench StateBuilder
func BenchmarkStateBuilder(b *testing.B) {
	var keys, vals [][]byte
	for c := range 1700 {
		conv := fmt.Sprintf("g:%05d", c)
		for i := range 20 {
			keys = append(keys, []byte(prefixHeader+sep+conv), []byte(prefixMember+sep+conv+sep+fmt.Sprintf("u%d", i%4)),
				[]byte(dedupChangelogKey(conv, fmt.Sprintf("u%d", i%4), fmt.Sprintf("cm-%d-%d", c, i))))
			vals = append(vals, []byte(fmt.Sprintf(`{"k":2,"t":"%s","s":%d}`, conv, i+1)), []byte(fmt.Sprintf(`{"r":1,"j":0,"rd":%d,"dl":%d}`, i+1, i+1)),
				[]byte(fmt.Sprintf(`{"s":%d,"t":%d}`, i+1, 1_764_620_000_000+int64(i)*1000)))
		}
	}
	b.ResetTimer()
	for range b.N {
		bl := newStateBuilder()
		for i := range keys {
			if err := bl.apply(keys[i], vals[i]); err != nil {
				b.Fatal(err)
			}
		}
		bl.done(time.Unix(1_764_620_100, 0), DefaultLimits.DedupPerSender)
	}
	b.ReportMetric(float64(len(keys)*b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestVersionsDenseAcrossRestore: every event that changes a view takes the
// conversation's next version — timeline items, receipts and the creation
// alike — while rejections and deduplicated resends take none, and a
// decider restored from the changelog goes on from the last version.
func TestVersionsDenseAcrossRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	var evs []*pb.Event
	do := func(c *pb.Command) { evs = append(evs, r.do(c, at)...) }
	do(createGroup("bob", "carol"))
	do(send("alice", "g:1", "m1"))
	do(cmd("bob", "g:1", &pb.MarkDelivered{UpToSeq: 1}))
	do(cmd("bob", "g:1", &pb.MarkRead{UpToSeq: 1}))
	do(send("alice", "g:1", "m1"))                      // a resend: deduplicated
	do(cmd("mallory", "g:1", &pb.MarkRead{UpToSeq: 1})) // not a member: rejected
	do(cmd("bob", "g:1", &pb.MarkRead{UpToSeq: 1}))     // the mark does not move: no event
	do(cmd("alice", "g:1", &pb.AddMembers{UserIds: []string{"dave"}}))
	r.ps = r.restore(at)
	do(send("bob", "g:1", "m2"))
	do(cmd("carol", "g:1", &pb.LeaveConversation{}))

	var got []string
	want := int64(1)
	for _, ev := range evs {
		typ := schemas.EventType(ev)
		got = append(got, fmt.Sprintf("%s v%d", typ, ev.GetVersion()))
		switch typ {
		case schemas.TypeMessageDeduplicated, schemas.TypeCommandRejected:
			if ev.GetVersion() != 0 {
				t.Errorf("%s has version %d, want none", typ, ev.GetVersion())
			}
		default:
			if ev.GetVersion() != want {
				t.Errorf("%s has version %d, want %d", typ, ev.GetVersion(), want)
			}
			want++
		}
	}
	if want != 8 {
		t.Errorf("%d versioned events, want 7: %v", want-1, got)
	}
	if st := r.ps.convs["g:1"]; st.lastVersion != 7 {
		t.Errorf("state's last version %d, want 7", st.lastVersion)
	}
}

// TestChangelogMessageRecords: notices, recalls, reactions and an edited
// send's content type, edit count and edit ids survive the changelog, and
// the restore rebuilds the index of sends by seq.
func TestChangelogMessageRecords(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := newConvState(pb.ConversationKind_CONVERSATION_KIND_GROUP, "team")
	st.lastSeq, st.lastVersion = 6, 9
	st.members["alice"] = &memberState{role: pb.MemberRole_MEMBER_ROLE_OWNER}
	st.remember("alice", "a1", dedupEntry{seq: 1, at: now.UnixMilli()}, 10)
	st.remember("bob", "b1", dedupEntry{seq: 3, at: now.UnixMilli() + 1}.with(sendExtra{ct: schemas.ContentMarkdown}), 10)
	st.update("bob", "b1", dedupEntry{seq: 3, at: now.UnixMilli() + 1}.with(sendExtra{edits: 2, editIDs: []string{"e1", "e2"}}))
	st.addNotice(2)
	st.addNotice(4)
	st.recall(5, "alice")
	st.addReaction(1, "👍", "bob")
	st.addReaction(1, "👍", "alice")
	st.addReaction(1, ":shipit:", "bob")
	st.addReaction(3, "🎉", "alice")
	st.removeReaction(3, "🎉", "alice")
	d := delta{header: true, members: []string{"alice"}, dedup: []dedupRef{{"alice", "a1"}}, edited: []dedupRef{{"bob", "b1"}},
		notices: []int64{2, 4}, recalled: []int64{5}, reactions: []int64{1, 3}}
	recs := changelogRecords("state", 0, "g:1", st, d)
	vals := map[string]string{}
	for _, r := range recs {
		vals[string(r.Key)] = string(r.Value)
	}
	for k, want := range map[string]string{
		dedupChangelogKey("g:1", "alice", "a1"):    `{"s":1,"t":1700000000000}`,
		dedupChangelogKey("g:1", "bob", "b1"):      `{"s":3,"t":1700000000001,"n":2,"e":["e1","e2"]}`,
		"n\x00g:1\x002":                            `{}`,
		"x\x00g:1\x005":                            `{"u":"alice"}`,
		"r\x00g:1\x001":                            `{":shipit:":["bob"],"👍":["alice","bob"]}`,
		seqChangelogKey(prefixReactions, "g:1", 3): ``, // none left: a tombstone
	} {
		if got, ok := vals[k]; !ok || got != want {
			t.Errorf("%q = %q (present %v), want %q", k, got, ok, want)
		}
	}

	b := newStateBuilder()
	for _, r := range recs {
		if err := b.apply(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	got := b.done(now, 10).convs["g:1"]
	if !reflect.DeepEqual(got.notices, st.notices) || !reflect.DeepEqual(got.recalled, st.recalled) ||
		!reflect.DeepEqual(got.reactions, st.reactions) || !reflect.DeepEqual(got.bySeq, st.bySeq) ||
		!reflect.DeepEqual(dedupOf(got), dedupOf(st)) {
		t.Fatalf("restored\n notices %v recalled %v reactions %v bySeq %v dedup %v\nlive\n notices %v recalled %v reactions %v bySeq %v dedup %v",
			got.notices, got.recalled, got.reactions, got.bySeq, dedupOf(got), st.notices, st.recalled, st.reactions, st.bySeq, dedupOf(st))
	}
	// A recall drops the message's reactions; the tombstone of its record
	// drops them on restore too.
	st.recall(1, "alice")
	for _, r := range changelogRecords("state", 0, "g:1", st, delta{recalled: []int64{1}, reactions: []int64{1}}) {
		if err := b.apply(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.done(now, 10).convs["g:1"]; len(got.reactions) != 0 || got.recalled[1] != "alice" {
		t.Fatalf("after the recall: reactions %v, recalled %v", got.reactions, got.recalled)
	}
}

// TestChangelogSeqKeys: the per-message keys need a positive decimal seq.
func TestChangelogSeqKeys(t *testing.T) {
	for _, key := range []string{"n\x00g:1", "n\x00g:1\x00", "n\x00g:1\x00x", "x\x00g:1\x00-1", "r\x00g:1\x000",
		"r\x00g:1\x001\x00extra", "n\x00g:1\x009223372036854775808", "z\x00g:1\x001"} {
		if err := newStateBuilder().apply([]byte(key), []byte(`{}`)); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
	for _, kv := range [][2]string{{"n\x00g:1\x007", `{}`}, {"x\x00g:1\x007", `{"u":"bob"}`}, {"r\x00g:1\x007", `{"👍":["bob"]}`},
		{"r\x00g:1\x007", `{}`}, {"x\x00g:1\x008", `{"u":"bob","later":1}`}} {
		if err := newStateBuilder().apply([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Errorf("%q = %s: %v", kv[0], kv[1], err)
		}
	}
	if err := newStateBuilder().apply([]byte("r\x00g:1\x007"), []byte(`["👍"]`)); err == nil {
		t.Error("a reactions record that is not an object was accepted")
	}
}

// TestStateBySeqFollowsDedup: the index of sends by seq loses what the cap
// evicts and the time sweep forgets.
func TestStateBySeqFollowsDedup(t *testing.T) {
	r := newPartRun(t, Limits{DedupPerSender: 2})
	t0 := time.Unix(1_700_000_000, 0)
	r.do(createDirect(), t0)
	r.do(send("alice", direct, "m1"), t0)
	r.do(send("alice", direct, "m2"), t0)
	r.do(send("bob", direct, "b1"), t0.Add(time.Hour))
	r.do(send("alice", direct, "m3"), t0.Add(time.Hour)) // evicts m1
	st := r.ps.convs[direct]
	want := map[int64]dedupRef{2: {"alice", "m2"}, 3: {"bob", "b1"}, 4: {"alice", "m3"}}
	if !reflect.DeepEqual(st.bySeq, want) {
		t.Fatalf("bySeq %v, want %v", st.bySeq, want)
	}
	if got := r.restore(t0.Add(time.Hour)).convs[direct].bySeq; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored bySeq %v, want %v", got, want)
	}
	r.do(send("bob", direct, "b2"), t0.Add(r.l.DedupWindow+time.Minute)) // sweeps m2
	want = map[int64]dedupRef{3: {"bob", "b1"}, 4: {"alice", "m3"}, 5: {"bob", "b2"}}
	if !reflect.DeepEqual(st.bySeq, want) {
		t.Fatalf("after the sweep bySeq %v, want %v", st.bySeq, want)
	}
}

// TestMessageActionsRestore: the changelog of edits, recalls, reactions,
// replies and member notices restores a state that holds the same and
// decides the same: an edit's retry is still deduplicated, a recalled
// message still refuses reactions, a notice still refuses an edit,
// reactions are still idempotent, and the sends are indexed by seq again.
func TestMessageActionsRestore(t *testing.T) {
	r := newPartRun(t, Limits{})
	t0 := time.Unix(1_700_000_000, 0)
	at := t0
	do := func(c *pb.Command) []string {
		at = at.Add(time.Second)
		return summary(r.do(c, at))
	}
	g := "g:1"
	var got []string
	for _, c := range []*pb.Command{
		createGroup("bob", "carol"),
		cmd("alice", g, &pb.AddMembers{UserIds: []string{"dave"}}),
		sendTyped("bob", g, "m1", "text/markdown", "*one*"),
		send("alice", g, "m2"),
		editCmd("bob", g, 2, "e1", "*one!*"),
		editCmd("bob", g, 2, "e2", "one"),
		reactCmd("carol", g, 2, "👍"),
		reactCmd("bob", g, 2, "🎉"),
		reactCmd("dave", g, 3, "👍"),
		recallCmd("alice", g, 3),
		cmd("carol", g, &pb.LeaveConversation{}),
		replyCmd("bob", g, "m3", 2),
		reactCmd("bob", g, 5, "👀"),
		unreactCmd("bob", g, 5, "👀"),
	} {
		got = append(got, do(c)...)
	}
	want := []string{created, "MembersAdded@1", "MessageSent@2", "MessageSent@3", "Edited:2#1", "Edited:2#2", "React+:2:👍", "React+:2:🎉",
		"React+:3:👍", "Recalled:3", "MemberRemoved@4", "MessageSent@5", "React+:5:👀", "React-:5:👀"}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	live := r.ps
	restored := r.restore(at)
	ls, rs := live.convs[g], restored.convs[g]
	if !reflect.DeepEqual(rs.notices, ls.notices) || !reflect.DeepEqual(rs.recalled, ls.recalled) || !reflect.DeepEqual(rs.reactions, ls.reactions) ||
		!reflect.DeepEqual(rs.bySeq, ls.bySeq) || !reflect.DeepEqual(dedupOf(rs), dedupOf(ls)) {
		t.Fatalf("restored\n notices %v recalled %v reactions %v bySeq %v dedup %v\nlive\n notices %v recalled %v reactions %v bySeq %v dedup %v",
			rs.notices, rs.recalled, rs.reactions, rs.bySeq, dedupOf(rs), ls.notices, ls.recalled, ls.reactions, ls.bySeq, dedupOf(ls))
	}
	if len(ls.reactions) != 1 || len(ls.notices) != 2 || len(ls.bySeq) != 3 {
		t.Fatalf("live state: reactions %v notices %v bySeq %v", ls.reactions, ls.notices, ls.bySeq)
	}

	probes := []*pb.Command{
		editCmd("bob", g, 2, "e2", "one"),    // a retry
		editCmd("bob", g, 2, "e3", "one?"),   // the third edit
		editCmd("alice", g, 1, "e9", "x"),    // a notice
		editCmd("alice", g, 4, "e9", "x"),    // a notice
		editCmd("alice", g, 3, "e9", "x"),    // recalled
		reactCmd("dave", g, 3, "👍"),          // recalled
		reactCmd("bob", g, 2, "🎉"),           // already there
		unreactCmd("bob", g, 5, "👀"),         // already gone
		reactCmd("alice", g, 2, "🎉"),         // new
		recallCmd("alice", g, 3),             // already recalled
		replyCmd("dave", g, "r1", 3),         // recalled
		replyCmd("dave", g, "r2", 4),         // a notice
		sendTyped("bob", g, "m1", "", "x"),   // a resend
		replyCmd("bob", g, "m3", 2),          // a resend
		recallCmd("dave", g, 2),              // not the sender
		recallCmd("bob", g, 2),               // the sender, within the window
		editCmd("bob", g, 5, "e4", "edited"), // bob's reply
	}
	decideAll := func(ps *partState) []string {
		rr := &partRun{t: t, l: r.l, ps: ps}
		var out []string
		for i, c := range probes {
			out = append(out, summary(rr.do(proto.Clone(c).(*pb.Command), at.Add(time.Duration(i)*time.Second)))...)
		}
		return out
	}
	fromRestored, fromLive := decideAll(restored), decideAll(live)
	want = []string{"Dedup->2", "Edited:2#3", rejNotFound, rejNotFound, rejRecalled, rejRecalled, "React+:2:🎉",
		rejRecalled, rejNotFound, "Dedup->2", "Dedup->5", rejDenied, "Recalled:2", "Edited:5#1"}
	if !slices.Equal(fromRestored, want) || !slices.Equal(fromLive, want) {
		t.Fatalf("probes\n restored %v\n live     %v\n want     %v", fromRestored, fromLive, want)
	}
}

// TestVersionsDenseOverMessageActions: edits, recalls and reactions take
// the next version like every other event that changes a view; their
// retries, no-ops and refusals take none; across a restore too.
func TestVersionsDenseOverMessageActions(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	var evs []*pb.Event
	do := func(c *pb.Command) { evs = append(evs, r.do(c, at)...) }
	g := "g:1"
	do(createGroup("bob"))                   // v1
	do(send("bob", g, "m1"))                 // v2
	do(editCmd("bob", g, 1, "e1", "edited")) // v3
	do(editCmd("bob", g, 1, "e1", "edited")) // a retry: none
	do(reactCmd("alice", g, 1, "👍"))         // v4
	do(reactCmd("alice", g, 1, "👍"))         // no-op
	do(editCmd("alice", g, 1, "e2", "x"))    // refused
	r.ps = r.restore(at)
	do(unreactCmd("alice", g, 1, "👍")) // v5
	do(replyCmd("alice", g, "m2", 1))  // v6
	do(recallCmd("alice", g, 1))       // v7
	do(recallCmd("alice", g, 1))       // no-op
	do(reactCmd("bob", g, 2, "🎉"))     // v8
	r.ps = r.restore(at)
	do(editCmd("alice", g, 2, "e3", "x")) // v9

	want := int64(1)
	for _, ev := range evs {
		typ := schemas.EventType(ev)
		switch typ {
		case schemas.TypeMessageDeduplicated, schemas.TypeCommandRejected:
			if ev.GetVersion() != 0 {
				t.Errorf("%s has version %d, want none", typ, ev.GetVersion())
			}
			continue
		}
		if ev.GetVersion() != want {
			t.Errorf("%s has version %d, want %d", typ, ev.GetVersion(), want)
		}
		want++
	}
	if want != 10 || r.ps.convs[g].lastVersion != 9 {
		t.Errorf("%d versioned events, last version %d; want 9 and 9: %v", want-1, r.ps.convs[g].lastVersion, summary(evs))
	}
}

// TestEditRewritesSendRecord: an edit rewrites its send's record (content
// type, edit count, edit ids) and leaves the send's place in the expiry
// queue; the send is forgotten one window after it was received, whatever
// its edits.
func TestEditRewritesSendRecord(t *testing.T) {
	r := newPartRun(t, Limits{})
	t0 := time.Unix(1_700_000_000, 0)
	r.do(createDirect(), t0)
	r.do(send("alice", direct, "m1"), t0)
	queued := len(r.ps.expiry)
	n := len(r.log)
	r.do(editTyped("alice", direct, 1, "e1", "*new*", "text/markdown"), t0.Add(time.Minute))
	var rec string
	for _, l := range r.log[n:] {
		if string(l.Key) == dedupChangelogKey(direct, "alice", "m1") {
			rec = string(l.Value)
		}
	}
	if want := `{"s":1,"t":1700000000000,"c":"text/markdown","n":1,"e":["e1"]}`; rec != want {
		t.Fatalf("send record after the edit %s, want %s", rec, want)
	}
	if len(r.ps.expiry) != queued {
		t.Fatalf("the edit queued its send again: %d items, was %d", len(r.ps.expiry), queued)
	}
	// Sixteen more edits: the first one's id is no longer remembered.
	for i := range 16 {
		r.do(editCmd("alice", direct, 1, fmt.Sprintf("f%d", i), "x"), t0.Add(2*time.Minute))
	}
	e, _ := r.ps.convs[direct].lookup("alice", "m1")
	if x := e.extra(); len(x.editIDs) != maxEditIDs || x.editIDs[0] != "f0" || x.edits != 17 || x.ct != "" {
		t.Fatalf("entry after 17 edits: %+v", x)
	}
	r.do(send("bob", direct, "b1"), t0.Add(r.l.DedupWindow+time.Second))
	if _, ok := r.ps.convs[direct].lookup("alice", "m1"); ok {
		t.Fatal("an edited send outlived its window")
	}
}

// TestChangelogOldRecordsNoEdit: a send restored from a record without a
// receive time is not known to be in any window: its sender neither edits
// nor recalls it; a group's owner still recalls it.
func TestChangelogOldRecordsNoEdit(t *testing.T) {
	b := newStateBuilder()
	for _, kv := range [][2]string{
		{"c\x00g:old", `{"k":2,"t":"team","s":2}`},
		{"m\x00g:old\x00alice", `{"r":1,"j":0,"rd":2,"dl":2}`},
		{"m\x00g:old\x00bob", `{"r":2,"j":0,"rd":2,"dl":2}`},
		{"d\x00g:old\x00bob\x00b1", `{"s":1}`},
		{"d\x00g:old\x00bob\x00b2", `{"s":2}`},
	} {
		if err := b.apply([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1_700_000_000, 0)
	r := &partRun{t: t, l: DefaultLimits, ps: b.done(now, DefaultLimits.DedupPerSender)}
	var got []string
	for _, c := range []*pb.Command{editCmd("bob", "g:old", 1, "e1", "x"), recallCmd("bob", "g:old", 1), recallCmd("alice", "g:old", 2),
		send("bob", "g:old", "b3"), editCmd("bob", "g:old", 3, "e1", "x")} {
		got = append(got, summary(r.do(c, now))...)
	}
	if want := []string{rejWindow, rejWindow, "Recalled:2", "MessageSent@3", "Edited:3#1"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// BenchmarkRememberedSendBytes measures the heap one remembered send takes
// (its entry, its place in the sender's order, in the index by seq and in
// the expiry queue, and its 26-byte client id): 1,000 conversations of 10
// senders, 100 sends each, text/plain and never edited.
//
//	go test ./ingest -short -run '^$' -bench RememberedSendBytes -benchtime 3x
func BenchmarkRememberedSendBytes(b *testing.B) {
	const convs, perConv = 1000, 100
	var perSend float64
	for range b.N {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		ps := newPartState()
		for c := range convs {
			st := newConvState(pb.ConversationKind_CONVERSATION_KIND_GROUP, "")
			conv := fmt.Sprintf("g:%05d", c)
			ps.convs[conv] = st
			for i := range perConv {
				u, id := fmt.Sprintf("u%d", i%10), fmt.Sprintf("01JABCDEFGHJKMNPQRSTVW%04d", i)
				e := dedupEntry{seq: int64(i + 1), at: int64(1_700_000_000_000 + i)}
				st.remember(u, id, e, DefaultLimits.DedupPerSender)
				ps.track(conv, u, id, e.at)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perSend = float64(m1.HeapAlloc-m0.HeapAlloc) / (convs * perConv)
		runtime.KeepAlive(ps)
	}
	b.ReportMetric(perSend, "bytes/send")
}

// BenchmarkSentAttachmentBytes measures the heap one message takes in
// convState.sent (its send no longer remembered, not recalled) with 1 and
// with 2 attachments, restored from its sent record: 1,000 conversations
// of 100 such messages, 26-byte sender ids (the conversations' own state,
// a few bytes per message, included).
//
//	go test ./ingest -short -run '^$' -bench SentAttachmentBytes -benchtime 3x
func BenchmarkSentAttachmentBytes(b *testing.B) {
	const convs, perConv = 1000, 100
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("atts=%d", n), func(b *testing.B) {
			var recs [][2][]byte
			for c := range convs {
				conv := fmt.Sprintf("g:%05d", c)
				for i := range perConv {
					rec := sentMsgRec{Sender: fmt.Sprintf("01JABCDEFGHJKMNPQRSTVW%04d", i%10)}
					for k := range n {
						rec.Atts = append(rec.Atts, sentRec{ID: fmt.Sprintf("%032x", c*perConv*4+i*4+k),
							SHA256: strings.Repeat(fmt.Sprintf("%02x", k), 32), Thumbnail: strings.Repeat("f", 64)})
					}
					v, _ := json.Marshal(rec)
					recs = append(recs, [2][]byte{[]byte(seqChangelogKey(prefixSent, conv, int64(i+1))), v})
				}
			}
			var perMsg float64
			for range b.N {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				sb := newStateBuilder()
				for _, kv := range recs {
					if err := sb.apply(kv[0], kv[1]); err != nil {
						b.Fatal(err)
					}
				}
				ps := sb.done(time.Unix(1_700_000_000, 0), DefaultLimits.DedupPerSender)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				perMsg = float64(m1.HeapAlloc-m0.HeapAlloc) / (convs * perConv)
				runtime.KeepAlive(ps)
			}
			b.ReportMetric(perMsg, "bytes/message")
		})
	}
}

// governanceOf is what a conversation's state holds of roles, mutes,
// settings and pins, for comparing a live state with a restored one.
func governanceOf(st *convState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "title %q settings %+v seq %d version %d closed %v deleted %v\n", st.title, st.settings, st.lastSeq, st.lastVersion,
		st.closed, st.deleted)
	for _, u := range slices.Sorted(maps.Keys(st.members)) {
		m := st.members[u]
		fmt.Fprintf(&b, "%s %v joined %d read %d delivered %d muted %d\n", u, m.role, m.joinedSeq, m.readSeq, m.delivered, m.mutedUntil)
	}
	fmt.Fprintf(&b, "pins %v recalled %v", slices.Sorted(maps.Keys(st.pins)), st.recalled)
	return b.String()
}

// TestChangelogGovernanceRecords: the settings record (written only when
// the settings change, a tombstone when they are back at their defaults),
// a member's mute and the pins, and what older records mean.
func TestChangelogGovernanceRecords(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	g := "g:1"
	keyOf := func(recs []*kgo.Record) map[string]string {
		out := map[string]string{}
		for _, rec := range recs {
			out[string(rec.Key)] = string(rec.Value)
		}
		return out
	}
	do := func(c *pb.Command) map[string]string {
		n := len(r.log)
		r.do(c, at)
		return keyOf(r.log[n:])
	}
	settingsKey, bobKey, carolKey := prefixSettings+sep+g, prefixMember+sep+g+sep+"bob", prefixMember+sep+g+sep+"carol"
	do(createGroup("bob", "carol"))
	recs := do(settingsCmd("alice", g, &pb.GroupSettings{Description: proto.String("about"), AvatarUrl: proto.String("parley:a"),
		AnnouncementOnly: proto.Bool(true), WhoMayAdd: policy(policyAdmins), WhoMayMentionAll: policy(policyMembers), WhoMayPin: policy(policyAdmins),
		HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}))
	if want := `{"d":"about","a":"parley:a","ao":true,"pa":2,"pp":2,"hv":2}`; recs[settingsKey] != want {
		t.Errorf("settings record %q, want %q", recs[settingsKey], want)
	}
	if recs := do(settingsCmd("alice", g, &pb.GroupSettings{Title: proto.String("renamed")})); recs[prefixHeader+sep+g] == "" || recs[settingsKey] != "" {
		t.Errorf("a rename wrote %v", recs)
	}
	if _, ok := do(send("alice", g, "m1"))[settingsKey]; ok {
		t.Error("a send rewrote the settings")
	}
	recs = do(muteCmd("alice", g, "bob", timestamppb.New(at.Add(time.Hour))))
	if want := fmt.Sprintf(`{"r":2,"j":0,"rd":0,"dl":0,"mu":%d}`, at.Add(time.Hour).UnixMilli()); recs[bobKey] != want {
		t.Errorf("muted member %q, want %q", recs[bobKey], want)
	}
	if recs := do(muteCmd("alice", g, "carol", nil)); recs[carolKey] != `{"r":2,"j":0,"rd":0,"dl":0,"mu":-1}` {
		t.Errorf("muted forever %q", recs[carolKey])
	}
	if recs := do(unmuteCmd("alice", g, "carol")); recs[carolKey] != `{"r":2,"j":0,"rd":0,"dl":0}` {
		t.Errorf("unmuted %q", recs[carolKey])
	}
	if recs := do(roleCmd("alice", g, "carol", roleAdmin)); recs[carolKey] != `{"r":3,"j":0,"rd":0,"dl":0}` {
		t.Errorf("admin %q", recs[carolKey])
	}
	pinKey := seqChangelogKey(prefixPin, g, 1)
	if v, ok := do(pinCmd("carol", g, 1))[pinKey]; !ok || v != `{}` {
		t.Errorf("pin record %q (present %v)", v, ok)
	}
	do(send("alice", g, "m2"))
	do(pinCmd("carol", g, 2))
	if v, ok := do(unpinCmd("carol", g, 1))[pinKey]; !ok || v != "" {
		t.Errorf("unpin: %q (present %v), want a tombstone", v, ok)
	}
	if v, ok := do(recallCmd("alice", g, 2))[seqChangelogKey(prefixPin, g, 2)]; !ok || v != "" {
		t.Errorf("recall of a pinned message: %q (present %v), want the pin's tombstone", v, ok)
	}
	recs = do(settingsCmd("alice", g, &pb.GroupSettings{Description: proto.String(""), AvatarUrl: proto.String(""),
		AnnouncementOnly: proto.Bool(false), WhoMayAdd: policy(policyMembers), WhoMayPin: policy(policyMembers)}))
	if v := recs[settingsKey]; v != `{"hv":2}` {
		t.Errorf("settings at the defaults but the history visibility: %q", v)
	}
	recs = do(settingsCmd("alice", g, &pb.GroupSettings{HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_ALL)}))
	if v, ok := recs[settingsKey]; !ok || v != "" {
		t.Errorf("settings back at the defaults: %q (present %v), want a tombstone", v, ok)
	}
	live := governanceOf(r.ps.convs[g])
	if got := governanceOf(r.restore(at).convs[g]); got != live {
		t.Errorf("restored\n%s\nlive\n%s", got, live)
	}

	// Older records: a member without "mu" is not muted; a policy other
	// than 2 reads as GROUP_POLICY_MEMBERS; a record without "hv" (or
	// with a value other than 2) reads as HISTORY_VISIBILITY_ALL; unknown
	// fields are ignored.
	b := newStateBuilder()
	for _, kv := range [][2]string{
		{"c\x00g:old", `{"k":2,"t":"team","s":2,"v":3}`},
		{"m\x00g:old\x00alice", `{"r":1,"j":0,"rd":2,"dl":2}`},
		{"m\x00g:old\x00bob", `{"r":2,"j":0,"rd":2,"dl":2,"later":true}`},
		{"g\x00g:old", `{"pa":1,"pm":7,"pp":2,"later":"x"}`},
		{"p\x00g:old\x002", `{}`},
		{"g\x00g:hv", `{"hv":2}`},
		{"g\x00g:hv1", `{"hv":1}`},
	} {
		if err := b.apply([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	convs := b.done(at, DefaultLimits.DedupPerSender).convs
	st := convs["g:old"]
	if st.members["bob"].mutedUntil != 0 || st.settings != (groupSettings{adminsPin: true}) || !st.isPinned(2) {
		t.Errorf("old records: %s", governanceOf(st))
	}
	if convs["g:hv"].settings != (groupSettings{sinceJoin: true}) || convs["g:hv1"].settings != (groupSettings{}) {
		t.Errorf("history visibility records: %+v, %+v", convs["g:hv"].settings, convs["g:hv1"].settings)
	}
	for _, key := range []string{"g\x00g:1\x00x", "p\x00g:1", "p\x00g:1\x000", "p\x00g:1\x00y"} {
		if err := newStateBuilder().apply([]byte(key), []byte(`{}`)); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
	if err := newStateBuilder().apply([]byte("g\x00g:1"), []byte(`[]`)); err == nil {
		t.Error("a settings record that is not an object was accepted")
	}
}

// TestGovernanceRestore: the changelog of roles, transfers, a hand-over,
// settings, mutes and pins restores a state that holds the same and
// decides the same.
func TestGovernanceRestore(t *testing.T) {
	r := newPartRun(t, Limits{MaxPins: 3})
	t0 := time.Unix(1_700_000_000, 0)
	at := t0
	g := "g:1"
	var got []string
	for _, c := range []*pb.Command{
		createGroup("bob", "carol", "dave"),
		addCmd("alice", g, "erin"),
		roleCmd("alice", g, "erin", roleAdmin),
		transferCmd("alice", g, "bob"),
		roleCmd("bob", g, "carol", roleAdmin),
		roleCmd("bob", g, "alice", roleMember),
		settingsCmd("carol", g, &pb.GroupSettings{Title: proto.String("renamed"), Description: proto.String("about"),
			AvatarUrl: proto.String("https://img/1"), WhoMayAdd: policy(policyAdmins), WhoMayPin: policy(policyAdmins),
			WhoMayMentionAll: policy(policyAdmins), HistoryVisibility: visibility(pb.HistoryVisibility_HISTORY_VISIBILITY_SINCE_JOIN)}),
		muteCmd("carol", g, "dave", timestamppb.New(t0.Add(time.Hour))),
		muteCmd("bob", g, "erin", nil),
		send("alice", g, "m1"),
		send("carol", g, "m2"),
		send("bob", g, "m3"),
		pinCmd("carol", g, 2),
		pinCmd("bob", g, 3),
		pinCmd("bob", g, 4),
		recallCmd("carol", g, 4),
		leaveCmd("bob", g),
	} {
		at = at.Add(time.Second)
		got = append(got, summary(r.do(c, at))...)
	}
	want := []string{created, "MembersAdded@1", "Role:erin:ADMIN", "Owner:alice->bob:TRANSFERRED", "Role:carol:ADMIN", "Role:alice:MEMBER",
		"Settings:avatar_url,description,history_visibility,title,who_may_add,who_may_mention_all,who_may_pin", "Muted:dave", "Muted:erin",
		"MessageSent@2", "MessageSent@3", "MessageSent@4", "Pin:2", "Pin:3", "Pin:4", "Recalled:4", "MemberRemoved@5",
		"Owner:bob->carol:OWNER_LEFT"}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	live := r.ps
	restored := r.restore(at)
	if l, rs := governanceOf(live.convs[g]), governanceOf(restored.convs[g]); l != rs {
		t.Fatalf("restored\n%s\nlive\n%s", rs, l)
	}
	probes := []timed{
		{0, send("dave", g, "d1")},                  // muted for an hour
		{time.Hour, send("dave", g, "d1")},          // no longer
		{0, send("erin", g, "e1")},                  // muted
		{0, unmuteCmd("carol", g, "erin")},          // carol owns the group now
		{0, send("erin", g, "e1")},                  // unmuted
		{0, addCmd("alice", g, "frank")},            // who_may_add ADMINS
		{0, addCmd("erin", g, "frank")},             // an admin
		{0, mentionCmd("alice", g, "a2", true)},     // who_may_mention_all ADMINS
		{0, pinCmd("alice", g, 2)},                  // who_may_pin ADMINS
		{0, pinCmd("erin", g, 2)},                   // already pinned
		{0, pinCmd("erin", g, 4)},                   // recalled
		{0, pinCmd("erin", g, 6)},                   // the third pin
		{0, pinCmd("erin", g, 7)},                   // the fourth
		{0, roleCmd("alice", g, "dave", roleAdmin)}, // no longer the owner
		{0, roleCmd("carol", g, "dave", roleAdmin)}, // the owner
		{0, settingsCmd("dave", g, &pb.GroupSettings{Title: proto.String("renamed")})}, // no change
		{0, leaveCmd("carol", g)}, // hands over to dave: an admin who joined before erin
	}
	decideAll := func(ps *partState) []string {
		rr := &partRun{t: t, l: r.l, ps: ps}
		var out []string
		for i, p := range probes {
			out = append(out, summary(rr.do(proto.Clone(p.c).(*pb.Command), at.Add(time.Duration(i)*time.Millisecond+p.after)))...)
		}
		return out
	}
	fromRestored, fromLive := decideAll(restored), decideAll(live)
	want = []string{rejMuted, "MessageSent@6", rejMuted, "Unmuted:erin", "MessageSent@7", rejDenied, "MembersAdded@8", rejDenied, rejDenied,
		rejRecalled, "Pin:6", rejTooManyPins, rejDenied, "Role:dave:ADMIN", "MemberRemoved@9", "Owner:carol->dave:OWNER_LEFT"}
	if !slices.Equal(fromRestored, want) || !slices.Equal(fromLive, want) {
		t.Fatalf("probes\n restored %v\n live     %v\n want     %v", fromRestored, fromLive, want)
	}
}

// TestVersionsDenseOverGovernance: role changes, transfers, settings, mutes
// and pins take the next version and no seq, a leave and its hand-over two
// versions in a row; their no-ops and refusals take none; across restores
// too.
func TestVersionsDenseOverGovernance(t *testing.T) {
	r := newPartRun(t, Limits{})
	at := time.Unix(1_700_000_000, 0)
	var evs []*pb.Event
	do := func(c *pb.Command) { evs = append(evs, r.do(c, at)...) }
	g := "g:1"
	do(createGroup("bob", "carol"))                                                  // v1
	do(roleCmd("alice", g, "bob", roleAdmin))                                        // v2
	do(roleCmd("alice", g, "bob", roleAdmin))                                        // no-op
	do(settingsCmd("bob", g, &pb.GroupSettings{WhoMayPin: policy(policyAdmins)}))    // v3
	do(settingsCmd("bob", g, &pb.GroupSettings{WhoMayPin: policy(policyAdmins)}))    // no-op
	do(settingsCmd("carol", g, &pb.GroupSettings{WhoMayPin: policy(policyMembers)})) // refused
	r.ps = r.restore(at)
	do(send("carol", g, "m1"))           // v4, seq 1
	do(pinCmd("bob", g, 1))              // v5
	do(pinCmd("bob", g, 1))              // no-op
	do(muteCmd("bob", g, "carol", nil))  // v6
	do(send("carol", g, "m2"))           // refused: muted
	do(unmuteCmd("bob", g, "carol"))     // v7
	do(unmuteCmd("bob", g, "carol"))     // no-op
	do(transferCmd("alice", g, "carol")) // v8
	r.ps = r.restore(at)
	do(unpinCmd("carol", g, 1))            // v9
	do(leaveCmd("carol", g))               // v10 (seq 2), v11: the hand-over to alice
	do(mentionCmd("alice", g, "m3", true)) // v12, seq 3
	r.ps = r.restore(at)
	do(roleCmd("alice", g, "bob", roleMember)) // v13

	want := int64(1)
	for _, ev := range evs {
		typ := schemas.EventType(ev)
		switch typ {
		case schemas.TypeMessageDeduplicated, schemas.TypeCommandRejected:
			if ev.GetVersion() != 0 {
				t.Errorf("%s has version %d, want none", typ, ev.GetVersion())
			}
			continue
		}
		if ev.GetVersion() != want {
			t.Errorf("%s has version %d, want %d", typ, ev.GetVersion(), want)
		}
		if governanceEvent(ev) && ev.GetSeq() != 0 {
			t.Errorf("%s has seq %d", typ, ev.GetSeq())
		}
		want++
	}
	if st := r.ps.convs[g]; want != 14 || st.lastVersion != 13 || st.lastSeq != 3 {
		t.Errorf("%d versioned events, last version %d, last seq %d; want 13, 13 and 3: %v", want-1, st.lastVersion, st.lastSeq, summary(evs))
	}
	if got := owners(r.ps.convs[g]); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("owners %v", got)
	}
}

package gateway_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// withViewRows gives the gateway a migrated keyspace of views, without rows, and
// returns a session on it, for tests that write the rows a projector would.
func withViewRows(t *testing.T) (option, *gocql.Session) {
	c := testenv.MigratedCassandra(t)
	sess := c.Session()
	return func(s *setup) { s.cfg.CassandraHosts, s.cfg.Keyspace = c.Hosts, c.Keyspace }, sess
}

func withResumeGapWait(d time.Duration) option {
	return func(s *setup) { s.cfg.Fanout.ResumeGapWait = d }
}

// change is the event at version v of a synthetic log in which every change
// is a message (so its seq is v too).
func change(conv string, v int64, text string) *pb.Event {
	ev := messageSent(conv, v, "bob", "pc", text)
	ev.Version = v
	return ev
}

// viewConversation writes what the projector would for conv: alice and
// bob as members, the changes rows of versions (the others missing), and
// then, as the projector writes last_version after every other row, the
// conversation at version last.
func viewConversation(t *testing.T, s *gocql.Session, conv string, last int64, versions ...int64) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if err := s.Query(q, args...).Exec(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		exec("INSERT INTO members (conversation_id, user_id, removed) VALUES (?, ?, false)", conv, u)
		exec("INSERT INTO inbox (user_id, conversation_id, removed) VALUES (?, ?, false)", u, conv)
	}
	for _, v := range versions {
		b, _ := proto.Marshal(change(conv, v, "row"))
		exec("INSERT INTO changes (conversation_id, bucket, version, seq, type, event) VALUES (?, ?, ?, ?, 'MessageSent', ?)",
			conv, schemas.ChangesBucket(v), v, v, b)
	}
	exec("INSERT INTO conversations (conversation_id, kind, last_seq, last_version) VALUES (?, 'group', ?, ?)", conv, last, last)
}

// resumeFrom sends one Resume and returns its Resumed and the events of the
// catch-up, as "<last digit of the conversation id>:<version>". The reader
// queues events before the frames that follow them, so the catch-up is
// queued once Resumed is read.
func resumeFrom(t *testing.T, c *client, cursors ...*pb.ConversationCursor) (*pb.Resumed, []string) {
	t.Helper()
	c.send(&pb.ClientFrame{RequestId: "r", Body: &pb.ClientFrame_Resume{Resume: &pb.Resume{Cursors: cursors}}})
	f := c.next()
	if f.GetResumed() == nil {
		t.Fatalf("want Resumed, got %v", f)
	}
	var got []string
	for _, ev := range c.DrainEvents() {
		got = append(got, ev.GetConversationId()[33:]+":"+strconv.FormatInt(ev.GetVersion(), 10))
	}
	return f.GetResumed(), got
}

// TestResumeEdgesPerConversation: one Resume names a conversation with a
// hole in its changes, one whole, and one with a cursor beyond its last
// version. The whole one resumes; the other two are reported in Resumed.failed
// (UNAVAILABLE after the bounded wait, INVALID_CURSOR) and counted; and all
// three get their next live events — the session is deaf to none.
func TestResumeEdgesPerConversation(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views, withResumeGapWait(time.Second))
	holed, whole, beyond := "g:00000000000000000000000000000001", "g:00000000000000000000000000000002", "g:00000000000000000000000000000003"
	viewConversation(t, s, holed, 5, 1, 2, 4, 5) // version 3 is missing
	viewConversation(t, s, whole, 3, 1, 2, 3)
	viewConversation(t, s, beyond, 2, 1, 2)

	c := e.dial("alice", "phone")
	resumed, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: holed, Version: 0},
		&pb.ConversationCursor{ConversationId: whole, Version: 1}, &pb.ConversationCursor{ConversationId: beyond, Version: 3})
	if want := []string{"1:1", "1:2", "2:2", "2:3"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v (the holed conversation up to its hole, the whole one after its cursor)", got, want)
	}
	if resumed.GetRequestId() != "r" || len(resumed.GetCursors()) != 1 || resumed.GetCursors()[0].GetConversationId() != whole ||
		resumed.GetCursors()[0].GetVersion() != 3 || resumed.GetMore() {
		t.Fatalf("resumed %v", resumed)
	}
	failed := map[string]*pb.ResumeFailure{}
	for _, f := range resumed.GetFailed() {
		failed[f.GetConversationId()] = f
	}
	if f := failed[holed]; len(failed) != 2 || f.GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE || f.GetLastVersion() != 2 {
		t.Fatalf("failed %v: want %s UNAVAILABLE at 2", resumed.GetFailed(), holed)
	}
	if f := failed[beyond]; f.GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_CURSOR || f.GetLastVersion() != 2 {
		t.Fatalf("failed %v: want %s INVALID_CURSOR at 2", resumed.GetFailed(), beyond)
	}
	if v := e.metric("parley_gateway_resume_gaps_total"); v != 1 {
		t.Fatalf("resume_gaps_total %v", v)
	}
	if v := e.metric("parley_gateway_resume_invalid_cursors_total"); v != 1 {
		t.Fatalf("resume_invalid_cursors_total %v", v)
	}

	// Live: the next event of each conversation reaches the session.
	next := map[string]int64{holed: 6, whole: 4, beyond: 3}
	for conv, v := range next {
		e.produceEvent(change(conv, v, "live"))
	}
	for range next {
		ev := c.nextEvent()
		if want, ok := next[ev.GetConversationId()]; !ok || ev.GetVersion() != want {
			t.Fatalf("live event %v", ev)
		}
		delete(next, ev.GetConversationId())
	}
}

// TestResumeEdgesProjectorLag: a cursor beyond the view's last version,
// and a missing row, that the projector fills while the Resume waits are no
// failures: the Resume completes both.
func TestResumeEdgesProjectorLag(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views, withResumeGapWait(time.Minute))
	holed, ahead := "g:00000000000000000000000000000004", "g:00000000000000000000000000000005"
	unseen := "g:0000000000000000000000000000000a" // not in the views at all yet
	viewConversation(t, s, holed, 4, 1, 2, 4)      // version 3 not written yet
	viewConversation(t, s, ahead, 2, 1, 2)         // the device already has version 3, live

	c := e.dial("alice", "phone")
	c.send(&pb.ClientFrame{RequestId: "r", Body: &pb.ClientFrame_Resume{Resume: &pb.Resume{Cursors: []*pb.ConversationCursor{
		{ConversationId: holed, Version: 2}, {ConversationId: ahead, Version: 3}, {ConversationId: unseen, Version: 1}}}}})
	// The projector catches up (before or while the gateway reads); until
	// it writes unseen's members, alice is no member the views know of.
	viewConversation(t, s, holed, 4, 3)
	viewConversation(t, s, ahead, 3, 3)
	viewConversation(t, s, unseen, 2, 1, 2)
	// Events are queued apart from answers, and before the frames that
	// follow them: the catch-up is queued once Resumed is read.
	f := c.next()
	resumed := f.GetResumed()
	if resumed == nil {
		t.Fatalf("want Resumed, got %v", f)
	}
	var got []int64
	for _, ev := range c.DrainEvents() {
		if ev.GetConversationId() == holed {
			got = append(got, ev.GetVersion())
		}
	}
	if !slices.Equal(got, []int64{3, 4}) {
		t.Fatalf("events of the holed conversation %v, want [3 4]", got)
	}
	cursors := map[string]int64{}
	for _, cur := range resumed.GetCursors() {
		cursors[cur.GetConversationId()] = cur.GetVersion()
	}
	if len(resumed.GetFailed()) != 0 || len(cursors) != 3 || cursors[holed] != 4 || cursors[ahead] != 3 || cursors[unseen] != 2 {
		t.Fatalf("resumed %v, want %s at 4, %s at 3 and %s at 2", resumed, holed, ahead, unseen)
	}
}

// TestResumeEdgesMembership: a conversation the views list without the
// user, at or past the cursor, refuses the whole Resume (NOT_MEMBER); one the
// views have not reached the cursor of by the bound fails alone
// (UNAVAILABLE), since the projector may only lag, and the others resume.
func TestResumeEdgesMembership(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views, withResumeGapWait(300*time.Millisecond))
	whole, lagging := "g:00000000000000000000000000000008", "g:00000000000000000000000000000009"
	viewConversation(t, s, whole, 2, 1, 2)

	c := e.dial("alice", "phone")
	resumed, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: whole, Version: 1},
		&pb.ConversationCursor{ConversationId: lagging, Version: 4})
	if want := []string{"8:2"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if f := resumed.GetFailed(); len(f) != 1 || f[0].GetConversationId() != lagging ||
		f[0].GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE || f[0].GetLastVersion() != 4 {
		t.Fatalf("failed %v, want %s UNAVAILABLE at 4", f, lagging)
	}
	if cur := resumed.GetCursors(); len(cur) != 1 || cur[0].GetConversationId() != whole || cur[0].GetVersion() != 2 {
		t.Fatalf("cursors %v, want %s at 2", cur, whole)
	}

	carol := e.dial("carol", "phone")
	carol.send(&pb.ClientFrame{RequestId: "r", Body: &pb.ClientFrame_Resume{Resume: &pb.Resume{Cursors: []*pb.ConversationCursor{
		{ConversationId: whole, Version: 2}}}}})
	if f := carol.next(); f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Fatalf("carol resuming %s: want NOT_MEMBER, got %v", whole, f)
	}

	// carol is added at version 3, which this gateway delivers live while
	// the views still stand at 2. A device of hers resuming from 0 holds
	// no version yet, but the gateway has seen past the views: they cannot
	// say she is no member, so the conversation fails alone, to be resumed
	// again; once the views have the join, it resumes.
	join := &pb.Event{ConversationId: whole, Seq: 3, Version: 3, ActorUserId: "alice", ActorDeviceId: "phone",
		Body: &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: []string{"carol"}}}}
	e.produceEvent(join)
	if got := c.nextEvent(); got.GetConversationId() != whole || got.GetVersion() != 3 {
		t.Fatalf("alice live: got %v, want carol's join at 3", got)
	}
	if got := carol.nextEvent(); got.GetConversationId() != whole || got.GetVersion() != 3 {
		t.Fatalf("carol live: got %v, want her join at 3", got)
	}
	resumed, got = resumeFrom(t, carol, &pb.ConversationCursor{ConversationId: whole})
	if f := resumed.GetFailed(); len(got) != 0 || len(f) != 1 || f[0].GetConversationId() != whole ||
		f[0].GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE {
		t.Fatalf("carol resuming %s from 0 with the views behind: events %v, failed %v; want %s UNAVAILABLE", whole, got, f, whole)
	}
	b, _ := proto.Marshal(join)
	for _, q := range []struct {
		cql  string
		args []any
	}{
		{"INSERT INTO members (conversation_id, user_id, removed, joined_seq) VALUES (?, 'carol', false, 3)", []any{whole}},
		{"INSERT INTO changes (conversation_id, bucket, version, seq, type, event) VALUES (?, ?, 3, 3, 'MembersAdded', ?)", []any{whole, schemas.ChangesBucket(3), b}},
		{"UPDATE conversations SET last_seq = 3, last_version = 3 WHERE conversation_id = ?", []any{whole}},
	} {
		if err := s.Query(q.cql, q.args...).Exec(); err != nil {
			t.Fatalf("%s: %v", q.cql, err)
		}
	}
	resumed, got = resumeFrom(t, carol, &pb.ConversationCursor{ConversationId: whole})
	// Her join was sent live already: the catch-up is what came before.
	if cur := resumed.GetCursors(); len(resumed.GetFailed()) != 0 || !slices.Equal(got, []string{"8:1", "8:2"}) ||
		len(cur) != 1 || cur[0].GetVersion() != 3 {
		t.Fatalf("carol resuming %s once the views have her join: events %v, %v; want 8:1 8:2, at 3", whole, got, resumed)
	}
}

// TestResumeEdgesRefetch: a conversation further behind than
// Fanout.MaxResumeGap is not replayed but listed in Resumed.refetch with its
// last version, and is live from there; one within the limit is replayed.
func TestResumeEdgesRefetch(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views, func(s *setup) { s.cfg.Fanout.MaxResumeGap = 5 })
	far, near := "g:00000000000000000000000000000006", "g:00000000000000000000000000000007"
	all := make([]int64, 20)
	for i := range all {
		all[i] = int64(i + 1)
	}
	viewConversation(t, s, far, 20, all...)
	viewConversation(t, s, near, 20, all...)

	c := e.dial("alice", "phone")
	resumed, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: far, Version: 2},
		&pb.ConversationCursor{ConversationId: near, Version: 16})
	if want := []string{"7:17", "7:18", "7:19", "7:20"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v (only the near conversation replayed)", got, want)
	}
	if r := resumed.GetRefetch(); len(r) != 1 || r[0].GetConversationId() != far || r[0].GetVersion() != 20 {
		t.Fatalf("refetch %v, want %s at 20", r, far)
	}
	if cs := resumed.GetCursors(); len(cs) != 1 || cs[0].GetConversationId() != near || cs[0].GetVersion() != 20 {
		t.Fatalf("cursors %v, want %s at 20", cs, near)
	}
	if v := e.metric("parley_gateway_resume_refetches_total"); v != 1 {
		t.Fatalf("resume_refetches_total %v", v)
	}
	// The refetched conversation is live from its last version.
	e.produceEvent(change(far, 21, "live"))
	if ev := c.nextEvent(); ev.GetConversationId() != far || ev.GetVersion() != 21 {
		t.Fatalf("live event %v, want %s version 21", ev, far)
	}
}

// TestResumeEdgesHistoryVisibility: in a group whose history visibility
// is since_join, erin and frank (added at version 4, frank removed at 6)
// are sent nothing from before their join, whatever cursor they name;
// alice, there from the creation, everything. Switched to all, erin gets
// everything too. A joined seq whose messages row the views lack yet
// leaves the floor unknown: that conversation fails alone.
func TestResumeEdgesHistoryVisibility(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views)
	exec := func(q string, args ...any) {
		t.Helper()
		if err := s.Query(q, args...).Exec(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conv, unknown := "g:0000000000000000000000000000000b", "g:0000000000000000000000000000000c"
	// Versions 1..7, seq = version: messages, but 4 adds erin and frank and
	// 6 removes frank.
	viewConversation(t, s, conv, 7)
	exec("UPDATE conversations SET history_visibility = 'since_join' WHERE conversation_id = ?", conv)
	for v := int64(1); v <= 7; v++ {
		ev := change(conv, v, "row")
		switch v {
		case 4:
			ev.Body = &pb.Event_MembersAdded{MembersAdded: &pb.MembersAdded{UserIds: []string{"erin", "frank"}}}
		case 6:
			ev.Body = &pb.Event_MemberRemoved{MemberRemoved: &pb.MemberRemoved{UserId: "frank", Reason: pb.MemberRemovedReason_MEMBER_REMOVED_REASON_REMOVED}}
		}
		b, _ := proto.Marshal(ev)
		exec("INSERT INTO changes (conversation_id, bucket, version, seq, type, event) VALUES (?, ?, ?, ?, ?, ?)",
			conv, schemas.ChangesBucket(v), v, v, schemas.EventType(ev), b)
		exec("INSERT INTO messages (conversation_id, bucket, seq, type, event) VALUES (?, ?, ?, ?, ?)",
			conv, schemas.Bucket(v), v, schemas.EventType(ev), b)
	}
	exec("INSERT INTO members (conversation_id, user_id, joined_seq, removed) VALUES (?, 'erin', 4, false)", conv)
	exec("INSERT INTO members (conversation_id, user_id, joined_seq, removed, removed_seq, removed_version) VALUES (?, 'frank', 4, true, 6, 6)", conv)
	exec("INSERT INTO inbox (user_id, conversation_id, removed) VALUES ('erin', ?, false)", conv)
	// erin joined unknown at seq 2, which the views have no row of.
	viewConversation(t, s, unknown, 2, 1, 2)
	exec("UPDATE conversations SET history_visibility = 'since_join' WHERE conversation_id = ?", unknown)
	exec("INSERT INTO members (conversation_id, user_id, joined_seq, removed) VALUES (?, 'erin', 2, false)", unknown)

	for _, tc := range []struct {
		user    string
		cursor  int64
		want    []string
		removed bool // reached in Resumed.removed, else cursors
		end     int64
	}{
		{"erin", 0, []string{"b:4", "b:5", "b:6", "b:7"}, false, 7},
		{"erin", 2, []string{"b:4", "b:5", "b:6", "b:7"}, false, 7},
		{"erin", 5, []string{"b:6", "b:7"}, false, 7},
		{"frank", 0, []string{"b:4", "b:5", "b:6"}, true, 6}, // to its removal
		{"alice", 0, []string{"b:1", "b:2", "b:3", "b:4", "b:5", "b:6", "b:7"}, false, 7},
	} {
		c := e.dial(tc.user, "phone"+strconv.FormatInt(tc.cursor, 10))
		resumed, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: conv, Version: tc.cursor})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s from %d: events %v, want %v", tc.user, tc.cursor, got, tc.want)
		}
		end := resumed.GetCursors()
		if tc.removed {
			end = resumed.GetRemoved()
		}
		if len(end) != 1 || end[0].GetConversationId() != conv || end[0].GetVersion() != tc.end || len(resumed.GetFailed()) != 0 {
			t.Errorf("%s from %d: resumed %v, want %s at %d", tc.user, tc.cursor, resumed, conv, tc.end)
		}
	}

	c := e.dial("erin", "tablet")
	resumed, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: unknown, Version: 0})
	if f := resumed.GetFailed(); len(got) != 0 || len(f) != 1 || f[0].GetConversationId() != unknown ||
		f[0].GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE || f[0].GetLastVersion() != 0 {
		t.Errorf("erin resuming a conversation whose join row is missing: events %v, resumed %v", got, resumed)
	}

	// The setting as the Resume reads it applies: with all, erin's cursor
	// 0 gets everything.
	exec("UPDATE conversations SET history_visibility = 'all' WHERE conversation_id = ?", conv)
	c = e.dial("erin", "laptop")
	if _, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: conv, Version: 0}); len(got) != 7 {
		t.Errorf("erin from 0 with all: events %v, want all 7", got)
	}
}

package gateway_test

import (
	"context"
	"slices"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// prefsChanged is version v of user's stream: a ConversationPrefsChanged
// of conv.
func prefsChanged(user string, v int64, conv string) *pb.Event {
	pinned := true
	return &pb.Event{ConversationId: schemas.UserStreamID(user), CommandId: "p" + string(rune('0'+v)), ActorUserId: user, ActorDeviceId: "phone",
		Version: v, Body: &pb.Event_ConversationPrefsChanged{ConversationPrefsChanged: &pb.ConversationPrefsChanged{ConversationId: conv, Pinned: &pinned}}}
}

// TestUserStreamLiveDelivery: the events of a user stream reach every
// session of its owner and nobody else; one whose actor is not the
// stream's owner is dropped and counted; the decision records of
// two-stream decisions (DirectBlockChanged, MessageForwarded) reach no one.
func TestUserStreamLiveDelivery(t *testing.T) {
	t.Parallel()
	e := start(t)
	phone, laptop, bob := e.dial("alice", "phone"), e.dial("alice", "laptop"), e.dial("bob", "phone")
	if got, want := phone.welcome.GetUserStreamId(), schemas.UserStreamID("alice"); got != want {
		t.Fatalf("Welcome.userStreamId %q, want %q", got, want)
	}
	own := schemas.UserStreamID("alice")
	const conv = "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f"
	e.produceEvent(prefsChanged("alice", 1, conv))
	forged := prefsChanged("bob", 2, conv)
	forged.ConversationId = own // bob's event on alice's stream
	e.produceEvent(forged)
	e.produceEvent(prefsChanged("alice", 2, conv))
	for _, c := range []*client{phone, laptop} {
		for _, v := range []int64{1, 2} {
			if ev := c.nextEvent(); ev.GetConversationId() != own || ev.GetVersion() != v || ev.GetActorUserId() != "alice" {
				t.Fatalf("%s got %v, want version %d of alice's stream", c.Name(), ev, v)
			}
		}
	}
	checkFor(t, 10*time.Second, func() error {
		if v := e.metric("parley_gateway_events_misrouted_total"); v != 1 {
			return errorf("events_misrouted_total %v, want 1", v)
		}
		return nil
	})

	// Decision records: delivered to no one. The direct conversation's
	// next event (same key, same partition, later) is the first alice and
	// bob get of it.
	direct := schemas.DirectConversationID("alice", "bob")
	e.produceEvent(&pb.Event{ConversationId: direct, CommandId: "b1", ActorUserId: "alice", ActorDeviceId: "phone",
		Body: &pb.Event_DirectBlockChanged{DirectBlockChanged: &pb.DirectBlockChanged{BlockerUserId: "alice", BlockedUserId: "bob", Blocked: true}}})
	e.produceEvent(&pb.Event{ConversationId: direct, CommandId: "f1", ActorUserId: "alice", ActorDeviceId: "phone",
		Body: &pb.Event_MessageForwarded{MessageForwarded: &pb.MessageForwarded{Seq: 1, TargetConversationId: conv, ClientMsgId: "fw"}}})
	e.produceEvent(&pb.Event{ConversationId: direct, CommandId: "c1", ActorUserId: "alice", ActorDeviceId: "phone",
		Body: &pb.Event_ConversationCreated{ConversationCreated: &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_DIRECT,
			MemberUserIds: []string{"alice", "bob"}}}})
	for _, c := range []*client{phone, bob} {
		if ev := c.nextEvent(); ev.GetConversationCreated() == nil {
			t.Fatalf("%s got %v first; decision records go to no one", c.Name(), ev)
		}
	}
	if evs := bob.DrainEvents(); len(evs) != 0 {
		t.Fatalf("bob got %v", evs)
	}
}

// viewUserStream writes what the projector would for user's stream: the
// changes rows of versions, then the conversations row at last (no
// members, inbox or messages rows).
func viewUserStream(t *testing.T, s *gocql.Session, user string, last int64, versions ...int64) {
	t.Helper()
	own := schemas.UserStreamID(user)
	for _, v := range versions {
		b, _ := proto.Marshal(prefsChanged(user, v, "g:00000000000000000000000000000001"))
		if err := s.Query("INSERT INTO changes (conversation_id, bucket, version, seq, type, event) VALUES (?, ?, ?, 0, 'ConversationPrefsChanged', ?)",
			own, schemas.ChangesBucket(v), v, b).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Query("INSERT INTO conversations (conversation_id, last_seq, last_version) VALUES (?, 0, ?)", own, last).Exec(); err != nil {
		t.Fatal(err)
	}
}

// TestResumeUserStream: a device resumes its user stream like a
// conversation (the changes after its cursor, then live, never twice); a
// Resume that does not name it lists it in added, an empty one in cursors;
// another user's stream is refused NOT_MEMBER.
func TestResumeUserStream(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views)
	own := schemas.UserStreamID("alice")
	const group = "g:00000000000000000000000000000001"
	viewConversation(t, s, group, 2, 1, 2)
	viewUserStream(t, s, "alice", 3, 1, 2, 3)
	last := own[len(own)-1:]

	c := e.dial("alice", "phone")
	resumed, got := resumeFrom(t, c, &pb.ConversationCursor{ConversationId: own, Version: 1})
	if want := []string{last + ":2", last + ":3"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if cs := resumed.GetCursors(); len(cs) != 1 || cs[0].GetConversationId() != own || cs[0].GetVersion() != 3 || len(resumed.GetFailed()) != 0 {
		t.Fatalf("resumed %v", resumed)
	}
	// Live from here, and a version the catch-up sent is never sent again.
	e.produceEvent(prefsChanged("alice", 3, group))
	e.produceEvent(prefsChanged("alice", 4, group))
	if ev := c.nextEvent(); ev.GetConversationId() != own || ev.GetVersion() != 4 {
		t.Fatalf("live %v, want version 4 only", ev)
	}

	// Named conversations without the stream: it is listed in added.
	resumed, _ = resumeFrom(t, c, &pb.ConversationCursor{ConversationId: group, Version: 2})
	if a := resumed.GetAdded(); len(a) != 1 || a[0].GetConversationId() != own || a[0].GetVersion() != 3 || a[0].GetLastSeq() != 0 {
		t.Fatalf("added %v, want alice's stream at version 3", a)
	}
	// An empty Resume lists it with the conversations.
	resumed, _ = resumeFrom(t, c)
	var listed []string
	for _, cur := range resumed.GetCursors() {
		listed = append(listed, cur.GetConversationId())
		if cur.GetConversationId() == own && (cur.GetVersion() != 3 || cur.GetLastSeq() != 0) {
			t.Fatalf("empty resume lists the stream as %v", cur)
		}
	}
	if slices.Sort(listed); !slices.Equal(listed, []string{group, own}) {
		t.Fatalf("empty resume lists %v", listed)
	}
	// Bob's stream is not alice's to resume.
	c.send(&pb.ClientFrame{RequestId: "rb", Body: &pb.ClientFrame_Resume{Resume: &pb.Resume{Cursors: []*pb.ConversationCursor{
		{ConversationId: schemas.UserStreamID("bob"), Version: 0}}}}})
	if f := c.refused(pb.ErrorCode_ERROR_CODE_NOT_MEMBER); f.GetRequestId() != "rb" {
		t.Fatalf("refusal %v", f)
	}
}

// TestForwardFromViews: a forward is appended keyed by its source with the
// message's latest text, content type and origin from the messages view;
// a message the views do not have is NOT_FOUND, a notice NOT_FOUND, a
// recalled one MESSAGE_RECALLED, and a user the views do not list as a
// member is refused NOT_MEMBER. Nothing refused is appended.
func TestForwardFromViews(t *testing.T) {
	t.Parallel()
	views, s := withViewRows(t)
	e := start(t, views)
	const src, target = "g:00000000000000000000000000000001", "g:00000000000000000000000000000002"
	viewConversation(t, s, src, 3) // alice and bob are members
	sent := time.Date(2026, 11, 22, 6, 40, 2, 0, time.UTC)
	exec := func(q string, args ...any) {
		t.Helper()
		if err := s.Query(q, args...).Exec(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO messages (conversation_id, bucket, seq, type, actor_user_id, text, content_type, occurred_at, edit_count)
		VALUES (?, ?, 1, 'MessageSent', 'bob', 'edited text', 'text/markdown', ?, 1)`, src, schemas.Bucket(1), sent)
	exec(`INSERT INTO messages (conversation_id, bucket, seq, type, actor_user_id, occurred_at, recalled_by)
		VALUES (?, ?, 2, 'MessageSent', 'bob', ?, 'bob')`, src, schemas.Bucket(2), sent)
	exec(`INSERT INTO messages (conversation_id, bucket, seq, type, actor_user_id, occurred_at)
		VALUES (?, ?, 3, 'MembersAdded', 'bob', ?)`, src, schemas.Bucket(3), sent)

	fwd := func(id string, seq int64) *pb.ClientFrame {
		return &pb.ClientFrame{RequestId: id, ConversationId: src, Body: &pb.ClientFrame_ForwardMessage{ForwardMessage: &pb.ForwardMessage{
			Seq: seq, TargetConversationId: target, ClientMsgId: "fw-" + id}}}
	}
	c := e.dial("alice", "phone")
	for _, r := range []struct {
		id   string
		seq  int64
		code pb.ErrorCode
	}{{"missing", 9, pb.ErrorCode_ERROR_CODE_NOT_FOUND}, {"recalled", 2, pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED},
		{"notice", 3, pb.ErrorCode_ERROR_CODE_NOT_FOUND}} {
		c.send(fwd(r.id, r.seq))
		if f := c.refused(r.code); f.GetRequestId() != r.id {
			t.Fatalf("%s: %v", r.id, f)
		}
	}
	carol := e.dial("carol", "phone")
	carol.send(fwd("outsider", 1))
	carol.refused(pb.ErrorCode_ERROR_CODE_NOT_MEMBER)

	if a := c.MustForward(src, 1, target, "fw-ok"); a.GetConversationId() != src {
		t.Fatalf("accepted for %s, want the source", a.GetConversationId())
	}
	recs := e.commandRecords(1)
	if len(recs) != 1 || string(recs[0].Key) != src {
		t.Fatalf("%d records, key %q", len(recs), recs[0].Key)
	}
	cmd := &pb.Command{}
	if err := proto.Unmarshal(recs[0].Value, cmd); err != nil {
		t.Fatal(err)
	}
	fm := cmd.GetForwardMessage()
	o := fm.GetOrigin()
	if fm.GetText() != "edited text" || fm.GetContentType() != "text/markdown" || fm.GetTargetConversationId() != target ||
		o.GetConversationId() != src || o.GetSeq() != 1 || o.GetSenderUserId() != "bob" || !o.GetSentAt().AsTime().Equal(sent) {
		t.Fatalf("forward command %v", cmd)
	}
}

// TestPerUserFramesAppended: the per-user frames, sent with testenv's
// helpers, are appended keyed by the sender's user stream, with the
// conversation they name in the body and the envelope from the token.
func TestPerUserFramesAppended(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.dial("alice", "phone")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	own, err := c.UserStream(ctx)
	if err != nil || own != schemas.UserStreamID("alice") {
		t.Fatalf("user stream %q, %v", own, err)
	}
	const conv = "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f"
	pinned := true
	var accepted []*pb.Accepted
	for _, send := range []func() (*pb.Accepted, error){
		func() (*pb.Accepted, error) {
			return c.SetPrefs(ctx, conv, &pb.UpdateConversationPrefs{Pinned: &pinned})
		},
		func() (*pb.Accepted, error) { return c.Hide(ctx, conv, []int64{1, 2}, 0) },
		func() (*pb.Accepted, error) { return c.Block(ctx, "mallory") },
		func() (*pb.Accepted, error) { return c.Unblock(ctx, "mallory") },
	} {
		a, err := send()
		if err != nil {
			t.Fatal(err)
		}
		if a.GetConversationId() != own {
			t.Fatalf("accepted for %s, want %s", a.GetConversationId(), own)
		}
		accepted = append(accepted, a)
	}
	recs := e.commandRecords(len(accepted))
	types := map[string]bool{}
	for _, r := range recs {
		cmd := &pb.Command{}
		if err := proto.Unmarshal(r.Value, cmd); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != own || cmd.GetConversationId() != own || cmd.GetUserId() != "alice" || cmd.GetDeviceId() != "phone" {
			t.Fatalf("record key %q: %v", r.Key, cmd)
		}
		if p := cmd.GetUpdateConversationPrefs(); p != nil && p.GetConversationId() != conv {
			t.Fatalf("prefs for %q", p.GetConversationId())
		}
		if h := cmd.GetHideMessages(); h != nil && (h.GetConversationId() != conv || !slices.Equal(h.GetSeqs(), []int64{1, 2})) {
			t.Fatalf("hide %v", h)
		}
		types[schemas.CommandType(cmd)] = true
	}
	for _, typ := range []string{schemas.TypeUpdateConversationPrefs, schemas.TypeHideMessages, schemas.TypeBlockUser, schemas.TypeUnblockUser} {
		if !types[typ] {
			t.Errorf("no %s appended (got %v)", typ, types)
		}
	}
}

package ingest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const rejAttachment = "Rejected:ERROR_CODE_ATTACHMENT_NOT_FOUND"

// attachment is a well-formed image attachment of owner with id n (a hex
// digit repeated).
func attachment(owner string, n byte) *pb.Attachment {
	id := strings.Repeat(string(n), schemas.AttachmentIDHexDigits)
	return &pb.Attachment{AttachmentId: id, OwnerUserId: owner, Kind: pb.AttachmentKind_ATTACHMENT_KIND_IMAGE,
		ContentType: "image/png", Name: "shot.png", Size: 1234, Sha256: strings.Repeat(string(n), 64),
		Image: &pb.ImageInfo{Width: 640, Height: 480}, UploadedAt: timestamppb.New(time.Unix(1_700_000_000, 0)),
		Thumbnail: &pb.Thumbnail{Sha256: strings.Repeat("f", 64), ContentType: "image/jpeg", Width: 320, Height: 240, Size: 99}}
}

func uploadCmd(user, conv string, a *pb.Attachment) *pb.Command {
	return cmd(user, conv, &pb.UploadAttachment{Attachment: a})
}

func sendWith(user, conv, id, text string, atts ...byte) *pb.Command {
	m := &pb.SendMessage{ClientMsgId: id, Text: text}
	for _, n := range atts {
		m.AttachmentIds = append(m.AttachmentIds, strings.Repeat(string(n), schemas.AttachmentIDHexDigits))
	}
	return cmd(user, conv, m)
}

func expireCmd(conv string, n byte) *pb.Command {
	return cmd("janitor", conv, &pb.ExpireAttachment{AttachmentId: strings.Repeat(string(n), schemas.AttachmentIDHexDigits)})
}

// attachSummary extends summary with the attachment events.
func attachSummary(evs []*pb.Event) []string {
	out := summary(evs)
	for i, e := range evs {
		switch b := e.GetBody().(type) {
		case *pb.Event_AttachmentUploaded:
			out[i] = fmt.Sprintf("Uploaded:%s:%s", b.AttachmentUploaded.GetAttachment().GetAttachmentId()[:1], e.GetActorUserId())
		case *pb.Event_AttachmentDeleted:
			a := b.AttachmentDeleted
			out[i] = fmt.Sprintf("Deleted:%s:%s:%s", a.GetAttachmentId()[:1], strings.TrimPrefix(a.GetReason().String(), "ATTACHMENT_DELETED_REASON_"), a.GetOwnerUserId())
		case *pb.Event_MessageSent:
			var ids []string
			for _, a := range b.MessageSent.GetAttachments() {
				ids = append(ids, a.GetAttachmentId()[:1])
			}
			if len(ids) > 0 {
				out[i] = fmt.Sprintf("MessageSent@%d%v", e.GetSeq(), ids)
			}
		}
	}
	return out
}

// TestDecideAttachments: uploads are recorded from the decider's state,
// sent once by their owner only, deleted by their message's recall, and
// expire only when unsent and past the TTL.
func TestDecideAttachments(t *testing.T) {
	g := "g:1"
	origin := "g:" + strings.Repeat("2", schemas.ConversationIDHexDigits)
	other := attachment("bob", '2')
	other.Size = 1
	for _, tc := range []struct {
		name string
		l    Limits
		cmds []*pb.Command
		want []string
	}{
		{"an upload is sent once, by its owner, with or without a caption", Limits{},
			[]*pb.Command{createGroup("bob"), uploadCmd("alice", g, attachment("alice", '1')), uploadCmd("alice", g, attachment("alice", '1')),
				uploadCmd("alice", g, attachment("alice", '3')),
				sendWith("bob", g, "b1", "", '1'), sendWith("alice", g, "a1", "", '1'), sendWith("alice", g, "a1", "", '1'),
				sendWith("alice", g, "a2", "again", '1'), sendWith("alice", g, "a3", "caption", '3')},
			[]string{created, "Uploaded:1:alice", "Uploaded:3:alice", rejAttachment, "MessageSent@1[1]", "Dedup->1", rejAttachment, "MessageSent@2[3]"}},
		{"uploads are checked: a member, its owner, a well-formed attachment, an id not in use", Limits{},
			[]*pb.Command{createGroup("bob"), uploadCmd("carol", g, attachment("carol", '1')), uploadCmd("alice", g, attachment("bob", '1')),
				uploadCmd("alice", g, &pb.Attachment{AttachmentId: "xyz"}), uploadCmd("bob", g, attachment("bob", '2')),
				uploadCmd("bob", g, other)},
			[]string{created, rejNotMember, rejInvalid, rejInvalid, "Uploaded:2:bob", rejInvalid}},
		{"a send names each attachment once, at most the limit", Limits{},
			[]*pb.Command{createGroup("bob"), uploadCmd("alice", g, attachment("alice", '1')),
				sendWith("alice", g, "a1", "x", '1', '1'),
				sendWith("alice", g, "a2", "x", '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1'),
				cmd("alice", g, &pb.SendMessage{ClientMsgId: "a3", ContentType: "application/json", AttachmentIds: []string{strings.Repeat("1", 32)}}),
				sendWith("alice", g, "a4", "", '1')},
			[]string{created, "Uploaded:1:alice", rejInvalid, rejInvalid, rejInvalid, "MessageSent@1[1]"}},
		{"unsent uploads are capped per conversation", Limits{MaxPendingAttachments: 1},
			[]*pb.Command{createGroup("bob"), uploadCmd("alice", g, attachment("alice", '1')), uploadCmd("bob", g, attachment("bob", '2')),
				sendWith("alice", g, "a1", "", '1'), uploadCmd("bob", g, attachment("bob", '2'))},
			[]string{created, "Uploaded:1:alice", rejLimit, "MessageSent@1[1]", "Uploaded:2:bob"}},
		{"a recall deletes its message's attachments; an owner's recall too", Limits{},
			[]*pb.Command{createGroup("bob"), uploadCmd("bob", g, attachment("bob", '1')), uploadCmd("bob", g, attachment("bob", '2')),
				sendWith("bob", g, "b1", "two", '1', '2'), cmd("alice", g, &pb.RecallMessage{Seq: 1}), cmd("alice", g, &pb.RecallMessage{Seq: 1}),
				sendWith("bob", g, "b2", "", '1')},
			[]string{created, "Uploaded:1:bob", "Uploaded:2:bob", "MessageSent@1[1 2]", "Recalled:1", "Deleted:1:RECALLED:bob",
				"Deleted:2:RECALLED:bob", rejAttachment}},
		{"a forward records its copies before its send; a resend acts once; a recall deletes the copies", Limits{},
			[]*pb.Command{createGroup("bob"),
				cmd("alice", g, &pb.ForwardedMessage{ClientMsgId: "f1", Origin: &pb.ForwardOrigin{ConversationId: origin, Seq: 4},
					Attachments: []*pb.Attachment{attachment("alice", '5'), attachment("alice", '6')}}),
				cmd("alice", g, &pb.ForwardedMessage{ClientMsgId: "f1", Origin: &pb.ForwardOrigin{ConversationId: origin, Seq: 4},
					Attachments: []*pb.Attachment{attachment("alice", '7')}}),
				cmd("alice", g, &pb.RecallMessage{Seq: 1})},
			[]string{created, "Uploaded:5:alice", "Uploaded:6:alice", "MessageSent@1[5 6]", "Dedup->1", "Recalled:1",
				"Deleted:5:RECALLED:alice", "Deleted:6:RECALLED:alice"}},
		{"a forward's copies are the forwarder's, whole, under ids not in use", Limits{},
			[]*pb.Command{createGroup("bob"), uploadCmd("alice", g, attachment("alice", '1')),
				cmd("alice", g, &pb.ForwardedMessage{ClientMsgId: "f1", Origin: &pb.ForwardOrigin{ConversationId: origin, Seq: 4},
					Attachments: []*pb.Attachment{attachment("bob", '5')}}),
				cmd("alice", g, &pb.ForwardedMessage{ClientMsgId: "f2", Origin: &pb.ForwardOrigin{ConversationId: origin, Seq: 4},
					Attachments: []*pb.Attachment{attachment("alice", '1')}}),
				cmd("alice", g, &pb.ForwardedMessage{ClientMsgId: "f3", Origin: &pb.ForwardOrigin{ConversationId: origin, Seq: 4},
					Attachments: []*pb.Attachment{attachment("alice", '5'), attachment("alice", '5')}}),
				cmd("alice", g, &pb.ForwardedMessage{ClientMsgId: "f4", Origin: &pb.ForwardOrigin{ConversationId: origin, Seq: 4},
					Attachments: []*pb.Attachment{{AttachmentId: "x"}}})},
			[]string{created, "Uploaded:1:alice", rejInvalid, rejInvalid, rejInvalid, rejInvalid}},
		{"an edit keeps the attachments for the recall", Limits{},
			[]*pb.Command{createGroup("bob"), uploadCmd("alice", g, attachment("alice", '1')), sendWith("alice", g, "a1", "cap", '1'),
				editCmd("alice", g, 1, "e1", "caption"), cmd("alice", g, &pb.RecallMessage{Seq: 1})},
			[]string{created, "Uploaded:1:alice", "MessageSent@1[1]", "Edited:1#1", "Recalled:1", "Deleted:1:RECALLED:alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := run(t, tc.l, tc.cmds...)
			if got := attachSummary(evs); !slices.Equal(got, tc.want) {
				t.Fatalf("events\n got %v\nwant %v", got, tc.want)
			}
			for _, e := range evs {
				if (e.GetAttachmentUploaded() != nil || e.GetAttachmentDeleted() != nil) && (e.GetVersion() != 0 || e.GetSeq() != 0) {
					t.Fatalf("%s at version %d, seq %d: attachment events take neither", schemas.EventType(e), e.GetVersion(), e.GetSeq())
				}
			}
			// The uploads and the sends' attachments survive a restore.
			r := newPartRun(t, tc.l)
			at := time.Unix(1_700_000_000, 0)
			for _, c := range tc.cmds {
				r.do(c, at)
			}
			live, restored := uploadsOf(r.ps.convs[g]), uploadsOf(r.restore(at).convs[g])
			if live != restored {
				t.Fatalf("restored\n%s\nlive\n%s", restored, live)
			}
		})
	}
}

// TestDecideAttachmentExpiry: an unsent upload expires only once the TTL
// has passed since it was received, its owner gone or not; a sent one
// never does; a second ask yields nothing.
func TestDecideAttachmentExpiry(t *testing.T) {
	g := "g:1"
	ttl := time.Hour
	_, evs := runAt(t, Limits{AttachmentTTL: ttl},
		timed{0, createGroup("bob")},
		timed{0, uploadCmd("bob", g, attachment("bob", '1'))},
		timed{0, uploadCmd("alice", g, attachment("alice", '2'))},
		timed{0, sendWith("alice", g, "a1", "", '2')},
		timed{ttl - time.Millisecond, expireCmd(g, '1')},
		timed{ttl, leaveCmd("bob", g)},
		timed{ttl, expireCmd(g, '1')},
		timed{ttl, expireCmd(g, '1')},
		timed{ttl, expireCmd(g, '2')},
		timed{ttl, expireCmd(g, '9')},
		timed{ttl, cmd("janitor", g, &pb.ExpireAttachment{AttachmentId: "nope"})},
	)
	want := []string{created, "Uploaded:1:bob", "Uploaded:2:alice", "MessageSent@1[2]", "MemberRemoved@2", "Deleted:1:EXPIRED:bob", rejInvalid}
	if got := attachSummary(evs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// uploadsOf renders a conversation's unsent uploads and the attachments of
// its remembered sends.
func uploadsOf(st *convState) string {
	if st == nil {
		return "none"
	}
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(st.uploads)) {
		u := st.uploads[id]
		fmt.Fprintf(&b, "upload %s at %d %v\n", id, u.at, proto.Equal(u.att, attachment(u.att.GetOwnerUserId(), id[0])))
	}
	for _, user := range slices.Sorted(maps.Keys(st.dedup)) {
		for _, id := range slices.Sorted(maps.Keys(st.dedup[user].ids)) {
			fmt.Fprintf(&b, "sent %s/%s %+v\n", user, id, st.dedup[user].ids[id].extra().atts)
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(st.sent)) {
		fmt.Fprintf(&b, "sent at %d by %s %+v\n", seq, st.sent[seq].sender, st.sent[seq].atts)
	}
	return b.String()
}

// checkDeleted fails unless every AttachmentDeleted of evs names the
// digests of attachment(owner, n) for its id.
func checkDeleted(t *testing.T, evs []*pb.Event) {
	t.Helper()
	for _, e := range evs {
		if a := e.GetAttachmentDeleted(); a != nil {
			want := attachment(a.GetOwnerUserId(), a.GetAttachmentId()[0])
			if a.GetSha256() != want.GetSha256() || a.GetThumbnailSha256() != want.GetThumbnail().GetSha256() {
				t.Fatalf("deleted %s with digests %s, %s; want %s, %s", a.GetAttachmentId(), a.GetSha256(), a.GetThumbnailSha256(),
					want.GetSha256(), want.GetThumbnail().GetSha256())
			}
		}
	}
}

// TestRecallAfterEviction: a message's attachments are deleted by its
// owner's recall also once its send is no longer remembered — evicted by
// its sender's newer sends (DedupPerSender) or swept after DedupWindow —
// live and after a restore, exactly once.
func TestRecallAfterEviction(t *testing.T) {
	g := "g:1"
	window := 7 * 24 * time.Hour
	for _, ev := range []struct {
		name  string
		steps []timed // after bob's send of seq 1 (at 0)
	}{
		{"by the sender's newer sends", []timed{{time.Second, send("bob", g, "b2")}, {2 * time.Second, send("bob", g, "b3")}}},
		{"by the time sweep", []timed{{window + time.Second, send("carol", g, "c1")}}},
	} {
		for _, restore := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, restored %v", ev.name, restore), func(t *testing.T) {
				r := newPartRun(t, Limits{DedupPerSender: 2, DedupWindow: window})
				t0 := time.Unix(1_700_000_000, 0)
				for _, c := range []*pb.Command{createGroup("bob", "carol"), uploadCmd("bob", g, attachment("bob", '1')),
					uploadCmd("bob", g, attachment("bob", '2')), sendWith("bob", g, "b1", "two", '1', '2')} {
					r.do(c, t0)
				}
				at := t0
				for _, s := range ev.steps {
					at = t0.Add(s.after)
					r.do(s.c, at)
				}
				if _, _, known := r.ps.convs[g].sender(1); known {
					t.Fatal("seq 1 still remembered: nothing evicted")
				}
				if m := r.ps.convs[g].sent[1]; m.sender != "bob" || len(m.atts) != 2 {
					t.Fatalf("state\n%s\nwant seq 1's two attachments kept", uploadsOf(r.ps.convs[g]))
				}
				if restore {
					live := uploadsOf(r.ps.convs[g])
					r.ps = r.restore(at)
					if got := uploadsOf(r.ps.convs[g]); got != live {
						t.Fatalf("restored\n%s\nlive\n%s", got, live)
					}
				}
				var evs []*pb.Event
				for _, c := range []*pb.Command{recallCmd("bob", g, 1), recallCmd("carol", g, 1), recallCmd("alice", g, 1), recallCmd("alice", g, 1)} {
					evs = append(evs, r.do(c, at)...)
				}
				want := []string{rejWindow, rejWindow, "Recalled:1", "Deleted:1:RECALLED:bob", "Deleted:2:RECALLED:bob"}
				if got := attachSummary(evs); !slices.Equal(got, want) {
					t.Fatalf("events\n got %v\nwant %v", got, want)
				}
				checkDeleted(t, evs)
				if n := len(r.ps.convs[g].sent); n != 0 {
					t.Fatalf("%d messages' attachments still kept after the recall", n)
				}
				r.ps = r.restore(at)
				if got := uploadsOf(r.ps.convs[g]); strings.Contains(got, "sent at") {
					t.Fatalf("restored after the recall\n%s", got)
				}
				if got := attachSummary(r.do(recallCmd("alice", g, 1), at)); len(got) != 0 {
					t.Fatalf("a recall after the restore: %v", got)
				}
			})
		}
	}
}

// TestRecallRemembered: a recall of a message whose send is remembered
// drops its attachments from the send's entry and its record, so no later
// eviction keeps them.
func TestRecallRemembered(t *testing.T) {
	g := "g:1"
	r := newPartRun(t, Limits{DedupPerSender: 1})
	at := time.Unix(1_700_000_000, 0)
	for _, c := range []*pb.Command{createGroup("bob"), uploadCmd("bob", g, attachment("bob", '1')), sendWith("bob", g, "b1", "x", '1')} {
		r.do(c, at)
	}
	if got := attachSummary(r.do(recallCmd("bob", g, 1), at)); !slices.Equal(got, []string{"Recalled:1", "Deleted:1:RECALLED:bob"}) {
		t.Fatalf("recall: %v", got)
	}
	r.do(send("bob", g, "b2"), at)
	if got, want := uploadsOf(r.ps.convs[g]), "sent bob/b2 []\n"; got != want {
		t.Fatalf("state after the eviction\n%s\nwant\n%s", got, want)
	}
	if got, want := uploadsOf(r.restore(at).convs[g]), "sent bob/b2 []\n"; got != want {
		t.Fatalf("restored\n%s\nwant\n%s", got, want)
	}
}

// TestSentAttachmentText: a sent attachment's id and digests, kept as
// bytes, print back as they were given, with or without a thumbnail; a
// record whose id or digest is not lowercase hex does not restore.
func TestSentAttachmentText(t *testing.T) {
	id, sum, thumb := strings.Repeat("0a", 16), strings.Repeat("9f", 32), strings.Repeat("e1", 32)
	for _, th := range []string{thumb, ""} {
		a, err := newSentAttachment(id, sum, th)
		if err != nil {
			t.Fatal(err)
		}
		if gi, gs, gt := a.text(); gi != id || gs != sum || gt != th {
			t.Fatalf("text %s %s %q, want %s %s %q", gi, gs, gt, id, sum, th)
		}
	}
	for _, bad := range [][3]string{{strings.ToUpper(id), sum, ""}, {id, sum[1:], ""}, {id, sum, "f"}} {
		if _, err := newSentAttachment(bad[0], bad[1], bad[2]); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
	rec := fmt.Sprintf(`{"u":"bob","a":[{"i":"%s","s":"%s"}]}`, strings.ToUpper(id), sum)
	if err := newStateBuilder().apply([]byte(seqChangelogKey(prefixSent, "g:1", 1)), []byte(rec)); err == nil {
		t.Fatal("a sent record with an upper-case id restored")
	}
}

// TestSentAttachmentsGroupsOnly: a direct conversation keeps no attachments
// of a forgotten send (nobody may recall that message: a direct
// conversation has no owner or admins), and its sender's recall is refused.
func TestSentAttachmentsGroupsOnly(t *testing.T) {
	r := newPartRun(t, Limits{DedupPerSender: 1})
	at := time.Unix(1_700_000_000, 0)
	for _, c := range []*pb.Command{createDirect(), uploadCmd("bob", direct, attachment("bob", '1')),
		sendWith("bob", direct, "b1", "x", '1'), send("bob", direct, "b2")} {
		r.do(c, at)
	}
	if n := len(r.ps.convs[direct].sent); n != 0 {
		t.Fatalf("%d messages' attachments kept in a direct conversation", n)
	}
	for _, u := range []string{"alice", "bob"} {
		if got := attachSummary(r.do(recallCmd(u, direct, 1), at)); !slices.Equal(got, []string{rejWindow}) {
			t.Fatalf("%s's recall: %v", u, got)
		}
	}
}

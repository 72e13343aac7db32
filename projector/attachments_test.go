package projector

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func attachmentOf(owner string, n byte, kind pb.AttachmentKind, thumb bool) *pb.Attachment {
	a := &pb.Attachment{AttachmentId: strings.Repeat(string(n), 32), OwnerUserId: owner, Kind: kind, ContentType: "image/png",
		Name: "f" + string(n) + ".png", Size: int64(n), Sha256: strings.Repeat(string(n), 64),
		UploadedAt: timestamppb.New(time.Unix(1_700_000_000, 0))}
	if thumb {
		a.Thumbnail = &pb.Thumbnail{Sha256: strings.Repeat("e", 64), ContentType: "image/jpeg", Width: 10, Height: 10, Size: 7}
	}
	return a
}

func withAttachments(e *pb.Event, atts ...*pb.Attachment) *pb.Event {
	e.GetMessageSent().Attachments = atts
	return e
}

// TestViewsAttachmentsAnyOrder: uploads, their sends, an expiry and a
// recall, forwards, backwards and twice: the same rows, the owners' usage
// and the pending uploads follow, and the preview names the attachment.
func TestViewsAttachmentsAnyOrder(t *testing.T) {
	e := newEnv(t, true)
	for _, order := range []string{"fwd", "rev"} {
		c := "g:att-" + order
		a1 := attachmentOf("alice", '1', pb.AttachmentKind_ATTACHMENT_KIND_IMAGE, false)
		a2 := attachmentOf("bob", '2', pb.AttachmentKind_ATTACHMENT_KIND_FILE, true)
		a3 := attachmentOf("alice", '3', pb.AttachmentKind_ATTACHMENT_KIND_AUDIO, false)
		evs := versioned(group(c, "alice", "Team", "bob"),
			withAttachments(sent(c, 1, "bob", ""), a2),
			withAttachments(sent(c, 2, "alice", "hello"), a1),
			recalled(c, 1, "bob", "bob"))
		unversioned := []*pb.Event{
			joinEv(c, "alice", "u1", &pb.AttachmentUploaded{Attachment: a1}),
			joinEv(c, "bob", "u2", &pb.AttachmentUploaded{Attachment: a2}),
			joinEv(c, "alice", "u3", &pb.AttachmentUploaded{Attachment: a3}),
			joinEv(c, "alice", "x3", &pb.AttachmentDeleted{AttachmentId: a3.GetAttachmentId(), Sha256: a3.GetSha256(), OwnerUserId: "alice",
				Reason: pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED, UploadedAt: a3.GetUploadedAt()}),
			joinEv(c, "bob", "x2", &pb.AttachmentDeleted{AttachmentId: a2.GetAttachmentId(), Sha256: a2.GetSha256(), OwnerUserId: "bob",
				ThumbnailSha256: a2.GetThumbnail().GetSha256(), Reason: pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_RECALLED, RecalledSeq: 1}),
		}
		// The log's order: uploads first, the expiry after them, the
		// recall's deletion after the recall.
		all := []*pb.Event{evs[0], unversioned[0], unversioned[1], unversioned[2], evs[1], evs[2], unversioned[3], evs[3], unversioned[4]}
		if order == "rev" {
			slices.Reverse(all)
		}
		e.applyAll(e.keyspace, all)
		e.applyAll(e.keyspace, all)
		got := map[string]string{}
		for _, r := range e.rows(e.keyspace, "attachments", "conversation_id = ?", c) {
			got[r["attachment_id"].(string)[:1]] = fmt.Sprintf("%v %v %v seq %v deleted %v", r["owner_user_id"], r["kind"], r["size"],
				r["message_seq"], r["deleted_reason"])
		}
		want := map[string]string{"1": "alice image 49 seq 2 deleted <nil>", "2": "bob file 50 seq 1 deleted recalled",
			"3": "alice audio 51 seq <nil> deleted expired"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: attachments\n got %v\nwant %v", order, got, want)
		}
		tables, err := NewTables(e.s, e.keyspace)
		if err != nil {
			t.Fatal(err)
		}
		for sha, live := range map[string]bool{a1.GetSha256(): true, a2.GetSha256(): false, a3.GetSha256(): false, strings.Repeat("e", 64): false} {
			if ok, err := tables.BlobLive(t.Context(), sha); err != nil || ok != live {
				t.Errorf("%s: blob %s… live %v (%v), want %v", order, sha[:4], ok, err, live)
			}
		}
		if r, found, err := tables.Attachment(t.Context(), c, a1.GetAttachmentId()); err != nil || !found || r.MessageSeq != 2 ||
			r.Attachment.GetName() != "f1.png" || r.DeletedReason != "" {
			t.Errorf("%s: Attachment(a1) = %+v, %v, %v", order, r, found, err)
		}
		pending, err := tables.PendingUploads(t.Context(), UploadHour(a3.GetUploadedAt().AsTime()))
		if err != nil || slices.ContainsFunc(pending, func(p PendingUpload) bool { return p.ConversationID == c }) {
			t.Errorf("%s: pending uploads %v, %v: want none of %s (sent, or deleted)", order, pending, err, c)
		}
		conv, _, err := tables.Conversation(t.Context(), c)
		if err != nil || conv.LastMessagePreview != "[image] hello" {
			t.Errorf("%s: preview %q (%v), want the last message's", order, conv.LastMessagePreview, err)
		}
	}
	// alice's usage: a1 only (a3 expired), in each of the two conversations.
	tables, err := NewTables(e.s, e.keyspace)
	if err != nil {
		t.Fatal(err)
	}
	if bytes, n, err := tables.OwnerUsage(t.Context(), "alice"); err != nil || bytes != 2*49 || n != 2 {
		t.Errorf("alice's usage %d bytes in %d attachments (%v), want 98 in 2", bytes, n, err)
	}
}

package replay

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// attachmentLog builds hand-made logs with attachments: testConv, and a
// second group, target, that messages of testConv are forwarded to.
type attachmentLog struct{ actionLog }

// target is the group forwards go to.
var target = fmt.Sprintf("g:%032x", 2)

// att is attachment n of owner: an image with a thumbnail when n is odd,
// else a PDF, as a gateway builds them.
func (attachmentLog) att(n int, owner string) *pb.Attachment {
	a := &pb.Attachment{AttachmentId: fmt.Sprintf("%032x", n), OwnerUserId: owner, Kind: pb.AttachmentKind_ATTACHMENT_KIND_FILE,
		ContentType: "application/pdf", Name: fmt.Sprintf("report %d.pdf", n), Size: int64(1000 + n), Sha256: fmt.Sprintf("%064x", n),
		UploadedAt: timestamppb.New(time.Unix(1_800_000_000+int64(n), 0))}
	if n%2 == 1 {
		a.Kind, a.ContentType, a.Name = pb.AttachmentKind_ATTACHMENT_KIND_IMAGE, "image/jpeg", fmt.Sprintf("IMG_%d.jpg", n)
		a.Image = &pb.ImageInfo{Width: 4000, Height: 3000, Orientation: 1}
		a.Thumbnail = &pb.Thumbnail{Sha256: fmt.Sprintf("%064x", 1000+n), ContentType: "image/jpeg", Width: 400, Height: 300, Size: 900}
	}
	return a
}

// copyOf is the copy of a a forward by owner records as attachment n.
func (l attachmentLog) copyOf(a *pb.Attachment, n int, owner string) *pb.Attachment {
	c := proto.Clone(a).(*pb.Attachment)
	c.AttachmentId, c.OwnerUserId, c.UploadedAt = fmt.Sprintf("%032x", n), owner, timestamppb.New(time.Unix(1_900_000_000, 0))
	return c
}

func (attachmentLog) upload(cmd, actor string, a *pb.Attachment) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.AttachmentUploaded{Attachment: a})
}

// sendWith is a message carrying atts, with a caption or none.
func (attachmentLog) sendWith(cmd string, seq int64, actor, caption string, atts ...*pb.Attachment) *pb.Event {
	return testEvent(cmd, seq, actor, &pb.MessageSent{ClientMsgId: cmd, Text: caption, ContentType: "text/plain", Attachments: atts})
}

// expired is the janitor's deletion of a, decided as its owner.
func (attachmentLog) expired(cmd string, a *pb.Attachment) *pb.Event {
	return testEvent(cmd, 0, a.GetOwnerUserId(), &pb.AttachmentDeleted{AttachmentId: a.GetAttachmentId(), Sha256: a.GetSha256(),
		ThumbnailSha256: a.GetThumbnail().GetSha256(), Reason: pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED,
		OwnerUserId: a.GetOwnerUserId(), UploadedAt: a.GetUploadedAt()})
}

// recalledAtt is the deletion of a, sent in message seq, by the recall
// of actor.
func (attachmentLog) recalledAtt(cmd, actor string, seq int64, a *pb.Attachment) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.AttachmentDeleted{AttachmentId: a.GetAttachmentId(), Sha256: a.GetSha256(),
		ThumbnailSha256: a.GetThumbnail().GetSha256(), Reason: pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_RECALLED,
		RecalledSeq: seq, OwnerUserId: a.GetOwnerUserId()})
}

// forwarded is the MessageForwarded of message seq of testConv to target.
func (attachmentLog) forwarded(cmd, actor string, seq int64) *pb.Event {
	return testEvent(cmd, 0, actor, &pb.MessageForwarded{Seq: seq, TargetConversationId: target, ClientMsgId: cmd})
}

// forwardSent is the MessageSent of a forward of message seq of testConv
// (by sender), carrying copies.
func (l attachmentLog) forwardSent(cmd string, seq int64, actor, caption string, from int64, sender string, copies ...*pb.Attachment) *pb.Event {
	e := l.sendWith(cmd, seq, actor, caption, copies...)
	e.GetMessageSent().ForwardedFrom = &pb.ForwardOrigin{ConversationId: testConv, Seq: from, SenderUserId: sender}
	return e
}

// in moves evs to conversation conv.
func (attachmentLog) in(conv string, evs ...*pb.Event) []*pb.Event {
	for _, e := range evs {
		e.ConversationId = conv
	}
	return evs
}

// commands are the commands of evs (one per command id, all decided).
func (attachmentLog) commands(evs []*pb.Event, extra ...*pb.Command) []*pb.Command {
	var out []*pb.Command
	seen := map[string]bool{}
	for _, e := range evs {
		id := e.GetCommandId()
		if seen[id] {
			continue
		}
		seen[id] = true
		c := &pb.Command{CommandId: id, ConversationId: e.GetConversationId(), UserId: e.GetActorUserId()}
		switch b := e.GetBody().(type) {
		case *pb.Event_ConversationCreated:
			c.Body = &pb.Command_CreateConversation{CreateConversation: &pb.CreateConversation{Kind: b.ConversationCreated.GetKind()}}
		case *pb.Event_AttachmentUploaded:
			c.Body = &pb.Command_UploadAttachment{UploadAttachment: &pb.UploadAttachment{Attachment: b.AttachmentUploaded.GetAttachment()}}
		case *pb.Event_AttachmentDeleted:
			c.Body = &pb.Command_ExpireAttachment{ExpireAttachment: &pb.ExpireAttachment{AttachmentId: b.AttachmentDeleted.GetAttachmentId()}}
		case *pb.Event_MessageRecalled:
			c.Body = &pb.Command_RecallMessage{RecallMessage: &pb.RecallMessage{Seq: b.MessageRecalled.GetMessageSeq()}}
		case *pb.Event_MessageForwarded:
			c.Body = &pb.Command_ForwardMessage{ForwardMessage: &pb.ForwardMessage{Seq: b.MessageForwarded.GetSeq(), TargetConversationId: target}}
		case *pb.Event_MessageSent:
			if b.MessageSent.GetForwardedFrom() != nil {
				c.Body = &pb.Command_ForwardedMessage{ForwardedMessage: &pb.ForwardedMessage{Origin: b.MessageSent.GetForwardedFrom()}}
				break
			}
			var ids []string
			for _, a := range b.MessageSent.GetAttachments() {
				ids = append(ids, a.GetAttachmentId())
			}
			c.Body = &pb.Command_SendMessage{SendMessage: &pb.SendMessage{ClientMsgId: id, AttachmentIds: ids}}
		default:
			c.Body = &pb.Command_MarkRead{MarkRead: &pb.MarkRead{UpToSeq: 1}}
		}
		out = append(out, c)
	}
	return append(out, extra...)
}

// TestVerifyLogCheckAttachments: uploads, sends, expiries, recalls and
// forwards of attachments, in a log that keeps the rules and in logs that
// break one each.
func TestVerifyLogCheckAttachments(t *testing.T) {
	var l attachmentLog
	a1, a2, a3, b1 := l.att(1, "a"), l.att(2, "a"), l.att(3, "a"), l.att(5, "b")
	c1, c2 := l.copyOf(a1, 11, "c"), l.copyOf(a2, 12, "c")
	g := l.group("a", "b", "c") // a owns it
	createTarget := func() *pb.Event {
		return l.in(target, testEvent("t0", 0, "c", &pb.ConversationCreated{Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP,
			MemberUserIds: []string{"c", "d"}}))[0]
	}
	// forward is the decision of a forward of message 1 (a's, carrying a1
	// and a2) in target: its copies recorded, then its message.
	forward := func(cmd string, seq int64, copies ...*pb.Attachment) []*pb.Event {
		var evs []*pb.Event
		for _, c := range copies {
			evs = append(evs, l.upload(cmd, "c", c))
		}
		return l.in(target, append(evs, l.forwardSent(cmd, seq, "c", "", 1, "a", copies...))...)
	}
	valid := append(l.versions(g,
		l.upload("u1", "a", a1),
		l.upload("u2", "a", a2),
		l.upload("u3", "b", b1),
		l.sendWith("s1", 1, "a", "", a1, a2), // no caption
		l.upload("u4", "a", a3),
		l.expired("e1", a3), // never sent: expired
		l.sendWith("s2", 2, "b", "look", b1),
		l.recall("x1", "b", 2, "b"), // its attachment goes with it, in the same decision
		l.recalledAtt("x1", "b", 2, b1),
		l.upload("u5", "b", l.att(6, "b")), // an upload not sent yet
		l.forwarded("f1", "c", 1),
	), l.versions(append([]*pb.Event{createTarget()}, forward("f1", 1, c1, c2)...)...)...)
	// Decided without an event: an upload sent again, an expiry of a sent
	// upload, of one gone, of one too young.
	validCommands := l.commands(valid,
		&pb.Command{CommandId: "u1-again", ConversationId: testConv, UserId: "a",
			Body: &pb.Command_UploadAttachment{UploadAttachment: &pb.UploadAttachment{Attachment: a1}}},
		&pb.Command{CommandId: "e2", ConversationId: testConv, UserId: "a",
			Body: &pb.Command_ExpireAttachment{ExpireAttachment: &pb.ExpireAttachment{AttachmentId: a1.GetAttachmentId()}}})

	other := proto.Clone(a1).(*pb.Attachment)
	other.Name = "renamed.jpg"
	wrongSHA := l.expired("e1", a1)
	wrongSHA.GetAttachmentDeleted().Sha256 = strings.Repeat("f", 64)
	noReason := l.expired("e1", a1)
	noReason.GetAttachmentDeleted().Reason = pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_UNSPECIFIED
	byOther := l.expired("e1", a1)
	byOther.ActorUserId = "b"
	movedUpload := l.expired("e1", a1)
	movedUpload.GetAttachmentDeleted().UploadedAt = timestamppb.New(time.Unix(1_700_000_000, 0))
	versioned := l.upload("u1", "a", a1)
	versioned.Version = 2
	versionedDel := l.expired("e1", a1)
	versionedDel.Version = 3
	malformed := proto.Clone(a1).(*pb.Attachment)
	malformed.Sha256 = "not a digest"
	notACopy := l.copyOf(a1, 11, "c")
	notACopy.Sha256 = strings.Repeat("e", 64)
	const at = "of g:1 at partition 0 offset "
	id := func(a *pb.Attachment) string { return a.GetAttachmentId() }

	for _, tc := range []struct {
		name     string
		events   []*pb.Event
		commands []*pb.Command // all decided, commands topic complete
		want     string        // "" = no problem, else the one problem
	}{
		{"valid", valid, nil, ""},
		{"valid with commands", valid, validCommands, ""},
		// A check of the target only: the forward's origin is not asked for.
		{"the target of a forward only", l.versions(append([]*pb.Event{createTarget()}, forward("f1", 1, c1, c2)...)...), nil, ""},
		{"the target of a forward only, with commands", l.versions(append([]*pb.Event{createTarget()}, forward("f1", 1, c1, c2)...)...),
			l.commands(l.versions(append([]*pb.Event{createTarget()}, forward("f1", 1, c1, c2)...)...)), ""},

		// AttachmentUploaded
		{"an upload with a version", append(l.versions(g), versioned), nil,
			"AttachmentUploaded " + at + "1: version 2, want 0 (an attachment's record is no change members resume from)"},
		{"an upload of another's attachment", l.versions(g, l.upload("u1", "b", a1)), nil,
			"AttachmentUploaded " + at + "1: attachment " + id(a1) + " is owned by a but recorded by b (an attachment is its uploader's)"},
		{"an upload by a non-member", l.versions(g, l.upload("u1", "z", l.att(1, "z"))), nil, "AttachmentUploaded " + at + "1: z is not a member"},
		{"an upload under an id recorded already", l.versions(g, l.upload("u1", "a", a1), l.upload("u2", "b", l.att(1, "b"))), nil,
			"AttachmentUploaded " + at + "2: attachment id " + id(a1) + " is recorded in the conversation already (AttachmentUploaded " + at + "1)"},
		{"an id sent, then recorded again", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1), l.upload("u2", "a", a1)), nil,
			"AttachmentUploaded " + at + "3: attachment id " + id(a1) + " is recorded in the conversation already"},
		{"a malformed upload", l.versions(g, l.upload("u1", "a", malformed)), nil,
			"AttachmentUploaded " + at + "1: not a well-formed attachment: attachment.sha256"},
		{"two uploads of one command", l.versions(g, l.upload("u1", "a", a1), l.upload("u1", "a", a2)), nil,
			"command u1 has 2 outcome events"},

		// MessageSent
		{"a send of no upload", l.versions(g, l.sendWith("s1", 1, "a", "", a1)), nil,
			"MessageSent " + at + "1: attachment " + id(a1) + " was not recorded in the conversation before (no AttachmentUploaded)"},
		{"a send of another's upload", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "b", "mine now", a1)), nil,
			"MessageSent " + at + "2: attachment " + id(a1) + " is a's: only its owner sends it"},
		{"an attachment sent twice", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1), l.sendWith("s2", 2, "a", "again", a1)), nil,
			"MessageSent " + at + "3: attachment " + id(a1) + " was sent before, in message 1 (an attachment is sent once)"},
		{"a send of an expired upload", l.versions(g, l.upload("u1", "a", a1), l.expired("e1", a1), l.sendWith("s1", 1, "a", "", a1)), nil,
			"MessageSent " + at + "3: attachment " + id(a1) + " was deleted before (expired)"},
		{"a send of an attachment not as recorded", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", other)), nil,
			"MessageSent " + at + "2: attachment " + id(a1) + " is not as its AttachmentUploaded recorded it (AttachmentUploaded " + at + "1)"},
		{"an attachment carried twice", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1, a1)), nil,
			"MessageSent " + at + "2: carries attachment " + id(a1) + " twice"},
		{"copies recorded for a send that is no forward", l.versions(g, l.upload("s1", "a", a1), l.sendWith("s1", 1, "a", "", a1)), nil,
			"MessageSent " + at + "2: 1 attachment(s) recorded by its command right before it, but it is not a forward (only a forward records copies)"},
		{"a forward of an earlier upload", l.versions(append([]*pb.Event{createTarget()}, l.in(target, l.upload("u1", "c", c1),
			l.forwardSent("f1", 1, "c", "", 1, "a", c1))...)...), nil,
			"MessageSent of " + target + " at partition 0 offset 2: a forward carries attachment " + id(c1) + ", which is not a copy recorded with it"},
		{"a forward's copy not in its message", l.versions(append([]*pb.Event{createTarget()}, l.in(target, l.upload("f1", "c", c1),
			l.upload("f1", "c", c2), l.forwardSent("f1", 1, "c", "", 1, "a", c1))...)...), nil,
			"attachment " + id(c2) + ", recorded with this forward (AttachmentUploaded of " + target + " at partition 0 offset 2), is not in its MessageSent"},
		{"a forward whose copies are not of the message's", append(l.versions(g, l.upload("u1", "a", a1), l.upload("u2", "a", a2),
			l.sendWith("s1", 1, "a", "", a1, a2), l.forwarded("f1", "c", 1)), l.versions(append([]*pb.Event{createTarget()},
			forward("f1", 1, notACopy, c2)...)...)...), nil,
			"forwarded from g:1 seq 1, but its attachments are not copies of the message's"},
		{"a forward that drops an attachment", append(l.versions(g, l.upload("u1", "a", a1), l.upload("u2", "a", a2),
			l.sendWith("s1", 1, "a", "", a1, a2), l.forwarded("f1", "c", 1)), l.versions(append([]*pb.Event{createTarget()},
			forward("f1", 1, c1)...)...)...), nil,
			"forwarded from g:1 seq 1, but its attachments are not copies of the message's"},

		// AttachmentDeleted
		{"a deletion with a version", append(l.versions(g, l.upload("u1", "a", a1)), versionedDel), nil,
			"AttachmentDeleted " + at + "2: version 3, want 0"},
		{"a deletion of no attachment", l.versions(g, l.expired("e1", a1)), nil,
			"AttachmentDeleted " + at + "1: attachment " + id(a1) + " is not recorded in the conversation (no AttachmentUploaded before)"},
		{"deleted twice", l.versions(g, l.upload("u1", "a", a1), l.expired("e1", a1), l.expired("e2", a1)), nil,
			"AttachmentDeleted " + at + "3: attachment " + id(a1) + " was deleted before (expired): an attachment is deleted once"},
		{"a sent attachment expires", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1), l.expired("e1", a1)), nil,
			"AttachmentDeleted " + at + "3: attachment " + id(a1) + " expires, but it was sent in message 1: only an upload never sent expires"},
		{"an expiry as another", l.versions(g, l.upload("u1", "a", a1), byOther), nil,
			"AttachmentDeleted " + at + "2: attachment " + id(a1) + " expires as b's, but its owner is a"},
		{"an expiry of another upload time", l.versions(g, l.upload("u1", "a", a1), movedUpload), nil,
			"AttachmentDeleted " + at + "2: uploaded_at 2023-11-14 22:13:20 +0000 UTC, but attachment " + id(a1) + " was uploaded at 2027-01-15 08:00:01 +0000 UTC"},
		{"a deletion naming other bytes", l.versions(g, l.upload("u1", "a", a1), wrongSHA), nil,
			"AttachmentDeleted " + at + "2: sha256 " + strings.Repeat("f", 64) + `, thumbnail_sha256 "` + a1.GetThumbnail().GetSha256() +
				`", owner a, but attachment ` + id(a1) + " was recorded with " + a1.GetSha256()},
		{"a deletion without a reason", l.versions(g, l.upload("u1", "a", a1), noReason), nil,
			"AttachmentDeleted " + at + "2: reason ATTACHMENT_DELETED_REASON_UNSPECIFIED, want EXPIRED or RECALLED"},
		{"an attachment of a live message deleted", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1),
			l.recalledAtt("x1", "a", 1, a1)), nil,
			"AttachmentDeleted " + at + "3: attachment " + id(a1) + " deleted as recalled, but its message 1 is not recalled (an attachment of a live message stays)"},
		{"an upload never sent deleted as recalled", l.versions(g, l.upload("u1", "a", a1), l.recalledAtt("x1", "a", 1, a1)), nil,
			"AttachmentDeleted " + at + "2: attachment " + id(a1) + " deleted as recalled, but it was never sent"},
		{"a recall deleting another message's attachment", l.versions(g, l.upload("u1", "a", a1), l.upload("u2", "a", a2),
			l.sendWith("s1", 1, "a", "", a1), l.sendWith("s2", 2, "a", "", a2), l.recall("x1", "a", 2, "a"),
			l.recalledAtt("x1", "a", 2, a2), l.recalledAtt("x1", "a", 2, a1)), nil,
			"AttachmentDeleted " + at + "7: recalled_seq 2, but attachment " + id(a1) + " was sent in message 1"},
		{"a recall that leaves an attachment", l.versions(g, l.upload("u1", "a", a1), l.upload("u2", "a", a2),
			l.sendWith("s1", 1, "a", "", a1, a2), l.recall("x1", "a", 1, "a"), l.recalledAtt("x1", "a", 1, a1), l.read("r1", "b", 1)), nil,
			"MessageRecalled " + at + "4: message 1 is recalled, but its attachment(s) [" + id(a2) + "] are not deleted with it (served without a live message)"},
		{"a recall that leaves its attachments, at the end", l.versions(g, l.upload("u1", "a", a1),
			l.sendWith("s1", 1, "a", "", a1), l.recall("x1", "a", 1, "a")), nil,
			"MessageRecalled " + at + "3: message 1 is recalled, but its attachment(s) [" + id(a1) + "] are not deleted with it"},
		{"a recalled attachment deleted by another command", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1),
			l.recall("x1", "a", 1, "a"), l.recalledAtt("x2", "a", 1, a1)), nil,
			"MessageRecalled " + at + "3: message 1 is recalled, but its attachment(s) [" + id(a1) + "] are not deleted with it"},
		{"a recall's deletion without an outcome of its own", l.versions(g, l.upload("u1", "a", a1), l.sendWith("s1", 1, "a", "", a1),
			l.recall("x1", "a", 1, "a"), l.recalledAtt("x1", "a", 1, a1), testEvent("x1", 0, "a", &pb.CommandRejected{})), nil,
			"command x1 has 2 outcome events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := newLogCheck()
			for i, e := range tc.events {
				check.event(0, int64(i), e)
			}
			for i, c := range tc.commands {
				check.command(0, int64(i), c, true)
			}
			problems := check.finish(tc.commands != nil)
			got := strings.Join(problems, "\n")
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems in a valid log:\n%s", got)
			case tc.want != "" && (len(problems) != 1 || !strings.Contains(got, tc.want)):
				t.Errorf("problems:\n%s\nwant one, containing %q", got, tc.want)
			}
		})
	}

	// The model of the valid log: each attachment's message and deletion.
	check := newLogCheck()
	for i, e := range valid {
		check.event(0, int64(i), e)
	}
	for _, want := range []struct {
		conv    string
		a       *pb.Attachment
		sent    int64
		deleted string
	}{
		{testConv, a1, 1, "unspecified"}, {testConv, a2, 1, "unspecified"}, {testConv, a3, 0, "expired"},
		{testConv, b1, 2, "recalled"}, {testConv, l.att(6, "b"), 0, "unspecified"},
		{target, c1, 1, "unspecified"}, {target, c2, 1, "unspecified"},
	} {
		m := check.convs[want.conv].attachments[id(want.a)]
		if m == nil || m.sentSeq != want.sent || deletedName(m.deleted) != want.deleted {
			t.Errorf("attachment %s of %s: %+v, want sent in %d, deleted %s", id(want.a), want.conv, m, want.sent, want.deleted)
		}
	}
	if n := len(check.convs[testConv].attachments) + len(check.convs[target].attachments); n != 7 {
		t.Errorf("%d attachments in the model, want 7", n)
	}
}

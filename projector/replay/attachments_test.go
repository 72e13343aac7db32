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
			checkLog(t, tc.events, tc.commands, tc.want, true)
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

// TestVerifyLogCheckLiveAttachments: the live attachment views against
// the log's, without Cassandra: rows as verify reads them (CQL JSON), each
// invariant broken once.
func TestVerifyLogCheckLiveAttachments(t *testing.T) {
	var l attachmentLog
	a1, a2, a3, b1, b2 := l.att(1, "a"), l.att(2, "a"), l.att(3, "a"), l.att(5, "b"), l.att(6, "b")
	log := l.versions(l.group("a", "b", "c"),
		l.upload("u1", "a", a1),
		l.upload("u2", "a", a2),
		l.sendWith("s1", 1, "a", "", a1, a2),
		l.upload("u3", "a", a3),
		l.expired("e1", a3),
		l.upload("u4", "b", b1),
		l.sendWith("s2", 2, "b", "look", b1),
		l.recall("x1", "b", 2, "b"),
		l.recalledAtt("x1", "b", 2, b1),
		l.upload("u5", "b", b2), // not sent yet
	)
	check := newLogCheck()
	for i, e := range log {
		check.event(0, int64(i), e)
	}
	if p := check.finish(false); len(p) > 0 {
		t.Fatalf("problems in the log:\n%s", strings.Join(p, "\n"))
	}
	// The rows the projector writes of each attachment.
	type state struct {
		a      *pb.Attachment
		seq    int64
		reason string
	}
	states := []state{{a1, 1, ""}, {a2, 1, ""}, {a3, 0, "expired"}, {b1, 2, "recalled"}, {b2, 0, ""}}
	put := func(v views, table string, r row) {
		if v[table] == nil {
			v[table] = map[string]row{}
		}
		v[table][rowName(viewTable(table), r)] = r
	}
	orNil := func(ok bool, v any) any {
		if ok {
			return v
		}
		return nil
	}
	rows := func() views {
		v := views{}
		for _, s := range states {
			id, owner, deleted := s.a.GetAttachmentId(), s.a.GetOwnerUserId(), s.reason != ""
			put(v, "attachments", jsonRow("conversation_id", testConv, "attachment_id", id, "owner_user_id", owner,
				"sha256", s.a.GetSha256(), "message_seq", orNil(s.seq > 0, s.seq), "deleted_reason", orNil(deleted, s.reason)))
			put(v, "attachment_blobs", jsonRow("sha256", s.a.GetSha256(), "conversation_id", testConv, "attachment_id", id, "role", "file",
				"size", s.a.GetSize(), "deleted", orNil(deleted, true)))
			if th := s.a.GetThumbnail(); th != nil {
				put(v, "attachment_blobs", jsonRow("sha256", th.GetSha256(), "conversation_id", testConv, "attachment_id", id, "role", "thumbnail",
					"size", th.GetSize(), "deleted", orNil(deleted, true)))
			}
			put(v, "owner_attachments", jsonRow("owner_user_id", owner, "conversation_id", testConv, "attachment_id", id,
				"deleted", orNil(deleted, true)))
			put(v, "attachment_uploads", jsonRow("hour", s.a.GetUploadedAt().GetSeconds()/3600, "conversation_id", testConv,
				"attachment_id", id, "owner_user_id", owner, "sent", orNil(s.seq > 0, true), "deleted", orNil(s.reason == "expired", true)))
		}
		return v
	}
	// edit returns the views with f applied to the row of table keyed by
	// the attachment id (and, for blobs, the role "file").
	edit := func(table, id string, f func(r row)) views {
		v := rows()
		for n, r := range v[table] {
			if str(r["attachment_id"]) == id && (table != "attachment_blobs" || str(r["role"]) == "file") {
				f(r)
				delete(v[table], n)
				if len(r) > 0 {
					put(v, table, r)
				}
			}
		}
		return v
	}
	set := func(col string, val any) func(r row) {
		return func(r row) { r[col] = jsonRow("v", val)["v"] }
	}
	remove := func(r row) { clear(r) }
	id := func(a *pb.Attachment) string { return a.GetAttachmentId() }
	name := func(a *pb.Attachment) string { return "attachment " + id(a) + " of " + testConv }
	blobRow := func(a *pb.Attachment) string {
		return fmt.Sprintf(`attachment_blobs(sha256=%q, conversation_id=%q, attachment_id=%q, role="file")`, a.GetSha256(), testConv, id(a))
	}
	other := rows()
	put(other, "attachments", jsonRow("conversation_id", "g:9", "attachment_id", id(a1), "owner_user_id", "z"))
	put(other, "attachment_blobs", jsonRow("sha256", a1.GetSha256(), "conversation_id", "g:9", "attachment_id", id(a1), "role", "file"))

	for _, tc := range []struct {
		name string
		live views
		want []string // the differences, in order
	}{
		{"as the log says", rows(), nil},
		{"rows of a conversation not read", other, nil},
		{"a recalled message's attachment served", edit("attachments", id(b1), set("deleted_reason", nil)), []string{
			name(b1) + `: deleted_reason live null, log "recalled"`,
			name(b1) + ": served, but its message 2 was recalled by b: no live message references it"}},
		{"an attachment of a live message deleted", edit("attachments", id(a1), set("deleted_reason", "recalled")), []string{
			name(a1) + `: deleted_reason live "recalled", log null`}},
		{"an expired upload served", edit("attachments", id(a3), set("deleted_reason", nil)), []string{
			name(a3) + `: deleted_reason live null, log "expired"`}},
		{"a sent attachment shown unsent", edit("attachments", id(a2), set("message_seq", nil)), []string{
			name(a2) + ": message_seq live null, log 1"}},
		{"served with a message that does not carry it", edit("attachments", id(b2), set("message_seq", 1)), []string{
			name(b2) + ": message_seq live 1, log null",
			name(b2) + ": served as an attachment of message 1, which does not carry it by the log"}},
		{"another owner", edit("attachments", id(a1), set("owner_user_id", "b")), []string{name(a1) + ": owner_user_id live \"b\", log \"a\""}},
		{"a row missing", edit("attachments", id(b2), remove), []string{name(b2) + ": recorded in the log, no row in the live views"}},
		{"a row the log does not have", func() views {
			v := rows()
			put(v, "attachments", jsonRow("conversation_id", testConv, "attachment_id", fmt.Sprintf("%032x", 99), "owner_user_id", "a"))
			return v
		}(), []string{"attachment " + fmt.Sprintf("%032x", 99) + " of " + testConv + ": a row in the live views, not recorded in the log"}},
		{"a blob deleted under a served attachment", edit("attachment_blobs", id(a1), set("deleted", true)), []string{
			blobRow(a1) + ": deleted live true, log false (a blob is collected once every row of it is deleted)"}},
		{"a blob kept for a recalled attachment", edit("attachment_blobs", id(b1), set("deleted", nil)), []string{
			blobRow(b1) + ": deleted live false, log true (a blob is collected once every row of it is deleted)"}},
		{"a blob row missing", edit("attachment_blobs", id(a2), remove), []string{
			blobRow(a2) + ": missing in the live views (" + name(a2) + " is recorded in the log)"}},
		{"quota counting a deleted attachment", edit("owner_attachments", id(a3), set("deleted", nil)), []string{
			fmt.Sprintf(`owner_attachments(owner_user_id="a", conversation_id=%q, attachment_id=%q)`, testConv, id(a3)) +
				": deleted live false, log true (the owner's quota counts what is not deleted)"}},
		{"a sent upload still pending", edit("attachment_uploads", id(a1), set("sent", nil)), []string{
			fmt.Sprintf(`attachment_uploads(hour=%d, conversation_id=%q, attachment_id=%q)`, a1.GetUploadedAt().GetSeconds()/3600, testConv, id(a1)) +
				": pending (neither sent nor deleted) live true, log false (what the janitor expires)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range checkAttachments(tc.live, check) {
				got = append(got, d.text)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

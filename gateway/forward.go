package gateway

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// sourceMessage is what a forward copies of a message, as the messages
// view shows it: the latest text and content type (edits rewrite them in
// the row), its sender and send time, and whether it was recalled.
type sourceMessage struct {
	found       bool
	isMessage   bool // a MessageSent, not a notice
	text        string
	contentType string
	sender      string
	sentAt      time.Time
	recalled    bool
	// attachments are the files the message carries.
	attachments []*pb.Attachment
}

// forward fills a ForwardMessage built by command with what the device may
// not set: the text, content type and origin of the message, read from the
// views, and copies of its attachments (on the reader, bounded by loadTimeout, so the session's commands
// stay in order). Membership is the decider's to judge, but content never
// leaves the views for a user they do not list as a member of the source:
// that is refused NOT_MEMBER before the message is read. A message the views
// do not have (yet) is NOT_FOUND, a recalled one MESSAGE_RECALLED.
func (s *session) forward(cmd *pb.Command) (pb.ErrorCode, string) {
	v := s.srv.views
	if v == nil {
		return pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "forwardMessage needs the gateway's Cassandra views, which are not configured"
	}
	fm := cmd.GetForwardMessage()
	conv, seq := cmd.GetConversationId(), fm.GetSeq()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	unavailable := func(err error) (pb.ErrorCode, string) {
		s.log.Warn("forward could not read the views", "conversation", conv, "seq", seq, "err", schemas.Clip(err.Error()))
		return pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "could not read the message to forward; retry with the same clientMsgId"
	}
	ok, err := v.isMember(ctx, conv, s.user)
	if err != nil {
		return unavailable(err)
	}
	if !ok {
		return pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "not a member of " + conv
	}
	m, err := v.message(ctx, conv, seq)
	switch {
	case err != nil:
		return unavailable(err)
	case !m.found:
		return pb.ErrorCode_ERROR_CODE_NOT_FOUND, fmt.Sprintf("message %d of %s not found (or not projected yet); retry", seq, conv)
	case !m.isMessage:
		return pb.ErrorCode_ERROR_CODE_NOT_FOUND, fmt.Sprintf("seq %d of %s is a notice, not a message", seq, conv)
	case m.recalled:
		return pb.ErrorCode_ERROR_CODE_MESSAGE_RECALLED, fmt.Sprintf("message %d of %s was recalled", seq, conv)
	}
	fm.Text, fm.ContentType = m.text, m.contentType
	// The target records a copy of each attachment, the forwarder's, of
	// the same bytes: it lives and dies with the forwarded message.
	now := timestamppb.New(time.Now())
	for _, a := range m.attachments {
		c := proto.Clone(a).(*pb.Attachment)
		c.AttachmentId, c.OwnerUserId, c.UploadedAt = schemas.NewAttachmentID(), s.user, now
		fm.Attachments = append(fm.Attachments, c)
	}
	fm.Origin = &pb.ForwardOrigin{ConversationId: conv, Seq: seq, SenderUserId: m.sender}
	if !m.sentAt.IsZero() {
		fm.Origin.SentAt = timestamppb.New(m.sentAt)
	}
	return pb.ErrorCode_ERROR_CODE_UNSPECIFIED, ""
}

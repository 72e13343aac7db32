package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"google.golang.org/protobuf/proto"
)

// Attachments (README.md, "Attachments"). A gateway that stored an upload's
// bytes appends UploadAttachment to the conversation it was uploaded to;
// the decider keeps each unsent upload in the conversation's state, so a
// send that names it is checked from that state alone (it exists, it is
// the sender's, it was not sent), never from a view. A sent attachment
// leaves the uploads and rides with its send's remembered entry; when the
// send is no longer remembered (evicted by the sender's newer sends or
// swept after the dedup window) it moves to the conversation's sent
// attachments (convState.sent), so the message's recall deletes it
// (AttachmentDeleted) whenever it comes. An upload nobody sends is
// deleted by ExpireAttachment once Limits.AttachmentTTL has passed.

// upload is an attachment uploaded and not sent yet.
type upload struct {
	at  int64 // when received (Unix ms)
	att *pb.Attachment
}

// sentAttachment is what a recall needs of an attachment its message sent:
// its id and digests, kept as bytes (schemas.CheckAttachment makes them
// lowercase hex, so they print back the same). 81 bytes without a pointer;
// as three strings they took 48 bytes of headers and 160 of their own.
type sentAttachment struct {
	id           [schemas.AttachmentIDHexDigits / 2]byte
	sha256       [sha256.Size]byte
	thumbnail    [sha256.Size]byte
	hasThumbnail bool
}

// newSentAttachment parses an attachment's id and digests (thumbnail ""
// when it has none).
func newSentAttachment(id, sum, thumbnail string) (sentAttachment, error) {
	var a sentAttachment
	if err := schemas.CheckAttachmentID("attachment id", id); err != nil {
		return a, err
	}
	if err := schemas.CheckSHA256("attachment sha256", sum); err != nil {
		return a, err
	}
	hex.Decode(a.id[:], []byte(id))
	hex.Decode(a.sha256[:], []byte(sum))
	if thumbnail != "" {
		if err := schemas.CheckSHA256("thumbnail sha256", thumbnail); err != nil {
			return a, err
		}
		hex.Decode(a.thumbnail[:], []byte(thumbnail))
		a.hasThumbnail = true
	}
	return a, nil
}

// text returns a's id and digests as the contract writes them.
func (a sentAttachment) text() (id, sum, thumbnail string) {
	id, sum = hex.EncodeToString(a.id[:]), hex.EncodeToString(a.sha256[:])
	if a.hasThumbnail {
		thumbnail = hex.EncodeToString(a.thumbnail[:])
	}
	return id, sum, thumbnail
}

func uploadAttachment(l Limits, st *convState, user string, m *pb.UploadAttachment, base *pb.Event, received int64) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	a := m.GetAttachment()
	if err := schemas.CheckAttachment(a); err != nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	if a.GetOwnerUserId() != user {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "an attachment is uploaded by its owner")
	}
	id := a.GetAttachmentId()
	if old := st.uploads[id]; old != nil {
		if proto.Equal(old.att, a) {
			return st, nil, d, nil // a resend: recorded already
		}
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "attachment id %s is in use", id)
	}
	if len(st.uploads) >= l.MaxPendingAttachments {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_LIMIT_REACHED,
			"the conversation has %d attachments uploaded and not sent, the limit: send or let them expire first", l.MaxPendingAttachments)
	}
	if st.uploads == nil {
		st.uploads = map[string]*upload{}
	}
	st.uploads[id] = &upload{at: received, att: a}
	d.uploads = append(d.uploads, id)
	ev := cloneBase(base)
	ev.Body = &pb.Event_AttachmentUploaded{AttachmentUploaded: &pb.AttachmentUploaded{Attachment: a}}
	return st, []*pb.Event{ev}, d, nil
}

// expireAttachment decides an ExpireAttachment: the upload is deleted
// only while it is unsent and older than the TTL; anything else (sent,
// gone, too young) yields nothing, so janitors on every gateway may ask.
// The owner need not be a member any more.
func expireAttachment(l Limits, st *convState, m *pb.ExpireAttachment, base *pb.Event, received int64) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	id := m.GetAttachmentId()
	if err := schemas.CheckAttachmentID("attachment_id", id); err != nil {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	u := st.uploads[id]
	if u == nil || received-u.at < l.AttachmentTTL.Milliseconds() {
		return st, nil, d, nil
	}
	delete(st.uploads, id)
	d.uploads = append(d.uploads, id)
	ev := cloneBase(base)
	ev.ActorUserId = u.att.GetOwnerUserId()
	ev.Body = &pb.Event_AttachmentDeleted{AttachmentDeleted: &pb.AttachmentDeleted{AttachmentId: id, Sha256: u.att.GetSha256(),
		ThumbnailSha256: u.att.GetThumbnail().GetSha256(), Reason: pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED,
		OwnerUserId: u.att.GetOwnerUserId(), UploadedAt: u.att.GetUploadedAt()}}
	return st, []*pb.Event{ev}, d, nil
}

// takeAttachments checks a send's attachment ids against the sender's
// unsent uploads and returns them in order; the caller removes them from
// the uploads (sendAttachments) once the send is decided.
func takeAttachments(st *convState, user string, ids []string) ([]*pb.Attachment, *rejection) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > schemas.MaxAttachmentsPerMessage {
		return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a message carries at most %d attachments", schemas.MaxAttachmentsPerMessage)
	}
	out := make([]*pb.Attachment, 0, len(ids))
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "attachment %s is named twice", schemas.Clip(id))
		}
		u := st.uploads[id]
		if u == nil || u.att.GetOwnerUserId() != user {
			return nil, reject(pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND,
				"%s is not an attachment you uploaded to this conversation and have not sent", schemas.Clip(id))
		}
		out = append(out, u.att)
	}
	return out, nil
}

// forwarded is what a ForwardedMessage adds to a send: where it comes
// from and the copies of its attachments.
type forwarded struct {
	origin      *pb.ForwardOrigin
	attachments []*pb.Attachment
}

func (f *forwarded) GetOrigin() *pb.ForwardOrigin {
	if f == nil {
		return nil
	}
	return f.origin
}

func (f *forwarded) GetAttachments() []*pb.Attachment {
	if f == nil {
		return nil
	}
	return f.attachments
}

// forwardedAttachments checks the copies a forward brings of its
// message's attachments — each a whole attachment (schemas.CheckAttachment),
// owned by the forwarder, under an id this conversation does not hold —
// and returns the AttachmentUploaded events that record them before the
// send.
func forwardedAttachments(st *convState, user string, copies []*pb.Attachment, base *pb.Event) ([]*pb.Event, *rejection) {
	if len(copies) > schemas.MaxAttachmentsPerMessage {
		return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a message carries at most %d attachments", schemas.MaxAttachmentsPerMessage)
	}
	out := make([]*pb.Event, 0, len(copies))
	for i, a := range copies {
		if err := schemas.CheckAttachment(a); err != nil {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "forwarded attachment: %v", err)
		}
		id := a.GetAttachmentId()
		if a.GetOwnerUserId() != user {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a forwarded attachment is owned by the forwarder")
		}
		if st.uploads[id] != nil || slices.ContainsFunc(copies[:i], func(b *pb.Attachment) bool { return b.GetAttachmentId() == id }) {
			return nil, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "attachment id %s is in use", schemas.Clip(id))
		}
		ev := cloneBase(base)
		ev.Body = &pb.Event_AttachmentUploaded{AttachmentUploaded: &pb.AttachmentUploaded{Attachment: a}}
		out = append(out, ev)
	}
	return out, nil
}

// sendAttachments moves a decided send's attachments out of the uploads
// and returns what its remembered entry keeps of them.
func sendAttachments(st *convState, atts []*pb.Attachment, d *delta) []sentAttachment {
	if len(atts) == 0 {
		return nil
	}
	out := make([]sentAttachment, 0, len(atts))
	for _, a := range atts {
		if st.uploads[a.GetAttachmentId()] != nil { // not a forward's copy
			delete(st.uploads, a.GetAttachmentId())
			d.uploads = append(d.uploads, a.GetAttachmentId())
		}
		sa, err := newSentAttachment(a.GetAttachmentId(), a.GetSha256(), a.GetThumbnail().GetSha256())
		if err != nil {
			panic(err) // uploads and forwarded copies are checked (schemas.CheckAttachment)
		}
		out = append(out, sa)
	}
	return out
}

// recalledAttachments are the AttachmentDeleted events of a recalled
// message's attachments (its sender is their owner).
func recalledAttachments(base *pb.Event, sender string, seq int64, atts []sentAttachment) []*pb.Event {
	out := make([]*pb.Event, 0, len(atts))
	for _, a := range atts {
		id, sum, thumbnail := a.text()
		ev := cloneBase(base)
		ev.Body = &pb.Event_AttachmentDeleted{AttachmentDeleted: &pb.AttachmentDeleted{AttachmentId: id, Sha256: sum,
			ThumbnailSha256: thumbnail, Reason: pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_RECALLED,
			RecalledSeq: seq, OwnerUserId: sender}}
		out = append(out, ev)
	}
	return out
}

package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// attachmentsView: the attachments of every conversation and three indexes
// of them (schemas/cql/0008_attachments.cql): attachments ((conversation_id),
// attachment_id), attachment_blobs ((sha256), conversation_id,
// attachment_id, role), owner_attachments ((owner_user_id), conversation_id,
// attachment_id) and attachment_uploads ((hour), conversation_id,
// attachment_id).
//
// Each column is written by one event only, with the same value on every
// replay: AttachmentUploaded the metadata, the MessageSent that sends it
// message_seq and sent_at, AttachmentDeleted the deletion. So every write is
// at the fixed timestamp attachmentTS and any order of application gives
// the same rows; none is ever deleted.
type attachmentsView struct {
	uploaded, sent, deleted     string
	blobUploaded, blobDeleted   string
	ownerUploaded, ownerDeleted string
	hourUploaded, hourSent      string
	hourDeleted                 string
	selectOne, selectBlob       string
	selectOwner, selectHour     string
	rows, blobRows, ownerRows   jsonRows
	hourRows                    jsonRows
}

// attachmentTS is the timestamp of every attachment cell.
const attachmentTS int64 = 1

const attachmentColumns = "attachment_id, owner_user_id, attachment, message_seq, sent_at, deleted_reason, deleted_at, uploaded_at"

func newAttachments(keyspace string) attachmentsView {
	return attachmentsView{
		uploaded: qualify(keyspace, `UPDATE ${keyspace}.attachments USING TIMESTAMP ?
			SET owner_user_id = ?, kind = ?, content_type = ?, name = ?, size = ?, sha256 = ?, thumbnail_sha256 = ?,
			    uploaded_at = ?, attachment = ?
			WHERE conversation_id = ? AND attachment_id = ?`),
		sent: qualify(keyspace, `UPDATE ${keyspace}.attachments USING TIMESTAMP ?
			SET message_seq = ?, sent_at = ? WHERE conversation_id = ? AND attachment_id = ?`),
		deleted: qualify(keyspace, `UPDATE ${keyspace}.attachments USING TIMESTAMP ?
			SET deleted_reason = ?, deleted_at = ? WHERE conversation_id = ? AND attachment_id = ?`),
		blobUploaded: qualify(keyspace, `UPDATE ${keyspace}.attachment_blobs USING TIMESTAMP ?
			SET size = ? WHERE sha256 = ? AND conversation_id = ? AND attachment_id = ? AND role = ?`),
		blobDeleted: qualify(keyspace, `UPDATE ${keyspace}.attachment_blobs USING TIMESTAMP ?
			SET deleted = true WHERE sha256 = ? AND conversation_id = ? AND attachment_id = ? AND role = ?`),
		ownerUploaded: qualify(keyspace, `UPDATE ${keyspace}.owner_attachments USING TIMESTAMP ?
			SET size = ? WHERE owner_user_id = ? AND conversation_id = ? AND attachment_id = ?`),
		ownerDeleted: qualify(keyspace, `UPDATE ${keyspace}.owner_attachments USING TIMESTAMP ?
			SET deleted = true WHERE owner_user_id = ? AND conversation_id = ? AND attachment_id = ?`),
		hourUploaded: qualify(keyspace, `UPDATE ${keyspace}.attachment_uploads USING TIMESTAMP ?
			SET owner_user_id = ? WHERE hour = ? AND conversation_id = ? AND attachment_id = ?`),
		hourSent: qualify(keyspace, `UPDATE ${keyspace}.attachment_uploads USING TIMESTAMP ?
			SET sent = true WHERE hour = ? AND conversation_id = ? AND attachment_id = ?`),
		hourDeleted: qualify(keyspace, `UPDATE ${keyspace}.attachment_uploads USING TIMESTAMP ?
			SET deleted = true WHERE hour = ? AND conversation_id = ? AND attachment_id = ?`),
		selectOne: qualify(keyspace, `SELECT `+attachmentColumns+` FROM ${keyspace}.attachments
			WHERE conversation_id = ? AND attachment_id = ?`),
		selectBlob:  qualify(keyspace, `SELECT deleted FROM ${keyspace}.attachment_blobs WHERE sha256 = ?`),
		selectOwner: qualify(keyspace, `SELECT size, deleted FROM ${keyspace}.owner_attachments WHERE owner_user_id = ?`),
		selectHour: qualify(keyspace, `SELECT conversation_id, attachment_id, owner_user_id, sent, deleted
			FROM ${keyspace}.attachment_uploads WHERE hour = ?`),
		rows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.attachments`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.attachments WHERE conversation_id = ?`), keyArity: 1,
		},
		blobRows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.attachment_blobs`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.attachment_blobs WHERE sha256 = ?`), keyArity: 1,
		},
		ownerRows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.owner_attachments`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.owner_attachments WHERE owner_user_id = ?`), keyArity: 1,
		},
		hourRows: jsonRows{
			all:   qualify(keyspace, `SELECT JSON * FROM ${keyspace}.attachment_uploads`),
			byKey: qualify(keyspace, `SELECT JSON * FROM ${keyspace}.attachment_uploads WHERE hour = ?`), keyArity: 1,
		},
	}
}

// UploadHour is the attachment_uploads partition of an upload at t.
func UploadHour(t time.Time) int64 { return t.Unix() / 3600 }

// AttachmentKindName is the kind column of an AttachmentKind.
func AttachmentKindName(k pb.AttachmentKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "ATTACHMENT_KIND_"))
}

func (v attachmentsView) plan(_ context.Context, _ *gocql.Session, ev *event) ([]stmt, error) {
	conv, ts := ev.GetConversationId(), attachmentTS
	part := "attachments\x00" + conv
	switch b := ev.GetBody().(type) {
	case *pb.Event_AttachmentUploaded:
		a := b.AttachmentUploaded.GetAttachment()
		id := a.GetAttachmentId()
		raw, err := proto.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("projector: encode an attachment: %w", err)
		}
		var thumb any
		if th := a.GetThumbnail(); th != nil {
			thumb = th.GetSha256()
		}
		hour := UploadHour(a.GetUploadedAt().AsTime())
		out := []stmt{
			upsert(v.uploaded, part, id, ts, a.GetOwnerUserId(), AttachmentKindName(a.GetKind()), a.GetContentType(), a.GetName(),
				a.GetSize(), a.GetSha256(), thumb, a.GetUploadedAt().AsTime(), raw, conv, id),
			upsert(v.blobUploaded, "attachment_blobs\x00"+a.GetSha256(), conv+"\x00"+id+"\x00file", ts, a.GetSize(), a.GetSha256(), conv, id, "file"),
			upsert(v.ownerUploaded, "owner_attachments\x00"+a.GetOwnerUserId(), conv+"\x00"+id, ts, a.GetSize()+a.GetThumbnail().GetSize(),
				a.GetOwnerUserId(), conv, id),
			upsert(v.hourUploaded, fmt.Sprintf("attachment_uploads\x00%d", hour), conv+"\x00"+id, ts, a.GetOwnerUserId(), hour, conv, id),
		}
		if th := a.GetThumbnail(); th != nil {
			out = append(out, upsert(v.blobUploaded, "attachment_blobs\x00"+th.GetSha256(), conv+"\x00"+id+"\x00thumbnail", ts,
				th.GetSize(), th.GetSha256(), conv, id, "thumbnail"))
		}
		return out, nil
	case *pb.Event_MessageSent:
		var out []stmt
		for _, a := range b.MessageSent.GetAttachments() {
			id, hour := a.GetAttachmentId(), UploadHour(a.GetUploadedAt().AsTime())
			out = append(out, upsert(v.sent, part, id, ts, ev.GetSeq(), ev.occurredAt(), conv, id),
				upsert(v.hourSent, fmt.Sprintf("attachment_uploads\x00%d", hour), conv+"\x00"+id, ts, hour, conv, id))
		}
		return out, nil
	case *pb.Event_AttachmentDeleted:
		d := b.AttachmentDeleted
		id := d.GetAttachmentId()
		reason := strings.ToLower(strings.TrimPrefix(d.GetReason().String(), "ATTACHMENT_DELETED_REASON_"))
		out := []stmt{
			upsert(v.deleted, part, id, ts, reason, ev.occurredAt(), conv, id),
			upsert(v.blobDeleted, "attachment_blobs\x00"+d.GetSha256(), conv+"\x00"+id+"\x00file", ts, d.GetSha256(), conv, id, "file"),
			upsert(v.ownerDeleted, "owner_attachments\x00"+d.GetOwnerUserId(), conv+"\x00"+id, ts, d.GetOwnerUserId(), conv, id),
		}
		if d.GetReason() == pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED && d.GetUploadedAt() != nil {
			hour := UploadHour(d.GetUploadedAt().AsTime())
			out = append(out, upsert(v.hourDeleted, fmt.Sprintf("attachment_uploads\x00%d", hour), conv+"\x00"+id, ts, hour, conv, id))
		}
		if th := d.GetThumbnailSha256(); th != "" {
			out = append(out, upsert(v.blobDeleted, "attachment_blobs\x00"+th, conv+"\x00"+id+"\x00thumbnail", ts, th, conv, id, "thumbnail"))
		}
		return out, nil
	}
	return nil, nil
}

// AttachmentRow is a row of the attachments view.
type AttachmentRow struct {
	ConversationID string
	Attachment     *pb.Attachment
	MessageSeq     int64 // 0: not sent
	SentAt         time.Time
	DeletedReason  string // "": served; "expired" or "recalled"
	DeletedAt      time.Time
	UploadedAt     time.Time
}

// Attachment reads one attachment of conv; found is false when there is
// none.
func (t *Tables) Attachment(ctx context.Context, conv, id string) (a AttachmentRow, found bool, err error) {
	var gotID, owner string
	var raw []byte
	err = t.s.Query(t.attachments.selectOne, conv, id).ScanContext(ctx, &gotID, &owner, &raw, &a.MessageSeq, &a.SentAt,
		&a.DeletedReason, &a.DeletedAt, &a.UploadedAt)
	if errors.Is(err, gocql.ErrNotFound) {
		return AttachmentRow{}, false, nil
	}
	if err != nil {
		return AttachmentRow{}, false, fmt.Errorf("projector: read attachments: %w", err)
	}
	if len(raw) == 0 {
		// Sent or deleted cells written before the upload's: the upload
		// is not projected yet.
		return AttachmentRow{}, false, nil
	}
	a.ConversationID = conv
	a.Attachment = &pb.Attachment{}
	if err := proto.Unmarshal(raw, a.Attachment); err != nil {
		return AttachmentRow{}, false, fmt.Errorf("projector: attachment %s/%s does not decode: %w", conv, id, err)
	}
	return a, true, nil
}

// BlobLive reports whether an attachment not deleted holds the blob of
// sha256 (as its bytes or its thumbnail).
func (t *Tables) BlobLive(ctx context.Context, sha256 string) (bool, error) {
	iter := t.s.Query(t.attachments.selectBlob, sha256).IterContext(ctx)
	var deleted bool
	live := false
	for iter.Scan(&deleted) {
		if !deleted {
			live = true
		}
	}
	if err := iter.Close(); err != nil {
		return false, fmt.Errorf("projector: read attachment_blobs: %w", err)
	}
	return live, nil
}

// OwnerUsage is the bytes (files and thumbnails) and the number of the
// attachments of owner not deleted.
func (t *Tables) OwnerUsage(ctx context.Context, owner string) (bytes int64, n int, err error) {
	iter := t.s.Query(t.attachments.selectOwner, owner).IterContext(ctx)
	var size int64
	var deleted bool
	for iter.Scan(&size, &deleted) {
		if !deleted {
			bytes += size
			n++
		}
	}
	if err := iter.Close(); err != nil {
		return 0, 0, fmt.Errorf("projector: read owner_attachments: %w", err)
	}
	return bytes, n, nil
}

// PendingUpload is an upload neither sent nor deleted, as the
// attachment_uploads view lists it.
type PendingUpload struct {
	ConversationID, AttachmentID, OwnerUserID string
}

// PendingUploads lists the uploads of hour (UploadHour) neither sent nor
// deleted.
func (t *Tables) PendingUploads(ctx context.Context, hour int64) ([]PendingUpload, error) {
	iter := t.s.Query(t.attachments.selectHour, hour).IterContext(ctx)
	var out []PendingUpload
	var p PendingUpload
	var sent, deleted bool
	for iter.Scan(&p.ConversationID, &p.AttachmentID, &p.OwnerUserID, &sent, &deleted) {
		if !sent && !deleted {
			out = append(out, p)
		}
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("projector: read attachment_uploads: %w", err)
	}
	return out, nil
}

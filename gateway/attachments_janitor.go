package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The janitor keeps the attachments' lifecycle moving (README.md,
// "Attachment lifecycle"). Every gateway runs one unless Janitor is off;
// all it does is idempotent, so several at once only repeat each other.
//
//   - Expiry: every JanitorInterval it reads the attachment_uploads view for
//     the uploads neither sent nor deleted that are older than UploadTTL,
//     and appends an ExpireAttachment for each. The decider is the judge:
//     it deletes an upload (AttachmentDeleted, EXPIRED) only if it is still
//     unsent and older than its own TTL, so a lagging view or a second
//     janitor costs a no-op.
//   - Resumable uploads no PATCH continued for ResumeTTL are removed from
//     the staging directory.
//   - Collection: every CollectInterval it lists the blob store and deletes
//     each blob that no attachment not deleted holds (attachment_blobs) and
//     that nobody wrote or touched for CollectGrace. The grace covers an
//     upload between its Put (or Touch, for bytes stored before) and the
//     projection of its AttachmentUploaded, and the bytes a gateway stored
//     before it crashed and never recorded, which no view names.

// janitorDevice is the device_id of the janitor's commands.
const janitorDevice = "parley-janitor"

// expiryLookback is how far before the TTL's edge the later expiry passes
// read; the first pass of a process reads firstLookback, so uploads left
// while no janitor ran are found.
const (
	expiryLookback = 48 * time.Hour
	firstLookback  = 30 * 24 * time.Hour
)

// janitorViews are the reads the janitor makes.
type janitorViews interface {
	pendingUploads(ctx context.Context, hour int64) ([]projector.PendingUpload, error)
	blobLive(ctx context.Context, sha string) (bool, error)
}

func (v *cassandraViews) pendingUploads(ctx context.Context, hour int64) ([]projector.PendingUpload, error) {
	return v.tables.PendingUploads(ctx, hour)
}

func (v *cassandraViews) blobLive(ctx context.Context, sha string) (bool, error) {
	return v.tables.BlobLive(ctx, sha)
}

// runJanitor runs the janitor until ctx ends.
func (a *attachments) runJanitor(ctx context.Context, v janitorViews) {
	if a.cfg.JanitorOff {
		return
	}
	tick := time.NewTicker(a.cfg.JanitorInterval)
	defer tick.Stop()
	lookback := firstLookback
	lastCollect := time.Time{}
	for {
		if n, err := a.expire(ctx, v, time.Now(), lookback); err != nil {
			a.log.Warn("attachment expiry pass failed", "err", err)
		} else {
			lookback = expiryLookback
			if n > 0 {
				a.log.Info("asked to expire unsent attachments", "count", n)
			}
		}
		if n, err := a.tus.sweep(a.cfg.ResumeTTL); err != nil {
			a.log.Warn("resumable upload sweep failed", "err", err)
		} else if n > 0 {
			a.log.Info("removed abandoned resumable uploads", "count", n)
		}
		if time.Since(lastCollect) >= a.cfg.CollectInterval {
			lastCollect = time.Now()
			if st, err := a.collect(ctx, v, time.Now()); err != nil {
				a.log.Warn("blob collection failed", "err", err, "deleted", st.deleted)
			} else if st.deleted > 0 {
				a.log.Info("collected unreferenced blobs", "deleted", st.deleted, "bytes", st.bytes, "kept", st.kept)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expire appends an ExpireAttachment for each upload the view lists as
// pending in the hours from now-UploadTTL-lookback to now-UploadTTL, and
// returns how many it asked for.
func (a *attachments) expire(ctx context.Context, v janitorViews, now time.Time, lookback time.Duration) (int, error) {
	edge := now.Add(-a.cfg.UploadTTL)
	asked := 0
	for h := projector.UploadHour(edge.Add(-lookback)); h <= projector.UploadHour(edge); h++ {
		pending, err := v.pendingUploads(ctx, h)
		if err != nil {
			return asked, err
		}
		for _, p := range pending {
			cmd := &pb.Command{CommandId: newID(now), UserId: p.OwnerUserID, DeviceId: janitorDevice, ConversationId: p.ConversationID,
				ReceivedAt: timestamppb.New(now),
				Body:       &pb.Command_ExpireAttachment{ExpireAttachment: &pb.ExpireAttachment{AttachmentId: p.AttachmentID}}}
			value, err := proto.Marshal(cmd)
			if err != nil {
				return asked, err
			}
			a.srv.appender.Append(ctx, ingest.Record{Key: p.ConversationID, Type: schemas.CommandType(cmd), Value: value},
				func(_ ingest.Position, err error) {
					if err != nil {
						a.log.Warn("could not append an attachment expiry; the next pass asks again", "err", err)
					}
				})
			asked++
		}
	}
	return asked, nil
}

// collected counts what one collection did.
type collected struct {
	deleted, kept int
	bytes         int64
}

// collect deletes the blobs no live attachment holds and untouched for
// CollectGrace. A blob is checked twice, before and after the view is
// read, so an upload that touched it meanwhile keeps it (and an upload
// that touches it after the second check puts it back: ensureStored).
func (a *attachments) collect(ctx context.Context, v janitorViews, now time.Time) (collected, error) {
	var st collected
	cutoff := now.Add(-a.cfg.CollectGrace)
	prefix := a.cfg.Namespace + "/sha256/"
	var stale []string
	err := a.cfg.Store.List(ctx, prefix, func(key string, info blob.Info) error {
		if info.ModTime.Before(cutoff) {
			stale = append(stale, key)
		} else {
			st.kept++
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("list the blob store: %w", err)
	}
	for _, key := range stale {
		sha := key[strings.LastIndexByte(key, '/')+1:]
		if _, err := blob.Key(a.cfg.Namespace, sha); err != nil {
			continue // not a blob of Parley's
		}
		live, err := v.blobLive(ctx, sha)
		if err != nil {
			return st, err
		}
		if live {
			st.kept++
			continue
		}
		info, err := a.cfg.Store.Stat(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return st, err
		}
		if !info.ModTime.Before(cutoff) {
			st.kept++
			continue
		}
		if err := a.cfg.Store.Delete(ctx, key); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return st, err
		}
		a.srv.metrics.blobsCollected.Inc()
		st.deleted++
		st.bytes += info.Size
	}
	a.srv.metrics.collections.Inc()
	return st, nil
}

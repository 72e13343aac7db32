package ingest

import (
	"unicode/utf8"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The audit of a service's reads (gateway/README.md, "Admin API"): the
// admin API appends a RecordServiceRead to the stream it reads before it
// answers, so every answered call is an event of the log.

// maxReadRouteBytes bounds RecordServiceRead.route.
const maxReadRouteBytes = 200

// recordRead decides a RecordServiceRead: the audit of a service's read of
// the stream, version 0 (versioned leaves it out), on any stream; a user
// stream takes its own user's only.
func recordRead(st *convState, cmd *pb.Command, r *pb.RecordServiceRead, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if cmd.GetServicePrincipal() == "" {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only a service records its reads (the admin API)")
	}
	if conv := cmd.GetConversationId(); schemas.IsUserStreamID(conv) && conv != schemas.UserStreamID(cmd.GetUserId()) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "a user stream takes its own user's commands only")
	}
	if r.GetRoute() == "" || len(r.GetRoute()) > maxReadRouteBytes || !utf8.ValidString(r.GetRoute()) {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "route must be UTF-8 of 1 to %d bytes", maxReadRouteBytes)
	}
	ev := cloneBase(base)
	ev.Body = &pb.Event_ServiceReadRecorded{ServiceReadRecorded: &pb.ServiceReadRecorded{Route: r.GetRoute()}}
	return st, []*pb.Event{ev}, d, nil
}

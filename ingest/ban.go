package ingest

import (
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Bans (README.md, "Bans"). A ban is decided on the banned user's own
// stream, like the user's other settings, and written in the same
// transaction to the compacted bans topic (key = user id, the UserBanned
// event; an unban, the tombstone). Commands are keyed by conversation, so
// the deciders of the other partitions learn the ban from that topic: each
// decider follows it (banFollower) and refuses every command of a user
// whose ban it holds, before its own rules.

// maxBanReasonBytes bounds BanUser.reason.
const maxBanReasonBytes = 512

// banState is a user stream's standing ban.
type banState struct {
	until  int64 // Unix ms; 0: for good
	reason string
}

// decideBan decides a BanUser or UnbanUser on the stream of Command.user_id
// (checkStream made sure of the key).
func decideBan(st *convState, cmd *pb.Command, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if cmd.GetServicePrincipal() == "" {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only a service bans or unbans a user (the admin API), not a device")
	}
	ev := cloneBase(base)
	switch b := cmd.GetBody().(type) {
	case *pb.Command_BanUser:
		reason := b.BanUser.GetReason()
		if len(reason) > maxBanReasonBytes || !utf8.ValidString(reason) {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "reason must be UTF-8 of at most %d bytes", maxBanReasonBytes)
		}
		var until int64
		if u := b.BanUser.GetUntil(); u != nil {
			if u.CheckValid() != nil {
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "until is not a valid time")
			}
			if !u.AsTime().After(received) {
				return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "until %s is not after the ban (%s)",
					u.AsTime().UTC().Format(time.RFC3339), received.UTC().Format(time.RFC3339))
			}
			until = u.AsTime().UnixMilli()
		}
		if st != nil && st.ban != nil && st.ban.until == until && st.ban.reason == reason {
			return st, nil, d, nil // this very ban stands: a retry changes nothing
		}
		st = st.orNew()
		st.ban = &banState{until: until, reason: reason}
		banned := &pb.UserBanned{Reason: reason}
		if until != 0 {
			banned.Until = timestamppb.New(time.UnixMilli(until))
		}
		ev.Body = &pb.Event_UserBanned{UserBanned: banned}
	case *pb.Command_UnbanUser:
		if st == nil || st.ban == nil {
			return st, nil, d, nil // not banned: nothing to lift
		}
		st.ban = nil
		ev.Body = &pb.Event_UserUnbanned{UserUnbanned: &pb.UserUnbanned{}}
	}
	d.ban = true
	return st, []*pb.Event{ev}, d, nil
}

// Ban is one standing ban, as the bans topic holds it.
type Ban struct {
	// Until is when it ends; zero: never.
	Until time.Time
	// Reason and By (the service principal that banned) are the
	// UserBanned's.
	Reason, By string
}

// Holds reports whether the ban stands at t.
func (b Ban) Holds(t time.Time) bool { return b.Until.IsZero() || t.Before(b.Until) }

// BanOf is the ban a UserBanned event records (ok false for any other
// event).
func BanOf(ev *pb.Event) (user string, b Ban, ok bool) {
	ub := ev.GetUserBanned()
	if ub == nil {
		return "", Ban{}, false
	}
	b = Ban{Reason: ub.GetReason(), By: ev.GetActorService()}
	if ub.GetUntil() != nil {
		b.Until = ub.GetUntil().AsTime()
	}
	return ev.GetActorUserId(), b, true
}

// exemptFromBan reports whether cmd is decided even when its user is
// banned: the ban's own commands (an unban must pass), and the steps no
// device asks for now — an attachment's expiry (the janitor's) and the
// second step of a block decided before the ban (the first step's events
// are in the log already; refusing the second would leave half a block).
func exemptFromBan(cmd *pb.Command) bool {
	switch cmd.GetBody().(type) {
	case *pb.Command_BanUser, *pb.Command_UnbanUser, *pb.Command_ExpireAttachment, *pb.Command_DirectBlock,
		*pb.Command_RevokeDevice, *pb.Command_RestoreDevice:
		return true
	}
	return false
}

// refuseBanned is the decision of a command whose user is banned at
// received: one CommandRejected USER_BANNED to the sender, as decide
// answers any refusal (nil when the command is exempt or the ban does
// not hold).
func refuseBanned(cmd *pb.Command, ban Ban, held bool, now, received time.Time) []*pb.Event {
	if !held || exemptFromBan(cmd) || !ban.Holds(received) {
		return nil
	}
	msg := cmd.GetUserId() + " is banned"
	if !ban.Until.IsZero() {
		msg += " until " + ban.Until.UTC().Format(time.RFC3339)
	}
	if ban.Reason != "" {
		msg += ": " + ban.Reason
	}
	return []*pb.Event{rejected(baseOf(cmd, now), cmd, &rejection{pb.ErrorCode_ERROR_CODE_USER_BANNED, msg})}
}

// banRecord is the bans topic's record of a ban event, whose encoding is
// v: the event itself for a UserBanned, the tombstone (nil) for a
// UserUnbanned, keyed by the user; ok false for any other event.
func banRecord(ev *pb.Event, v []byte) (key string, value []byte, ok bool) {
	switch schemas.EventType(ev) {
	case schemas.TypeUserBanned:
		return ev.GetActorUserId(), v, true
	case schemas.TypeUserUnbanned:
		return ev.GetActorUserId(), nil, true
	}
	return "", nil, false
}

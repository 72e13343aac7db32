package ingest

import (
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Device revocation (README.md, "Device revocation"), a ban of one device:
// decided on the user's stream, and written in the same transaction to the
// bans topic under the key "<user> <device>" (ids have no spaces, so no
// user id is such a key) — the DeviceRevoked event; a restore, the
// tombstone. Every decider and gateway follows that topic (BanFollower) and
// refuses every command of a revoked device, before its own rules.

// decideRevoke decides a RevokeDevice or RestoreDevice on the stream of
// Command.user_id (checkStream made sure of the key).
func decideRevoke(st *convState, cmd *pb.Command, base *pb.Event) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if cmd.GetServicePrincipal() == "" {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "only a service revokes or restores a device (the admin API), not a device")
	}
	ev := cloneBase(base)
	switch b := cmd.GetBody().(type) {
	case *pb.Command_RevokeDevice:
		dev, reason := b.RevokeDevice.GetDeviceId(), b.RevokeDevice.GetReason()
		if err := schemas.CheckID("device_id", dev); err != nil {
			return st, nil, d, idRejection(err)
		}
		if len(reason) > maxBanReasonBytes || !utf8.ValidString(reason) {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "reason must be UTF-8 of at most %d bytes", maxBanReasonBytes)
		}
		if r, ok := st.revokedDevice(dev); ok && r == reason {
			return st, nil, d, nil // this very revocation stands: a retry changes nothing
		}
		st = st.orNew()
		if st.revoked == nil {
			st.revoked = map[string]string{}
		}
		st.revoked[dev] = reason
		d.revoked = append(d.revoked, dev)
		ev.Body = &pb.Event_DeviceRevoked{DeviceRevoked: &pb.DeviceRevoked{DeviceId: dev, Reason: reason}}
	case *pb.Command_RestoreDevice:
		dev := b.RestoreDevice.GetDeviceId()
		if err := schemas.CheckID("device_id", dev); err != nil {
			return st, nil, d, idRejection(err)
		}
		if _, ok := st.revokedDevice(dev); !ok {
			return st, nil, d, nil // not revoked: nothing to lift
		}
		delete(st.revoked, dev)
		d.revoked = append(d.revoked, dev)
		ev.Body = &pb.Event_DeviceRestored{DeviceRestored: &pb.DeviceRestored{DeviceId: dev}}
	}
	return st, []*pb.Event{ev}, d, nil
}

// revokedDevice is the reason device of the stream's user was revoked for,
// ok false when it is not revoked.
func (st *convState) revokedDevice(device string) (reason string, ok bool) {
	if st == nil {
		return "", false
	}
	reason, ok = st.revoked[device]
	return reason, ok
}

// Revocation is one revoked device, as the bans topic holds it.
type Revocation struct {
	// Reason and By (the service principal that revoked) are the
	// DeviceRevoked's.
	Reason, By string
}

// RevocationKey is the bans topic's key of user's device.
func RevocationKey(user, device string) string { return user + " " + device }

// splitRevocationKey is RevocationKey's inverse; ok false for a user's ban
// key.
func splitRevocationKey(key string) (user, device string, ok bool) {
	return strings.Cut(key, " ")
}

// RevocationOf is the revocation a DeviceRevoked event records (ok false
// for any other event).
func RevocationOf(ev *pb.Event) (user, device string, r Revocation, ok bool) {
	dr := ev.GetDeviceRevoked()
	if dr == nil {
		return "", "", Revocation{}, false
	}
	return ev.GetActorUserId(), dr.GetDeviceId(), Revocation{Reason: dr.GetReason(), By: ev.GetActorService()}, true
}

// exemptFromRevocation reports whether cmd is decided even when its
// device is revoked: the steps no device asks for now (as for bans), and
// the service's own commands (the admin API's, which name no device of
// the user).
func exemptFromRevocation(cmd *pb.Command) bool {
	if cmd.GetServicePrincipal() != "" {
		return true
	}
	switch cmd.GetBody().(type) {
	case *pb.Command_ExpireAttachment, *pb.Command_DirectBlock:
		return true
	}
	return false
}

// refuseRevoked is the decision of a command whose device is revoked: one
// CommandRejected DEVICE_REVOKED to the sender (nil when it is exempt or
// not revoked).
func refuseRevoked(cmd *pb.Command, r Revocation, revoked bool, base *pb.Event) []*pb.Event {
	if !revoked || exemptFromRevocation(cmd) {
		return nil
	}
	msg := "device " + cmd.GetDeviceId() + " of " + cmd.GetUserId() + " is revoked"
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	return []*pb.Event{rejected(base, cmd, &rejection{pb.ErrorCode_ERROR_CODE_DEVICE_REVOKED, msg})}
}

// revocationRecord is the bans topic's record of a revocation event, whose
// encoding is v: the event itself for a DeviceRevoked, the tombstone for a
// DeviceRestored; ok false for any other event.
func revocationRecord(ev *pb.Event, v []byte) (key string, value []byte, ok bool) {
	switch b := ev.GetBody().(type) {
	case *pb.Event_DeviceRevoked:
		return RevocationKey(ev.GetActorUserId(), b.DeviceRevoked.GetDeviceId()), v, true
	case *pb.Event_DeviceRestored:
		return RevocationKey(ev.GetActorUserId(), b.DeviceRestored.GetDeviceId()), nil, true
	}
	return "", nil, false
}

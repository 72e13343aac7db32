package ingest

import (
	"errors"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// decidePush decides a RegisterPushTarget or an UnregisterPushTarget on
// the sender's user stream (st is nil until its first accepted command):
// the stream keeps one target per device, so a registration replaces the
// device's target, and the decider, not a view, knows what every device
// has when it decides.
func decidePush(l Limits, st *convState, cmd *pb.Command, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if r := cmd.GetRegisterPush(); r != nil {
		return registerPush(l, st, cmd, r.GetTarget(), base, received)
	}
	u := cmd.GetUnregisterPush()
	dev := u.GetDeviceId()
	if err := schemas.CheckID("device_id", dev); err != nil {
		return st, nil, d, idRejection(err)
	}
	switch u.GetReason() {
	case pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED:
		if dev != cmd.GetDeviceId() {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "a device unregisters its own push target only (%s is not %s)",
				schemas.Clip(dev), schemas.Clip(cmd.GetDeviceId()))
		}
		if u.GetToken() != "" {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "token names the refused token of an INVALID_TOKEN only")
		}
	case pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN:
		// The notifier's: the decider cannot tell who appended a command
		// (README.md, "Trust boundary"); the gateway never appends it for
		// a device.
		if u.GetToken() == "" {
			return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "an INVALID_TOKEN names the token the provider refused")
		}
	default:
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "reason must be LOGOUT, INVALID_TOKEN or REPLACED")
	}
	t := st.pushTarget(dev)
	if t == nil {
		return st, nil, d, nil // nothing registered: nothing to remove
	}
	refused := &pb.PushTarget{Provider: t.GetProvider(), Token: u.GetToken(), Endpoint: u.GetToken()}
	if u.GetReason() == pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN && schemas.PushAddress(t) != schemas.PushAddress(refused) {
		return st, nil, d, nil // the device registered another token since: that one stays
	}
	ev := unregisterPush(st, base, dev, u.GetReason(), &d)
	return st, []*pb.Event{ev}, d, nil
}

// registerPush decides a RegisterPushTarget: the device's own, of its
// provider's form; the same target again changes nothing; the same
// address on another device of the user is taken from it (REPLACED).
func registerPush(l Limits, st *convState, cmd *pb.Command, t *pb.PushTarget, base *pb.Event, received time.Time) (*convState, []*pb.Event, delta, *rejection) {
	var d delta
	if err := schemas.CheckPushTarget(t); err != nil {
		var ie *schemas.IDError
		if errors.As(err, &ie) {
			return st, nil, d, idRejection(err)
		}
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "%v", err)
	}
	dev := t.GetDeviceId()
	if dev != cmd.GetDeviceId() {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "a device registers its own push target only (%s is not %s)",
			schemas.Clip(dev), schemas.Clip(cmd.GetDeviceId()))
	}
	t = proto.Clone(t).(*pb.PushTarget)
	t.RegisteredAt = timestamppb.New(received.Truncate(time.Millisecond))
	prev := st.pushTarget(dev)
	if prev != nil && samePushTarget(prev, t) {
		return st, nil, d, nil // registered already: a retry, or an app start
	}
	var replaced []string
	for _, other := range slices.Sorted(maps.Keys(st.pushTargets())) {
		o := st.push[other]
		if other != dev && o.GetProvider() == t.GetProvider() && schemas.PushAddress(o) == schemas.PushAddress(t) {
			replaced = append(replaced, other)
		}
	}
	if prev == nil && len(st.pushTargets())-len(replaced) >= l.MaxPushTargets {
		return st, nil, d, reject(pb.ErrorCode_ERROR_CODE_LIMIT_REACHED, "%s has %d push targets, the limit; unregister a device first",
			cmd.GetUserId(), len(st.pushTargets()))
	}
	st = st.orNew()
	var evs []*pb.Event
	for _, other := range replaced {
		evs = append(evs, unregisterPush(st, base, other, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED, &d))
	}
	if st.push == nil {
		st.push = map[string]*pb.PushTarget{}
	}
	st.push[dev] = t
	d.push = append(d.push, dev)
	ev := cloneBase(base)
	ev.Body = &pb.Event_PushTargetRegistered{PushTargetRegistered: &pb.PushTargetRegistered{Target: t}}
	return st, append(evs, ev), d, nil
}

// unregisterPush removes dev's target and returns its event.
func unregisterPush(st *convState, base *pb.Event, dev string, reason pb.PushUnregisterReason, d *delta) *pb.Event {
	t := st.push[dev]
	delete(st.push, dev)
	d.push = append(d.push, dev)
	ev := cloneBase(base)
	ev.Body = &pb.Event_PushTargetUnregistered{PushTargetUnregistered: &pb.PushTargetUnregistered{DeviceId: dev,
		Provider: t.GetProvider(), Reason: reason}}
	return ev
}

// samePushTarget reports whether two targets are the same registration,
// whenever each was made.
func samePushTarget(a, b *pb.PushTarget) bool {
	a, b = proto.Clone(a).(*pb.PushTarget), proto.Clone(b).(*pb.PushTarget)
	a.RegisteredAt, b.RegisteredAt = nil, nil
	return proto.Equal(a, b)
}

func (s *convState) pushTarget(dev string) *pb.PushTarget {
	if s == nil {
		return nil
	}
	return s.push[dev]
}

func (s *convState) pushTargets() map[string]*pb.PushTarget {
	if s == nil {
		return nil
	}
	return s.push
}

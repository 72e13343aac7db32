package replay

import (
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The log's rules for push targets (events of a user stream; logCheck
// calls pushEvent after the stream's own checks: actor, dense version):
//
//   - a PushTargetRegistered carries a target of its provider's form
//     (schemas.CheckPushTarget) with a registered_at, registered by the
//     device it is for (actor_device_id = target.device_id), and is not the
//     very target the device has (a registration again yields no event);
//   - at most one device of a user holds one address (provider and token,
//     or endpoint): a registration of an address another device holds
//     follows, in the same command, that device's PushTargetUnregistered
//     (REPLACED);
//   - a PushTargetUnregistered names a device with a target, of the
//     provider it has, with a known reason; LOGOUT is by the device itself.
//
// Besides the stream's other events, one command decides into one
// PushTargetRegistered after any number of PushTargetUnregistered
// (REPLACED) (pushReplaced).

// pushModel is what the log says about one user's push targets: device →
// its target.
type pushModel struct {
	targets map[string]*pb.PushTarget
}

// pushEvent checks one push event of a user stream.
func (c *logCheck) pushEvent(at where, u *userModel, ev *pb.Event) {
	m := &u.push
	if m.targets == nil {
		m.targets = map[string]*pb.PushTarget{}
	}
	switch b := ev.GetBody().(type) {
	case *pb.Event_PushTargetRegistered:
		t := b.PushTargetRegistered.GetTarget()
		if err := schemas.CheckPushTarget(t); err != nil {
			c.problem("%s: %v", at, err)
			return
		}
		dev := t.GetDeviceId()
		if t.GetRegisteredAt() == nil {
			c.problem("%s: the target of %s has no registered_at", at, dev)
		}
		if ev.GetActorDeviceId() != dev {
			c.problem("%s: device %s registers a push target for device %s (a device registers for itself only)", at, ev.GetActorDeviceId(), dev)
		}
		if prev := m.targets[dev]; prev != nil && samePush(prev, t) {
			c.problem("%s: %s has this very target already (a registration again yields no event)", at, dev)
		}
		for other, o := range m.targets {
			if other != dev && o.GetProvider() == t.GetProvider() && schemas.PushAddress(o) == schemas.PushAddress(t) {
				c.problem("%s: %s registers the address %s holds (it must be REPLACED first)", at, dev, other)
			}
		}
		m.targets[dev] = t
	case *pb.Event_PushTargetUnregistered:
		x := b.PushTargetUnregistered
		dev := x.GetDeviceId()
		t := m.targets[dev]
		switch {
		case t == nil:
			c.problem("%s: %s has no push target", at, dev)
		case t.GetProvider() != x.GetProvider():
			c.problem("%s: %s's target is %v, not %v", at, dev, t.GetProvider(), x.GetProvider())
		}
		switch x.GetReason() {
		case pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT:
			if ev.GetActorDeviceId() != dev {
				c.problem("%s: device %s logs out device %s (a device logs out itself only)", at, ev.GetActorDeviceId(), dev)
			}
		case pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_INVALID_TOKEN, pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_REPLACED:
		default:
			c.problem("%s: unknown reason %v", at, x.GetReason())
		}
		delete(m.targets, dev)
	}
}

// samePush reports whether two targets are the same registration,
// registered_at aside.
func samePush(a, b *pb.PushTarget) bool {
	x, y := a, b
	return x.GetDeviceId() == y.GetDeviceId() && x.GetProvider() == y.GetProvider() && x.GetToken() == y.GetToken() &&
		x.GetApnsTopic() == y.GetApnsTopic() && x.GetApnsEnvironment() == y.GetApnsEnvironment() && x.GetEndpoint() == y.GetEndpoint() &&
		x.GetP256Dh() == y.GetP256Dh() && x.GetAuth() == y.GetAuth() && (x.Locale == nil) == (y.Locale == nil) && x.GetLocale() == y.GetLocale()
}

// pushReplaced says whether evs, the outcomes of one command, are a
// registration that took its address from other devices: PushTargetUnregistered
// events, then one PushTargetRegistered, all in one user stream.
func pushReplaced(evs []where) bool {
	if len(evs) < 2 || evs[len(evs)-1].typ != schemas.TypePushTargetRegistered {
		return false
	}
	for _, w := range evs[:len(evs)-1] {
		if w.typ != schemas.TypePushTargetUnregistered || w.conv != evs[0].conv {
			return false
		}
	}
	return evs[len(evs)-1].conv == evs[0].conv
}

package gateway

import (
	"slices"
	"sync"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// hub is the registry of this gateway's sessions, by user and device. There
// is at most one session per (user, device): registering a second one hands
// back the first so the caller can close it.
type hub struct {
	mu    sync.RWMutex
	users map[string]map[string]*session // user → device → session
}

func newHub() *hub { return &hub{users: map[string]map[string]*session{}} }

// register makes s the session of its (user, device) and returns the one it
// replaces, if any.
func (h *hub) register(s *session) (old *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	devs := h.users[s.user]
	if devs == nil {
		devs = map[string]*session{}
		h.users[s.user] = devs
	}
	old = devs[s.device]
	devs[s.device] = s
	return old
}

// unregister removes s, unless it has been replaced already.
func (h *hub) unregister(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	devs := h.users[s.user]
	if devs[s.device] != s {
		return
	}
	delete(devs, s.device)
	if len(devs) == 0 {
		delete(h.users, s.user)
	}
}

// device returns the session of (user, device), or nil.
func (h *hub) device(user, device string) *session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.users[user][device]
}

// appendUser appends every session of user to dst.
func (h *hub) appendUser(dst []*session, user string) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.users[user] {
		dst = append(dst, s)
	}
	return dst
}

// empty says whether no session is open.
func (h *hub) empty() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users) == 0
}

// all returns every session.
func (h *hub) all() []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*session
	for _, devs := range h.users {
		for _, s := range devs {
			out = append(out, s)
		}
	}
	return out
}

// route says who gets an event live: every local session of each of Users,
// or, when Device is set, only the session of (Users[0], Device). The users
// in Withheld get it as a Withheld event (withheldEvent).
type route struct {
	Users    []string
	Device   string
	Withheld map[string]bool
}

// recipients is the routing decision for one event, given members: who
// gets it among the conversation's members (after the event's own change,
// plus the user a MemberRemoved removes), or nil when the membership is
// unknown.
//
//   - CommandRejected and MessageDeduplicated answer one device's command:
//     only that device gets them.
//   - ReadUpTo and DeliveredUpTo go to every member while the conversation
//     has at most receiptFanoutMax members, else only to the actor's own
//     devices (whose unread must still drop live).
//   - JoinRequestDeclined also goes to the requester, who is no member
//     (JoinRequested reaches it as its actor).
//   - Everything else goes to every member's devices, the actor's included.
//   - Unknown membership: the actor's devices only, as a best effort.
func recipients(ev *pb.Event, members []string, receiptFanoutMax int) route {
	actor := ev.GetActorUserId()
	switch schemas.EventType(ev) {
	case schemas.TypeCommandRejected, schemas.TypeMessageDeduplicated:
		// Answers to one device's command: its other devices never asked.
		return route{Users: []string{actor}, Device: ev.GetActorDeviceId()}
	case schemas.TypeServiceReadRecorded:
		return route{} // an audit record: no device
	case schemas.TypeAttachmentUploaded:
		// An upload is its uploader's until sent.
		return route{Users: []string{actor}}
	case schemas.TypeAttachmentDeleted:
		return route{Users: []string{ev.GetAttachmentDeleted().GetOwnerUserId()}}
	case schemas.TypeReadUpTo, schemas.TypeDeliveredUpTo:
		if len(members) > receiptFanoutMax {
			return route{Users: []string{actor}}
		}
	}
	if d := ev.GetJoinRequestDeclined(); d != nil && !slices.Contains(members, d.GetUserId()) {
		// The requester is no member: it learns the answer too.
		members = append(slices.Clip(members), d.GetUserId())
	}
	if members == nil {
		return route{Users: []string{actor}}
	}
	if !slices.Contains(members, actor) && actor != "" {
		// The actor left or was removed by this very event, or the cache
		// lags: its own devices still learn the outcome of its command.
		members = append(slices.Clip(members), actor)
	}
	return route{Users: members}
}

// sessionsFor resolves r against the hub.
func (h *hub) sessionsFor(r route) []*session {
	if r.Device != "" {
		if len(r.Users) == 0 {
			return nil
		}
		if s := h.device(r.Users[0], r.Device); s != nil {
			return []*session{s}
		}
		return nil
	}
	var out []*session
	for _, u := range r.Users {
		out = h.appendUser(out, u)
	}
	return out
}

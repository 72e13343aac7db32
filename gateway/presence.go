package gateway

import (
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// presenceTable is one gateway's picture of every user's presence, built
// only from the signals topic (its own records included), and the sessions
// watching each user. Nothing of it is stored: an entry holds until its
// gateway's record expires, so a gateway that crashes stops refreshing and
// its devices turn offline one TTL later everywhere, and a gateway that
// starts rebuilds the table by reading the last TTL of the topic.
type presenceTable struct {
	mu       sync.Mutex
	users    map[string]*userPresence
	watchers map[string]map[*session]struct{} // watched user → sessions
	watching map[*session][]string            // session → users it watches
	// forget drops the last-seen time of a user offline for longer.
	forget time.Duration
	// blocks are the blocks this gateway's events consumer read lately
	// (blocker → blocked → when read): a watch decided from a blocks view
	// that has not caught up with them yet still honours them.
	blocks map[string]map[string]time.Time
	// deliver queues a change for its watchers. It runs under mu (it must
	// not block), so a watcher's answer and the changes after it are
	// queued in the order they happened.
	deliver func(presenceChange)
}

type userPresence struct {
	devices  map[deviceKey]deviceEntry
	lastSeen time.Time
}

// deviceKey names a device on one gateway instance: the same device on two
// gateways (a reconnect racing the old session's end) is two entries, and
// the old gateway's OFFLINE never removes the new one.
type deviceKey struct{ gateway, device string }

type deviceEntry struct {
	state   pb.PresenceState
	expires time.Time
}

// presenceChange is a user's new aggregated presence, for their watchers.
type presenceChange struct {
	presence *pb.UserPresence
	watchers []*session
}

func newPresenceTable(forget time.Duration, deliver func(presenceChange)) *presenceTable {
	return &presenceTable{users: map[string]*userPresence{}, watchers: map[string]map[*session]struct{}{},
		watching: map[*session][]string{}, blocks: map[string]map[string]time.Time{}, forget: forget, deliver: deliver}
}

const (
	// blockMemory is how long a block read from the events stays in the
	// table's memory: far longer than the projector takes to write the
	// blocks row.
	blockMemory = 10 * time.Minute
	// maxBlockMemory bounds the blockers remembered (beyond it the memory
	// starts again; the blocks view answers for what it forgets).
	maxBlockMemory = 100_000
)

// block records that blocker blocked blocked (a UserBlocked read at time
// at) and ends every watch of blocked's sessions on blocker: each is sent
// blocker OFFLINE without lastSeen, as for a user it may not watch.
func (t *presenceTable) block(blocker, blocked string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.blocks) >= maxBlockMemory {
		clear(t.blocks)
	}
	m := t.blocks[blocker]
	if m == nil {
		m = map[string]time.Time{}
		t.blocks[blocker] = m
	}
	m[blocked] = at
	var ended []*session
	for s := range t.watchers[blocker] {
		if s.user != blocked {
			continue
		}
		ended = append(ended, s)
		delete(t.watchers[blocker], s)
		t.watching[s] = slices.DeleteFunc(t.watching[s], func(u string) bool { return u == blocker })
	}
	if len(t.watchers[blocker]) == 0 {
		delete(t.watchers, blocker)
	}
	if len(ended) > 0 && t.deliver != nil {
		t.deliver(presenceChange{presence: &pb.UserPresence{UserId: blocker, State: pb.PresenceState_PRESENCE_STATE_OFFLINE}, watchers: ended})
	}
}

// unblock forgets a remembered block (a UserUnblocked). A watch it ended
// is not restored: the device watches again.
func (t *presenceTable) unblock(blocker, blocked string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.blocks[blocker], blocked)
	if len(t.blocks[blocker]) == 0 {
		delete(t.blocks, blocker)
	}
}

// blockedLocked says whether blocker blocked watcher in the memory.
func (t *presenceTable) blockedLocked(blocker, watcher string) bool {
	_, ok := t.blocks[blocker][watcher]
	return ok
}

// apply records the presence a gateway stated at time at, and returns the
// users whose aggregated presence changed, with their watchers.
func (t *presenceTable) apply(gateway string, at time.Time, p *pb.DevicePresences) []presenceChange {
	expires := at.Add(p.GetTtl().AsDuration())
	t.mu.Lock()
	defer t.mu.Unlock()
	var changes []presenceChange
	for _, d := range p.GetDevices() {
		u := t.users[d.GetUserId()]
		if u == nil {
			if d.GetState() == pb.PresenceState_PRESENCE_STATE_OFFLINE {
				// Gone before we knew it: remember when it was seen.
				t.users[d.GetUserId()] = &userPresence{devices: map[deviceKey]deviceEntry{}, lastSeen: at}
				continue
			}
			u = &userPresence{devices: map[deviceKey]deviceEntry{}}
			t.users[d.GetUserId()] = u
		}
		before := u.state()
		k := deviceKey{gateway, d.GetDeviceId()}
		if settable(d.GetState()) {
			u.devices[k] = deviceEntry{state: d.GetState(), expires: expires}
		} else {
			delete(u.devices, k)
		}
		if offline := pb.PresenceState_PRESENCE_STATE_OFFLINE; at.After(u.lastSeen) && (before != offline || u.state() != offline) {
			// Seen while visible, and at the moment it stopped being (its
			// last device left, or it went invisible); an invisible
			// user's statements after that move nothing.
			u.lastSeen = at
		}
		if after := u.state(); after != before {
			changes = append(changes, t.changeLocked(d.GetUserId(), u))
		}
	}
	return changes
}

// expire removes the entries whose gateway stopped restating them by now,
// forgets users offline for longer than forget, and returns the changes.
func (t *presenceTable) expire(now time.Time) []presenceChange {
	t.mu.Lock()
	defer t.mu.Unlock()
	var changes []presenceChange
	for id, u := range t.users {
		before := u.state()
		for k, e := range u.devices {
			if !e.expires.After(now) {
				delete(u.devices, k)
			}
		}
		if after := u.state(); after != before {
			changes = append(changes, t.changeLocked(id, u))
		}
		if len(u.devices) == 0 && now.Sub(u.lastSeen) > t.forget && len(t.watchers[id]) == 0 {
			delete(t.users, id)
		}
	}
	for blocker, m := range t.blocks {
		for u, at := range m {
			if now.Sub(at) > blockMemory {
				delete(m, u)
			}
		}
		if len(m) == 0 {
			delete(t.blocks, blocker)
		}
	}
	return changes
}

// presencePrecedence orders the states a device may state, first wins.
var presencePrecedence = []pb.PresenceState{
	pb.PresenceState_PRESENCE_STATE_INVISIBLE,
	pb.PresenceState_PRESENCE_STATE_DO_NOT_DISTURB,
	pb.PresenceState_PRESENCE_STATE_BUSY,
	pb.PresenceState_PRESENCE_STATE_ONLINE,
	pb.PresenceState_PRESENCE_STATE_AWAY,
}

// settable says whether a device may state st (SetPresence).
func settable(st pb.PresenceState) bool { return slices.Contains(presencePrecedence, st) }

// state is what watchers see of the user: the first state of
// presencePrecedence that any device states, INVISIBLE shown as OFFLINE;
// OFFLINE without devices.
func (u *userPresence) state() pb.PresenceState {
	best := len(presencePrecedence)
	for _, e := range u.devices {
		if i := slices.Index(presencePrecedence, e.state); i >= 0 && i < best {
			best = i
		}
	}
	if best == len(presencePrecedence) || presencePrecedence[best] == pb.PresenceState_PRESENCE_STATE_INVISIBLE {
		return pb.PresenceState_PRESENCE_STATE_OFFLINE
	}
	return presencePrecedence[best]
}

func (t *presenceTable) changeLocked(id string, u *userPresence) presenceChange {
	c := presenceChange{presence: presenceOf(id, u)}
	for s := range t.watchers[id] {
		c.watchers = append(c.watchers, s)
	}
	if len(c.watchers) > 0 && t.deliver != nil {
		t.deliver(c)
	}
	return c
}

func presenceOf(id string, u *userPresence) *pb.UserPresence {
	p := &pb.UserPresence{UserId: id, State: pb.PresenceState_PRESENCE_STATE_OFFLINE}
	if u == nil {
		return p
	}
	p.State = u.state()
	if !u.lastSeen.IsZero() {
		p.LastSeen = timestamppb.New(u.lastSeen)
	}
	return p
}

// watch makes users the set s follows (replacing the previous one) and
// hands their current presence, sorted by user id, to answer, which runs
// under mu like deliver. A user who blocked s's user lately (block) is
// answered OFFLINE and not followed.
func (t *presenceTable) watch(s *session, users []string, answer func([]*pb.UserPresence)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unwatchLocked(s)
	users = slices.Compact(slices.Sorted(slices.Values(users)))
	out := make([]*pb.UserPresence, 0, len(users))
	followed := users[:0:0]
	for _, id := range users {
		if t.blockedLocked(id, s.user) {
			out = append(out, &pb.UserPresence{UserId: id, State: pb.PresenceState_PRESENCE_STATE_OFFLINE})
			continue
		}
		followed = append(followed, id)
	}
	users = followed
	for _, id := range users {
		w := t.watchers[id]
		if w == nil {
			w = map[*session]struct{}{}
			t.watchers[id] = w
		}
		w[s] = struct{}{}
		out = append(out, presenceOf(id, t.users[id]))
	}
	if len(users) > 0 {
		t.watching[s] = users
	}
	slices.SortFunc(out, func(a, b *pb.UserPresence) int { return strings.Compare(a.GetUserId(), b.GetUserId()) })
	answer(out)
}

// unwatch forgets s; called when its session ends.
func (t *presenceTable) unwatch(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unwatchLocked(s)
}

func (t *presenceTable) unwatchLocked(s *session) {
	for _, id := range t.watching[s] {
		delete(t.watchers[id], s)
		if len(t.watchers[id]) == 0 {
			delete(t.watchers, id)
		}
	}
	delete(t.watching, s)
}

package gateway

import (
	"fmt"
	"sync"
	"time"
)

// Per-user limits (README.md, "Per-user limits"): a user's command rate
// over all of its sessions on all gateways, and its connections over all
// gateways. No gateway sees another's frames, so each enforces its share of
// the user's budget: with local sessions here and remote ones on the other
// gateways (the presence table, built from the signals topic), this
// gateway's share is local / (local + remote) of UserRatePerSecond and of
// UserBurst. The shares sum to the whole budget once every gateway has read
// every other's presence; until then a user who just connected to several
// gateways at once may get up to one whole budget on each of them, for at
// most the time its presence takes to travel (normally well under a
// second; PresenceRefresh at worst, for a lost record).

// userLimiter holds one token bucket per user with sessions on this
// gateway, shared by those sessions.
type userLimiter struct {
	rate  float64 // tokens a second for the whole user; <= 0: no limit
	burst float64
	mu    sync.Mutex
	users map[string]*userBucket
}

type userBucket struct {
	tokens   float64
	last     time.Time
	sessions int // local sessions holding the bucket
}

func newUserLimiter(rate float64, burst int) *userLimiter {
	return &userLimiter{rate: rate, burst: float64(burst), users: map[string]*userBucket{}}
}

// acquire counts one more local session of user. A bucket outlives its
// last session until it has filled up again (sweep), so reconnecting does
// not refill it.
func (l *userLimiter) acquire(user string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.users[user]
	if b == nil {
		b = &userBucket{tokens: l.burst, last: now}
		l.users[user] = b
	}
	b.sessions++
}

// release counts one local session of user fewer.
func (l *userLimiter) release(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.users[user]; b != nil && b.sessions > 0 {
		b.sessions--
	}
}

// allow takes a token of user's bucket, whose rate and size are share (0 to
// 1) of the user's whole budget. The size is at least one token, so a
// gateway whose share is below one token can still pass a frame a while;
// the retry-after hint is how long until the next token.
func (l *userLimiter) allow(user string, share float64, now time.Time) (bool, time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	share = min(max(share, 0), 1)
	rate, size := l.rate*share, max(1, l.burst*share)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.users[user]
	if b == nil { // no session holds it (a frame racing its session's end)
		b = &userBucket{tokens: l.burst, last: now}
		l.users[user] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens += d.Seconds() * rate
		b.last = now
	}
	b.tokens = min(b.tokens, size)
	if b.tokens < 1 {
		if rate <= 0 {
			return false, time.Second
		}
		return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweep forgets the buckets no session holds that would be full by now.
func (l *userLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, b := range l.users {
		if b.sessions == 0 && (l.rate <= 0 || b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst) {
			delete(l.users, u)
		}
	}
}

// share is this gateway's part of the user's budget: its sessions of the
// user over all of the user's sessions (remote ones from the presence
// table). 1 when the user has none elsewhere.
func share(local, remote int) float64 {
	if local <= 0 {
		return 1
	}
	return float64(local) / float64(local+remote)
}

// userSessions counts user's sessions: the local ones (the hub) and the
// devices the presence table shows on other gateways. A device on this
// gateway and another (a reconnect racing the old session's end) counts
// once.
func (s *Server) userSessions(user, except string) (local, remote int) {
	devices := map[string]bool{}
	for _, sess := range s.hub.appendUser(nil, user) {
		if sess.device != except {
			devices[sess.device] = true
		}
	}
	local = len(devices)
	for _, d := range s.presence.remoteDevices(user, s.instance) {
		if d != except && !devices[d] {
			devices[d] = true
			remote++
		}
	}
	return local, remote
}

// allowUser applies the user's rate limit to one frame of sess.
func (s *Server) allowUser(sess *session, now time.Time) (bool, string) {
	if s.userLimits.rate <= 0 {
		return true, ""
	}
	local, remote := s.userSessions(sess.user, "")
	ok, wait := s.userLimits.allow(sess.user, share(local, remote), now)
	if ok {
		return true, ""
	}
	l := s.cfg.Limits
	return false, fmt.Sprintf("user rate limit exceeded (%g commands a second, burst %d, over all of the user's %d sessions); retry in %s",
		l.UserRatePerSecond, l.UserBurst, local+remote, wait.Round(time.Millisecond))
}

// tooManyConnections reports whether a new connection of user's device
// would exceed UserMaxConnections (the device's own sessions, which it
// replaces, not counted).
func (s *Server) tooManyConnections(user, device string) (string, bool) {
	limit := s.cfg.Limits.UserMaxConnections
	if limit <= 0 {
		return "", false
	}
	local, remote := s.userSessions(user, device)
	if local+remote < limit {
		return "", false
	}
	return fmt.Sprintf("too many connections: %s has %d other devices connected, at most %d at once", user, local+remote, limit), true
}

// remoteDevices lists user's devices that gateways other than self state
// (each once).
func (t *presenceTable) remoteDevices(user, self string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.users[user]
	if u == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for k := range u.devices {
		if k.gateway != self && !seen[k.device] {
			seen[k.device] = true
			out = append(out, k.device)
		}
	}
	return out
}

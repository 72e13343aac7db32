package gateway

import (
	"time"
	"unicode/utf8"

	"github.com/parley-im/parley/ingest"
)

// Bans (README.md, "Admin API"): the gateway follows the bans topic like
// every decider (ingest.BanFollower). A ban read closes the user's
// sessions here with CloseBanned; while it holds, the user's tokens are
// refused at the WebSocket handshake and on every HTTP endpoint.

// banChanged is the follower's callback, in the topic's order.
func (s *Server) banChanged(user string, b ingest.Ban, banned bool) {
	if !banned || !b.Holds(time.Now()) {
		return
	}
	why := closeReason(banMessage(b))
	for _, sess := range s.hub.appendUser(nil, user) {
		sess.log.Info("session closed: the user is banned")
		sess.close(CloseBanned, why, true)
	}
}

// Device revocations (README.md, "Device revocation") ride the same topic:
// a revocation read closes that device's session here with CloseRevoked,
// and its tokens are refused from then on; the user's other devices go on.

// revocationChanged is the follower's callback for revocations.
func (s *Server) revocationChanged(user, device string, r ingest.Revocation, revoked bool) {
	if !revoked {
		return
	}
	if sess := s.hub.device(user, device); sess != nil {
		sess.log.Info("session closed: the device is revoked")
		sess.close(CloseRevoked, closeReason(revocationMessage(r)), true)
	}
}

// revoked reports whether user's device is revoked, and the refusal's
// message.
func (s *Server) revoked(user, device string) (string, bool) {
	if s.bans == nil {
		return "", false
	}
	r, ok := s.bans.Revoked(user, device)
	if !ok {
		return "", false
	}
	return revocationMessage(r), true
}

func revocationMessage(r ingest.Revocation) string {
	msg := "device revoked"
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	return msg
}

// banned reports whether user's ban holds at t, and the refusal's message.
func (s *Server) banned(user string, t time.Time) (string, bool) {
	b, ok := s.banOf(user)
	if !ok || !b.Holds(t) {
		return "", false
	}
	return banMessage(b), true
}

// banOf is user's standing ban, held or ended (none in a Server without a
// follower).
func (s *Server) banOf(user string) (ingest.Ban, bool) {
	if s.bans == nil {
		return ingest.Ban{}, false
	}
	return s.bans.Ban(user)
}

func (s *Server) bansReady() bool {
	if s.bans == nil {
		return true
	}
	select {
	case <-s.bans.Ready():
		return true
	default:
		return false
	}
}

// closeReason cuts s to what a close frame carries (123 bytes), on a
// character boundary.
func closeReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func banMessage(b ingest.Ban) string {
	msg := "banned"
	if !b.Until.IsZero() {
		msg += " until " + b.Until.UTC().Format(time.RFC3339)
	}
	if b.Reason != "" {
		msg += ": " + b.Reason
	}
	return msg
}

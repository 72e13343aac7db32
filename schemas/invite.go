package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Invitation links (commands.proto, CreateInvite). A link's secret is a
// token the device generates: 22 to 64 characters of unpadded base64url
// (A-Z a-z 0-9 - _), so at least 132 bits when random. The log never holds
// it, only its hash; the invite is named by a prefix of the hash.
const (
	MinInviteTokenLen = 22
	MaxInviteTokenLen = 64
	// inviteIDLen is the length of an invite id: 16 hex digits (64 bits
	// of the hash), unique among one group's links.
	inviteIDLen = 16
	// MaxJoinNoteBytes caps JoinConversation.note (commands.proto): the
	// gateway and the decider both check it.
	MaxJoinNoteBytes = 280
)

// CheckInviteToken says whether token is a well-formed invitation secret.
// It cannot tell whether it is random: a device must draw it from a
// cryptographic source.
func CheckInviteToken(field, token string) error {
	if n := len(token); n < MinInviteTokenLen || n > MaxInviteTokenLen {
		return fmt.Errorf("%s: must be %d to %d characters of base64url, not %d", field, MinInviteTokenLen, MaxInviteTokenLen, n)
	}
	for i := range len(token) {
		c := token[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s: must be base64url (A-Z, a-z, 0-9, '-', '_'), found %q at %d", field, c, i)
		}
	}
	return nil
}

// InviteTokenHash is the hash of an invitation secret that the log holds:
// SHA-256, 64 lowercase hex digits.
func InviteTokenHash(token string) string {
	h := sha256.Sum256([]byte("parley invite\x00" + token))
	return hex.EncodeToString(h[:])
}

// CheckInviteTokenHash says whether h has the form InviteTokenHash gives.
func CheckInviteTokenHash(field, h string) error {
	if len(h) != 2*sha256.Size {
		return fmt.Errorf("%s: must be %d hex digits", field, 2*sha256.Size)
	}
	if !isLowerHex(h) {
		return fmt.Errorf("%s: must be lowercase hex", field)
	}
	return nil
}

// InviteID names the invite of a token hash: its first 16 hex digits.
func InviteID(tokenHash string) string {
	if len(tokenHash) < inviteIDLen {
		return tokenHash
	}
	return tokenHash[:inviteIDLen]
}

// CheckInviteID says whether id has the form InviteID gives.
func CheckInviteID(field, id string) error {
	if len(id) != inviteIDLen {
		return invalidID(field, "an invite id is %d hex digits", inviteIDLen)
	}
	if !isLowerHex(id) {
		return invalidID(field, "an invite id is lowercase hex")
	}
	return nil
}

package schemas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// WebhookKey is the record key of a webhook on the webhooks and webhook
// deliveries topics: the owner's user id and the webhook id (user ids hold
// no NUL).
func WebhookKey(user, webhookID string) string { return user + "\x00" + webhookID }

// MinWebhookSigningKeyBytes is the shortest webhook signing key accepted.
const MinWebhookSigningKeyBytes = 32

// WebhookSecret is the signing secret of user's webhook id under the
// deployment's signing key: the hex HMAC-SHA256 of the owner and id. The
// gateways' admin API hands it out when the webhook is created; the
// webhook dispatcher signs with it. It is in no event and no view, so the
// log does not give it away. The receiver uses the 64 hex characters, as
// they are, as its HMAC key.
func WebhookSecret(signingKey []byte, user, webhookID string) []byte {
	m := hmac.New(sha256.New, signingKey)
	m.Write([]byte("parley-webhook\x00" + WebhookKey(user, webhookID)))
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

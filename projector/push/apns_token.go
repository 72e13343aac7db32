package push

import (
	"crypto/ecdsa"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// apnsTokenLife is how long one provider token (JWT) is used. APNs
// refuses a token older than an hour, and one refreshed more often than
// every 20 minutes (TooManyProviderTokenUpdates): a token is renewed
// after 50 minutes, or when APNs calls it expired, never per request.
const apnsTokenLife = 50 * time.Minute

// apnsTokens signs and caches the provider token.
type apnsTokens struct {
	key    *ecdsa.PrivateKey
	keyID  string
	teamID string
	now    func() time.Time

	mu     sync.Mutex
	token  string
	issued time.Time
}

// get is the current token, a new one when it is apnsTokenLife old or is
// stale (the token APNs refused).
func (t *apnsTokens) get(stale string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.token != "" && t.token != stale && now.Sub(t.issued) < apnsTokenLife && !now.Before(t.issued.Add(-time.Minute)) {
		return t.token, nil
	}
	j := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": t.teamID, "iat": now.Unix()})
	j.Header["kid"] = t.keyID
	s, err := j.SignedString(t.key)
	if err != nil {
		return "", err
	}
	t.token, t.issued = s, now
	return s, nil
}

package push

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenRefreshMargin is how long before its expiry an access token is
// replaced, so that none expires in flight.
const tokenRefreshMargin = 5 * time.Minute

// fcmTokens grants and caches the OAuth2 access token of a service
// account (the JWT bearer grant, RFC 7523). One grant is in flight at a
// time; concurrent senders wait for it.
type fcmTokens struct {
	sa      *serviceAccount
	key     *rsa.PrivateKey
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// get is a valid access token: the cached one unless it is within
// tokenRefreshMargin of its expiry, or equal to stale (a token the API
// refused).
func (t *fcmTokens) get(ctx context.Context, stale string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.token != stale && t.now().Add(tokenRefreshMargin).Before(t.expires) {
		return t.token, nil
	}
	tok, life, err := t.grant(ctx)
	if err != nil {
		return "", err
	}
	t.token, t.expires = tok, t.now().Add(life)
	return tok, nil
}

// grant asks token_uri for a new access token.
func (t *fcmTokens) grant(ctx context.Context) (string, time.Duration, error) {
	now := t.now()
	assertion, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss":   t.sa.ClientEmail,
		"scope": FCMScope,
		"aud":   t.sa.TokenURI,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}).SignedString(t.key)
	if err != nil {
		return "", 0, &RefusedError{Reason: "fcm: signing the token grant: " + err.Error()}
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := newRequest(ctx, t.sa.TokenURI, []byte(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	a, err := do(ctx, t.client, req, nil)
	if err != nil {
		return "", 0, fmt.Errorf("fcm: token grant: %w", err)
	}
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(a.body, &body)
	switch {
	case a.status == http.StatusOK:
	case a.status == http.StatusTooManyRequests || a.status >= 500:
		return "", 0, &RetryError{Status: a.status, After: retryAfter(a.header, now), Err: fmt.Errorf("fcm: token grant: %s %s", body.Error, clip([]byte(body.Description)))}
	default:
		// invalid_grant, invalid_client…: the credentials are wrong, and
		// asking again will not make them right.
		return "", 0, &RefusedError{Status: a.status, Reason: fmt.Sprintf("fcm: token grant refused: %s %s", body.Error, clip([]byte(body.Description)))}
	}
	if body.AccessToken == "" || body.ExpiresIn <= 0 || !strings.EqualFold(body.TokenType, "bearer") {
		return "", 0, &RetryError{Status: a.status, Err: fmt.Errorf("fcm: token grant: an answer without a bearer access_token and expires_in")}
	}
	return body.AccessToken, time.Duration(body.ExpiresIn) * time.Second, nil
}

package token_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-im/parley/schemas/token"
	"github.com/parley-im/parley/testenv"
)

// TestJWKS: keys from an identity provider's key set, found by OIDC
// discovery; RS256, ES256 and EdDSA; a key rotated in mid-test is used
// after a refresh, without a restart, and one rotated out is refused;
// tokens with made-up kids cost the provider one fetch per interval; iss,
// aud, exp and the clock skew are checked.
func TestJWKS(t *testing.T) {
	idp := testenv.StartJWKS(t)
	for kid, alg := range map[string]string{"r1": "RS256", "e1": "ES256", "o1": "EdDSA"} {
		idp.AddKey(t, kid, alg)
	}
	const minRefresh = 2 * time.Second
	v, err := token.NewVerifier(token.Config{OIDCIssuer: idp.URL, Audience: "parley", HTTPClient: idp.Client,
		JWKSMinRefresh: minRefresh})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(sub string, mod ...func(jwt.MapClaims)) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{"sub": sub, "did": "phone", "iss": idp.URL, "aud": "parley", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for _, m := range mod {
			m(c)
		}
		return c
	}
	for _, kid := range []string{"r1", "e1", "o1"} {
		id, err := v.Verify(idp.Sign(t, kid, claims("alice")))
		if err != nil || id.UserID != "alice" || id.DeviceID != "phone" {
			t.Errorf("a token of %s: %+v %v", kid, id, err)
		}
	}

	refused := func(what, tok string, want string) {
		t.Helper()
		if _, err := v.Verify(tok); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want refused with %q", what, err, want)
		}
	}
	refused("another issuer", idp.Sign(t, "r1", claims("alice", func(c jwt.MapClaims) { c["iss"] = "https://elsewhere" })), "issuer")
	refused("another audience", idp.Sign(t, "r1", claims("alice", func(c jwt.MapClaims) { c["aud"] = "other" })), "audience")
	refused("expired past the leeway", idp.Sign(t, "e1", claims("alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "expired")
	refused("issued in the future", idp.Sign(t, "e1", claims("alice", func(c jwt.MapClaims) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() })), "used before issued")
	if _, err := v.Verify(idp.Sign(t, "e1", claims("alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }))); err != nil {
		t.Errorf("expired 10 s ago, within the 30 s leeway: %v", err)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("alice"))
	hs.Header["kid"] = "r1"
	forged, _ := hs.SignedString([]byte("a secret the attacker chose, 32 bytes long"))
	refused("HS256 naming an RSA kid", forged, "signing method")

	// Rotation: r2 appears, r1 is withdrawn. A token of r2 makes the
	// verifier fetch the set again; from then on r1's tokens are refused.
	oldToken := idp.Sign(t, "r1", claims("alice"))
	idp.AddKey(t, "r2", "RS256")
	idp.RemoveKey("r1")
	before := idp.Fetches()
	newToken := idp.Sign(t, "r2", claims("bob"))
	testenv.Eventually(t, time.Minute, func() string {
		// The first fetch of the test was at start; a refresh may wait for
		// minRefresh to pass since then.
		if id, err := v.Verify(newToken); err != nil || id.UserID != "bob" {
			return "a token of the new key r2 is refused: " + err.Error()
		}
		return ""
	})
	if idp.Fetches() <= before {
		t.Errorf("r2 was accepted with no new fetch of the key set")
	}
	refused("a token of the rotated-out key r1", oldToken, `no key "r1"`)

	// A stream of tokens naming unknown kids: at most one fetch per
	// minRefresh, however many tokens.
	start, fetches := time.Now(), idp.Fetches()
	idp.AddKey(t, "zz", "ES256")
	idp.RemoveKey("zz")
	bogus := idp.Sign(t, "zz", claims("mallory"))
	for range 200 {
		refused("an unknown kid", bogus, `no key "zz"`)
	}
	if extra, allowed := idp.Fetches()-fetches, int(time.Since(start)/minRefresh)+1; extra > allowed {
		t.Errorf("200 tokens with an unknown kid made %d fetches in %v, want at most %d", extra, time.Since(start), allowed)
	}
	if v.KeySetFetches() != idp.Fetches() {
		t.Errorf("the verifier counts %d fetches, the server served %d", v.KeySetFetches(), idp.Fetches())
	}

	// Configuration errors.
	for name, cfg := range map[string]token.Config{
		"plain http to another host": {JWKSURL: "http://idp.example/jwks.json"},
		"two sources":                {JWKSURL: idp.URL + "/jwks.json", HMACSecret: make([]byte, 32)},
		"an unreachable key set":     {JWKSURL: "https://127.0.0.1:1/jwks.json", HTTPClient: idp.Client},
		"a leeway over the bound":    {JWKSURL: idp.URL + "/jwks.json", HTTPClient: idp.Client, Leeway: time.Hour},
	} {
		if _, err := token.NewVerifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	direct, err := token.NewVerifier(token.Config{JWKSURL: idp.URL + "/jwks.json", HTTPClient: idp.Client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Verify(newToken); err != nil {
		t.Errorf("JWKSURL: %v", err)
	}
}

// Package auth verifies the JWTs devices present to the gateway and to
// query, and issues dev-only tokens. The identity provider is the
// deployer's: Parley only verifies, with an HMAC secret or a public key.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DeviceClaim is the JWT claim that names the device ("did"). sub is the user id.
const DeviceClaim = "did"

// Identity is who a verified token speaks for.
type Identity struct {
	UserID   string
	DeviceID string // empty when the token has no device claim (query allows that)
}

// ErrUnauthenticated wraps every verification failure.
var ErrUnauthenticated = errors.New("unauthenticated")

// Config says how tokens are verified. Exactly one of HMACSecret and
// PublicKeyPEM is set.
type Config struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens.
	HMACSecret []byte
	// PublicKeyPEM verifies RS*, PS*, ES* or EdDSA tokens (PKIX "PUBLIC KEY" PEM).
	PublicKeyPEM []byte
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer, Audience string
	// Leeway tolerates clock skew on exp/nbf/iat (default 30s).
	Leeway time.Duration
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	key     any
	methods []string
	parser  *jwt.Parser
}

// NewVerifier builds a Verifier from cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if (len(cfg.HMACSecret) == 0) == (len(cfg.PublicKeyPEM) == 0) {
		return nil, errors.New("auth: set exactly one of HMACSecret and PublicKeyPEM")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	v := &Verifier{}
	if len(cfg.HMACSecret) > 0 {
		if len(cfg.HMACSecret) < 32 {
			return nil, errors.New("auth: HMACSecret must be at least 32 bytes")
		}
		v.key, v.methods = cfg.HMACSecret, []string{"HS256", "HS384", "HS512"}
	} else {
		pub, err := parsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.key = pub
		switch pub.(type) {
		case *rsa.PublicKey:
			v.methods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
		case *ecdsa.PublicKey:
			v.methods = []string{"ES256", "ES384", "ES512"}
		case ed25519.PublicKey:
			v.methods = []string{"EdDSA"}
		}
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithLeeway(cfg.Leeway), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func parsePublicKey(p []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("auth: PublicKeyPEM holds no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: public key: %w", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("auth: unsupported public key type %T", pub)
}

// Verify checks token's signature, algorithm, expiry (required), issuer and
// audience, and returns its identity. sub must be a non-empty user id.
func (v *Verifier) Verify(token string) (Identity, error) {
	id, _, err := v.VerifyUntil(token)
	return id, err
}

// VerifyUntil is Verify that also returns when the token expires (its exp
// claim), so a long-lived connection can end when its token does.
func (v *Verifier) VerifyUntil(token string) (Identity, time.Time, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	id, err := identity(claims)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // the parser requires exp; this is belt and braces
		return Identity{}, time.Time{}, fmt.Errorf("%w: token has no valid exp", ErrUnauthenticated)
	}
	return id, exp.Time, nil
}

func identity(claims jwt.MapClaims) (Identity, error) {
	sub, _ := claims["sub"].(string)
	if sub == "" || len(sub) > 128 || strings.ContainsRune(sub, 0) {
		return Identity{}, fmt.Errorf("%w: token has no valid sub (user id)", ErrUnauthenticated)
	}
	did, _ := claims[DeviceClaim].(string)
	if len(did) > 128 || strings.ContainsRune(did, 0) {
		return Identity{}, fmt.Errorf("%w: invalid %s claim", ErrUnauthenticated, DeviceClaim)
	}
	return Identity{UserID: sub, DeviceID: did}, nil
}

// TokenFromRequest finds the token a client sent: the Authorization header
// ("Bearer <token>"), or, for browsers, which cannot set headers on a
// WebSocket, the access_token query parameter.
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return r.URL.Query().Get("access_token")
}

// DevIssuer mints HS256 tokens for local use. It exists so `go tool task
// dev` works without an identity provider; never use it in production.
type DevIssuer struct {
	secret           []byte
	issuer, audience string
}

// NewDevIssuer returns an issuer that signs with secret (at least 32 bytes),
// matching a Verifier built from the same Config.
func NewDevIssuer(cfg Config) (*DevIssuer, error) {
	if len(cfg.HMACSecret) < 32 {
		return nil, errors.New("auth: the dev issuer needs an HMACSecret of at least 32 bytes")
	}
	return &DevIssuer{secret: cfg.HMACSecret, issuer: cfg.Issuer, audience: cfg.Audience}, nil
}

// Issue returns a token for user and device valid for ttl.
func (d *DevIssuer) Issue(user, device string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := jwt.MapClaims{"sub": user, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if device != "" {
		c[DeviceClaim] = device
	}
	if d.issuer != "" {
		c["iss"] = d.issuer
	}
	if d.audience != "" {
		c["aud"] = d.audience
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(d.secret)
}

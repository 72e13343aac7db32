// Package token is the token contract the gateway and query share: the
// claims a JWT carries (sub = user id, "did" = device id), their verifier,
// how a request presents its token, and a dev-only issuer. The identity
// provider is the deployer's: Parley only verifies, with an HMAC secret or a
// public key. It reads no store and imports no component.
package token

import (
	"context"
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

	"github.com/parley-im/parley/schemas"
)

// MaxTokenBytes bounds the token a request presents; a longer one is refused
// before it is decoded. Real tokens are a few hundred bytes.
const MaxTokenBytes = 8 << 10

// MaxLeeway bounds the clock skew a Verifier tolerates.
const MaxLeeway = 5 * time.Minute

// DeviceClaim is the JWT claim that names the device ("did"). sub is the user id.
const DeviceClaim = "did"

// Identity is who a verified token speaks for.
type Identity struct {
	UserID   string
	DeviceID string // empty when the token has no device claim (query allows that)
}

// ErrUnauthenticated wraps every verification failure.
var ErrUnauthenticated = errors.New("unauthenticated")

// Config says how tokens are verified. Exactly one of HMACSecret,
// PublicKeyPEM, JWKSURL and OIDCIssuer is set.
type Config struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens.
	HMACSecret []byte
	// PublicKeyPEM verifies RS*, PS*, ES* or EdDSA tokens (PKIX "PUBLIC KEY" PEM).
	PublicKeyPEM []byte
	// JWKSURL is the identity provider's JSON Web Key Set: RS*, PS*, ES*
	// and EdDSA tokens naming a key by kid (jwks.go, which says how keys
	// rotate). https, or http on loopback.
	JWKSURL string
	// OIDCIssuer finds the key set by OpenID Connect discovery
	// (<issuer>/.well-known/openid-configuration); iss must then be this
	// issuer unless Issuer says otherwise.
	OIDCIssuer string
	// JWKSRefresh is how often the key set is fetched again (default
	// 10 min); JWKSMinRefresh the least time between two fetches, also
	// those a token with an unknown kid asks for (default 10 s).
	JWKSRefresh, JWKSMinRefresh time.Duration
	// HTTPClient fetches the key set (default: a client with a 10 s
	// timeout and the system's roots).
	HTTPClient *http.Client
	// Issuer and Audience, when set, must match the iss and aud claims.
	Issuer, Audience string
	// Leeway tolerates clock skew on exp/nbf/iat (default 30s, at most
	// MaxLeeway): a token issued further in the future is refused too.
	Leeway time.Duration
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	key     any
	jwks    *jwks // instead of key, with JWKSURL or OIDCIssuer
	methods []string
	parser  *jwt.Parser
}

// NewVerifier builds a Verifier from cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Sources() != 1 {
		return nil, errors.New("token: set exactly one of HMACSecret, PublicKeyPEM, JWKSURL and OIDCIssuer")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("token: Leeway %v is outside 0..%v", cfg.Leeway, MaxLeeway)
	}
	v := &Verifier{}
	switch {
	case cfg.JWKSURL != "" || cfg.OIDCIssuer != "":
		for _, u := range []string{cfg.JWKSURL, cfg.OIDCIssuer} {
			if err := checkHTTPS(u); u != "" && err != nil {
				return nil, fmt.Errorf("token: %w", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		k, issuer, err := newJWKS(ctx, cfg)
		if err != nil {
			return nil, err
		}
		v.jwks, v.methods, cfg.Issuer = k, asymmetric, issuer
	case len(cfg.HMACSecret) > 0:
		if len(cfg.HMACSecret) < 32 {
			return nil, errors.New("token: HMACSecret must be at least 32 bytes")
		}
		v.key, v.methods = cfg.HMACSecret, []string{"HS256", "HS384", "HS512"}
	default:
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
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithLeeway(cfg.Leeway), jwt.WithExpirationRequired(), jwt.WithIssuedAt()}
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
		return nil, errors.New("token: PublicKeyPEM holds no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: public key: %w", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("token: unsupported public key type %T", pub)
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
	if len(token) > MaxTokenBytes {
		return Identity{}, time.Time{}, fmt.Errorf("%w: token is %d bytes; at most %d", ErrUnauthenticated, len(token), MaxTokenBytes)
	}
	claims := jwt.MapClaims{}
	keyFunc := func(*jwt.Token) (any, error) { return v.key, nil }
	if v.jwks != nil {
		keyFunc = v.jwks.key
	}
	_, err := v.parser.ParseWithClaims(token, claims, keyFunc)
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

// identity reads the claims contract: sub is a user id and did, when
// present, a device id, both in the form schemas.CheckID accepts (the same
// rule every other edge applies to ids).
func identity(claims jwt.MapClaims) (Identity, error) {
	sub, _ := claims["sub"].(string)
	if err := schemas.CheckID("sub", sub); err != nil {
		return Identity{}, fmt.Errorf("%w: token has no valid sub (user id): %v", ErrUnauthenticated, err)
	}
	did, ok := claims[DeviceClaim]
	if !ok {
		return Identity{UserID: sub}, nil
	}
	s, _ := did.(string)
	if err := schemas.CheckID(DeviceClaim, s); err != nil {
		return Identity{}, fmt.Errorf("%w: invalid %s claim (device id): %v", ErrUnauthenticated, DeviceClaim, err)
	}
	return Identity{UserID: sub, DeviceID: s}, nil
}

// TokenFromRequest finds the token a client sent: the Authorization header
// with the Bearer scheme, or, for browsers, which cannot set headers on a
// WebSocket, the access_token query parameter. An Authorization header of
// another scheme is ignored.
func TokenFromRequest(r *http.Request) string {
	if t, ok := BearerToken(r.Header.Get("Authorization")); ok {
		return t
	}
	return r.URL.Query().Get("access_token")
}

// BearerToken parses an Authorization header value "Bearer <token>". The
// scheme is case-insensitive (RFC 9110 §11.1, RFC 6750 §2.1); one or more
// spaces or tabs separate it from the token, and surrounding whitespace is
// dropped. ok is false for another scheme or an empty token.
func BearerToken(header string) (token string, ok bool) {
	const scheme = "bearer"
	h := strings.TrimLeft(header, " \t")
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || (h[len(scheme)] != ' ' && h[len(scheme)] != '\t') {
		return "", false
	}
	t := strings.Trim(h[len(scheme):], " \t")
	return t, t != ""
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
		return nil, errors.New("token: the dev issuer needs an HMACSecret of at least 32 bytes")
	}
	return &DevIssuer{secret: cfg.HMACSecret, issuer: cfg.Issuer, audience: cfg.Audience}, nil
}

// Issue returns a token for user and device (empty: no device claim) valid
// for ttl. Ids that break the claims contract are refused with a
// *schemas.IDError: a token the verifier would refuse is never minted.
func (d *DevIssuer) Issue(user, device string, ttl time.Duration) (string, error) {
	if err := schemas.CheckID("user", user); err != nil {
		return "", err
	}
	if err := schemas.CheckOptionalID("device", device); err != nil {
		return "", err
	}
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

// KeySetFetches is how many times the key set was fetched (0 without
// one): what a test of the refresh bound reads.
func (v *Verifier) KeySetFetches() int {
	if v.jwks == nil {
		return 0
	}
	v.jwks.mu.Lock()
	defer v.jwks.mu.Unlock()
	return v.jwks.fetches
}

// Sources is how many of HMACSecret, PublicKeyPEM, JWKSURL and OIDCIssuer
// are set; a valid Config has one.
func (c Config) Sources() int {
	n := 0
	for _, on := range []bool{len(c.HMACSecret) > 0, len(c.PublicKeyPEM) > 0, c.JWKSURL != "", c.OIDCIssuer != ""} {
		if on {
			n++
		}
	}
	return n
}

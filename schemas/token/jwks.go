package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWKS verification: the identity provider publishes its public keys as a
// JSON Web Key Set (RFC 7517), found directly (Config.JWKSURL) or through
// OpenID Connect discovery (Config.OIDCIssuer: <issuer>/.well-known/
// openid-configuration names jwks_uri). Tokens name their key by kid.
//
// Rotation: the set is fetched at start, again every JWKSRefresh, and at
// once when a token names a kid the set does not hold, but at most once
// per JWKSMinRefresh, so a stream of tokens with made-up kids costs the
// provider one request per interval, not one per token. A key the
// provider removed is gone after the next fetch: tokens it signed are
// refused from then on. A fetch that fails keeps the keys held.

const (
	// DefaultJWKSRefresh is how often the key set is fetched again.
	DefaultJWKSRefresh = 10 * time.Minute
	// DefaultJWKSMinRefresh is the least time between two fetches.
	DefaultJWKSMinRefresh = 10 * time.Second
	// maxJWKSBytes bounds a key set or discovery document.
	maxJWKSBytes = 1 << 20
)

// asymmetric are the algorithms a key set may verify: never HS* (a public
// key used as an HMAC secret) and never none.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwks holds the provider's keys by kid.
type jwks struct {
	url        string // the key set's URL (after discovery)
	client     *http.Client
	refresh    time.Duration
	minRefresh time.Duration

	mu      sync.Mutex
	keys    map[string]jwk
	fetched time.Time // last fetch tried
	fetches int       // fetches made (tests read it through Verifier.KeySetFetches)
}

// jwk is one verification key and the algorithm it is pinned to ("" when
// the set does not say; then any algorithm of its key type).
type jwk struct {
	key crypto.PublicKey
	alg string
}

func newJWKS(ctx context.Context, cfg Config) (*jwks, string, error) {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	k := &jwks{url: cfg.JWKSURL, client: client, refresh: cfg.JWKSRefresh, minRefresh: cfg.JWKSMinRefresh}
	if k.refresh <= 0 {
		k.refresh = DefaultJWKSRefresh
	}
	if k.minRefresh <= 0 {
		k.minRefresh = DefaultJWKSMinRefresh
	}
	issuer := cfg.Issuer
	if cfg.OIDCIssuer != "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := k.getJSON(ctx, strings.TrimSuffix(cfg.OIDCIssuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return nil, "", fmt.Errorf("token: OIDC discovery: %w", err)
		}
		if doc.Issuer != cfg.OIDCIssuer {
			return nil, "", fmt.Errorf("token: OIDC discovery of %s names issuer %q", cfg.OIDCIssuer, doc.Issuer)
		}
		if err := checkHTTPS(doc.JWKSURI); err != nil {
			return nil, "", fmt.Errorf("token: OIDC discovery: jwks_uri: %w", err)
		}
		k.url = doc.JWKSURI
		if issuer == "" {
			issuer = doc.Issuer // the discovered issuer is required in iss
		}
	}
	if err := k.fetch(ctx); err != nil {
		return nil, "", err
	}
	return k, issuer, nil
}

// checkHTTPS refuses a URL that is not https (http only on loopback, for
// a provider on the same machine).
func checkHTTPS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Scheme == "https" || (u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")) {
		return nil
	}
	return fmt.Errorf("%q: want https", raw)
}

func (k *jwks) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxJWKSBytes {
		return fmt.Errorf("GET %s: more than %d bytes", u, maxJWKSBytes)
	}
	return json.Unmarshal(b, out)
}

// fetch reads the key set and replaces the keys held. Keys of a kind or
// use Parley cannot verify with are skipped; a set with none usable is an
// error.
func (k *jwks) fetch(ctx context.Context) error {
	k.fetched = time.Now()
	k.fetches++
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := k.getJSON(ctx, k.url, &set); err != nil {
		return fmt.Errorf("token: JWKS: %w", err)
	}
	keys := map[string]jwk{}
	for _, raw := range set.Keys {
		kid, key, err := parseJWK(raw)
		if err == nil && kid != "" {
			keys[kid] = key
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("token: JWKS %s holds no usable signing key with a kid", k.url)
	}
	k.keys = keys
	return nil
}

// key is the jwt.Keyfunc: the key named by the token's kid, fetched again
// when unknown (at most once per minRefresh) or when the set is older
// than refresh.
func (k *jwks) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[kid]
	since := time.Since(k.fetched)
	if (!ok && since >= k.minRefresh) || since >= k.refresh {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := k.fetch(ctx)
		cancel()
		if err == nil {
			key, ok = k.keys[kid]
		}
	}
	if !ok {
		return nil, fmt.Errorf("no key %q in the identity provider's key set", kid)
	}
	if key.alg != "" && key.alg != t.Method.Alg() {
		return nil, fmt.Errorf("key %q is for %s, the token says %s", kid, key.alg, t.Method.Alg())
	}
	return key.key, nil
}

// parseJWK reads one RSA, EC (P-256, P-384, P-521) or OKP (Ed25519)
// public key meant for signatures.
func parseJWK(raw json.RawMessage) (string, jwk, error) {
	var j struct {
		Kty, Kid, Use, Alg, Crv string
		N, E, X, Y              string
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", jwk{}, err
	}
	if j.Use != "" && j.Use != "sig" {
		return "", jwk{}, errors.New("not a signing key")
	}
	if j.Alg != "" && !slices.Contains(asymmetric, j.Alg) {
		return "", jwk{}, fmt.Errorf("algorithm %q", j.Alg)
	}
	b64 := base64.RawURLEncoding.DecodeString
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err := errors.Join(err1, err2); err != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return "", jwk{}, errors.New("RSA key: bad or short n/e (2048 bits at least)")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		return j.Kid, jwk{key: pub, alg: j.Alg}, nil
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return "", jwk{}, fmt.Errorf("EC curve %q", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		size := (curve.Params().BitSize + 7) / 8
		if errors.Join(err1, err2) != nil || len(x) != size || len(y) != size {
			return "", jwk{}, errors.New("EC key: bad x/y")
		}
		// Uncompressed point form, parsed (and checked on the curve) by
		// crypto/ecdh through ecdsa.ParseUncompressedPublicKey.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return "", jwk{}, fmt.Errorf("EC key: %w", err)
		}
		return j.Kid, jwk{key: pub, alg: j.Alg}, nil
	case "OKP":
		x, err := b64(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return "", jwk{}, errors.New("OKP key: want Ed25519")
		}
		return j.Kid, jwk{key: ed25519.PublicKey(x), alg: j.Alg}, nil
	}
	return "", jwk{}, fmt.Errorf("key type %q", j.Kty)
}

package token

import (
	"errors"
	"fmt"
	"os"

	"github.com/parley-im/parley/schemas/deploy"
)

// FromEnv reads how tokens are verified, the same for every component
// that verifies them (gateway, query):
//
//	PARLEY_JWT_HMAC_SECRET (or _FILE)  an HMAC secret, at least 32 bytes
//	PARLEY_JWT_PUBLIC_KEY_FILE         a PKIX public key, PEM
//	PARLEY_JWT_JWKS_URL                the identity provider's key set
//	PARLEY_JWT_OIDC_ISSUER             the same, found by OIDC discovery
//	PARLEY_JWT_ISSUER, _AUDIENCE       required iss and aud
//	PARLEY_JWT_LEEWAY                  clock skew tolerated (30s, at most 5m)
//	PARLEY_JWT_JWKS_REFRESH, _JWKS_MIN_REFRESH  key set refresh bounds
//
// Exactly one of the first four is required. Malformed values are the
// Env's errors.
func FromEnv(e *deploy.Env) (Config, error) {
	cfg := Config{
		HMACSecret:     e.Secret("PARLEY_JWT_HMAC_SECRET"),
		JWKSURL:        e.String("PARLEY_JWT_JWKS_URL", ""),
		OIDCIssuer:     e.String("PARLEY_JWT_OIDC_ISSUER", ""),
		Issuer:         e.String("PARLEY_JWT_ISSUER", ""),
		Audience:       e.String("PARLEY_JWT_AUDIENCE", ""),
		Leeway:         e.Duration("PARLEY_JWT_LEEWAY", 0),
		JWKSRefresh:    e.Duration("PARLEY_JWT_JWKS_REFRESH", DefaultJWKSRefresh),
		JWKSMinRefresh: e.Duration("PARLEY_JWT_JWKS_MIN_REFRESH", DefaultJWKSMinRefresh),
	}
	if f := e.String("PARLEY_JWT_PUBLIC_KEY_FILE", ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("PARLEY_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		cfg.PublicKeyPEM = pem
	}
	if cfg.Sources() != 1 {
		return cfg, errors.New("set exactly one of PARLEY_JWT_HMAC_SECRET (or _FILE), PARLEY_JWT_PUBLIC_KEY_FILE, PARLEY_JWT_JWKS_URL and PARLEY_JWT_OIDC_ISSUER")
	}
	return cfg, nil
}

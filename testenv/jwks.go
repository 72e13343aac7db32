package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// JWKSServer is an identity provider's key publication for a test: an
// HTTPS server with OpenID Connect discovery
// (/.well-known/openid-configuration, issuer = URL) and the key set
// (/jwks.json), whose keys the test adds and removes while it runs, and
// which signs tokens with them. Keys are made at run time.
type JWKSServer struct {
	URL     string       // the issuer
	Client  *http.Client // trusts the server's certificate
	fetches atomic.Int64

	mu   sync.Mutex
	keys map[string]jwksKey
	srv  *httptest.Server
}

type jwksKey struct {
	alg       string
	signer    crypto.Signer
	published bool
}

// StartJWKS starts a JWKS server, closed at cleanup.
func StartJWKS(t testing.TB) *JWKSServer {
	t.Helper()
	s := &JWKSServer{keys: map[string]jwksKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": s.URL, "jwks_uri": s.URL + "/jwks.json"})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.set()})
	})
	s.srv = httptest.NewTLSServer(mux)
	s.URL, s.Client = s.srv.URL, s.srv.Client()
	t.Cleanup(s.srv.Close)
	return s
}

// Fetches is how many times the key set was served.
func (s *JWKSServer) Fetches() int { return int(s.fetches.Load()) }

// AddKey makes a key for alg (RS256, ES256 or EdDSA) and publishes it as kid.
func (s *JWKSServer) AddKey(t testing.TB, kid, alg string) {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("testenv: JWKS: algorithm %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.keys[kid] = jwksKey{alg: alg, signer: k, published: true}
	s.mu.Unlock()
}

// RemoveKey stops publishing kid (the key rotated out); Sign still signs
// with it, as a token minted before the rotation was.
func (s *JWKSServer) RemoveKey(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[kid]
	k.published = false
	s.keys[kid] = k
}

// Sign is a token signed by kid with claims (exp, sub… as the test wants).
func (s *JWKSServer) Sign(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	s.mu.Lock()
	k, ok := s.keys[kid]
	s.mu.Unlock()
	if !ok {
		t.Fatalf("testenv: JWKS: no key %q", kid)
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["kid"] = kid
	out, err := tok.SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *JWKSServer) set() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	var out []map[string]string
	for kid, k := range s.keys {
		if !k.published {
			continue
		}
		switch pub := k.signer.Public().(type) {
		case *rsa.PublicKey:
			out = append(out, map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": k.alg,
				"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())})
		case *ecdsa.PublicKey:
			raw, _ := pub.Bytes() // 0x04 || x || y
			out = append(out, map[string]string{"kty": "EC", "kid": kid, "use": "sig", "alg": k.alg, "crv": "P-256",
				"x": b64(raw[1:33]), "y": b64(raw[33:])})
		case ed25519.PublicKey:
			out = append(out, map[string]string{"kty": "OKP", "kid": kid, "use": "sig", "alg": k.alg, "crv": "Ed25519", "x": b64(pub)})
		}
	}
	return out
}

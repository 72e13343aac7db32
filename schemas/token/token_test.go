package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func secret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func TestHMACRoundTrip(t *testing.T) {
	cfg := Config{HMACSecret: secret(), Issuer: "parley-dev", Audience: "parley"}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := NewDevIssuer(cfg)
	tok, err := iss.Issue("alice", "phone", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(tok)
	if err != nil || id != (Identity{UserID: "alice", DeviceID: "phone"}) {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
}

func TestRejects(t *testing.T) {
	cfg := Config{HMACSecret: secret()}
	v, _ := NewVerifier(cfg)
	other, _ := NewDevIssuer(Config{HMACSecret: secret()})
	iss, _ := NewDevIssuer(cfg)
	wrongKey, _ := other.Issue("alice", "d", time.Minute)
	expired, _ := iss.Issue("alice", "d", -time.Hour)
	noSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"did": "d", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(cfg.HMACSecret)
	spaceSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "al ice", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(cfg.HMACSecret)
	numSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": 7, "exp": time.Now().Add(time.Minute).Unix()}).SignedString(cfg.HMACSecret)
	numDid, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "did": 7, "exp": time.Now().Add(time.Minute).Unix()}).SignedString(cfg.HMACSecret)
	longDid, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "did": strings.Repeat("d", 129), "exp": time.Now().Add(time.Minute).Unix()}).SignedString(cfg.HMACSecret)
	huge := strings.Repeat("x", MaxTokenBytes+1)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString(cfg.HMACSecret)
	for name, tok := range map[string]string{"wrong key": wrongKey, "expired": expired, "no sub": noSub, "sub with a space": spaceSub, "numeric sub": numSub, "numeric did": numDid, "did over 128 bytes": longDid, "over MaxTokenBytes": huge, "alg none": none, "no exp": noExp, "garbage": "x.y.z"} {
		if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: want ErrUnauthenticated, got %v", name, err)
		}
	}
}

func TestPublicKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	v, err := NewVerifier(Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(priv)
	if id, err := v.Verify(tok); err != nil || id.UserID != "bob" || id.DeviceID != "" {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
	// An HMAC token signed with the public key bytes must not pass (algorithm confusion).
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "eve", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(der)
	if _, err := v.Verify(hs); err == nil {
		t.Fatal("HS256 token accepted by a public-key verifier")
	}
}

func TestTokenFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/ws?access_token=q", nil)
	if got := TokenFromRequest(r); got != "q" {
		t.Fatalf("query token = %q", got)
	}
	r.Header.Set("Authorization", "Bearer h")
	if got := TokenFromRequest(r); got != "h" {
		t.Fatalf("header token = %q", got)
	}
	r.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
	if got := TokenFromRequest(r); got != "q" {
		t.Fatalf("a Basic header must leave the query token, got %q", got)
	}
}

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true}, // the scheme is case-insensitive (RFC 9110 §11.1)
		{"BEARER abc", "abc", true},
		{"bEaReR abc", "abc", true},
		{"Bearer   abc  ", "abc", true},
		{"Bearer\tabc", "abc", true},
		{"  Bearer abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Bearerabc", "", false},
		{"Basic abc", "", false},
		{"", "", false},
		{"Bearer a b", "a b", true}, // not a valid JWT: the verifier refuses it
	} {
		got, ok := BearerToken(c.header)
		if got != c.want || ok != c.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", c.header, got, ok, c.want, c.ok)
		}
	}
}

func TestIssueRefusesBadIDs(t *testing.T) {
	iss, _ := NewDevIssuer(Config{HMACSecret: secret()})
	for name, ids := range map[string][2]string{
		"empty user":      {"", "phone"},
		"long user":       {strings.Repeat("u", 129), "phone"},
		"user with space": {"a b", "phone"},
		"device with NUL": {"alice", "ph\x00one"},
	} {
		var idErr *schemas.IDError
		if _, err := iss.Issue(ids[0], ids[1], time.Minute); !errors.As(err, &idErr) || idErr.Code != pb.ErrorCode_ERROR_CODE_INVALID_ID {
			t.Errorf("%s: want an INVALID_ID IDError, got %v", name, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewVerifier(Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
	if _, err := NewVerifier(Config{HMACSecret: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestVerifyUntil(t *testing.T) {
	cfg := Config{HMACSecret: secret()}
	v, _ := NewVerifier(cfg)
	iss, _ := NewDevIssuer(cfg)
	tok, _ := iss.Issue("alice", "phone", time.Hour)
	id, exp, err := v.VerifyUntil(tok)
	if err != nil || id != (Identity{UserID: "alice", DeviceID: "phone"}) {
		t.Fatalf("VerifyUntil = %+v, %v", id, err)
	}
	if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("exp in %v, want about an hour", d)
	}
	if _, _, err := v.VerifyUntil("x.y.z"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("garbage: %v", err)
	}
}

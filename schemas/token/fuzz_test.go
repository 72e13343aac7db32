package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-im/parley/schemas"
)

// FuzzBearerToken: any header value parses without panicking; what it
// yields is trimmed and non-empty, and the scheme's case never matters.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer abc", "BEARER  a.b.c ", "Bearer\tx", "Bearer", "Bearer ",
		"Basic YWxpY2U6c2VjcmV0", "", " \t", "Bearerx", "bearer \x00", "Bearer \u00a0x", "\tbearer\t\ty\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := BearerToken(header)
		if !ok {
			if tok != "" {
				t.Fatalf("BearerToken(%q) = %q with ok false", header, tok)
			}
			return
		}
		if tok == "" || tok != strings.Trim(tok, " \t") {
			t.Fatalf("BearerToken(%q) = %q: empty or untrimmed", header, tok)
		}
		for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
			if again, ok := BearerToken(scheme + " " + tok); !ok || again != tok {
				t.Fatalf("BearerToken(%q) = %q, %v; want %q", scheme+" "+tok, again, ok, tok)
			}
		}
	})
}

// FuzzVerify: any string given as a token is refused with
// ErrUnauthenticated, except the seeds' valid token (and encodings of it
// that decode to the same bytes), which verifies to its own identity.
func FuzzVerify(f *testing.F) {
	secret := []byte("fuzz-only secret of at least 32 bytes, never deployed")
	v, err := NewVerifier(Config{HMACSecret: secret, Issuer: "parley", Audience: "parley"})
	if err != nil {
		f.Fatal(err)
	}
	iss, _ := NewDevIssuer(Config{HMACSecret: secret, Issuer: "parley", Audience: "parley"})
	// Valid for as long as a fuzz run can last.
	good, err := iss.Issue("alice", "phone", 1000*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	sign := func(m jwt.SigningMethod, c jwt.MapClaims, key any) string {
		s, _ := jwt.NewWithClaims(m, c).SignedString(key)
		return s
	}
	for _, s := range []string{
		good, "", "x", "x.y.z", "..", "a.b.c.d", strings.Repeat("A", MaxTokenBytes+1),
		good[:len(good)-1], good + "A", strings.ToUpper(good),
		sign(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": exp}, jwt.UnsafeAllowNoneSignatureType),
		sign(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": exp}, []byte("another secret of at least 32 bytes!!")),
		sign(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": exp, "iss": "parley", "aud": "other"}, secret),
		sign(jwt.SigningMethodHS256, jwt.MapClaims{"sub": []string{"alice"}, "exp": exp, "iss": "parley", "aud": "parley"}, secret),
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjF9.c2ln",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, exp, err := v.VerifyUntil(tok)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Verify(%q): error %v does not wrap ErrUnauthenticated", tok, err)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("Verify(%q): a %d-byte error message", tok, len(err.Error()))
			}
			return
		}
		if id != (Identity{UserID: "alice", DeviceID: "phone"}) || exp.IsZero() {
			t.Fatalf("Verify(%q) = %+v, %v: only the seed's token may verify", tok, id, exp)
		}
	})
}

// FuzzIssueVerify: the dev issuer and the verifier agree on the claims
// contract — a token minted for ids verifies to the same ids, and ids the
// contract refuses are refused at issue.
func FuzzIssueVerify(f *testing.F) {
	cfg := Config{HMACSecret: []byte("fuzz-only secret of at least 32 bytes, never deployed")}
	v, _ := NewVerifier(cfg)
	iss, _ := NewDevIssuer(cfg)
	for _, s := range [][2]string{{"alice", "phone"}, {"bob", ""}, {"", "d"}, {"a b", "d"}, {"é", "\u2028"},
		{"\xff", "d"}, {strings.Repeat("u", 128), strings.Repeat("d", 128)}, {strings.Repeat("u", 129), "d"}, {"\"}", "{"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, user, device string) {
		tok, err := iss.Issue(user, device, time.Hour)
		valid := schemas.CheckID("u", user) == nil && schemas.CheckOptionalID("d", device) == nil
		if err != nil {
			var idErr *schemas.IDError
			if valid || !errors.As(err, &idErr) {
				t.Fatalf("Issue(%q, %q): %v", user, device, err)
			}
			return
		}
		if !valid {
			t.Fatalf("Issue(%q, %q) minted a token for ids the contract refuses", user, device)
		}
		id, err := v.Verify(tok)
		if err != nil || id != (Identity{UserID: user, DeviceID: device}) {
			t.Fatalf("Verify(Issue(%q, %q)) = %+v, %v", user, device, id, err)
		}
	})
}

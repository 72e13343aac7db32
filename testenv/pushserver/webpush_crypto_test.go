package pushserver

import (
	"crypto/ecdh"
	"encoding/base64"
	"testing"
)

// TestDecryptRFC8291Vector decrypts the example of RFC 8291 Appendix A,
// so the decryption is checked against the RFC, not only against the
// client it tests.
func TestDecryptRFC8291Vector(t *testing.T) {
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ua, err := ecdh.P256().NewPrivateKey(b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(ua.PublicKey().Bytes()); got != "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4" {
		t.Fatalf("ua_public %s", got)
	}
	body := b64("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
	plain, err := decryptAES128GCM(body, ua, b64("BTBZMqHH6r4Tts7J_aSIgg"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "When I grow up, I want to be a watermelon"; string(plain) != want {
		t.Fatalf("plaintext %q, want %q", plain, want)
	}
	body[len(body)-1] ^= 1
	if _, err := decryptAES128GCM(body, ua, b64("BTBZMqHH6r4Tts7J_aSIgg")); err == nil {
		t.Fatal("a tampered record decrypted")
	}
}

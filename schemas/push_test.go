package schemas_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// webPushKeys returns a fresh subscription key pair's public point and an
// auth secret, base64url without padding, as a browser gives them.
func webPushKeys(t *testing.T) (p256dh, auth string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(secret)
}

func TestCheckPushTarget(t *testing.T) {
	p256dh, auth := webPushKeys(t)
	hex64 := strings.Repeat("ab", 32)
	fcm := func(tok string) *pb.PushTarget {
		return &pb.PushTarget{DeviceId: "phone", Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: tok}
	}
	apns := func(tok, topic string, env pb.ApnsEnvironment) *pb.PushTarget {
		return &pb.PushTarget{DeviceId: "ipad", Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: tok, ApnsTopic: topic, ApnsEnvironment: env}
	}
	web := func(endpoint, key, secret string) *pb.PushTarget {
		return &pb.PushTarget{DeviceId: "laptop", Provider: pb.PushProvider_PUSH_PROVIDER_WEB_PUSH, Endpoint: endpoint, P256Dh: key, Auth: secret}
	}
	with := func(t *pb.PushTarget, f func(*pb.PushTarget)) *pb.PushTarget {
		t = proto.Clone(t).(*pb.PushTarget)
		f(t)
		return t
	}
	sandbox, prod := pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX, pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION
	okWeb := web("https://fcm.googleapis.com/fcm/send/abc:def", p256dh, auth)
	// A point off the curve: the key with its last byte changed.
	key, _ := base64.RawURLEncoding.DecodeString(p256dh)
	key[64] ^= 1
	offCurve := base64.RawURLEncoding.EncodeToString(key)
	for _, tc := range []struct {
		name string
		t    *pb.PushTarget
		want string // "" when valid, else a part of the error
	}{
		{"fcm", fcm("dGVzdA:APA91bH-x_y"), ""},
		{"fcm of 4096 bytes", fcm(strings.Repeat("a", 4096)), ""},
		{"fcm with a locale", with(fcm("t"), func(t *pb.PushTarget) { t.Locale = proto.String("de-CH") }), ""},
		{"apns sandbox", apns(hex64, "com.example.chat", sandbox), ""},
		{"apns production, upper-case hex, voip topic", apns(strings.ToUpper(hex64), "com.example.chat.voip", prod), ""},
		{"web push", okWeb, ""},
		{"web push, padded base64url", web("https://push.example/x", p256dh+"=", auth+"=="), ""},
		{"webhook", &pb.PushTarget{DeviceId: "bot", Provider: pb.PushProvider_PUSH_PROVIDER_WEBHOOK, Endpoint: "https://hooks.example/p"}, ""},

		{"nil", nil, "target: missing"},
		{"no device", with(fcm("t"), func(t *pb.PushTarget) { t.DeviceId = "" }), "deviceId"},
		{"no provider", &pb.PushTarget{DeviceId: "phone", Token: "t"}, "unknown provider"},
		{"unknown provider", &pb.PushTarget{DeviceId: "phone", Provider: 99, Token: "t"}, "unknown provider"},
		{"fcm empty", fcm(""), "1 to 4096 bytes"},
		{"fcm too long", fcm(strings.Repeat("a", 4097)), "1 to 4096 bytes"},
		{"fcm with a space", fcm("a b"), "printable ASCII"},
		{"fcm with an endpoint", with(fcm("t"), func(t *pb.PushTarget) { t.Endpoint = "https://x.example" }), "target.endpoint: not a field of a fcm target"},
		{"fcm with an apns environment", with(fcm("t"), func(t *pb.PushTarget) { t.ApnsEnvironment = sandbox }), "apnsEnvironment"},
		{"apns short", apns(hex64[:62], "com.example.chat", sandbox), "64 hex digits"},
		{"apns not hex", apns(strings.Repeat("zz", 32), "com.example.chat", sandbox), "64 hex digits"},
		{"apns without topic", apns(hex64, "", sandbox), "bundle id"},
		{"apns one-label topic", apns(hex64, "chat", sandbox), "bundle id"},
		{"apns topic with a space", apns(hex64, "com.example .chat", sandbox), "bundle id"},
		{"apns topic empty label", apns(hex64, "com..chat", sandbox), "bundle id"},
		{"apns without environment", apns(hex64, "com.example.chat", 0), "apnsEnvironment"},
		{"apns with auth", with(apns(hex64, "com.example.chat", prod), func(t *pb.PushTarget) { t.Auth = auth }), "target.auth: not a field"},
		{"web push http", web("http://push.example/x", p256dh, auth), "https URL"},
		{"web push relative", web("/push", p256dh, auth), "https URL"},
		{"web push with user info", web("https://u:p@push.example/x", p256dh, auth), "https URL"},
		{"web push too long", web("https://push.example/"+strings.Repeat("a", 2048), p256dh, auth), "at most 2048"},
		{"web push no endpoint", web("", p256dh, auth), "endpoint: required"},
		{"web push key not base64url", web("https://push.example/x", "a+b/", auth), "not base64url"},
		{"web push key short", web("https://push.example/x", p256dh[:40], auth), "uncompressed P-256 point"},
		{"web push key off the curve", web("https://push.example/x", offCurve, auth), "not a point of P-256"},
		{"web push no auth", web("https://push.example/x", p256dh, ""), "auth: required"},
		{"web push auth of 15 bytes", web("https://push.example/x", p256dh, base64.RawURLEncoding.EncodeToString(make([]byte, 15))), "16 bytes"},
		{"web push with a token", with(okWeb, func(t *pb.PushTarget) { t.Token = "t" }), "target.token: not a field"},
		{"webhook with p256dh", &pb.PushTarget{DeviceId: "bot", Provider: pb.PushProvider_PUSH_PROVIDER_WEBHOOK, Endpoint: "https://h.example", P256Dh: p256dh}, "p256dh"},
		{"bad locale", with(fcm("t"), func(t *pb.PushTarget) { t.Locale = proto.String("de CH") }), "locale"},
		{"empty locale", with(fcm("t"), func(t *pb.PushTarget) { t.Locale = proto.String("") }), "locale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := schemas.CheckPushTarget(tc.t)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want one with %q", err, tc.want)
			}
		})
	}
	var ie *schemas.IDError
	if err := schemas.CheckPushTarget(&pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "t"}); !errors.As(err, &ie) {
		t.Fatalf("a missing device id is %v, want an IDError", err)
	}
}

func TestPushAddress(t *testing.T) {
	up := &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: "ABCDEF"}
	if got := schemas.PushAddress(up); got != "abcdef" {
		t.Fatalf("APNs address %q", got)
	}
	if got := schemas.PushAddress(&pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_WEB_PUSH, Endpoint: "https://e/x", Token: "no"}); got != "https://e/x" {
		t.Fatalf("web push address %q", got)
	}
	if schemas.ProviderName(pb.PushProvider_PUSH_PROVIDER_WEB_PUSH) != "web_push" || schemas.ProviderName(0) != "" || schemas.ProviderName(77) != "" {
		t.Fatal("provider names")
	}
}

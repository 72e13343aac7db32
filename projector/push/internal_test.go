package push

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func TestPublicAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700:4700::1111": true, "93.184.216.34": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false,
		"255.255.255.255": false, "198.18.0.1": false, "2002:7f00:1::": false,
	} {
		if got := publicAddress(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddress(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
		"99999999":                      24 * time.Hour,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

// outcome is Classify's answer with the status a RetryError or
// RefusedError carries.
func outcome(err error) string {
	var r *RetryError
	var f *RefusedError
	switch {
	case errors.As(err, &r):
		return "retry"
	case errors.As(err, &f):
		return "refused"
	}
	return Classify(err).String()
}

// TestFCMClassify covers the answers the FCM server is not scripted to
// give.
func TestFCMClassify(t *testing.T) {
	f := &FCM{now: time.Now}
	status := func(code int, status, errorCode, msg string) *answer {
		b := `{"error":{"code":0,"message":"` + msg + `","status":"` + status + `"`
		if errorCode != "" {
			b += `,"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"` + errorCode + `"}]`
		}
		return &answer{status: code, header: http.Header{}, body: []byte(b + "}}")}
	}
	for name, c := range map[string]struct {
		a    *answer
		want string
	}{
		"ok":                   {&answer{status: 200}, "delivered"},
		"unregistered":         {status(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."), "invalid_target"},
		"bad token":            {status(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"), "invalid_target"},
		"bad payload":          {status(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'"), "refused"},
		"sender id mismatch":   {status(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"), "refused"},
		"third party auth":     {status(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"), "refused"},
		"quota":                {status(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded"), "retry"},
		"internal":             {status(500, "INTERNAL", "INTERNAL", "Internal error"), "retry"},
		"unavailable, no body": {&answer{status: 503}, "retry"},
		"404 not from FCM":     {&answer{status: 404, body: []byte("<html>Not Found</html>")}, "refused"},
		"404 NOT_FOUND":        {status(404, "NOT_FOUND", "", "Requested entity was not found."), "invalid_target"},
		"too large":            {&answer{status: 413}, "refused"},
	} {
		if got := outcome(f.classify(c.a)); got != c.want {
			t.Errorf("%s: %s (%v), want %s", name, got, f.classify(c.a), c.want)
		}
	}
}

func TestAPNsClassify(t *testing.T) {
	a := &APNs{now: time.Now}
	for name, c := range map[string]struct {
		status int
		reason string
		want   string
	}{
		"ok":                     {200, "", "delivered"},
		"unregistered":           {410, "Unregistered", "invalid_target"},
		"bad device token":       {400, "BadDeviceToken", "invalid_target"},
		"not for topic":          {400, "DeviceTokenNotForTopic", "invalid_target"},
		"bad payload":            {400, "PayloadEmpty", "refused"},
		"too large":              {413, "PayloadTooLarge", "refused"},
		"expired provider token": {403, "ExpiredProviderToken", "retry"},
		"invalid provider token": {403, "InvalidProviderToken", "refused"},
		"topic disallowed":       {400, "TopicDisallowed", "refused"},
		"too many requests":      {429, "TooManyRequests", "retry"},
		"internal":               {500, "InternalServerError", "retry"},
		"unavailable":            {503, "ServiceUnavailable", "retry"},
	} {
		err := a.classify(&answer{status: c.status, header: http.Header{}}, c.reason)
		if got := outcome(err); got != c.want {
			t.Errorf("%s: %s (%v), want %s", name, got, err, c.want)
		}
	}
}

func TestWebPushClassify(t *testing.T) {
	w := &WebPush{now: time.Now}
	for status, want := range map[int]string{201: "delivered", 202: "delivered", 400: "refused", 401: "refused", 403: "refused",
		404: "invalid_target", 410: "invalid_target", 413: "refused", 429: "retry", 500: "retry", 502: "retry"} {
		if got := outcome(w.classify(&answer{status: status, header: http.Header{}}, "push.example")); got != want {
			t.Errorf("HTTP %d: %s, want %s", status, got, want)
		}
	}
}

// TestAPNsTokenReuse: one provider token for 50 minutes, then a new one;
// a token APNs refused is replaced at once.
func TestAPNsTokenReuse(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tk := &apnsTokens{key: key, keyID: "ABCDEFGHIJ", teamID: "TEAM012345", now: func() time.Time { return now }}
	first, err := tk.get("")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(49 * time.Minute)
	if again, _ := tk.get(""); again != first {
		t.Fatal("a new token before 50 minutes")
	}
	now = now.Add(2 * time.Minute)
	second, _ := tk.get("")
	if second == first {
		t.Fatal("the same token after 51 minutes")
	}
	if third, _ := tk.get(second); third == second {
		t.Fatal("a refused token was not replaced")
	}
}

func TestAPNsIDs(t *testing.T) {
	id := apnsID("evt-1/dev-1")
	if id != apnsID("evt-1/dev-1") || id == apnsID("evt-1/dev-2") || len(id) != 36 || id[14] != '8' {
		t.Errorf("apnsID %s: want a stable version 8 UUID per notification id", id)
	}
	long := strings.Repeat("c", 100)
	if c := apnsCollapseID(long); len(c) != 64 || c != apnsCollapseID(long) {
		t.Errorf("collapse id of a long key: %q", c)
	}
	if c := apnsCollapseID("d:abc"); c != "d:abc" {
		t.Errorf("a short key is kept, got %q", c)
	}
}

// TestErrorsCarryNoSecrets: transport errors name the host, never the
// endpoint URL (a Web Push or webhook URL is a capability).
func TestErrorsCarryNoSecrets(t *testing.T) {
	w, err := NewWebhook(WebhookConfig{Secret: []byte("0123456789abcdef0123456789abcdef"), AllowPrivate: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := &Notification{ID: "n", Kind: KindMessage}
	n.Target = webhookTarget("https://127.0.0.1:1/hook/secret-path-token")
	err = w.Send(t.Context(), n)
	if Classify(err) != Retry || strings.Contains(err.Error(), "secret-path-token") || strings.Contains(err.Error(), "0123456789abcdef") {
		t.Fatalf("err %v: want a retry that quotes neither the path nor the secret", err)
	}
}

func webhookTarget(endpoint string) *pb.PushTarget {
	return &pb.PushTarget{DeviceId: "dev1", Provider: pb.PushProvider_PUSH_PROVIDER_WEBHOOK, Endpoint: endpoint}
}

func TestShorten(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 8, "hello…"},
		{"ééé", 6, "ééé"},
		{"éééé", 6, "é…"}, // never half a character
		{"hello", 3, ""},
	} {
		if got := shorten(c.s, c.max); got != c.want || len(got) > max(c.max, 0) {
			t.Errorf("shorten(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
}

package pushserver

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// post sends a raw request and returns the status and body.
func post(t *testing.T, c *http.Client, u string, h map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServersRefuseMalformed: requests a real provider refuses are
// refused, with a reason, and none is recorded as accepted.
func TestServersRefuseMalformed(t *testing.T) {
	fcm := StartFCM(t)
	sendURL := fcm.URL() + "/v1/projects/" + fcm.ProjectID + "/messages:send"
	if s, _ := post(t, fcm.Client(), sendURL, map[string]string{"Content-Type": "application/json"}, `{"message":{"token":"x"}}`); s != 401 {
		t.Errorf("FCM send without a bearer token: %d, want 401", s)
	}
	if s, b := post(t, fcm.Client(), fcm.TokenURL(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		url.Values{"grant_type": {fcmGrant}, "assertion": {"not.a.jwt"}}.Encode()); s != 400 || !strings.Contains(b, "invalid_grant") {
		t.Errorf("FCM grant with a bad assertion: %d %s", s, b)
	}

	apns := StartAPNs(t)
	h := map[string]string{"authorization": "bearer x", "apns-topic": "com.example.chat", "apns-push-type": "background", "apns-priority": "10"}
	if s, b := post(t, apns.Client(), apns.URL()+"/3/device/"+strings.Repeat("ab", 32), h, `{"aps":{"content-available":1}}`); s != 403 || !strings.Contains(b, "InvalidProviderToken") {
		t.Errorf("APNs with a bad provider token: %d %s", s, b)
	}
	if s, b := post(t, apns.Client(), apns.URL()+"/3/device/abc", h, `{}`); s != 400 || !strings.Contains(b, "BadDeviceToken") {
		t.Errorf("APNs with a short device token: %d %s", s, b)
	}

	wp := StartWebPush(t)
	sub := wp.Subscribe(t)
	if s, b := post(t, wp.Client(), sub.Endpoint, map[string]string{"TTL": "60"}, "x"); s != 401 || !strings.Contains(b, "vapid") {
		t.Errorf("Web Push without VAPID: %d %s", s, b)
	}

	hook := StartWebhook(t)
	if s, b := post(t, hook.Client(), hook.Endpoint(), map[string]string{"Content-Type": "application/json", "Parley-Timestamp": "1", "Parley-Signature": "t=1,v1=00"}, `{}`); s != 401 || !strings.Contains(b, "tolerance") {
		t.Errorf("webhook with a stale signature: %d %s", s, b)
	}

	for name, n := range map[string]int{"fcm": len(fcm.Requests()), "apns": len(apns.Requests()), "webpush": len(wp.Requests()), "webhook": len(hook.Requests())} {
		if n != 0 {
			t.Errorf("%s accepted %d malformed requests", name, n)
		}
	}
	if r := len(fcm.Rejections()) + len(apns.Rejections()) + len(wp.Rejections()) + len(hook.Rejections()); r != 6 {
		t.Errorf("%d rejections recorded, want 6", r)
	}
}

// failingBody is a body whose sender went away halfway.
type failingBody struct{ sent bool }

func (b *failingBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"message":`), nil
	}
	return 0, io.ErrUnexpectedEOF
}

func (*failingBody) Close() error { return nil }

// TestReadBodyClientGone: a body cut off by its sender is told apart from
// one too large, so the servers do not record it as malformed.
func TestReadBodyClientGone(t *testing.T) {
	r := &http.Request{Body: &failingBody{}}
	if _, err := readBody(r, 1024); !errors.Is(err, errClientGone) {
		t.Fatalf("a cut-off body: %v, want errClientGone", err)
	}
	r = &http.Request{Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 2000)))}
	if _, err := readBody(r, 1024); err == nil || errors.Is(err, errClientGone) {
		t.Fatalf("a body over the limit: %v, want a size error", err)
	}
}

package push_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/push"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/pushserver"
)

func newWebhook(t testing.TB, srv *pushserver.Webhook, secret []byte) *push.Webhook {
	t.Helper()
	w, err := push.NewWebhook(push.WebhookConfig{Secret: secret, AllowPrivate: true, RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebhookSendMessage(t *testing.T) {
	srv := pushserver.StartWebhook(t)
	w := newWebhook(t, srv, srv.Secret)
	tg := srv.Target("dev1")
	locale := "de-CH"
	tg.Locale = &locale
	n := message(tg, "n-1")
	if err := w.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, srv.Endpoint(), n, n.Title, n.Body, n.Collapse)
	h := got.Header
	if h.Get("Parley-Notification-Id") != n.ID || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	// The receiver's recipe, with the exported verifier.
	if err := push.VerifySignature(srv.Secret, h.Get("Parley-Signature"), got.Raw, time.Now(), push.DefaultSignatureTolerance); err != nil {
		t.Errorf("VerifySignature of the request sent: %v", err)
	}
	if ts, err := strconv.ParseInt(h.Get("Parley-Timestamp"), 10, 64); err != nil || !strings.HasPrefix(h.Get("Parley-Signature"), "t="+strconv.FormatInt(ts, 10)+",v1=") {
		t.Errorf("Parley-Timestamp %q, Parley-Signature %q", h.Get("Parley-Timestamp"), h.Get("Parley-Signature"))
	}
	var p push.WebhookPayload
	if err := json.Unmarshal(got.Raw, &p); err != nil {
		t.Fatal(err)
	}
	want := push.WebhookPayload{ID: n.ID, Kind: "message", UserID: n.UserID, DeviceID: "dev1", ConversationID: n.ConversationID, Seq: n.Seq,
		Title: n.Title, Body: n.Body, Badge: n.Badge, Collapse: n.Collapse, Locale: "de-CH", Data: wantData(n)}
	if b1, b2 := mustJSON(t, p), mustJSON(t, want); b1 != b2 {
		t.Errorf("payload %s, want %s", b1, b2)
	}
}

func TestWebhookSendClear(t *testing.T) {
	srv := pushserver.StartWebhook(t)
	w := newWebhook(t, srv, srv.Secret)
	n := clear(srv.Target("dev1"), "n-c")
	if err := w.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	checkRecorded(t, waitOne(t, srv, 1), srv.Endpoint(), n, "", "", n.Collapse)
}

func TestWebhookAnswers(t *testing.T) {
	srv := pushserver.StartWebhook(t)
	w := newWebhook(t, srv, srv.Secret)
	scriptedErrors(t, srv, srv.Endpoint(), func() error { return w.Send(testCtx(t), message(srv.Target("dev1"), "n")) })
}

// TestWebhookWrongSecret: the receiver really checks the signature.
func TestWebhookWrongSecret(t *testing.T) {
	srv := pushserver.StartWebhook(t)
	w := newWebhook(t, srv, []byte("not-the-shared-secret-at-all"))
	wantRefused(t, w.Send(testCtx(t), message(srv.Target("dev1"), "n")), 401)
	if rej := srv.Rejections(); len(rej) != 1 || !strings.Contains(rej[0], "Parley-Signature") {
		t.Fatalf("rejections %q", rej)
	}
}

// TestWebhookSSRF: by default an endpoint on a non-public address is
// refused when dialed, before anything is sent.
func TestWebhookSSRF(t *testing.T) {
	srv := pushserver.StartWebhook(t)
	w, err := push.NewWebhook(push.WebhookConfig{Secret: srv.Secret, RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	for _, endpoint := range []string{srv.Endpoint(), strings.Replace(srv.Endpoint(), "127.0.0.1", "localhost", 1)} {
		tg := srv.Target("dev1")
		tg.Endpoint = endpoint
		r := wantRefused(t, w.Send(testCtx(t), message(tg, "n")), 0)
		if !strings.Contains(r.Reason, "non-public address") || !strings.Contains(r.Reason, "AllowPrivate") {
			t.Errorf("%s: reason %q", endpoint, r.Reason)
		}
	}
	if n := srv.Received(); n != 0 {
		t.Fatalf("the receiver got %d requests, want none", n)
	}
	tg := srv.Target("dev1")
	tg.Endpoint = strings.Replace(srv.Endpoint(), "https:", "http:", 1)
	wantRefused(t, w.Send(testCtx(t), message(tg, "n")), 0)
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"id":"n-1"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := push.Sign(secret, now, body)
	tol := push.DefaultSignatureTolerance
	if err := push.VerifySignature(secret, sig, body, now.Add(4*time.Minute), tol); err != nil {
		t.Errorf("good signature: %v", err)
	}
	// A rotated secret: either of two signatures will do.
	rotated := sig + ",v1=" + strings.Repeat("ab", 32)
	if err := push.VerifySignature(secret, rotated, body, now, tol); err != nil {
		t.Errorf("two v1 values, one good: %v", err)
	}
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		"tampered body":   {secret, sig, []byte(`{"id":"n-2"}`), now, push.ErrSignatureBad},
		"other secret":    {[]byte("another secret of 32 bytes......"), sig, body, now, push.ErrSignatureBad},
		"stale":           {secret, sig, body, now.Add(6 * time.Minute), push.ErrSignatureStale},
		"from the future": {secret, sig, body, now.Add(-6 * time.Minute), push.ErrSignatureStale},
		"no v1":           {secret, "t=1800000000", body, now, push.ErrSignatureHeader},
		"not key=value":   {secret, "garbage", body, now, push.ErrSignatureHeader},
		"short v1":        {secret, "t=1800000000,v1=abcd", body, now, push.ErrSignatureHeader},
		"moved timestamp": {secret, strings.Replace(sig, "t=1800000000", "t=1800000001", 1), body, now, push.ErrSignatureBad},
	} {
		if err := push.VerifySignature(c.secret, c.header, c.body, c.now, tol); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestWebhookConfigValidate(t *testing.T) {
	if _, err := push.NewWebhook(push.WebhookConfig{Secret: []byte("short")}); err == nil || !strings.HasPrefix(err.Error(), "webhook: ") {
		t.Errorf("a short secret: %v", err)
	}
}

// TestWrongProvider: a sender refuses another provider's target.
func TestWrongProvider(t *testing.T) {
	w, err := push.NewWebhook(push.WebhookConfig{Secret: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, w.Send(testCtx(t), message(&pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "x"}, "n")), 0)
	n := message(&pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_WEBHOOK, Endpoint: "https://example.com/hook"}, "n")
	n.Kind = 0
	wantRefused(t, w.Send(testCtx(t), n), 0)
}

// TestWebhookTimeout: a receiver that does not answer within Timeout is
// a retry, carrying context.DeadlineExceeded.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer stuck.Close()
	defer close(release)
	pool := x509.NewCertPool()
	pool.AddCert(stuck.Certificate())
	w, err := push.NewWebhook(push.WebhookConfig{Secret: []byte("0123456789abcdef"), AllowPrivate: true, RootCAs: pool, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tg := &pb.PushTarget{DeviceId: "dev1", Provider: pb.PushProvider_PUSH_PROVIDER_WEBHOOK, Endpoint: stuck.URL + "/hook"}
	err = w.Send(testCtx(t), message(tg, "n"))
	wantRetry(t, err, 0, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want it to wrap context.DeadlineExceeded", err)
	}
}

package push_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/testenv/pushserver"
)

// vapidKeys is a new VAPID key pair, base64url.
func vapidKeys(t testing.TB) (public, private string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(k.Bytes())
}

// newWebPush is a client whose VAPID key the server binds its
// subscriptions to.
func newWebPush(t testing.TB, srv *pushserver.WebPush) *push.WebPush {
	t.Helper()
	pub, priv := vapidKeys(t)
	srv.RequireVAPIDKey(pub)
	w, err := push.NewWebPush(push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "mailto:ops@example.com", RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebPushSendMessage(t *testing.T) {
	srv := pushserver.StartWebPush(t)
	w := newWebPush(t, srv)
	sub := srv.Subscribe(t)
	n := message(sub.Target("dev1"), "n-1")
	if err := w.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, sub.Endpoint, n, n.Title, n.Body, push.WebPushTopic(n.Collapse))
	if got.Priority != "high" || got.Header.Get("TTL") != "86400" {
		t.Errorf("Urgency %q TTL %q, want high 86400", got.Priority, got.Header.Get("TTL"))
	}
	if topic := got.Collapse; len(topic) != 32 {
		t.Errorf("Topic %q: want 32 characters", topic)
	}
	// The decrypted payload is exactly the documented JSON.
	var p push.WebPushPayload
	if err := json.Unmarshal(got.Raw, &p); err != nil {
		t.Fatal(err)
	}
	want := push.WebPushPayload{ID: n.ID, Kind: "message", ConversationID: n.ConversationID, Seq: n.Seq, Title: n.Title, Body: n.Body, Badge: n.Badge, Data: wantData(n)}
	if b1, b2 := mustJSON(t, p), mustJSON(t, want); b1 != b2 {
		t.Errorf("payload %s, want %s", b1, b2)
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWebPushSendClear(t *testing.T) {
	srv := pushserver.StartWebPush(t)
	w := newWebPush(t, srv)
	sub := srv.Subscribe(t)
	n := clear(sub.Target("dev1"), "n-c")
	if err := w.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, sub.Endpoint, n, "", "", push.WebPushTopic(n.Collapse))
	if got.Priority != "normal" {
		t.Errorf("Urgency %q, want normal", got.Priority)
	}
}

func TestWebPushAnswers(t *testing.T) {
	srv := pushserver.StartWebPush(t)
	w := newWebPush(t, srv)
	sub := srv.Subscribe(t)
	scriptedErrors(t, srv, sub.Endpoint, func() error { return w.Send(testCtx(t), message(sub.Target("dev1"), "n")) })
	t.Run("unknown subscription", func(t *testing.T) {
		tg := sub.Target("dev1")
		tg.Endpoint = srv.URL() + "/push/0000"
		wantInvalid(t, w.Send(testCtx(t), message(tg, "n")))
	})
}

// TestWebPushWrongKeys: the server really checks VAPID and really
// decrypts.
func TestWebPushWrongKeys(t *testing.T) {
	srv := pushserver.StartWebPush(t)
	newWebPush(t, srv) // binds the subscriptions to its key
	sub := srv.Subscribe(t)
	t.Run("another VAPID key", func(t *testing.T) {
		pub, priv := vapidKeys(t)
		w, err := push.NewWebPush(push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "https://example.com/contact", RootCAs: srv.CertPool()})
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, w.Send(testCtx(t), message(sub.Target("dev1"), "n")), 403)
		if rej := srv.Rejections(); len(rej) != 1 || !strings.Contains(rej[0], "application server key") {
			t.Fatalf("rejections %q", rej)
		}
	})
	t.Run("encrypted for another subscription", func(t *testing.T) {
		srv := pushserver.StartWebPush(t)
		w := newWebPush(t, srv)
		sub, other := srv.Subscribe(t), srv.Subscribe(t)
		tg := sub.Target("dev1")
		tg.P256Dh = other.P256dh
		wantRefused(t, w.Send(testCtx(t), message(tg, "n")), 400)
		if rej := srv.Rejections(); len(rej) != 1 || !strings.Contains(rej[0], "decrypting") {
			t.Fatalf("rejections %q", rej)
		}
	})
}

func TestWebPushConfigValidate(t *testing.T) {
	pub, priv := vapidKeys(t)
	otherPub, _ := vapidKeys(t)
	good := push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "mailto:ops@example.com"}
	if err := good.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	for name, mod := range map[string]func(*push.WebPushConfig){
		"no private key":  func(c *push.WebPushConfig) { c.VAPIDPrivateKey = "" },
		"mismatched keys": func(c *push.WebPushConfig) { c.VAPIDPublicKey = otherPub },
		"bare address":    func(c *push.WebPushConfig) { c.Subscriber = "ops@example.com" },
		"http contact":    func(c *push.WebPushConfig) { c.Subscriber = "http://example.com" },
		"negative TTL":    func(c *push.WebPushConfig) { c.TTL = -1 },
	} {
		c := good
		mod(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "webpush: ") {
			t.Errorf("%s: Validate = %v, want a webpush: error", name, err)
		}
		if err != nil && strings.Contains(err.Error(), priv) {
			t.Errorf("%s: the error quotes the private key", name)
		}
	}
}

// TestWebPushLongBody: the payload is shortened to fit one record.
func TestWebPushLongBody(t *testing.T) {
	srv := pushserver.StartWebPush(t)
	w := newWebPush(t, srv)
	sub := srv.Subscribe(t)
	n := message(sub.Target("dev1"), "n-long")
	n.Body = strings.Repeat("ü", 5000)
	if err := w.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	if !strings.HasSuffix(got.Body, "…") || len(got.Body) < 3000 {
		t.Fatalf("body of %d bytes: want it shortened to fit, with an ellipsis", len(got.Body))
	}
	// Data alone too large: refused as too large, nothing sent.
	n.Data = map[string]string{"big": strings.Repeat("x", 5000)}
	wantRefused(t, w.Send(testCtx(t), n), 413)
	if r := srv.Received(); r != 1 {
		t.Fatalf("%d requests reached the server, want 1", r)
	}
}

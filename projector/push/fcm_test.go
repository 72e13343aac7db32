package push_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/push"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/pushserver"
)

const fcmToken = "fcm-registration-token:APA91bTestDevice"

func fcmTarget(tok string) *pb.PushTarget {
	return &pb.PushTarget{DeviceId: "dev1", Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: tok}
}

func newFCM(t testing.TB, srv *pushserver.FCM) *push.FCM {
	t.Helper()
	f, err := push.NewFCM(push.FCMConfig{CredentialsFile: srv.WriteServiceAccount(t), Endpoint: srv.URL(), RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fcmBody is the parts of the sent message the recorded fields do not
// show.
type fcmBody struct {
	Message struct {
		Notification *struct{ Title, Body string } `json:"notification"`
		Android      struct {
			CollapseKey  string `json:"collapse_key"`
			Priority     string `json:"priority"`
			Notification *struct {
				Tag               string `json:"tag"`
				NotificationCount int64  `json:"notification_count"`
			} `json:"notification"`
		} `json:"android"`
		APNS struct {
			Headers map[string]string `json:"headers"`
			Payload struct {
				APS map[string]any `json:"aps"`
			} `json:"payload"`
		} `json:"apns"`
	} `json:"message"`
}

func TestFCMSendMessage(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	n := message(fcmTarget(fcmToken), "n-1")
	if err := f.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, fcmToken, n, n.Title, n.Body, n.Collapse)
	if got.Priority != "high" {
		t.Errorf("android priority %q, want high", got.Priority)
	}
	var b fcmBody
	if err := json.Unmarshal(got.Raw, &b); err != nil {
		t.Fatal(err)
	}
	m := b.Message
	if an := m.Android.Notification; an == nil || an.Tag != n.Collapse || an.NotificationCount != n.Badge {
		t.Errorf("android.notification %+v, want tag %q count %d", an, n.Collapse, n.Badge)
	}
	if h := m.APNS.Headers; h["apns-collapse-id"] != n.Collapse || h["apns-push-type"] != "alert" || h["apns-priority"] != "10" {
		t.Errorf("apns headers %v", h)
	}
	if aps := m.APNS.Payload.APS; aps["badge"] != float64(n.Badge) || aps["thread-id"] != n.ConversationID {
		t.Errorf("apns aps %v", aps)
	}
	if ua := got.Header.Get("User-Agent"); ua != "parley-notifier" {
		t.Errorf("User-Agent %q", ua)
	}
}

func TestFCMSendClear(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	n := clear(fcmTarget(fcmToken), "n-2")
	if err := f.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, fcmToken, n, "", "", n.Collapse)
	var b fcmBody
	if err := json.Unmarshal(got.Raw, &b); err != nil {
		t.Fatal(err)
	}
	m := b.Message
	if m.Notification != nil || m.Android.Notification != nil || m.Android.Priority != "normal" {
		t.Errorf("a clear is a normal-priority data message, got notification %v android %+v", m.Notification, m.Android)
	}
	if h := m.APNS.Headers; h["apns-push-type"] != "background" || h["apns-priority"] != "5" {
		t.Errorf("apns headers %v", h)
	}
	if aps := m.APNS.Payload.APS; aps["content-available"] != float64(1) || aps["badge"] != float64(1) || aps["alert"] != nil {
		t.Errorf("apns aps %v", aps)
	}
}

func TestFCMHiddenPreview(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	n := message(fcmTarget(fcmToken), "n-3")
	n.Title, n.Body = "", ""
	if err := f.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	checkRecorded(t, waitOne(t, srv, 1), fcmToken, n, "", push.DefaultHiddenBody, n.Collapse)
}

func TestFCMAnswers(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	i := 0
	scriptedErrors(t, srv, fcmToken, func() error {
		i++
		return f.Send(testCtx(t), message(fcmTarget(fcmToken), "n-"+string(rune('a'+i))))
	})
}

// TestFCMTokenCaching: one grant serves many sends; a token the API
// refuses (401) is replaced once; a token close to its expiry is
// replaced before it is used.
func TestFCMTokenCaching(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	send := func(id string) {
		t.Helper()
		if err := f.Send(testCtx(t), message(fcmTarget(fcmToken), id)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		send("cached-" + string(rune('a'+i)))
	}
	if g := srv.Grants(); g != 1 {
		t.Fatalf("%d grants for 5 sends, want 1", g)
	}
	srv.ExpireTokens()
	send("after-401")
	if g, rej := srv.Grants(), srv.Rejections(); g != 2 || len(rej) != 1 || !strings.Contains(rej[0], "access token") {
		t.Fatalf("after a 401: %d grants, rejections %q; want 2 grants and one refused token", g, rej)
	}
	// Tokens living less than the refresh margin are never reused.
	srv.SetTokenLifetime(4 * time.Minute)
	srv.ExpireTokens()
	send("short-1") // a 401, then a grant of a 4-minute token
	send("short-2") // that token is within the margin: another grant
	if g := srv.Grants(); g != 4 {
		t.Fatalf("%d grants, want 4: a token within 5 minutes of expiry must be replaced", g)
	}
	if got, err := srv.WaitFor(testCtx(t), 8); err != nil || len(got) != 8 {
		t.Fatalf("accepted %d sends (%v), want 8", len(got), err)
	}
}

// TestFCMWrongKey: a key the token endpoint does not know is refused
// there, and Send reports a refusal (the credentials will not recover).
func TestFCMWrongKey(t *testing.T) {
	srv := pushserver.StartFCM(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f, err := push.NewFCM(push.FCMConfig{Credentials: srv.ServiceAccountWithKey(other), Endpoint: srv.URL(), RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	r := wantRefused(t, f.Send(testCtx(t), message(fcmTarget(fcmToken), "n-x")), 400)
	if !strings.Contains(r.Reason, "invalid_grant") {
		t.Errorf("reason %q, want invalid_grant", r.Reason)
	}
	if rej := srv.Rejections(); len(rej) != 1 || !strings.Contains(rej[0], "assertion") {
		t.Errorf("server rejections %q, want one about the assertion", rej)
	}
	if srv.Grants() != 0 || len(srv.Requests()) != 0 {
		t.Errorf("grants %d, accepted %d: want none", srv.Grants(), len(srv.Requests()))
	}
	if strings.Contains(r.Error(), "PRIVATE KEY") {
		t.Errorf("the error quotes the key: %v", r)
	}
}

func TestFCMConfigValidate(t *testing.T) {
	for name, c := range map[string]push.FCMConfig{
		"no credentials":   {},
		"both credentials": {CredentialsFile: "sa.json", Credentials: []byte("{}")},
		"http endpoint":    {Credentials: []byte("{}"), Endpoint: "http://fcm.example"},
		"bad token URL":    {Credentials: []byte("{}"), TokenURL: "token"},
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "fcm: ") {
			t.Errorf("%s: Validate = %v, want an fcm: error", name, err)
		}
	}
	if _, err := push.NewFCM(push.FCMConfig{Credentials: []byte(`{"type":"service_account","project_id":"p","client_email":"e","token_uri":"https://t.example/token","private_key":"nope"}`)}); err == nil || !strings.Contains(err.Error(), "private_key") {
		t.Errorf("a key file without a PEM key: %v", err)
	}
}

func TestFCMReservedDataKey(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	n := message(fcmTarget(fcmToken), "n-r")
	n.Data = map[string]string{"google.sent_time": "1"}
	r := wantRefused(t, f.Send(testCtx(t), n), 0)
	if !strings.Contains(r.Reason, "reserved") || srv.Received() != 0 {
		t.Fatalf("reason %q, %d requests sent; want a refusal before sending", r.Reason, srv.Received())
	}
}

// TestFCMWrongProject: a send to a project the server does not serve is
// refused, and never taken for an invalid token.
func TestFCMWrongProject(t *testing.T) {
	srv := pushserver.StartFCM(t)
	var sa map[string]string
	if err := json.Unmarshal(srv.ServiceAccountJSON(), &sa); err != nil {
		t.Fatal(err)
	}
	sa["project_id"] = "another-project"
	b, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	f, err := push.NewFCM(push.FCMConfig{Credentials: b, Endpoint: srv.URL(), RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, f.Send(testCtx(t), message(fcmTarget(fcmToken), "n-p")), 404)
	if rej := srv.Rejections(); len(rej) != 1 || !strings.Contains(rej[0], "another-project") {
		t.Fatalf("rejections %q", rej)
	}
}

// TestFCMUnreachable: a provider that cannot be reached is a retry, and
// the error names the host only.
func TestFCMUnreachable(t *testing.T) {
	srv := pushserver.StartFCM(t)
	f := newFCM(t, srv)
	srv.Close()
	err := f.Send(testCtx(t), message(fcmTarget(fcmToken), "n-u"))
	wantRetry(t, err, 0, 0)
	if strings.Contains(err.Error(), "/token") || strings.Contains(err.Error(), "ya29") {
		t.Errorf("the error quotes more than the host: %v", err)
	}
}

package push_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/projector/push"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/pushserver"
)

const (
	apnsToken = "3f2a9c0d4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
	apnsTopic = "com.example.chat"
)

func apnsTarget(env pb.ApnsEnvironment) *pb.PushTarget {
	return &pb.PushTarget{DeviceId: "dev1", Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: apnsToken, ApnsTopic: apnsTopic, ApnsEnvironment: env}
}

func apnsConfig(t testing.TB, srv *pushserver.APNs) push.APNsConfig {
	return push.APNsConfig{KeyFile: srv.WriteKey(t), KeyID: srv.KeyID, TeamID: srv.TeamID,
		Production: srv.URL(), Sandbox: srv.URL(), RootCAs: srv.CertPool()}
}

func newAPNs(t testing.TB, srv *pushserver.APNs) *push.APNs {
	t.Helper()
	a, err := push.NewAPNs(apnsConfig(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAPNsSendMessage(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	srv.SetTopic(apnsTopic)
	a := newAPNs(t, srv)
	n := message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-1")
	if err := a.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, apnsToken, n, n.Title, n.Body, n.Collapse)
	if got.ProtoMajor != 2 {
		t.Errorf("HTTP/%d, want HTTP/2", got.ProtoMajor)
	}
	h := got.Header
	if h.Get("apns-topic") != apnsTopic || h.Get("apns-push-type") != "alert" || h.Get("apns-priority") != "10" {
		t.Errorf("headers topic %q push-type %q priority %q", h.Get("apns-topic"), h.Get("apns-push-type"), h.Get("apns-priority"))
	}
	if !uuidForm.MatchString(h.Get("apns-id")) {
		t.Errorf("apns-id %q is not a version 8 UUID", h.Get("apns-id"))
	}
	exp, err := strconv.ParseInt(h.Get("apns-expiration"), 10, 64)
	if d := time.Until(time.Unix(exp, 0)); err != nil || d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("apns-expiration %q, want about a day ahead", h.Get("apns-expiration"))
	}
	var body struct {
		APS map[string]any `json:"aps"`
	}
	if err := json.Unmarshal(got.Raw, &body); err != nil {
		t.Fatal(err)
	}
	if body.APS["sound"] != "default" || body.APS["thread-id"] != n.ConversationID {
		t.Errorf("aps %v, want sound default and thread-id %s", body.APS, n.ConversationID)
	}

	// A redelivery carries the same apns-id; another notification another.
	if err := a.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	other := message(n.Target, "n-2")
	if err := a.Send(testCtx(t), other); err != nil {
		t.Fatal(err)
	}
	reqs, err := srv.WaitFor(testCtx(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if id0, id1, id2 := reqs[0].Header.Get("apns-id"), reqs[1].Header.Get("apns-id"), reqs[2].Header.Get("apns-id"); id0 != id1 || id0 == id2 {
		t.Errorf("apns-ids %s %s %s: want the first two equal, the third different", id0, id1, id2)
	}
}

func TestAPNsSendClear(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	a := newAPNs(t, srv)
	n := clear(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-c")
	if err := a.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	checkRecorded(t, got, apnsToken, n, "", "", n.Collapse)
	if got.Header.Get("apns-push-type") != "background" || got.Priority != "5" || got.Header.Get("apns-topic") != apnsTopic {
		t.Errorf("push-type %q priority %q topic %q, want background 5 %s", got.Header.Get("apns-push-type"), got.Priority, got.Header.Get("apns-topic"), apnsTopic)
	}
	var body struct {
		APS map[string]any `json:"aps"`
	}
	if err := json.Unmarshal(got.Raw, &body); err != nil {
		t.Fatal(err)
	}
	if body.APS["content-available"] != float64(1) || body.APS["badge"] != float64(1) || len(body.APS) != 2 {
		t.Errorf("aps %v, want exactly content-available 1 and badge 1", body.APS)
	}
}

func TestAPNsHiddenPreview(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	a := newAPNs(t, srv)
	n := message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-h")
	n.Title, n.Body = "", ""
	if err := a.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	checkRecorded(t, waitOne(t, srv, 1), apnsToken, n, "", push.DefaultHiddenBody, n.Collapse)
}

// TestAPNsEnvironment: a target goes to its environment's gateway.
func TestAPNsEnvironment(t *testing.T) {
	prod := pushserver.StartAPNs(t)
	sandbox := pushserver.StartAPNsLike(t, prod)
	cfg := apnsConfig(t, prod)
	cfg.Sandbox = sandbox.URL()
	cfg.RootCAs = x509.NewCertPool()
	cfg.RootCAs.AddCert(prod.Certificate())
	cfg.RootCAs.AddCert(sandbox.Certificate())
	a, err := push.NewAPNs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, env := range []pb.ApnsEnvironment{pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX, pb.ApnsEnvironment_APNS_ENVIRONMENT_SANDBOX, pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION} {
		if err := a.Send(ctx, message(apnsTarget(env), "n-"+env.String())); err != nil {
			t.Fatal(err)
		}
	}
	if p, s := len(prod.Requests()), len(sandbox.Requests()); p != 1 || s != 2 {
		t.Errorf("production got %d, sandbox %d; want 1 and 2", p, s)
	}
	wantRefused(t, a.Send(ctx, message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_UNSPECIFIED), "n-u")), 0)
}

func TestAPNsAnswers(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	a := newAPNs(t, srv)
	i := 0
	scriptedErrors(t, srv, apnsToken, func() error {
		i++
		return a.Send(testCtx(t), message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-"+strconv.Itoa(i)))
	})
	t.Run("token not for topic", func(t *testing.T) {
		srv.SetTopic("com.example.other")
		defer srv.SetTopic("")
		wantInvalid(t, a.Send(testCtx(t), message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-topic")))
	})
}

// TestAPNsProviderToken: one JWT serves many sends; an expired one is
// replaced once and the send goes through.
func TestAPNsProviderToken(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	a := newAPNs(t, srv)
	ctx := testCtx(t)
	for i := range 5 {
		if err := a.Send(ctx, message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if jwts := srv.ProviderTokens(); len(jwts) != 1 {
		t.Fatalf("%d provider tokens for 5 sends, want 1", len(jwts))
	}
	srv.ExpireProviderTokens()
	if err := a.Send(ctx, message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-after")); err != nil {
		t.Fatal(err)
	}
	if jwts, rej := srv.ProviderTokens(), srv.Rejections(); len(jwts) != 2 || len(rej) != 1 || !strings.HasPrefix(rej[0], "ExpiredProviderToken") {
		t.Fatalf("%d provider tokens, rejections %q; want 2 and one ExpiredProviderToken", len(jwts), rej)
	}
	if got, err := srv.WaitFor(ctx, 6); err != nil || len(got) != 6 {
		t.Fatalf("accepted %d (%v), want 6", len(got), err)
	}
}

// TestAPNsWrongKey: a token signed with a key APNs does not know is
// refused (after one fresh token), and never retried for ever.
func TestAPNsWrongKey(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apnsConfig(t, srv)
	cfg.KeyFile, cfg.Key = "", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	a, err := push.NewAPNs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := wantRefused(t, a.Send(testCtx(t), message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-k")), 403)
	if !strings.Contains(r.Reason, "InvalidProviderToken") {
		t.Errorf("reason %q", r.Reason)
	}
	if rej := srv.Rejections(); len(rej) != 2 || !strings.HasPrefix(rej[0], "InvalidProviderToken") {
		t.Errorf("rejections %q, want two InvalidProviderToken (the first token and its replacement)", rej)
	}
}

// TestAPNsHTTP2Only: the server refuses HTTP/1.1 with a reason, and the
// client will not talk to a server that only speaks HTTP/1.1.
func TestAPNsHTTP2Only(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}}
	c.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	resp, err := c.Post(srv.URL()+"/3/device/"+apnsToken, "application/json", strings.NewReader(`{"aps":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 request: %d over HTTP/%d, want 400", resp.StatusCode, resp.ProtoMajor)
	}
	if rej := srv.Rejections(); len(rej) != 1 || !strings.HasPrefix(rej[0], "HTTP2Required") {
		t.Fatalf("rejections %q", rej)
	}

	var reached atomic.Int32
	h1 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	h1.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	h1.StartTLS()
	defer h1.Close()
	cfg := apnsConfig(t, srv)
	cfg.Production = h1.URL
	cfg.RootCAs = x509.NewCertPool()
	cfg.RootCAs.AddCert(h1.Certificate())
	a, err := push.NewAPNs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(testCtx(t), message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-h1")); err == nil || reached.Load() != 0 {
		t.Fatalf("send to an HTTP/1.1 server: err %v, %d requests reached it; want an error and none", err, reached.Load())
	}
}

func TestAPNsConfigValidate(t *testing.T) {
	good := push.APNsConfig{Key: []byte("k"), KeyID: "ABCDEFGHIJ", TeamID: "TEAM012345"}
	if err := good.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	for name, mod := range map[string]func(*push.APNsConfig){
		"no key":       func(c *push.APNsConfig) { c.Key = nil },
		"short key id": func(c *push.APNsConfig) { c.KeyID = "ABC" },
		"bad team id":  func(c *push.APNsConfig) { c.TeamID = "TEAM-01234" },
		"http sandbox": func(c *push.APNsConfig) { c.Sandbox = "http://localhost" },
		"neg. timeout": func(c *push.APNsConfig) { c.Timeout = -1 },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "apns: ") {
			t.Errorf("%s: Validate = %v, want an apns: error", name, err)
		}
	}
	if _, err := push.NewAPNs(good); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Errorf("a key that is not PEM: %v", err)
	}
}

// TestAPNsLongBody: a body that would make the payload exceed APNs' 4 KB
// is shortened, not refused.
func TestAPNsLongBody(t *testing.T) {
	srv := pushserver.StartAPNs(t)
	a := newAPNs(t, srv)
	n := message(apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION), "n-long")
	n.Body = strings.Repeat("é<", 3000)
	if err := a.Send(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
	got := waitOne(t, srv, 1)
	if len(got.Raw) > 4096 || !strings.HasSuffix(got.Body, "…") || !strings.HasPrefix(n.Body, strings.TrimSuffix(got.Body, "…")) {
		t.Fatalf("payload %d bytes, body %d bytes ending %q: want at most 4096, a prefix of the body and an ellipsis", len(got.Raw), len(got.Body), got.Body[max(0, len(got.Body)-8):])
	}
	if len(got.Raw) < 3800 {
		t.Errorf("payload %d bytes: shortened far more than needed", len(got.Raw))
	}
}

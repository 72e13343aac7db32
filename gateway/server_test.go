package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/schemas/token"
	"github.com/parley-im/parley/testenv"
)

func TestServerDevTokens(t *testing.T) {
	t.Parallel()
	e := start(t, withDevTokens())
	resp, err := http.Post(e.url+"/v1/dev/token?user=alice&device=phone", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token, UserID, DeviceID string
		ExpiresAt               time.Time
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.UserID != "alice" || tok.DeviceID != "phone" {
		t.Fatalf("dev token: %d %+v %v", resp.StatusCode, tok, err)
	}
	// The scheme is case-insensitive (RFC 9110 §11.1).
	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER "} {
		conn, _, err := websocket.DefaultDialer.Dial(e.ws, http.Header{"Authorization": {scheme + tok.Token}})
		if err != nil {
			t.Fatalf("dial with a dev token (%q): %v", scheme, err)
		}
		conn.Close()
	}
	// Ids the claims contract refuses get no token: 400 INVALID_ID.
	bad, err := http.Post(e.url+"/v1/dev/token?user=al%20ice&device=phone", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(bad.Body)
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "ERROR_CODE_INVALID_ID") {
		t.Fatalf("dev token for an id with a space: %d %s", bad.StatusCode, body)
	}
	resp2, err := http.Get(e.url + "/v1/dev/token?user=alice")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusBadRequest {
		t.Fatalf("token without device: %d", resp2.StatusCode)
	}
}

func TestServerDevTokensOffByDefault(t *testing.T) {
	t.Parallel()
	e := start(t)
	resp, err := http.Post(e.url+"/v1/dev/token?user=alice&device=phone", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("dev tokens served by default: %d", resp.StatusCode)
	}
}

func TestServerConfigRefused(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]gateway.Config{
		"no seeds":             {Auth: token.Config{HMACSecret: make([]byte, 32)}},
		"no key":               {Seeds: []string{"x:1"}},
		"dev tokens, no hmac":  {Seeds: []string{"x:1"}, DevTokens: true, Auth: token.Config{PublicKeyPEM: []byte("x")}},
		"ping after idle":      {Seeds: []string{"x:1"}, Auth: token.Config{HMACSecret: make([]byte, 32)}, Limits: gateway.Limits{PingInterval: time.Minute}},
		"message above frames": {Seeds: []string{"x:1"}, Auth: token.Config{HMACSecret: make([]byte, 32)}, Limits: gateway.Limits{MaxMessageBytes: 1 << 20}},
	} {
		if _, err := gateway.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestServerMetricsNamed(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.dial("alice", "phone")
	c.sendText(`{"requestId":"p","ping":{}}`)
	c.next()
	// The writer counts a frame once written, which may be just after the
	// device has it.
	checkFor(t, 5*time.Second, func() error {
		resp, err := http.Get(e.url + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, name := range []string{"parley_gateway_sessions 1", `parley_gateway_frames_in_total{type="Ping"} 1`,
			`parley_gateway_frames_out_total{type="Welcome"} 1`, `parley_gateway_frames_out_total{type="Pong"} 1`,
			"parley_gateway_append_seconds_bucket", "parley_gateway_slow_consumer_disconnects_total 0",
			"parley_gateway_events_consumer_ready 1"} {
			if !strings.Contains(string(b), name) {
				return errorf("/metrics lacks %q", name)
			}
		}
		return nil
	})
}

// TestServerShutdown: cancelling Serve's context closes sessions with 1001,
// stops listening and returns nil.
func TestServerShutdown(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t)
	secret := make([]byte, 32)
	srv, err := gateway.New(gateway.Config{Seeds: k.Seeds, CommandsTopic: k.Topic("commands", 12), EventsTopic: k.Topic("events", 12),
		Auth: token.Config{HMACSecret: secret}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln := testenv.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	iss, _ := token.NewDevIssuer(token.Config{HMACSecret: secret})
	tok, _ := iss.Issue("alice", "phone", time.Hour)
	c := wrap(t, testenv.DialWS(t, "ws://"+ln.Addr().String()+"/v1/ws", testenv.WSOptions{Token: tok, Name: "alice/phone"}))
	c.next() // Welcome
	c.send(sendMessage("last", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", "m1", "sent just before shutdown"))
	c.accepted("last")
	cancel()
	if ce := c.closed(); ce.Code != websocket.CloseGoingAway {
		t.Fatalf("closed with %v", ce)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

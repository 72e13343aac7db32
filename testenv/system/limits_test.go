package system_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/projector/replay"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// probe tries to connect user's device to gateway gw and closes the session
// at once; it returns the refusal, nil when the connection was let in.
func probe(t *testing.T, sys *system.System, gw int, user, device string) error {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "ws" + strings.TrimPrefix(sys.GatewayURLs[gw], "http") + "/v1/ws"
	c, err := testenv.ConnectWS(ctx, url, testenv.WSOptions{Token: tok, Name: user + "/" + device, TLS: sys.ClientTLS})
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// TestE2EUserLimits: one user with a session on each of two gateways. A
// third device is refused on either gateway once each has read the other's
// presence (429 TOO_MANY_CONNECTIONS), and both sessions sending as fast as
// they can get no more accepted, together, than the user's burst plus its
// rate over the time the test measured.
func TestE2EUserLimits(t *testing.T) {
	t.Parallel()
	const rate, burst = 20, 10
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: gateway.Limits{
		RatePerSecond: 10_000, Burst: 10_000, // the sessions' own buckets never bind
		UserRatePerSecond: rate, UserBurst: burst, UserMaxConnections: 2}})
	bob := connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	phone := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	phone.WaitWelcome()
	laptop.WaitWelcome()

	// Each gateway counts alice's session on the other once it has read its
	// presence record: until then a third device may get in (and is closed
	// again at once).
	for gw := range 2 {
		testenv.Eventually(t, 2*time.Minute, func() string {
			err := probe(t, sys, gw, "alice", "tablet")
			if err == nil {
				return fmt.Sprintf("gateway %d let a third device of alice in", gw)
			}
			if !strings.Contains(err.Error(), "HTTP 429") || !strings.Contains(err.Error(), "ERROR_CODE_TOO_MANY_CONNECTIONS") {
				t.Fatalf("gateway %d refused the third device otherwise: %v", gw, err)
			}
			return ""
		})
	}
	// The limit is the user's: bob's second device gets in.
	if err := probe(t, sys, 1, "bob", "laptop"); err != nil {
		t.Fatalf("bob's second device: %v", err)
	}

	// Both of alice's sessions send at once, each as fast as its answers
	// come back; nothing is resent.
	const perDevice = 150
	var mu sync.Mutex
	counts := map[pb.ErrorCode]int{}
	accepted := 0
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, d := range []*testenv.WSClient{phone, laptop} {
		calls := make([]*testenv.Call, perDevice)
		for i := range calls {
			calls[i] = d.Start(conv, send(fmt.Sprintf("%s-%d", d.Name(), i), "hi"))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, c := range calls {
				f, err := c.Wait(ctx)
				mu.Lock()
				switch {
				case err != nil:
					counts[pb.ErrorCode_ERROR_CODE_UNSPECIFIED]++
				case f.GetAccepted() != nil:
					accepted++
				default:
					counts[f.GetError().GetCode()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	limited := counts[pb.ErrorCode_ERROR_CODE_RATE_LIMITED]
	t.Logf("in %s: %d accepted, %d RATE_LIMITED, others %v", elapsed, accepted, limited, counts)
	if accepted+limited != 2*perDevice {
		t.Fatalf("answers other than Accepted and RATE_LIMITED: %v", counts)
	}
	// The whole budget over the time measured: every frame was read by a
	// gateway between t0 and the last answer. One token of slack for the
	// two shares' rounding.
	budget := burst + rate*elapsed.Seconds() + 1
	if float64(accepted) > budget {
		t.Fatalf("%d accepted over two gateways in %s; the user's budget is %.1f (burst %d + %d/s)", accepted, elapsed, budget, burst, rate)
	}
	// And the limit is not stricter than the budget's floor: the burst
	// (shared) passes.
	if accepted < min(2*perDevice, burst-1) {
		t.Fatalf("only %d accepted; the burst alone is %d", accepted, burst)
	}

	// Sustained: each device sends more, resending on RATE_LIMITED as the
	// documented client does (with its backoff), until every message is
	// accepted. The time that took bounds what was accepted.
	const more = 30
	t1 := time.Now()
	errs := make(chan error, 2)
	for _, d := range []*testenv.WSClient{phone, laptop} {
		calls := make([]*testenv.Call, more)
		for i := range calls {
			calls[i] = d.Go(conv, send(fmt.Sprintf("%s-more-%d", d.Name(), i), "again"))
		}
		go func() { errs <- waitAccepted(calls, 3*time.Minute) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	elapsed = time.Since(t1)
	budget = burst + rate*elapsed.Seconds() + 1
	t.Logf("sustained: %d accepted in %s (budget %.1f), %d resends", 2*more, elapsed, budget, phone.Resends()+laptop.Resends())
	if float64(2*more) > budget {
		t.Fatalf("%d accepted over two gateways in %s; the user's budget is %.1f", 2*more, elapsed, budget)
	}
}

// wsRefusal is gateway gw's answer to a WebSocket handshake with a token
// of user's device: its status and body.
func wsRefusal(t *testing.T, sys *system.System, gw int, user, device string) (int, string, error) {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", sys.GatewayURLs[gw]+"/v1/ws", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := sys.HTTPClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// deviceCall is the answer of the server at base (a gateway's or query's
// URL) to an HTTP request with a token of user's device: its status and
// body.
func deviceCall(t *testing.T, sys *system.System, base, user, device, method, path, body string) (int, string) {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := sys.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestE2ERevokeDevice: a service revokes alice's phone. Its open session
// closes with 4004, its token is refused on both gateways (403
// DEVICE_REVOKED, on the WebSocket and the device endpoints), also by a
// gateway restarted afterwards, and a command
// of it appended anyway is refused DEVICE_REVOKED by the decider; her
// laptop goes on sending, and sees the revocation on her user stream.
// Query refuses the phone's token too, not the laptop's. Restored, the
// phone connects, sends and reads again. The views rebuilt from the log
// equal the live ones (device_revocations too) and replay verify passes.
func TestE2ERevokeDevice(t *testing.T) {
	t.Parallel()
	ops, opsKey := adminKey(t, "ops", gateway.Scopes)
	sys, live := startWith(t, system.Options{Gateways: 2,
		GatewayAdminKeys: gateway.AdminKeys{Keys: []gateway.AdminKey{opsKey}}})
	phone := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	conv := accepted(t, phone.MustDo("", direct("bob")))
	phone.MustSend(conv, send("before", "from the phone"))

	status, res, raw := adminDo(t, sys, 1, ops, "PUT", "/v1/admin/users/alice/devices/phone/revocation", "revoke-phone", map[string]any{"reason": "lost"})
	if status != http.StatusOK || res.Event != schemas.TypeDeviceRevoked || res.ConversationID != schemas.UserStreamID("alice") {
		t.Fatalf("revoke: %d %s", status, raw)
	}
	ce := phone.WaitClosed()
	if ce.Code != gateway.CloseRevoked || !strings.Contains(ce.Text, "lost") {
		t.Fatalf("the phone's session closed with %d %q, want %d", ce.Code, ce.Text, gateway.CloseRevoked)
	}
	// Again: the decider answers NO_CHANGE, the API repeated.
	if status, res, raw := adminDo(t, sys, 0, ops, "PUT", "/v1/admin/users/alice/devices/phone/revocation", "revoke-phone-again", map[string]any{"reason": "lost"}); status != http.StatusOK || !res.Repeated {
		t.Fatalf("revoke again: %d %s", status, raw)
	}
	if status, _, raw := adminDo(t, sys, 0, ops, "PUT", "/v1/admin/users/alice/devices/two%20words/revocation", "", nil); status != http.StatusBadRequest ||
		!strings.Contains(string(raw), "ERROR_CODE_INVALID_ID") {
		t.Fatalf("a bad device id: %d %s", status, raw)
	}
	refused := func(gw int) func() string {
		return func() string {
			status, body, err := wsRefusal(t, sys, gw, "alice", "phone")
			if err != nil {
				return err.Error()
			}
			if status != http.StatusForbidden || !strings.Contains(body, "ERROR_CODE_DEVICE_REVOKED") || !strings.Contains(body, "lost") {
				return fmt.Sprintf("gateway %d answered the phone's token %d %s", gw, status, body)
			}
			return ""
		}
	}
	for gw := range 2 {
		testenv.Eventually(t, time.Minute, refused(gw))
	}
	// The device endpoints refuse the phone's token too; the laptop's gets
	// past authentication (to the body's check).
	if status, body := deviceCall(t, sys, sys.GatewayURLs[0], "alice", "phone", "PUT", "/v1/push/targets", "{}"); status != http.StatusForbidden ||
		!strings.Contains(body, "ERROR_CODE_DEVICE_REVOKED") {
		t.Fatalf("the phone's push registration: %d %s", status, body)
	}
	if status, body := deviceCall(t, sys, sys.GatewayURLs[0], "alice", "laptop", "PUT", "/v1/push/targets", "{}"); status != http.StatusBadRequest ||
		!strings.Contains(body, "ERROR_CODE_INVALID_ARGUMENT") {
		t.Fatalf("the laptop's push registration: %d %s", status, body)
	}
	// Query refuses the phone's token once the projector has applied the
	// revocation; the laptop's reads on.
	testenv.Eventually(t, time.Minute, func() string {
		if status, body := deviceCall(t, sys, sys.QueryURL, "alice", "phone", "GET", "/v1/inbox", ""); status != http.StatusForbidden ||
			!strings.Contains(body, `"DEVICE_REVOKED"`) || !strings.Contains(body, "lost") {
			return fmt.Sprintf("query answered the phone's token %d %s", status, body)
		}
		return ""
	})
	if status, body := deviceCall(t, sys, sys.QueryURL, "alice", "laptop", "GET", "/v1/inbox", ""); status != http.StatusOK {
		t.Fatalf("query answered the laptop's token %d %s", status, body)
	}
	// The laptop is another device: it goes on, and gets the revocation on
	// alice's own stream.
	laptop.WaitUserEvent("DeviceRevoked", func(e *pb.Event) bool { return e.GetDeviceRevoked().GetDeviceId() == "phone" })
	laptop.MustSend(conv, send("after", "from the laptop"))

	// A command of the phone appended past the gateways (as one in flight
	// when the revocation landed) is refused by the decider.
	app, err := ingest.NewAppender(ingest.AppenderConfig{Seeds: testenv.Kafka(t).Seeds, Topic: sys.Topics.Commands.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	late := &pb.Command{CommandId: "late-phone-send", UserId: "alice", DeviceId: "phone", ConversationId: conv,
		ReceivedAt: timestamppb.Now(), Body: &pb.Command_SendMessage{SendMessage: send("late", "from the lost phone")}}
	v, _ := proto.Marshal(late)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := app.AppendSync(ctx, ingest.Record{Key: conv, Type: schemas.TypeSendMessage, Value: v}); err != nil {
		t.Fatal(err)
	}
	readTopicUntil(t, sys.Topics.Events.Name, func(r *kgo.Record) bool {
		ev := &pb.Event{}
		return proto.Unmarshal(r.Value, ev) == nil && ev.GetCommandId() == "late-phone-send" &&
			ev.GetCommandRejected().GetCode() == pb.ErrorCode_ERROR_CODE_DEVICE_REVOKED
	})

	// A gateway started after the revocation reads it back from the log.
	if err := sys.StopComponent("gateway-1"); err != nil {
		t.Fatal(err)
	}
	if err := sys.StartComponent("gateway-1"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, refused(1))
	if status, body, err := wsRefusal(t, sys, 1, "alice", "tablet"); err != nil || status != http.StatusBadRequest {
		// Not a WebSocket handshake (no upgrade headers): a token the
		// gateway takes reaches the upgrader, which answers 400.
		t.Fatalf("another device's token on the restarted gateway: %d %s %v", status, body, err)
	}

	// Restored: the phone connects and sends again.
	status, res, raw = adminDo(t, sys, 0, ops, "DELETE", "/v1/admin/users/alice/devices/phone/revocation", "restore-phone", nil)
	if status != http.StatusOK || res.Event != schemas.TypeDeviceRestored {
		t.Fatalf("restore: %d %s", status, raw)
	}
	for gw := range 2 {
		testenv.Eventually(t, time.Minute, func() string {
			status, body, err := wsRefusal(t, sys, gw, "alice", "phone")
			if err != nil || status == http.StatusForbidden {
				return fmt.Sprintf("gateway %d: %d %s %v", gw, status, body, err)
			}
			return ""
		})
	}
	again := connect(t, sys, 1, "alice", "phone")
	again.MustSend(conv, send("restored", "the phone is back"))
	testenv.Eventually(t, time.Minute, func() string {
		if status, body := deviceCall(t, sys, sys.QueryURL, "alice", "phone", "GET", "/v1/inbox", ""); status != http.StatusOK {
			return fmt.Sprintf("query answered the restored phone's token %d %s", status, body)
		}
		return ""
	})
	// A revocation that stands, for the views compared below.
	if status, _, raw := adminDo(t, sys, 0, ops, "PUT", "/v1/admin/users/alice/devices/tablet/revocation", "revoke-tablet", map[string]any{"reason": "old"}); status != http.StatusOK {
		t.Fatalf("revoke the tablet: %d %s", status, raw)
	}
	testenv.Eventually(t, time.Minute, func() string {
		if status, body := deviceCall(t, sys, sys.QueryURL, "alice", "tablet", "GET", "/v1/inbox", ""); status != http.StatusForbidden {
			return fmt.Sprintf("query answered the tablet's token %d %s", status, body)
		}
		return ""
	})

	assertRebuildEqual(t, sys, live, "device_revocations")
	vctx, vcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer vcancel()
	rep, err := replay.Verify(vctx, replay.Config{Seeds: testenv.Kafka(t).Seeds, Topics: sys.Topics, Hosts: live.Hosts, Keyspace: live.Keyspace},
		replay.VerifyOptions{Conversations: []string{conv, schemas.UserStreamID("alice")}})
	if err != nil || !rep.OK() {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("verify: %v\n%s", err, b.String())
	}
}

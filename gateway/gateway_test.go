package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestCommandAcceptedAndAppended: Accepted arrives, and the command is on
// the commands topic under the conversation key, with the user and device
// of the token.
func TestCommandAcceptedAndAppended(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.dial("alice", "phone")

	// The client cannot name a user: JSON refuses the unknown field, and the
	// request id is still echoed.
	c.sendText(`{"requestId":"evil","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","userId":"mallory","sendMessage":{"clientMsgId":"m0","text":"hi"}}`)
	if e := c.refused(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT); e.GetRequestId() != "evil" {
		t.Fatalf("error for the wrong request: %v", e)
	}

	c.sendText(`{"requestId":"r1","createConversation":{"kind":"CONVERSATION_KIND_DIRECT","memberUserIds":["bob"]}}`)
	a1 := c.accepted("r1")
	direct := schemas.DirectConversationID("alice", "bob")
	if a1.GetConversationId() != direct {
		t.Fatalf("direct conversation id %q, want %q", a1.GetConversationId(), direct)
	}
	c.send(sendMessage("r2", direct, "m1", "hello bob"))
	a2 := c.accepted("r2")

	recs := e.commandRecords(2)
	if len(recs) != 2 {
		t.Fatalf("%d command records, want 2", len(recs))
	}
	byID := map[string]*kgo.Record{}
	for _, r := range recs {
		cmd := &pb.Command{}
		if err := proto.Unmarshal(r.Value, cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.GetUserId() != "alice" || cmd.GetDeviceId() != "phone" || string(r.Key) != direct ||
			cmd.GetConversationId() != direct || cmd.GetReceivedAt() == nil || header(r, schemas.HeaderType) != schemas.CommandType(cmd) {
			t.Fatalf("command record key %q headers %v: %v", r.Key, r.Headers, cmd)
		}
		byID[cmd.GetCommandId()] = r
	}
	if byID[a1.GetCommandId()] == nil || byID[a2.GetCommandId()] == nil {
		t.Fatalf("acked command ids %s, %s not among the records", a1.GetCommandId(), a2.GetCommandId())
	}
	if got := header(byID[a2.GetCommandId()], schemas.HeaderType); got != schemas.TypeSendMessage {
		t.Fatalf("parley-type %q", got)
	}
	if v := e.metric(`parley_gateway_commands_appended_total{type="SendMessage"}`); v != 1 {
		t.Fatalf("commands_appended_total{SendMessage} = %v", v)
	}
	if v := e.metric(`parley_gateway_append_seconds_count`); v != 2 {
		t.Fatalf("append_seconds_count = %v", v)
	}
}

// TestSubprotocols: binary protobuf frames with parley.v1.proto, JSON text
// frames with parley.v1.json or with no subprotocol.
func TestSubprotocols(t *testing.T) {
	t.Parallel()
	e := start(t)

	bin := e.dial("alice", "tablet", gateway.SubprotocolProto)
	if bin.conn.Subprotocol() != gateway.SubprotocolProto || !bin.binary {
		t.Fatalf("negotiated %q", bin.conn.Subprotocol())
	}
	if bin.welcome.GetMaxFrameBytes() != int64(gateway.DefaultLimits.MaxFrameBytes) || bin.welcome.GetMaxMessageBytes() != 16<<10 {
		t.Fatalf("welcome limits: %v", bin.welcome)
	}
	// A group without an id gets a fresh one.
	bin.send(&pb.ClientFrame{RequestId: "g", Body: &pb.ClientFrame_CreateConversation{CreateConversation: &pb.CreateConversation{
		Kind: pb.ConversationKind_CONVERSATION_KIND_GROUP, Title: "team", MemberUserIds: []string{"bob"}}}})
	group := bin.accepted("g").GetConversationId()
	if !strings.HasPrefix(group, "g:") {
		t.Fatalf("group id %q", group)
	}
	// Unknown fields in a binary frame (a newer client, or one trying to set
	// Command fields) are ignored; the identity still comes from the token.
	b, _ := proto.Marshal(sendMessage("s", group, "m1", "hi"))
	b = protowire.AppendTag(b, 3, protowire.BytesType) // Command.device_id's number
	b = protowire.AppendString(b, "mallory-device")
	if err := bin.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
	bin.accepted("s")
	// A body this gateway does not know is UNSUPPORTED.
	unknown := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "u") // requestId
	unknown = protowire.AppendTag(unknown, 99, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, nil)
	_ = bin.conn.WriteMessage(websocket.BinaryMessage, unknown)
	bin.refused(pb.ErrorCode_ERROR_CODE_UNSUPPORTED)

	js := e.dial("alice", "web", gateway.SubprotocolJSON)
	if js.conn.Subprotocol() != gateway.SubprotocolJSON || js.binary {
		t.Fatalf("negotiated %q", js.conn.Subprotocol())
	}
	js.send(&pb.ClientFrame{RequestId: "p", Body: &pb.ClientFrame_Ping{Ping: &pb.Ping{}}})
	if f := js.next(); f.GetPong().GetRequestId() != "p" || f.GetPong().GetServerTime() == nil {
		t.Fatalf("want Pong, got %v", f)
	}

	for _, r := range e.commandRecords(2) {
		cmd := &pb.Command{}
		_ = proto.Unmarshal(r.Value, cmd)
		if cmd.GetUserId() != "alice" || cmd.GetDeviceId() != "tablet" || string(r.Key) != group {
			t.Fatalf("record key %q: %v", r.Key, cmd)
		}
	}
}

func TestAuthRefusedBeforeUpgrade(t *testing.T) {
	t.Parallel()
	e := start(t)
	noDevice, _ := e.issuer.Issue("alice", "", time.Hour)
	expired, _ := e.issuer.Issue("alice", "phone", -time.Hour)
	for name, h := range map[string]http.Header{
		"no token":        {},
		"garbage":         {"Authorization": {"Bearer x.y.z"}},
		"expired":         {"Authorization": {"Bearer " + expired}},
		"no device claim": {"Authorization": {"Bearer " + noDevice}},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(e.ws, h)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: want 401, got %v %v", name, resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		var perr pb.Error
		if err := protojson.Unmarshal(body, &perr); err != nil || perr.GetCode() != pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: body %s (%v)", name, body, err)
		}
	}
	// Browsers pass the token in the query.
	conn, _, err := websocket.DefaultDialer.Dial(e.ws+"?access_token="+url.QueryEscape(e.token("alice", "browser")), nil)
	if err != nil {
		t.Fatalf("access_token query: %v", err)
	}
	conn.Close()
}

func TestLimitFrameTooLarge(t *testing.T) {
	t.Parallel()
	e := start(t, withLimits(gateway.Limits{MaxFrameBytes: 1024, MaxMessageBytes: 512}))
	c := e.dial("alice", "phone")
	c.send(sendMessage("big", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", "m1", strings.Repeat("x", 2000)))
	c.refused(pb.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE)
	if ce := c.closed(); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close %v, want 1009", ce)
	}
	if n := e.commandCount(); n != 0 {
		t.Fatalf("%d records appended", n)
	}
}

func TestLimitMessageTooLargeAndInvalid(t *testing.T) {
	t.Parallel()
	e := start(t, withLimits(gateway.Limits{MaxMessageBytes: 100}))
	c := e.dial("alice", "phone")
	c.send(sendMessage("big", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", "m1", strings.Repeat("x", 101)))
	if e := c.refused(pb.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE); e.GetRequestId() != "big" {
		t.Fatalf("error %v", e)
	}
	for _, f := range []string{
		`{"requestId":"a","conversationId":"g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f","sendMessage":{"text":"no client id"}}`,
		`{"requestId":"b","sendMessage":{"clientMsgId":"m","text":"no conversation"}}`,
		`{"requestId":"c","createConversation":{"kind":"CONVERSATION_KIND_DIRECT","memberUserIds":["bob","carol"]}}`,
		`{"requestId":"d","conversationId":"d:00000000000000000000000000000000","createConversation":{"kind":"CONVERSATION_KIND_DIRECT","memberUserIds":["bob"]}}`,
		`{"requestId":"e"}`,
		`{"requestId":"f","sendMessage":{"text":5}}`,
	} {
		c.sendText(f)
		c.refused(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	}
	c.send(sendMessage("ok", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", "m1", strings.Repeat("x", 100)))
	c.accepted("ok")
	if n := e.commandCount(); n != 1 {
		t.Fatalf("%d records appended, want 1", n)
	}
	if v := e.metric(`parley_gateway_rejections_total{code="ERROR_CODE_MESSAGE_TOO_LARGE"}`); v != 1 {
		t.Fatalf("rejections{MESSAGE_TOO_LARGE} = %v", v)
	}
}

func TestLimitRate(t *testing.T) {
	t.Parallel()
	// One token per 1,000 s: however slowly the six frames go out, no token
	// comes back meanwhile.
	e := start(t, withLimits(gateway.Limits{RatePerSecond: 0.001, Burst: 3}))
	c := e.dial("alice", "phone")
	for i := range 6 {
		c.send(sendMessage(string(rune('a'+i)), "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", string(rune('a'+i)), "hi"))
	}
	var accepted, limited int
	for range 6 {
		f := c.next()
		switch {
		case f.GetAccepted() != nil:
			accepted++
		case f.GetError().GetCode() == pb.ErrorCode_ERROR_CODE_RATE_LIMITED:
			limited++
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	if accepted != 3 || limited != 3 {
		t.Fatalf("accepted %d, rate limited %d; want 3 and 3", accepted, limited)
	}
	// Pings are not commands: never limited.
	c.sendText(`{"requestId":"p","ping":{}}`)
	if c.next().GetPong() == nil {
		t.Fatal("ping refused")
	}
	if n := e.commandCount(); n != 3 {
		t.Fatalf("%d records appended, want 3", n)
	}
}

// TestAppendFailureIsUnavailable: when the append fails the device gets
// UNAVAILABLE, never Accepted.
func TestAppendFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	e := start(t, withMissingCommandsTopic())
	c := e.dial("alice", "phone")
	c.send(sendMessage("r", "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f", "m1", "hi"))
	if e := c.refused(pb.ErrorCode_ERROR_CODE_UNAVAILABLE); e.GetRequestId() != "r" {
		t.Fatalf("error %v", e)
	}
	resp, err := http.Get(e.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz %d with a missing commands topic", resp.StatusCode)
	}
}

// TestLimitRateResend: a device that resends on RATE_LIMITED, as the README
// tells it to (testenv's client does), gets every message in, each once.
func TestLimitRateResend(t *testing.T) {
	t.Parallel()
	e := start(t, withLimits(gateway.Limits{RatePerSecond: 2, Burst: 1}))
	c := e.dial("alice", "phone")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var calls []*testenv.Call
	for i := range 5 {
		calls = append(calls, c.Go("g:00000000000000000000000000000abc", &pb.SendMessage{ClientMsgId: fmt.Sprintf("m%d", i), Text: "hi"}))
	}
	for _, call := range calls {
		if f, err := call.Wait(ctx); err != nil || f.GetAccepted() == nil {
			t.Fatalf("want Accepted, got %v, %v", f, err)
		}
	}
	// Five frames written at once against a burst of one and a token per
	// 500 ms: the second is refused unless writing it took that long.
	if n := c.Resends(); n < 1 {
		t.Fatalf("%d resends, want some", n)
	}
	t.Logf("%d resends after RATE_LIMITED", c.Resends())
	if n := e.commandCount(); n != 5 {
		t.Fatalf("%d records appended, want 5", n)
	}
}

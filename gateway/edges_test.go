package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

const group = "g:5f0c6a3e9b2d4c1a8e7f6b5a4c3d2e1f"

// TestEdgesRefused: every id, cursor and size a frame names is checked
// before anything is appended, with its own code, and the session goes on.
func TestEdgesRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.dial("alice", "phone")
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		frame string
		code  pb.ErrorCode
	}{
		{`{"requestId":"a","conversationId":"g:x","sendMessage":{"clientMsgId":"m","text":"hi"}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"b","conversationId":"` + long + `","markRead":{"upToSeq":1}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"c","conversationId":"d:141a4cd242b67e82edf4a78bb418d40a","createConversation":{"kind":"CONVERSATION_KIND_GROUP"}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"d","conversationId":"g:5F0C6A3E9B2D4C1A8E7F6B5A4C3D2E1F","createConversation":{"kind":"CONVERSATION_KIND_GROUP"}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"e","createConversation":{"kind":"CONVERSATION_KIND_GROUP","memberUserIds":["bob",""]}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"f","createConversation":{"kind":"CONVERSATION_KIND_DIRECT","memberUserIds":["` + long + `"]}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"g","conversationId":"` + group + `","addMembers":{"userIds":["bo b"]}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"h","conversationId":"` + group + `","removeMember":{"userId":""}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"i","conversationId":"` + group + `","sendMessage":{"clientMsgId":"` + long + `","text":"hi"}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"j","conversationId":"` + group + `","markRead":{"upToSeq":"-1"}}`, pb.ErrorCode_ERROR_CODE_INVALID_CURSOR},
		{`{"requestId":"k","conversationId":"` + group + `","markDelivered":{"upToSeq":"-5"}}`, pb.ErrorCode_ERROR_CODE_INVALID_CURSOR},
		{`{"requestId":"l","resume":{"cursors":[{"conversationId":"` + group + `","version":"-1"}]}}`, pb.ErrorCode_ERROR_CODE_INVALID_CURSOR},
		{`{"requestId":"l2","resume":{"cursors":[{"conversationId":"` + group + `","lastSeq":"4"}]}}`, pb.ErrorCode_ERROR_CODE_INVALID_CURSOR},
		{`{"requestId":"m","resume":{"cursors":[{"conversationId":"c1","version":"1"}]}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"n","watchPresence":{"userIds":["bob","` + long + `"]}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"o","conversationId":"g:1","typing":{"active":true}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"p","conversationId":"` + group + `","createConversation":{"kind":"CONVERSATION_KIND_GROUP","title":"` + strings.Repeat("t", 300) + `"}}`, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{`{"requestId":"q","conversationId":"` + group + `","addMembers":{}}`, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
	} {
		c.sendText(tc.frame)
		f := c.next()
		if er := f.GetError(); er.GetCode() != tc.code || er.GetRequestId() == "" || len(er.GetMessage()) > 400 {
			t.Errorf("%.60s…: got %v, want %v with its requestId and a bounded message", tc.frame, f, tc.code)
		}
	}
	c.sendText(`{"requestId":"ok","conversationId":"` + group + `","sendMessage":{"clientMsgId":"m1","text":"hi"}}`)
	c.accepted("ok")
	if n := e.commandCount(); n != 1 {
		t.Fatalf("%d records appended, want 1", n)
	}
	if v := e.metric(`parley_gateway_rejections_total{code="ERROR_CODE_INVALID_ID"}`); v < 10 {
		t.Fatalf("rejections{INVALID_ID} = %v", v)
	}
}

// TestEdgesUndecodable: a frame that does not decode is answered with its
// request id when one can be read from it, and the session goes on; without
// one (or with a malformed one) the Error has no requestId and the session
// ends with 1007.
func TestEdgesUndecodable(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.dial("alice", "phone")
	for _, f := range []string{
		`{"requestId":"a","sendMessage":{"text":5}}`,
		`{"requestId":"b","conversationId":"` + group + `","sendMessage":{"clientMsgId":"m","txt":"typo"}}`,
	} {
		c.sendText(f)
		er := c.refused(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		if er.GetRequestId() == "" || !strings.HasPrefix(er.GetMessage(), "invalid frame: ") {
			t.Fatalf("%s: %v", f, er)
		}
	}
	// A binary frame cut in the middle of a field still names its request.
	c.conn.WriteMessage(websocket.BinaryMessage, []byte{0x0a, 0x01, 'z', 0x12, 0x40, 'g'})
	if er := c.refused(pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT); er.GetRequestId() != "z" {
		t.Fatalf("binary: %v", er)
	}
	c.sendText(`{"requestId":"p","ping":{}}`)
	if c.next().GetPong().GetRequestId() != "p" {
		t.Fatal("session did not go on")
	}

	for _, tc := range []struct {
		frame string
		code  pb.ErrorCode
	}{
		{`not json`, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{`{"ping":{}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"` + strings.Repeat("r", 129) + `","ping":{}}`, pb.ErrorCode_ERROR_CODE_INVALID_ID},
		{`{"requestId":"a b","sendMessage":{"text":5}}`, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
	} {
		c := e.dial("alice", "tablet")
		c.sendText(tc.frame)
		er := c.refused(tc.code)
		if er.GetRequestId() != "" {
			t.Fatalf("%s: %v", tc.frame, er)
		}
		if ce := c.closed(); ce.Code != gateway.CloseInvalidFrame {
			t.Fatalf("%s: closed with %v, want 1007", tc.frame, ce)
		}
	}
	if n := e.commandCount(); n != 0 {
		t.Fatalf("%d records appended", n)
	}
}

// TestEdgesBurst: a device that sends 10,000 frames as fast as it can keeps
// its session: each frame gets exactly one answer (Accepted or
// RATE_LIMITED), none is dropped, and resending the limited ones with the
// same clientMsgId appends every message once.
func TestEdgesBurst(t *testing.T) {
	t.Parallel()
	// The default queue and burst; a rate ten times the default lets the
	// resends finish in seconds while the burst still outruns it by far.
	e := start(t, withLimits(gateway.Limits{RatePerSecond: 500}))
	c := e.dial("alice", "phone")
	const n = 10_000
	frame := func(i, try int) []byte {
		b, _ := protojson.Marshal(sendMessage(fmt.Sprintf("r%d.%d", i, try), group, fmt.Sprintf("m%d", i), "burst"))
		return b
	}
	// The writer never touches t: its error is checked after the answers.
	var writeErr error
	var mu sync.Mutex
	write := func(ids []int, try int) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, i := range ids {
				if err := c.conn.WriteMessage(websocket.TextMessage, frame(i, try)); err != nil {
					mu.Lock()
					writeErr = err
					mu.Unlock()
					return
				}
			}
		}()
		return done
	}
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	accepted := map[string]bool{}
	var limited, rounds int
	// Each round resends at once what the last refused; the bucket refills
	// while a round is answered, so the rounds shrink. The bound is only for
	// a gateway that never takes them.
	deadline := time.Now().Add(3 * time.Minute)
	for len(pending) > 0 {
		rounds++
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still refused after %d rounds", len(pending), rounds)
		}
		done := write(pending, rounds)
		want := map[string]int{}
		for _, i := range pending {
			want[fmt.Sprintf("r%d.%d", i, rounds)] = i
		}
		var again []int
		for range pending {
			f := c.next()
			var id string
			switch {
			case f.GetAccepted() != nil:
				id = f.GetAccepted().GetRequestId()
			case f.GetError().GetCode() == pb.ErrorCode_ERROR_CODE_RATE_LIMITED:
				id = f.GetError().GetRequestId()
			default:
				t.Fatalf("round %d: unexpected %v", rounds, f)
			}
			i, ok := want[id]
			if !ok {
				t.Fatalf("round %d: answer to unknown or already answered request %q", rounds, id)
			}
			delete(want, id)
			if f.GetAccepted() != nil {
				accepted[fmt.Sprintf("m%d", i)] = true
			} else {
				limited++
				again = append(again, i)
			}
		}
		<-done
		mu.Lock()
		err := writeErr
		mu.Unlock()
		if err != nil {
			t.Fatalf("round %d: write: %v", rounds, err)
		}
		pending = again
	}
	t.Logf("%d messages in %d rounds; %d frames answered RATE_LIMITED and resent", len(accepted), rounds, limited)
	if limited == 0 {
		t.Fatal("no frame was rate limited: the burst did not test the limiter")
	}
	c.sendText(`{"requestId":"p","ping":{}}`)
	if c.next().GetPong().GetRequestId() != "p" {
		t.Fatal("session lost after the burst")
	}
	if v := e.metric("parley_gateway_slow_consumer_disconnects_total"); v != 0 {
		t.Fatalf("slow_consumer_disconnects_total %v", v)
	}
	recs := e.commandRecords(n)
	if len(recs) != n {
		t.Fatalf("%d records appended, want %d", len(recs), n)
	}
}

// TestEdgesDevTokenIDs: the dev token endpoint checks the ids it signs.
func TestEdgesDevTokenIDs(t *testing.T) {
	t.Parallel()
	e := start(t, withDevTokens())
	for _, q := range []string{"user=a%20b&device=phone", "user=alice&device=" + strings.Repeat("d", 129), "user=alice&device=ph%0Aone"} {
		resp, err := http.Post(e.url+"/v1/dev/token?"+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "ERROR_CODE_INVALID_ID") || len(b) > 400 {
			t.Errorf("%.40s: %d %s", q, resp.StatusCode, b)
		}
	}
}

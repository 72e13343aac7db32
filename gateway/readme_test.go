package gateway_test

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// readmeItem is one JSON document of README.md: a whole ```json block, or
// one line of a ```jsonl block.
type readmeItem struct {
	line int
	text string
}

func readmeJSON(t *testing.T) []readmeItem {
	t.Helper()
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var items []readmeItem
	var block []string
	var kind string // "", "json" or "jsonl"
	start := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case kind == "" && (l == "```json" || l == "```jsonl"):
			kind, block, start = strings.TrimPrefix(l, "```"), nil, n+1
		case kind != "" && l == "```":
			if kind == "json" {
				items = append(items, readmeItem{start, strings.Join(block, "\n")})
			} else {
				for i, b := range block {
					items = append(items, readmeItem{start + i, b})
				}
			}
			kind = ""
		case kind != "":
			block = append(block, l)
		}
	}
	return items
}

// TestREADMEFrames: every JSON example of the README is exactly what the
// gateway accepts or sends. Client frames are sent, in order, as
// alice/phone, and must get the answer the README shows for their
// requestId (Accepted or Pong when it shows none); server frames, the 401
// body and the dev token answer must decode strictly.
func TestREADMEFrames(t *testing.T) {
	t.Parallel()
	items := readmeJSON(t)
	if len(items) < 20 {
		t.Fatalf("only %d JSON examples found in README.md", len(items))
	}
	strict := protojson.UnmarshalOptions{}
	documented := map[string]*pb.ServerFrame{} // requestId → the answer shown
	var rest []readmeItem
	for _, it := range items { // first the server side
		sf, perr := &pb.ServerFrame{}, &pb.Error{}
		switch {
		case strict.Unmarshal([]byte(it.text), sf) == nil:
			var id string
			switch {
			case sf.GetAccepted() != nil:
				id = sf.GetAccepted().GetRequestId()
			case sf.GetError() != nil:
				id = sf.GetError().GetRequestId()
			case sf.GetPong() != nil:
				id = sf.GetPong().GetRequestId()
			case sf.GetPresences() != nil:
				id = sf.GetPresences().GetRequestId()
			}
			if id != "" {
				documented[id] = sf
			}
		case strict.Unmarshal([]byte(it.text), perr) == nil && perr.GetCode() != 0:
		case isDevToken(it.text):
		default:
			rest = append(rest, it)
		}
	}
	var clients []readmeItem
	var frames []*pb.ClientFrame
	for _, it := range rest { // then what devices send
		cf := &pb.ClientFrame{}
		if strict.Unmarshal([]byte(it.text), cf) != nil {
			// A frame shown to be refused may be invalid on purpose.
			lenient := protojson.UnmarshalOptions{DiscardUnknown: true}
			if lenient.Unmarshal([]byte(it.text), cf) != nil || documented[cf.GetRequestId()].GetError() == nil {
				t.Errorf("README.md:%d: neither a client frame, a server frame, an error body nor a dev token: %s", it.line, it.text)
				continue
			}
		}
		clients, frames = append(clients, it), append(frames, cf)
	}

	// The views a projector would have for the forward examples: alice is
	// a member of their source, which has message 1. Per-user frames need
	// no view (the gateway appends them to alice's stream).
	views, rows := withViewRows(t)
	const source = "g:0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	for _, q := range []string{
		"INSERT INTO members (conversation_id, user_id, removed) VALUES ('" + source + "', 'alice', false)",
		"INSERT INTO messages (conversation_id, bucket, seq, type, actor_user_id, text, content_type, occurred_at) VALUES ('" + source +
			"', 0, 1, 'MessageSent', 'bob', 'Ship it Friday?', 'text/plain', '2026-11-22T06:30:00Z')",
	} {
		if err := rows.Query(q).Exec(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e := start(t, views)
	c := e.dial("alice", "phone")
	for i, it := range clients {
		c.sendText(it.text)
		if frames[i].GetTyping() != nil || frames[i].GetSetPresence() != nil {
			c.sendText(`{"requestId":"` + frames[i].GetRequestId() + `-probe","ping":{}}`)
		}
		got := c.next()
		id := frames[i].GetRequestId()
		want := documented[id]
		switch {
		case want.GetAccepted() != nil:
			a := got.GetAccepted()
			if a == nil || a.GetRequestId() != id {
				t.Errorf("README.md:%d: got %v, README shows Accepted", it.line, got)
			} else if w := want.GetAccepted().GetConversationId(); !strings.HasPrefix(w, "g:") && a.GetConversationId() != w {
				t.Errorf("README.md:%d: conversationId %s, README shows %s", it.line, a.GetConversationId(), w)
			}
		case want.GetError() != nil:
			if got.GetError().GetCode() != want.GetError().GetCode() || got.GetError().GetRequestId() != id {
				t.Errorf("README.md:%d: got %v, README shows %v", it.line, got, want)
			}
			t.Logf("README.md:%d: error message: %s", it.line, got.GetError().GetMessage())
		case frames[i].GetResume() != nil:
			// No projector runs here: a resume naming conversations is
			// refused NOT_MEMBER; an empty one is answered Resumed.
			if got.GetResumed().GetRequestId() != id && (len(frames[i].GetResume().GetCursors()) == 0 ||
				got.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER || got.GetError().GetRequestId() != id) {
				t.Errorf("README.md:%d: got %v, want Resumed", it.line, got)
			}
		case want.GetPresences() != nil:
			if got.GetPresences().GetRequestId() != id || len(got.GetPresences().GetUsers()) != len(want.GetPresences().GetUsers()) {
				t.Errorf("README.md:%d: got %v, README shows Presences", it.line, got)
			}
		case frames[i].GetTyping() != nil || frames[i].GetSetPresence() != nil:
			// Never answered when taken; no projector runs here, so a typing
			// frame is refused NOT_MEMBER. A Ping right after must get the
			// next frame otherwise.
			if got.GetError().GetCode() == pb.ErrorCode_ERROR_CODE_NOT_MEMBER && frames[i].GetTyping() != nil {
				got = c.next() // the probe's Pong
			}
			if got.GetPong().GetRequestId() != id+"-probe" {
				t.Errorf("README.md:%d: got %v, want no answer", it.line, got)
			}
		case want.GetPong() != nil || frames[i].GetPing() != nil:
			if got.GetPong().GetRequestId() != id {
				t.Errorf("README.md:%d: got %v, want Pong", it.line, got)
			}
		default:
			if got.GetAccepted().GetRequestId() != id {
				t.Errorf("README.md:%d: got %v, want Accepted", it.line, got)
			}
		}
	}
	t.Logf("%d client frames sent, %d JSON examples checked", len(clients), len(items))
}

func isDevToken(s string) bool {
	var tok struct {
		Token, UserID, DeviceID string
		ExpiresAt               time.Time
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	return d.Decode(&tok) == nil && tok.Token != ""
}

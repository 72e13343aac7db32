package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/system"
)

// device is one WebSocket session of a user, as a client app would hold it.
type device struct {
	t          testing.TB
	user, name string
	conn       *websocket.Conn
	mu         sync.Mutex
	waiters    map[string]chan *pb.ServerFrame // request id -> Accepted or Error
	events     chan *pb.Event
	signals    chan *pb.Signal
	n          int
	closed     chan struct{}
}

func connect(t testing.TB, sys *system.System, gw int, user, name string) *device {
	t.Helper()
	return dial(t, sys, gw, user, name, "")
}

// connectResuming connects with ?resume=1: live events are held until the
// device's first Resume completes.
func connectResuming(t testing.TB, sys *system.System, gw int, user, name string) *device {
	t.Helper()
	return dial(t, sys, gw, user, name, "?resume=1")
}

func dial(t testing.TB, sys *system.System, gw int, user, name, query string) *device {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	url := "ws" + strings.TrimPrefix(sys.GatewayURLs[gw], "http") + "/v1/ws" + query
	conn, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s as %s/%s: %v %s", url, user, name, err, body)
	}
	d := &device{t: t, user: user, name: name, conn: conn, waiters: map[string]chan *pb.ServerFrame{},
		events: make(chan *pb.Event, 100_000), signals: make(chan *pb.Signal, 1000), closed: make(chan struct{})}
	go d.read()
	t.Cleanup(d.close)
	return d
}

func (d *device) read() {
	defer close(d.closed)
	for {
		_, b, err := d.conn.ReadMessage()
		if err != nil {
			return
		}
		var f pb.ServerFrame
		if err := protojson.Unmarshal(b, &f); err != nil {
			d.t.Errorf("%s/%s: bad server frame %s: %v", d.user, d.name, b, err)
			return
		}
		switch body := f.GetBody().(type) {
		case *pb.ServerFrame_Accepted:
			d.answer(body.Accepted.GetRequestId(), &f)
		case *pb.ServerFrame_Error:
			d.answer(body.Error.GetRequestId(), &f)
		case *pb.ServerFrame_Resumed:
			d.answer(body.Resumed.GetRequestId(), &f)
		case *pb.ServerFrame_Presences:
			d.answer(body.Presences.GetRequestId(), &f)
		case *pb.ServerFrame_Signal:
			d.signals <- body.Signal
		case *pb.ServerFrame_Event:
			d.events <- body.Event
		}
	}
}

func (d *device) answer(id string, f *pb.ServerFrame) {
	d.mu.Lock()
	ch := d.waiters[id]
	delete(d.waiters, id)
	d.mu.Unlock()
	if ch != nil {
		ch <- f
	}
}

func (d *device) close() { d.conn.Close(); <-d.closed }

// do sends one command frame and waits for its Accepted (or Error) frame.
func (d *device) do(conv string, body any) *pb.ServerFrame {
	d.t.Helper()
	ch := d.sendAsync(conv, body)
	select {
	case f := <-ch:
		return f
	case <-time.After(30 * time.Second):
		d.t.Fatalf("%s/%s: no answer to a command in 30s", d.user, d.name)
		return nil
	}
}

// sendAsync writes a command frame; the returned channel gets its answer.
func (d *device) sendAsync(conv string, body any) chan *pb.ServerFrame {
	d.t.Helper()
	d.mu.Lock()
	d.n++
	id := fmt.Sprintf("%s-%s-%d", d.user, d.name, d.n)
	ch := make(chan *pb.ServerFrame, 1)
	d.waiters[id] = ch
	f := &pb.ClientFrame{RequestId: id, ConversationId: conv}
	switch b := body.(type) {
	case *pb.CreateConversation:
		f.Body = &pb.ClientFrame_CreateConversation{CreateConversation: b}
	case *pb.SendMessage:
		f.Body = &pb.ClientFrame_SendMessage{SendMessage: b}
	case *pb.MarkRead:
		f.Body = &pb.ClientFrame_MarkRead{MarkRead: b}
	case *pb.MarkDelivered:
		f.Body = &pb.ClientFrame_MarkDelivered{MarkDelivered: b}
	case *pb.AddMembers:
		f.Body = &pb.ClientFrame_AddMembers{AddMembers: b}
	case *pb.RemoveMember:
		f.Body = &pb.ClientFrame_RemoveMember{RemoveMember: b}
	case *pb.Resume:
		f.Body = &pb.ClientFrame_Resume{Resume: b}
	case *pb.Typing:
		f.Body = &pb.ClientFrame_Typing{Typing: b}
	case *pb.SetPresence:
		f.Body = &pb.ClientFrame_SetPresence{SetPresence: b}
	case *pb.WatchPresence:
		f.Body = &pb.ClientFrame_WatchPresence{WatchPresence: b}
	default:
		d.t.Fatalf("unknown body %T", body)
	}
	b, _ := protojson.Marshal(f)
	err := d.conn.WriteMessage(websocket.TextMessage, b)
	d.mu.Unlock()
	if err != nil {
		d.t.Fatalf("%s/%s: write: %v", d.user, d.name, err)
	}
	return ch
}

// resume sends a Resume with cursors (conversation → last seq) and returns
// the events that arrived before its Resumed, and the Resumed.
func (d *device) resume(cursors map[string]int64) ([]*pb.Event, *pb.Resumed) {
	d.t.Helper()
	r := &pb.Resume{}
	for c, s := range cursors {
		r.Cursors = append(r.Cursors, &pb.ConversationCursor{ConversationId: c, LastSeq: s})
	}
	f := d.do("", r)
	if f.GetResumed() == nil {
		d.t.Fatalf("%s/%s: want Resumed, got %v", d.user, d.name, f)
	}
	// The reader queues events before it answers, so every catch-up event
	// is in the channel already.
	var evs []*pb.Event
	for {
		select {
		case e := <-d.events:
			evs = append(evs, e)
		default:
			return evs, f.GetResumed()
		}
	}
}

// accepted asserts an answer is Accepted and returns its conversation id.
func accepted(t testing.TB, f *pb.ServerFrame) string {
	t.Helper()
	a := f.GetAccepted()
	if a == nil {
		t.Fatalf("want Accepted, got %v", f)
	}
	return a.GetConversationId()
}

// waitEvent returns the first event on d that matches, failing after 30s.
func (d *device) waitEvent(match func(*pb.Event) bool) *pb.Event {
	d.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-d.events:
			if match(e) {
				return e
			}
		case <-deadline:
			d.t.Fatalf("%s/%s: expected event did not arrive in 30s", d.user, d.name)
			return nil
		}
	}
}

// api calls query as user and decodes the JSON answer into out; it returns the status.
func api(t testing.TB, sys *system.System, user, path string, out any) int {
	t.Helper()
	tok, _ := sys.Issuer.Issue(user, "", time.Hour)
	req, _ := http.NewRequest(http.MethodGet, sys.QueryURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %s: %v", path, b, err)
		}
	}
	return resp.StatusCode
}

// eventually polls check until it returns "" (success) or fails after d
// with the last complaint.
func eventually(t testing.TB, d time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var _ = context.Background

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// device is one WebSocket connection of a user, as a mobile client keeps
// one: it reconnects when the connection drops, answers are matched to
// requests by id, and message events are handed to onEvent.
type device struct {
	url, token string
	user, name string
	onEvent    func(d *device, ev *pb.Event)

	mu      sync.Mutex
	conn    *websocket.Conn
	waiters map[string]chan *pb.ServerFrame
	n       atomic.Int64
	wmu     sync.Mutex
}

func dialDevice(ctx context.Context, url, token, user, name, query string, onEvent func(*device, *pb.Event)) (*device, error) {
	d := &device{url: url, token: token, user: user, name: name, onEvent: onEvent, waiters: map[string]chan *pb.ServerFrame{}}
	if err := d.connect(ctx, query); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *device) connect(ctx context.Context, query string) error {
	ws := strings.Replace(d.url, "http", "ws", 1) + "/v1/ws" + query
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, ws, http.Header{"Authorization": {"Bearer " + d.token}})
	if err != nil {
		return fmt.Errorf("%s/%s: dial: %w", d.user, d.name, err)
	}
	d.mu.Lock()
	d.conn = conn
	d.mu.Unlock()
	go d.read(conn)
	return nil
}

func (d *device) read(conn *websocket.Conn) {
	defer func() {
		d.mu.Lock()
		if d.conn == conn {
			d.conn = nil
		}
		for id, ch := range d.waiters {
			close(ch) // the answer will never come on this connection
			delete(d.waiters, id)
		}
		d.mu.Unlock()
	}()
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var f pb.ServerFrame
		if protojson.Unmarshal(b, &f) != nil {
			continue
		}
		if ev := f.GetEvent(); ev != nil {
			if d.onEvent != nil {
				d.onEvent(d, ev)
			}
			continue
		}
		id := requestID(&f)
		d.mu.Lock()
		ch := d.waiters[id]
		delete(d.waiters, id)
		d.mu.Unlock()
		if ch != nil {
			ch <- &f
		}
	}
}

func requestID(f *pb.ServerFrame) string {
	switch {
	case f.GetAccepted() != nil:
		return f.GetAccepted().GetRequestId()
	case f.GetError() != nil:
		return f.GetError().GetRequestId()
	case f.GetResumed() != nil:
		return f.GetResumed().GetRequestId()
	}
	return ""
}

var errNoAnswer = errors.New("no answer")

// do sends a frame and waits up to timeout for its answer. A dropped
// connection is reconnected first.
func (d *device) do(ctx context.Context, f *pb.ClientFrame, timeout time.Duration) (*pb.ServerFrame, error) {
	d.mu.Lock()
	conn := d.conn
	d.mu.Unlock()
	if conn == nil {
		if err := d.connect(ctx, ""); err != nil {
			return nil, err
		}
		d.mu.Lock()
		conn = d.conn
		d.mu.Unlock()
		if conn == nil {
			return nil, errNoAnswer
		}
	}
	f.RequestId = fmt.Sprintf("%s-%s-%d", d.user, d.name, d.n.Add(1))
	ch := make(chan *pb.ServerFrame, 1)
	d.mu.Lock()
	d.waiters[f.RequestId] = ch
	d.mu.Unlock()
	b, _ := protojson.Marshal(f)
	d.wmu.Lock()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := conn.WriteMessage(websocket.TextMessage, b)
	d.wmu.Unlock()
	if err != nil {
		conn.Close()
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, errNoAnswer
		}
		return a, nil
	case <-t.C:
		d.mu.Lock()
		delete(d.waiters, f.RequestId)
		d.mu.Unlock()
		return nil, errNoAnswer
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sendUntilAccepted is the documented client contract: resend with the same
// clientMsgId until Accepted, backing off on RATE_LIMITED, UNAVAILABLE, a
// lost answer or a dropped connection. A refusal the client cannot fix by
// retrying is returned.
func (d *device) sendUntilAccepted(ctx context.Context, conv, clientMsgID, text string) (attempts int, err error) {
	backoff := 50 * time.Millisecond
	for {
		attempts++
		f := &pb.ClientFrame{ConversationId: conv, Body: &pb.ClientFrame_SendMessage{
			SendMessage: &pb.SendMessage{ClientMsgId: clientMsgID, Text: text}}}
		a, err := d.do(ctx, f, 10*time.Second)
		if ctx.Err() != nil {
			return attempts, ctx.Err()
		}
		if err == nil && a.GetAccepted() != nil {
			return attempts, nil
		}
		if err == nil {
			switch a.GetError().GetCode() {
			case pb.ErrorCode_ERROR_CODE_RATE_LIMITED, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, pb.ErrorCode_ERROR_CODE_INTERNAL:
			default:
				return attempts, fmt.Errorf("send %s refused: %v", clientMsgID, a.GetError())
			}
		}
		select {
		case <-ctx.Done():
			return attempts, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (d *device) close() {
	d.mu.Lock()
	conn := d.conn
	d.conn = nil
	d.mu.Unlock()
	if conn != nil {
		d.wmu.Lock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		d.wmu.Unlock()
		conn.Close()
	}
}

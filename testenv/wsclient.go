package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// WSOptions configures a test WebSocket client of the gateway.
type WSOptions struct {
	// Token is sent as "Authorization: Bearer <Token>" when set.
	Token string
	// Header holds more request headers of the upgrade.
	Header http.Header
	// Subprotocols are offered in Sec-WebSocket-Protocol.
	Subprotocols []string
	// Binary sends binary protobuf frames (ask for the gateway's binary
	// subprotocol in Subprotocols too); otherwise frames are protojson
	// text. A server frame of the other kind is a protocol error (Err).
	Binary bool
	// Name names the client in errors, e.g. "alice/phone" (default: the URL).
	Name string
	// Paused connects without reading until StartReading: a device that
	// stops reading, or one whose ping and close handlers the test sets first.
	Paused bool
	// Timeout bounds each wait of the t-bound helpers (Must…, Wait…);
	// default 1 minute: a bound for a failure, never a figure a passing
	// run comes near, even on a loaded machine.
	Timeout time.Duration
	// TLS configures a wss:// dial (the roots that trust the gateway).
	TLS *tls.Config
}

// WSClient is a device on the gateway's WebSocket protocol, as the gateway
// README documents it. One goroutine reads every frame and sorts it: the
// answer to a request (Accepted, Error, Pong, Resumed, Presences with a
// request id someone waits for) goes to that request's waiter, events to
// the events queue, signals to the signals queue, and everything else
// (Welcome, errors without a request id, answers nobody waits for) to the
// frames queue. Queues are unbounded up to a million frames, so a test that
// reads one kind never blocks the others.
//
// Methods taking a context return errors and are safe from any goroutine.
// The t-bound helpers (Must…, Wait…, Expect…) fail the test and may only be
// called from the test's own goroutine, on a client made by DialWS.
type WSClient struct {
	name string
	opts WSOptions
	conn *websocket.Conn
	t    testing.TB // nil for ConnectWS

	wmu sync.Mutex // one writer at a time (gorilla allows one)
	n   atomic.Int64

	mu      sync.Mutex
	waiters map[string]chan *pb.ServerFrame
	welcome *pb.Welcome
	err     error // first protocol error

	welcomed chan struct{}
	events   queue[*pb.Event]
	signals  queue[*pb.Signal]
	frames   queue[*pb.ServerFrame]
	reading  sync.Once
	ended    chan struct{} // closed when the reader stops
	readErr  error         // why it stopped; valid after ended
	resends  atomic.Int64
}

// ConnectWS opens a WebSocket to url (ws://…/v1/ws…). A refused upgrade is
// an error with the HTTP status and body.
func ConnectWS(ctx context.Context, url string, opts WSOptions) (*WSClient, error) {
	h := http.Header{}
	for k, v := range opts.Header {
		h[k] = v
	}
	if opts.Token != "" {
		h.Set("Authorization", "Bearer "+opts.Token)
	}
	if opts.Name == "" {
		opts.Name = url
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	d := websocket.Dialer{Subprotocols: opts.Subprotocols, HandshakeTimeout: 30 * time.Second, TLSClientConfig: opts.TLS}
	conn, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			return nil, fmt.Errorf("%s: dial %s: %w (HTTP %d: %s)", opts.Name, url, err, resp.StatusCode, b)
		}
		return nil, fmt.Errorf("%s: dial %s: %w", opts.Name, url, err)
	}
	c := &WSClient{name: opts.Name, opts: opts, conn: conn, waiters: map[string]chan *pb.ServerFrame{},
		welcomed: make(chan struct{}), ended: make(chan struct{})}
	if !opts.Paused {
		c.StartReading()
	}
	return c, nil
}

// DialWS is ConnectWS for a test: it fails t when the dial fails, closes the
// client at cleanup and reports its protocol errors (Err) there.
func DialWS(t testing.TB, url string, opts WSOptions) *WSClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := ConnectWS(ctx, url, opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.t = t
	t.Cleanup(func() {
		c.Close()
		if err := c.Err(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return c
}

// Conn is the underlying connection (for subprotocol checks, raw frames, or
// handlers set while Paused).
func (c *WSClient) Conn() *websocket.Conn { return c.conn }

// Name is the name errors use.
func (c *WSClient) Name() string { return c.name }

// Binary reports whether the client sends binary protobuf frames.
func (c *WSClient) Binary() bool { return c.opts.Binary }

// Err is the first protocol error the reader met: an undecodable server
// frame, a frame of the wrong WebSocket type, a queue overflow.
func (c *WSClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *WSClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("%s: %w", c.name, err)
	}
}

// Resends is how many frames were sent again after RATE_LIMITED.
func (c *WSClient) Resends() int64 { return c.resends.Load() }

// Close closes the connection and waits for the reader, if it runs.
func (c *WSClient) Close() {
	_ = c.conn.Close()
	c.StartReading() // a paused client's reader ends at once on the closed conn
	<-c.ended
}

// StartReading starts the reader of a Paused client; later calls do nothing.
func (c *WSClient) StartReading() { c.reading.Do(func() { go c.read() }) }

func (c *WSClient) read() {
	defer close(c.ended)
	for {
		mt, b, err := c.conn.ReadMessage()
		if err != nil {
			c.readErr = err
			return
		}
		f := &pb.ServerFrame{}
		switch mt {
		case websocket.BinaryMessage:
			if !c.opts.Binary {
				c.fail(errors.New("binary frame on a JSON session"))
			}
			err = proto.Unmarshal(b, f)
		default:
			if c.opts.Binary {
				c.fail(fmt.Errorf("text frame on a binary session: %.200s", b))
			}
			err = protojson.Unmarshal(b, f)
		}
		if err != nil {
			c.fail(fmt.Errorf("undecodable server frame %.200q: %w", b, err))
			continue
		}
		c.dispatch(f)
	}
}

const maxQueued = 1 << 20

func (c *WSClient) dispatch(f *pb.ServerFrame) {
	var id string
	switch b := f.GetBody().(type) {
	case *pb.ServerFrame_Event:
		if !c.events.push(b.Event, maxQueued) {
			c.fail(fmt.Errorf("more than %d unread events", maxQueued))
		}
		return
	case *pb.ServerFrame_Signal:
		if !c.signals.push(b.Signal, maxQueued) {
			c.fail(fmt.Errorf("more than %d unread signals", maxQueued))
		}
		return
	case *pb.ServerFrame_Welcome:
		c.mu.Lock()
		first := c.welcome == nil
		c.welcome = b.Welcome
		c.mu.Unlock()
		if first {
			close(c.welcomed)
		}
	case *pb.ServerFrame_Accepted:
		id = b.Accepted.GetRequestId()
	case *pb.ServerFrame_Error:
		id = b.Error.GetRequestId()
	case *pb.ServerFrame_Pong:
		id = b.Pong.GetRequestId()
	case *pb.ServerFrame_Resumed:
		id = b.Resumed.GetRequestId()
	case *pb.ServerFrame_Presences:
		id = b.Presences.GetRequestId()
	}
	if id != "" {
		c.mu.Lock()
		ch := c.waiters[id]
		delete(c.waiters, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- f // buffered, one answer per request
			return
		}
	}
	if !c.frames.push(f, maxQueued) {
		c.fail(fmt.Errorf("more than %d unread frames", maxQueued))
	}
}

// WriteFrame sends f as it is (binary or JSON by the client's mode); nobody
// waits for its answer, which lands in the frames queue (Next).
func (c *WSClient) WriteFrame(f *pb.ClientFrame) error {
	var b []byte
	var err error
	mt := websocket.TextMessage
	if c.opts.Binary {
		mt = websocket.BinaryMessage
		b, err = proto.Marshal(f)
	} else {
		b, err = protojson.Marshal(f)
	}
	if err != nil {
		return fmt.Errorf("%s: encode: %w", c.name, err)
	}
	return c.WriteRaw(mt, b)
}

// WriteText sends s as one text frame, e.g. a hand-written JSON frame.
func (c *WSClient) WriteText(s string) error { return c.WriteRaw(websocket.TextMessage, []byte(s)) }

// WriteRaw sends one frame of WebSocket type mt.
func (c *WSClient) WriteRaw(mt int, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return fmt.Errorf("%s: write: %w", c.name, err)
	}
	if err := c.conn.WriteMessage(mt, b); err != nil {
		return fmt.Errorf("%s: write: %w", c.name, err)
	}
	return nil
}

// NextRequestID returns a request id unique on this client.
func (c *WSClient) NextRequestID() string { return c.name + "#" + strconv.FormatInt(c.n.Add(1), 10) }

// Call is one request in flight: its frame was written and its answer is
// awaited by request id.
type Call struct {
	c      *WSClient
	frame  *pb.ClientFrame
	resend bool
	ch     chan *pb.ServerFrame
	err    error
}

// Start wraps body (a *pb.SendMessage, *pb.Resume, …) into a ClientFrame
// for conversation conv with a fresh request id, and writes it. Its answer
// is Wait's, whatever it is.
func (c *WSClient) Start(conv string, body proto.Message) *Call {
	f, err := schemas.NewClientFrame("", conv, body)
	if err != nil {
		return &Call{c: c, err: err}
	}
	return c.StartFrame(f)
}

// StartFrame is Start for a frame built by the caller; an empty request id
// is filled in.
func (c *WSClient) StartFrame(f *pb.ClientFrame) *Call {
	call := &Call{c: c, frame: f}
	call.write()
	return call
}

// Go is Start for a frame the documented client resends: Wait sends it again
// (same body, so the same clientMsgId) while the answer is RATE_LIMITED —
// nothing was appended, so a resend is always safe — after a backoff that
// starts at 20 ms (one token at the default 50/s) and doubles up to 1 s.
func (c *WSClient) Go(conv string, body proto.Message) *Call {
	call := c.Start(conv, body)
	call.resend = true
	return call
}

func (call *Call) write() {
	if call.frame.GetRequestId() == "" || call.ch != nil {
		call.frame.RequestId = call.c.NextRequestID()
	}
	id := call.frame.GetRequestId()
	call.ch = make(chan *pb.ServerFrame, 1)
	call.c.mu.Lock()
	call.c.waiters[id] = call.ch
	call.c.mu.Unlock()
	if call.err = call.c.WriteFrame(call.frame); call.err != nil {
		call.c.mu.Lock()
		delete(call.c.waiters, id)
		call.c.mu.Unlock()
	}
}

// Wait returns the answer to the call: the frame with its request id
// (Accepted, Error, Pong, Resumed or Presences). It fails when ctx ends or
// the connection does first.
func (call *Call) Wait(ctx context.Context) (*pb.ServerFrame, error) {
	backoff := 20 * time.Millisecond
	for {
		if call.err != nil {
			return nil, call.err
		}
		f, err := call.c.await(ctx, call.frame.GetRequestId(), call.ch)
		if err != nil || !call.resend || f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_RATE_LIMITED {
			return f, err
		}
		// Jitter keeps many clients from coming back in step.
		d := backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, time.Second)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return f, fmt.Errorf("%s: %s still RATE_LIMITED when giving up: %w", call.c.name, describe(call.frame), ctx.Err())
		case <-t.C:
		}
		call.c.resends.Add(1)
		call.write()
	}
}

func (c *WSClient) await(ctx context.Context, id string, ch chan *pb.ServerFrame) (*pb.ServerFrame, error) {
	select {
	case f := <-ch:
		return f, nil
	case <-ctx.Done():
		c.drop(id)
		return nil, fmt.Errorf("%s: no answer to request %s: %w", c.name, id, ctx.Err())
	case <-c.ended:
		select {
		case f := <-ch: // answered just before the end
			return f, nil
		default:
		}
		c.drop(id)
		return nil, fmt.Errorf("%s: connection ended before the answer to request %s: %v", c.name, id, c.readErr)
	}
}

func (c *WSClient) drop(id string) {
	c.mu.Lock()
	delete(c.waiters, id)
	c.mu.Unlock()
}

// Request sends body once and returns its answer, whatever it is.
func (c *WSClient) Request(ctx context.Context, conv string, body proto.Message) (*pb.ServerFrame, error) {
	return c.Start(conv, body).Wait(ctx)
}

// Do sends body as the documented client does — again on RATE_LIMITED —
// and returns the final answer, whatever it is.
func (c *WSClient) Do(ctx context.Context, conv string, body proto.Message) (*pb.ServerFrame, error) {
	return c.Go(conv, body).Wait(ctx)
}

// Send is Do for a command that must be accepted: any other answer is an error.
func (c *WSClient) Send(ctx context.Context, conv string, body proto.Message) (*pb.Accepted, error) {
	call := c.Go(conv, body)
	f, err := call.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if f.GetAccepted() == nil {
		return nil, fmt.Errorf("%s: %s answered %v, want Accepted", c.name, describe(call.frame), f)
	}
	return f.GetAccepted(), nil
}

// UserStream waits for the Welcome and returns the session's user stream
// (Welcome.user_stream_id): the key of the user's own settings, resumed
// with a ConversationCursor like a conversation.
func (c *WSClient) UserStream(ctx context.Context) (string, error) {
	w, err := c.Welcome(ctx)
	if err != nil {
		return "", err
	}
	if w.GetUserStreamId() == "" {
		return "", fmt.Errorf("%s: the Welcome names no userStreamId", c.name)
	}
	return w.GetUserStreamId(), nil
}

// SetPrefs sends an UpdateConversationPrefs for conv (the gateway appends
// it to the user's stream: Accepted.conversation_id is that stream).
func (c *WSClient) SetPrefs(ctx context.Context, conv string, prefs *pb.UpdateConversationPrefs) (*pb.Accepted, error) {
	return c.Send(ctx, conv, prefs)
}

// Hide sends a HideMessages ("delete for me") for conv: seqs, and
// everything up to upTo when it is above 0.
func (c *WSClient) Hide(ctx context.Context, conv string, seqs []int64, upTo int64) (*pb.Accepted, error) {
	return c.Send(ctx, conv, &pb.HideMessages{Seqs: seqs, UpToSeq: upTo})
}

// Block sends a BlockUser of user.
func (c *WSClient) Block(ctx context.Context, user string) (*pb.Accepted, error) {
	return c.Send(ctx, "", &pb.BlockUser{UserId: user})
}

// Unblock sends an UnblockUser of user.
func (c *WSClient) Unblock(ctx context.Context, user string) (*pb.Accepted, error) {
	return c.Send(ctx, "", &pb.UnblockUser{UserId: user})
}

// Forward sends a ForwardMessage of message seq of source into target, as
// the documented client does: the gateway reads the message from the
// views, so a message not projected yet is answered NOT_FOUND and sent
// again (same clientMsgId) every 50 ms until it is accepted, refused
// otherwise, or ctx ends. It returns the final answer, whatever it is.
func (c *WSClient) Forward(ctx context.Context, source string, seq int64, target, clientMsgID string) (*pb.ServerFrame, error) {
	for {
		f, err := c.Do(ctx, source, &pb.ForwardMessage{Seq: seq, TargetConversationId: target, ClientMsgId: clientMsgID})
		if err != nil || f.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_FOUND {
			return f, err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return f, fmt.Errorf("%s: forward of %s/%d still NOT_FOUND when giving up: %w", c.name, source, seq, ctx.Err())
		case <-t.C:
		}
	}
}

// NextUserEvent is NextEvent among the events of the session's user stream.
func (c *WSClient) NextUserEvent(ctx context.Context, match func(*pb.Event) bool) (*pb.Event, error) {
	own, err := c.UserStream(ctx)
	if err != nil {
		return nil, err
	}
	return c.NextEvent(ctx, func(e *pb.Event) bool {
		return e.GetConversationId() == own && (match == nil || match(e))
	})
}

func describe(f *pb.ClientFrame) string {
	s := "frame " + f.GetRequestId()
	if fd := f.ProtoReflect().WhichOneof(f.ProtoReflect().Descriptor().Oneofs().ByName("body")); fd != nil {
		s = string(fd.Message().Name()) + " " + f.GetRequestId()
	}
	if id := f.GetSendMessage().GetClientMsgId() + f.GetForwardMessage().GetClientMsgId(); id != "" {
		s += " (clientMsgId " + id + ")"
	}
	return s
}

// Welcome waits for the session's Welcome.
func (c *WSClient) Welcome(ctx context.Context) (*pb.Welcome, error) {
	select {
	case <-c.welcomed:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.welcome, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no Welcome: %w", c.name, ctx.Err())
	case <-c.ended:
		return nil, fmt.Errorf("%s: connection ended before the Welcome: %v", c.name, c.readErr)
	}
}

// Next returns the next frame of the frames queue (see WSClient).
func (c *WSClient) Next(ctx context.Context) (*pb.ServerFrame, error) {
	return c.frames.pop(ctx, c, "frame", nil)
}

// NextEvent returns the next event that matches (nil matches any), dropping
// the events before it that do not.
func (c *WSClient) NextEvent(ctx context.Context, match func(*pb.Event) bool) (*pb.Event, error) {
	return c.events.pop(ctx, c, "event", match)
}

// NextSignal returns the next signal that matches (nil matches any),
// dropping the signals before it that do not.
func (c *WSClient) NextSignal(ctx context.Context, match func(*pb.Signal) bool) (*pb.Signal, error) {
	return c.signals.pop(ctx, c, "signal", match)
}

// DrainEvents returns every event queued now, without waiting.
func (c *WSClient) DrainEvents() []*pb.Event { return c.events.drain() }

// NoEvent waits d and fails if an event that matches arrives meanwhile (the
// events before it are dropped). A negative check means something only
// after a barrier (an event sent later on the same path has arrived) and
// for a window long enough to see a straggler: callers say which.
func (c *WSClient) NoEvent(d time.Duration, match func(*pb.Event) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if e, err := c.events.pop(ctx, c, "event", match); err == nil {
		return fmt.Errorf("%s: got %v within %s, want none", c.name, e, d)
	}
	return nil
}

// NoSignal is NoEvent for signals.
func (c *WSClient) NoSignal(d time.Duration, match func(*pb.Signal) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if s, err := c.signals.pop(ctx, c, "signal", match); err == nil {
		return fmt.Errorf("%s: got %v within %s, want none", c.name, s, d)
	}
	return nil
}

// Ended waits for the connection to end and returns why (the read error:
// a *websocket.CloseError when the gateway sent a close frame).
func (c *WSClient) Ended(ctx context.Context) error {
	c.StartReading()
	select {
	case <-c.ended:
		return c.readErr
	case <-ctx.Done():
		return fmt.Errorf("%s: connection still open: %w", c.name, ctx.Err())
	}
}

// CloseError waits for the connection to end with a close frame and returns it.
func (c *WSClient) CloseError(ctx context.Context) (*websocket.CloseError, error) {
	c.StartReading()
	select {
	case <-c.ended:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: connection still open: %w", c.name, ctx.Err())
	}
	var ce *websocket.CloseError
	if !errors.As(c.readErr, &ce) {
		return nil, fmt.Errorf("%s: connection ended without a close frame: %v", c.name, c.readErr)
	}
	return ce, nil
}

// The t-bound helpers: each waits at most WSOptions.Timeout and fails the
// test. Call them from the test's own goroutine only.

func (c *WSClient) tb() testing.TB {
	if c.t == nil {
		panic("testenv: the Must…/Wait…/Expect… helpers need a client made by DialWS")
	}
	return c.t
}

func (c *WSClient) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.opts.Timeout)
}

// MustDo is Do; a failure to get an answer fails the test.
func (c *WSClient) MustDo(conv string, body proto.Message) *pb.ServerFrame {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	f, err := c.Do(ctx, conv, body)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return f
}

// MustSend is Send; any answer but Accepted fails the test.
func (c *WSClient) MustSend(conv string, body proto.Message) *pb.Accepted {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	a, err := c.Send(ctx, conv, body)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return a
}

// MustWrite writes f (see WriteFrame).
func (c *WSClient) MustWrite(f *pb.ClientFrame) {
	t := c.tb()
	t.Helper()
	if err := c.WriteFrame(f); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// WaitWelcome is Welcome.
func (c *WSClient) WaitWelcome() *pb.Welcome {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	w, err := c.Welcome(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return w
}

// WaitFrame is Next.
func (c *WSClient) WaitFrame() *pb.ServerFrame {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return f
}

// WaitEvent is NextEvent; what names the event in the failure.
func (c *WSClient) WaitEvent(what string, match func(*pb.Event) bool) *pb.Event {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	e, err := c.NextEvent(ctx, match)
	if err != nil {
		t.Fatalf("testenv: waiting for %s: %v", what, err)
	}
	return e
}

// WaitSignal is NextSignal; what names the signal in the failure.
func (c *WSClient) WaitSignal(what string, match func(*pb.Signal) bool) *pb.Signal {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	s, err := c.NextSignal(ctx, match)
	if err != nil {
		t.Fatalf("testenv: waiting for %s: %v", what, err)
	}
	return s
}

// WaitClosed is CloseError.
func (c *WSClient) WaitClosed() *websocket.CloseError {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	ce, err := c.CloseError(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return ce
}

// MustForward is Forward; any answer but Accepted fails the test.
func (c *WSClient) MustForward(source string, seq int64, target, clientMsgID string) *pb.Accepted {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	f, err := c.Forward(ctx, source, seq, target, clientMsgID)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if f.GetAccepted() == nil {
		t.Fatalf("testenv: %s: forward of %s/%d answered %v, want Accepted", c.name, source, seq, f)
	}
	return f.GetAccepted()
}

// WaitUserEvent is NextUserEvent; what names the event in the failure.
func (c *WSClient) WaitUserEvent(what string, match func(*pb.Event) bool) *pb.Event {
	t := c.tb()
	t.Helper()
	ctx, cancel := c.timeout()
	defer cancel()
	e, err := c.NextUserEvent(ctx, match)
	if err != nil {
		t.Fatalf("testenv: waiting for %s: %v", what, err)
	}
	return e
}

// ExpectNoEvent is NoEvent; what names the unwanted event in the failure.
func (c *WSClient) ExpectNoEvent(what string, d time.Duration, match func(*pb.Event) bool) {
	t := c.tb()
	t.Helper()
	if err := c.NoEvent(d, match); err != nil {
		t.Fatalf("testenv: %s: %v", what, err)
	}
}

// ExpectNoSignal is NoSignal; what names the unwanted signal in the failure.
func (c *WSClient) ExpectNoSignal(what string, d time.Duration, match func(*pb.Signal) bool) {
	t := c.tb()
	t.Helper()
	if err := c.NoSignal(d, match); err != nil {
		t.Fatalf("testenv: %s: %v", what, err)
	}
}

// queue is an unbounded FIFO (up to a cap) that one goroutine fills and any
// goroutine pops with a deadline.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{} // closed at the next push
}

func (q *queue[T]) push(v T, max int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= max {
		return false
	}
	q.items = append(q.items, v)
	if q.notify != nil {
		close(q.notify)
		q.notify = nil
	}
	return true
}

func (q *queue[T]) drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

// pop returns the first item that matches (nil matches any), dropping the
// items before it; it fails when ctx ends, or when the connection has ended
// and nothing that matches is left.
func (q *queue[T]) pop(ctx context.Context, c *WSClient, what string, match func(T) bool) (T, error) {
	var zero T
	for {
		q.mu.Lock()
		for len(q.items) > 0 {
			v := q.items[0]
			q.items[0] = zero
			q.items = q.items[1:]
			if match == nil || match(v) {
				q.mu.Unlock()
				return v, nil
			}
		}
		if q.notify == nil {
			q.notify = make(chan struct{})
		}
		notify := q.notify
		q.mu.Unlock()
		select {
		case <-notify:
		case <-ctx.Done():
			return zero, fmt.Errorf("%s: no %s: %w", c.name, what, ctx.Err())
		case <-c.ended:
			q.mu.Lock()
			left := len(q.items)
			q.mu.Unlock()
			if left == 0 {
				return zero, fmt.Errorf("%s: connection ended while waiting for a %s: %v", c.name, what, c.readErr)
			}
		}
	}
}

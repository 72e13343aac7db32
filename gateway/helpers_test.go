package gateway_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one running gateway on its own topics.
type env struct {
	t                testing.TB
	k                *testenv.KafkaEnv
	commands, events string
	url              string // http://127.0.0.1:port
	ws               string // ws://127.0.0.1:port/v1/ws
	issuer           *token.DevIssuer
	producer         *kgo.Client
}

// setup is what options change before the gateway starts.
type setup struct {
	cfg gateway.Config
	ln  net.Listener
	// ready is the metric that says the gateway is up when /healthz cannot.
	ready string
}

type option func(*setup)

func withLimits(l gateway.Limits) option { return func(s *setup) { s.cfg.Limits = l } }

func withDevTokens() option { return func(s *setup) { s.cfg.DevTokens = true } }

// withMissingCommandsTopic points the gateway at a commands topic that does
// not exist, so every append fails (and /healthz stays 503).
func withMissingCommandsTopic() option {
	return func(s *setup) {
		s.cfg.CommandsTopic += ".missing"
		s.ready = "parley_gateway_events_consumer_ready"
	}
}

// withSmallSocketBuffers shrinks the kernel send buffer of every accepted
// connection, so a device that stops reading backs up into the gateway's
// queue after kilobytes instead of megabytes.
func withSmallSocketBuffers() option {
	return func(s *setup) { s.ln = smallBufListener{s.ln} }
}

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// start runs a gateway on fresh 12-partition topics until the test ends,
// and waits until /healthz says it is ready.
func start(t *testing.T, opts ...option) *env {
	t.Helper()
	k := testenv.Kafka(t)
	e := &env{t: t, k: k, commands: k.Topic("commands", schemas.DefaultPartitions), events: k.Topic("events", schemas.DefaultPartitions)}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := gateway.Config{Seeds: k.Seeds, CommandsTopic: e.commands, EventsTopic: e.events,
		Auth: token.Config{HMACSecret: secret}, Logger: testLogger(t)}
	st := &setup{cfg: cfg, ln: testenv.Listen(t)}
	for _, o := range opts {
		o(st)
	}
	cfg, ln := st.cfg, st.ln
	srv, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.issuer, err = token.NewDevIssuer(cfg.Auth); err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	e.ws = "ws://" + ln.Addr().String() + "/v1/ws"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return 30s after cancel")
		}
	})
	e.producer = k.Client(kgo.DefaultProduceTopic(e.events), kgo.MetadataMinAge(250*time.Millisecond))
	checkFor(t, 2*time.Minute, func() error {
		if st.ready != "" {
			if e.metric(st.ready) != 1 {
				return fmt.Errorf("%s is not 1", st.ready)
			}
			return nil
		}
		resp, err := http.Get(e.url + "/healthz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %d: %s", resp.StatusCode, b)
		}
		return nil
	})
	return e
}

// testLogger logs to the test's output (testenv.Logger: PARLEY_TEST_LOG sets the level).
func testLogger(t testing.TB) *slog.Logger { return testenv.Logger(t) }

// checkFor polls f until it returns nil or the time is up (testenv.Eventually).
func checkFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	testenv.Eventually(t, d, func() string {
		if err := f(); err != nil {
			return err.Error()
		}
		return ""
	})
}

func (e *env) token(user, device string) string {
	e.t.Helper()
	tok, err := e.issuer.Issue(user, device, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// client is a device: testenv's WebSocket client under the names these
// tests use. Its frames queue holds every frame but events and signals, in
// order, and answers arrive there since these tests write frames raw.
type client struct {
	*testenv.WSClient
	t       testing.TB
	conn    *websocket.Conn
	binary  bool
	welcome *pb.Welcome
}

func (e *env) dial(user, device string, subprotocols ...string) *client {
	e.t.Helper()
	c := e.dialRaw(user, device, subprotocols...)
	c.startReading()
	c.welcome = c.next().GetWelcome()
	if c.welcome == nil || c.welcome.GetUserId() != user || c.welcome.GetDeviceId() != device {
		e.t.Fatalf("first frame is not the Welcome of %s/%s: %v", user, device, c.welcome)
	}
	return c
}

// dialRaw connects without reading anything (until startReading). Binary
// protobuf frames are used when the gateway's binary subprotocol is
// offered, since the gateway then picks it.
func (e *env) dialRaw(user, device string, subprotocols ...string) *client {
	e.t.Helper()
	return wrap(e.t, testenv.DialWS(e.t, e.ws, testenv.WSOptions{Token: e.token(user, device), Name: user + "/" + device,
		Subprotocols: subprotocols, Binary: slices.Contains(subprotocols, gateway.SubprotocolProto), Paused: true}))
}

func wrap(t testing.TB, ws *testenv.WSClient) *client {
	return &client{WSClient: ws, t: t, conn: ws.Conn(), binary: ws.Binary()}
}

func (c *client) startReading() { c.StartReading() }

// next returns the next frame that is not an event or a signal.
func (c *client) next() *pb.ServerFrame {
	c.t.Helper()
	return c.WaitFrame()
}

// nextEvent returns the next event.
func (c *client) nextEvent() *pb.Event {
	c.t.Helper()
	return c.WaitEvent("an event", nil)
}

// closed waits for the connection to end and returns the close error.
func (c *client) closed() *websocket.CloseError {
	c.t.Helper()
	return c.WaitClosed()
}

func (c *client) sendText(s string) {
	c.t.Helper()
	if err := c.WriteText(s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(f *pb.ClientFrame) {
	c.t.Helper()
	c.MustWrite(f)
}

func sendMessage(reqID, conv, clientMsgID, text string) *pb.ClientFrame {
	return &pb.ClientFrame{RequestId: reqID, ConversationId: conv, Body: &pb.ClientFrame_SendMessage{
		SendMessage: &pb.SendMessage{ClientMsgId: clientMsgID, Text: text}}}
}

// accepted returns the next frame, which must be the Accepted of reqID.
func (c *client) accepted(reqID string) *pb.Accepted {
	c.t.Helper()
	f := c.next()
	a := f.GetAccepted()
	if a == nil || a.GetRequestId() != reqID || a.GetCommandId() == "" {
		c.t.Fatalf("want Accepted for %q, got %v", reqID, f)
	}
	return a
}

// refused returns the next frame, which must be an Error with code.
func (c *client) refused(code pb.ErrorCode) *pb.Error {
	c.t.Helper()
	f := c.next()
	if f.GetError().GetCode() != code {
		c.t.Fatalf("want Error %v, got %v", code, f)
	}
	return f.GetError()
}

// produceEvent writes ev to the events topic as ingest would.
func (e *env) produceEvent(ev *pb.Event) {
	e.t.Helper()
	rec := recordOf(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

func recordOf(ev *pb.Event) *kgo.Record {
	b, _ := proto.Marshal(ev)
	return &kgo.Record{Key: []byte(ev.GetConversationId()), Value: b, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderType, Value: []byte(schemas.EventType(ev))}}}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func messageSent(conv string, seq int64, user, device, text string) *pb.Event {
	return &pb.Event{ConversationId: conv, Seq: seq, CommandId: "c" + strconv.FormatInt(seq, 10), ActorUserId: user, ActorDeviceId: device,
		Body: &pb.Event_MessageSent{MessageSent: &pb.MessageSent{ClientMsgId: "m" + strconv.FormatInt(seq, 10), Text: text, ContentType: "text/plain"}}}
}

// commandRecords reads the commands topic from the start until it holds n
// records (or 15s pass) and returns them.
func (e *env) commandRecords(n int) []*kgo.Record {
	e.t.Helper()
	cl := e.k.Client(kgo.ConsumeTopics(e.commands), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(250*time.Millisecond))
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("commands topic has %d records, want %d", len(recs), n)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// commandCount is how many records the commands topic holds now.
func (e *env) commandCount() int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(e.k.Client()).ListEndOffsets(ctx, e.commands)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var total int64
	listed.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}

// metric scrapes /metrics and returns the value of the sample named exactly
// name (labels included, as in the exposition format), or 0.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

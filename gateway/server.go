package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/gateway/web"
	"github.com/parley-im/parley/ingest"
	"github.com/parley-im/parley/projector/repair"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// DevTokenTTL is how long a token from /v1/dev/token is valid.
const DevTokenTTL = 24 * time.Hour

// Server is one gateway: the WebSocket endpoint, the commands producer and
// the events consumer. Create it with New and start it with Run or Serve.
type Server struct {
	cfg       Config
	log       *slog.Logger
	verifier  *token.Verifier
	devIssuer *token.DevIssuer
	appender  *ingest.Appender
	admin     *kgo.Client // metadata and start offsets
	hub       *hub
	metrics   *metrics
	gatherer  prometheus.Gatherer
	upgrader  websocket.Upgrader
	handler   http.Handler
	tls       *tls.Config // nil: plain HTTP
	// views are the projector's Cassandra views (nil without CassandraHosts).
	views   views
	members *membership
	// att serves the attachment endpoints (nil when not configured).
	att *attachments
	// decisions are the commands HTTP requests wait for (decisions.go).
	decisions decisions
	// gapsLogged: history gaps a Resume has logged already.
	gapsLogged onceLog

	// instance names this run of the gateway in the signals topic.
	instance   string
	presence   *presenceTable
	signalsOut *kgo.Client
	// repairs asks the projector's repairer to re-apply a conversation
	// whose views lost rows (projector/repair).
	repairsOut *kgo.Client
	repairs    *repair.Requester
	// userLimits are the per-user rate buckets (userlimits.go).
	userLimits *userLimiter
	// bans are the standing bans (bans.go); nil in a Server not made by New.
	bans *ingest.BanFollower

	consumerReady atomic.Bool
	draining      atomic.Bool
	served        atomic.Bool
	gate          sync.RWMutex // orders sessions.Add before draining
	sessions      sync.WaitGroup
	appendCtx     context.Context
	stopAppends   context.CancelFunc
	// kopts secure every Kafka client (Config.Kafka).
	kopts []kgo.Opt
}

// kafkaOpts are a client's own options followed by Config.Kafka's.
func (s *Server) kafkaOpts(own ...kgo.Opt) []kgo.Opt { return append(own, s.kopts...) }

// New checks cfg and builds a Server. It does not contact Kafka: Run does.
func New(cfg Config) (*Server, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hub: newHub(), instance: newID(time.Now()),
		presence:   newPresenceTable(cfg.Signals.PresenceForget, pushPresence),
		userLimits: newUserLimiter(cfg.Limits.UserRatePerSecond, cfg.Limits.UserBurst)}
	var err error
	if s.kopts, err = cfg.Kafka.Opts(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if len(cfg.Cassandra.Hosts) > 0 {
		cv, err := openViews(cfg.Cassandra, cfg.Keyspace)
		if err != nil {
			return nil, err
		}
		s.views = cv
	}
	s.members = newMembership(s.views, cfg.Fanout.MembershipCacheSize)
	if s.verifier, err = token.NewVerifier(cfg.Auth); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.DevTokens {
		if s.devIssuer, err = token.NewDevIssuer(cfg.Auth); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		s.log.Warn("DEV TOKENS ENABLED: /v1/dev/token mints a valid token for ANY user and device. " +
			"Never enable PARLEY_DEV_TOKENS outside local development.")
	}
	reg := cfg.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, s.gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	} else {
		// Serve at least our own metrics when the Registerer cannot be gathered.
		r := prometheus.NewRegistry()
		reg, s.gatherer = multiRegisterer{cfg.Registerer, r}, r
	}
	if s.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	if s.appender, err = ingest.NewAppender(ingest.AppenderConfig{Seeds: cfg.Seeds, Topic: cfg.CommandsTopic,
		ClientID: "parley-gateway", Extra: append([]kgo.Opt{kgo.WithLogger(kafkaLogger{s.log.With("client", "commands")})}, s.kopts...)}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// A short metadata age so a topic created just before the gateway (tests,
	// first deploy) is seen on the next retry rather than 5 s later.
	if s.admin, err = kgo.NewClient(s.kafkaOpts(kgo.SeedBrokers(cfg.Seeds...), kgo.ClientID("parley-gateway-admin"),
		kgo.MetadataMinAge(500*time.Millisecond), kgo.WithLogger(kafkaLogger{s.log.With("client", "admin")}))...); err != nil {
		return nil, fmt.Errorf("gateway: kafka: %w", err)
	}
	if s.signalsOut, err = kgo.NewClient(s.kafkaOpts(kgo.SeedBrokers(cfg.Seeds...), kgo.ClientID("parley-gateway-signals"),
		kgo.DefaultProduceTopic(cfg.SignalsTopic),
		// Ephemeral: the leader's ack is enough, and a signal late by more
		// than a few seconds is worthless.
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.MetadataMinAge(500*time.Millisecond), kgo.WithLogger(kafkaLogger{s.log.With("client", "signals-out")}))...); err != nil {
		return nil, fmt.Errorf("gateway: kafka: %w", err)
	}
	if s.repairsOut, err = kgo.NewClient(s.kafkaOpts(kgo.SeedBrokers(cfg.Seeds...), kgo.ClientID("parley-gateway-repairs"),
		kgo.RecordDeliveryTimeout(10*time.Second), kgo.MetadataMinAge(500*time.Millisecond),
		kgo.WithLogger(kafkaLogger{s.log.With("client", "repairs")}))...); err != nil {
		return nil, fmt.Errorf("gateway: kafka: %w", err)
	}
	s.repairs = repair.NewRequester(s.repairsOut, cfg.RepairsTopic, "gateway "+s.instance)
	if s.bans, err = ingest.NewBanFollower(ingest.BanFollowerConfig{Seeds: cfg.Seeds, Topic: cfg.BansTopic, KafkaOptions: s.kopts,
		Logger: s.log.With("part", "bans"), OnChange: s.banChanged, OnRevoke: s.revocationChanged}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.appendCtx, s.stopAppends = context.WithCancel(context.Background())
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{SubprotocolProto, SubprotocolJSON},
		// Share write buffers between writes: most sessions are idle most of the time.
		WriteBufferPool: &sync.Pool{},
		// A read buffer of its own, smaller than net/http's 4 KiB one (which
		// is then let go): most frames are far smaller, and a larger one is
		// read through it.
		ReadBufferSize: 1024,
		// Any origin may connect: a session is authorised by a bearer token the
		// page must hold and send explicitly (header or query), never by a
		// cookie the browser attaches on its own, so a foreign page gains
		// nothing by opening the socket.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, reason.Error())
		},
	}
	if cv, ok := s.views.(*cassandraViews); ok && cfg.Attachments.Store != nil {
		if s.att, err = newAttachments(s, cfg.Attachments, cv); err != nil {
			return nil, err
		}
	}
	s.handler = cfg.TrustedProxies.Wrap(deploy.SecurityHeaders(s.routes().mux))
	if cfg.TLS.On() {
		if cfg.TLS.Logger == nil {
			cfg.TLS.Logger = s.log
		}
		if s.tls, err = cfg.TLS.Config(); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return s, nil
}

// routes registers every endpoint of the gateway; openapi.yaml documents
// them all.
func (s *Server) routes() *router {
	mux := newRouter()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	mux.HandleFunc("GET /v1/openapi.yaml", serveOpenAPI)
	ops := deploy.Handler(s.gatherer, s.Checks(), nil)
	mux.Handle("GET /healthz", ops)
	mux.Handle("GET /metrics", ops)
	if s.cfg.DevTokens {
		mux.HandleFunc("GET /v1/dev/token", s.devToken)
		mux.HandleFunc("POST /v1/dev/token", s.devToken)
	}
	if s.att != nil {
		s.att.routes(mux)
	} else {
		mux.HandleFunc("/v1/conversations/{conversation}/attachments/", attachmentsOff)
		mux.HandleFunc("POST /v1/conversations/{conversation}/attachments", attachmentsOff)
		mux.HandleFunc("/v1/files/", attachmentsOff)
		mux.HandleFunc("/v1/uploads/", attachmentsOff)
		mux.HandleFunc("POST /v1/conversations/{conversation}/uploads", attachmentsOff)
		mux.HandleFunc("OPTIONS /v1/conversations/{conversation}/uploads", attachmentsOff)
	}
	s.addPushRoutes(mux)
	s.addAdminRoutes(mux)
	if !s.cfg.Web.Off {
		h, err := web.Handler(s.cfg.webConfig())
		if err != nil { // Validate checked the URLs, and dist is embedded
			s.log.Error("web client not served", "err", err)
			h = http.NotFoundHandler()
		}
		for _, p := range web.Routes() {
			mux.Handle(p, h)
		}
	}
	return mux
}

// multiRegisterer registers with both; used when the configured Registerer
// is not a Gatherer, so /metrics still has something to serve.
type multiRegisterer struct{ a, b prometheus.Registerer }

func (m multiRegisterer) Register(c prometheus.Collector) error {
	if err := m.a.Register(c); err != nil {
		return err
	}
	return m.b.Register(c)
}

func (m multiRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := m.Register(c); err != nil {
			panic(err)
		}
	}
}

func (m multiRegisterer) Unregister(c prometheus.Collector) bool {
	a := m.a.Unregister(c)
	return m.b.Unregister(c) && a
}

// Handler serves /v1/ws, /v1/openapi.yaml, /healthz, /metrics, the
// attachment, push and admin endpoints, the web client at / and, with
// DevTokens, /v1/dev/token (openapi.yaml).
// Events reach sessions only while Run (or Serve) runs.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on Config.Addr and serves until ctx ends; see Serve.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln and consumes the events topic until ctx
// ends, then shuts down gracefully: it refuses new commands, waits (up to
// WriteTimeout) for appends in flight so their acks reach the devices,
// closes every session with 1001, and closes its Kafka clients. A Server
// serves once; it returns nil after a shutdown asked for by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		_ = ln.Close()
		return errors.New("gateway: a Server serves only once")
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(ln) }()
	consumeCtx, stopConsume := context.WithCancel(context.Background())
	consumeDone := make(chan error, 1)
	go func() { consumeDone <- s.consume(consumeCtx) }()
	signalsDone := make(chan error, 1)
	go func() { signalsDone <- s.runSignals(consumeCtx) }()
	bansDone := make(chan struct{})
	go func() {
		defer close(bansDone)
		if err := s.bans.Run(consumeCtx); err != nil && consumeCtx.Err() == nil {
			s.log.Error("bans: follower stopped", "err", err)
		}
	}()
	janitorDone := make(chan struct{})
	go func() {
		defer close(janitorDone)
		if s.att != nil {
			s.att.runJanitor(consumeCtx, s.views.(*cassandraViews))
		}
	}()
	s.log.Info("gateway serving", "addr", ln.Addr().String(), "commands", s.cfg.CommandsTopic, "events", s.cfg.EventsTopic)

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpDone:
		err = fmt.Errorf("gateway: http: %w", err)
	case err = <-consumeDone:
		err = fmt.Errorf("gateway: events consumer: %w", err)
		consumeDone <- nil
	case err = <-signalsDone:
		err = fmt.Errorf("gateway: signals consumer: %w", err)
		signalsDone <- nil
	}
	s.shutdown(hs, stopConsume, consumeDone, signalsDone)
	<-janitorDone
	<-bansDone
	return err
}

func (s *Server) shutdown(hs *http.Server, stopConsume context.CancelFunc, consumeDone, signalsDone chan error) {
	s.log.Info("gateway shutting down", "sessions", len(s.hub.all()))
	s.gate.Lock()
	s.draining.Store(true)
	s.gate.Unlock()
	wt := s.cfg.Limits.WriteTimeout
	ctx, cancel := context.WithTimeout(context.Background(), wt)
	_ = hs.Shutdown(ctx) // stops accepting; hijacked WebSockets are ours to close
	cancel()
	// Let appends in flight finish so their Accepted (or Error) frames are
	// queued before the sessions are closed with flush.
	ctx, cancel = context.WithTimeout(context.Background(), wt)
	if err := s.appender.Flush(ctx); err != nil {
		s.log.Warn("appends still in flight at shutdown; their devices get no ack and will retry", "err", err)
	}
	cancel()
	for _, sess := range s.hub.all() {
		sess.close(CloseGoingAway, "gateway shutting down", true)
	}
	done := make(chan struct{})
	go func() { s.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wt + 3*closeGrace):
		s.log.Warn("sessions still open after shutdown grace")
	}
	stopConsume()
	<-consumeDone
	<-signalsDone
	// The sessions' OFFLINE statements, so watchers elsewhere need not wait
	// for them to expire.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	_ = s.signalsOut.Flush(ctx)
	cancel()
	s.signalsOut.Close()
	s.repairsOut.Close()
	s.stopAppends()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	_ = s.appender.Close(ctx)
	cancel()
	s.admin.Close()
	if cv, ok := s.views.(*cassandraViews); ok {
		cv.close()
	}
	s.log.Info("gateway stopped")
}

// attachmentsOff answers the attachment endpoints of a gateway without a
// blob store or without Cassandra.
func attachmentsOff(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
		"attachments are not configured on this gateway (a blob store and the views are needed)")
}

// serveWS authenticates, upgrades and runs one session until it ends.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	id, exp, err := s.verifier.VerifyUntil(token.TokenFromRequest(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		writeError(w, http.StatusUnauthorized, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, err.Error())
		return
	}
	if id.DeviceID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED,
			"token has no device claim ("+token.DeviceClaim+"); the gateway needs one")
		return
	}
	if msg, banned := s.banned(id.UserID, time.Now()); banned {
		writeError(w, http.StatusForbidden, pb.ErrorCode_ERROR_CODE_USER_BANNED, msg)
		return
	}
	if msg, revoked := s.revoked(id.UserID, id.DeviceID); revoked {
		writeError(w, http.StatusForbidden, pb.ErrorCode_ERROR_CODE_DEVICE_REVOKED, msg)
		return
	}
	if msg, many := s.tooManyConnections(id.UserID, id.DeviceID); many {
		writeError(w, http.StatusTooManyRequests, pb.ErrorCode_ERROR_CODE_TOO_MANY_CONNECTIONS, msg)
		return
	}
	// Counted before the upgrade, under gate, so shutdown's Wait never races an Add.
	s.gate.RLock()
	if s.draining.Load() {
		s.gate.RUnlock()
		writeError(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "gateway is shutting down")
		return
	}
	s.sessions.Add(1)
	s.gate.RUnlock()
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.sessions.Done()
		return // the upgrader has answered
	}
	// The session runs on a goroutine of its own and this handler returns:
	// net/http then lets go of what it holds for the request while its
	// handler runs (its 4 KiB write buffer, the response and the handler's
	// grown stack), which a WebSocket never uses again.
	holdAll, remote := r.URL.Query().Get("resume") == "1", r.RemoteAddr
	go func() {
		defer s.sessions.Done()
		s.runSession(conn, id, exp, holdAll, remote)
	}()
}

// runSession is one upgraded connection's session, from its registration
// to its end.
func (s *Server) runSession(conn *websocket.Conn, id token.Identity, exp time.Time, holdAll bool, remote string) {
	now := time.Now()
	l := s.cfg.Limits
	sess := &session{srv: s, conn: conn, id: newID(now), user: id.UserID, device: id.DeviceID,
		codec: codecFor(conn.Subprotocol()), expires: exp, limiter: newBucket(l.RatePerSecond, l.Burst, now),
		out: newOutQueue(l.OutboundQueue + answerReserve(l.OutboundQueue)), answerSlots: make(chan struct{}, answerReserve(l.OutboundQueue)),
		wrote: make(chan struct{}, 1), closed: make(chan struct{}),
		readerDone: make(chan struct{}), writerDone: make(chan struct{}), watchQueue: make(chan func(), watchQueueLen),
		held: map[string][]held{}, pushed: map[string]span{}, holdAll: holdAll}
	sess.log = s.log.With("session", sess.id, "user", sess.user, "device", sess.device)
	// Online before it is registered: a presence refresh may list it at once.
	sess.state.Store(int32(pb.PresenceState_PRESENCE_STATE_ONLINE))
	s.metrics.sessions.Inc()
	defer s.metrics.sessions.Dec()

	_ = conn.SetReadDeadline(now.Add(l.IdleTimeout))
	conn.SetPongHandler(func(string) error { sess.touch(); return nil })
	if old := s.hub.register(sess); old != nil {
		s.metrics.replaced.Inc()
		old.log.Info("session replaced by a newer connection of the same device", "by", sess.id)
		old.close(CloseReplaced, "replaced by a newer connection of this device", true)
	}
	if s.draining.Load() { // lost a race with shutdown's sweep
		sess.close(CloseGoingAway, "gateway shutting down", true)
	}
	// A ban read between the check above and the registration found no
	// session to close: the follower holds the ban before it calls back,
	// so this second look sees it.
	if msg, banned := s.banned(sess.user, now); banned {
		sess.close(CloseBanned, closeReason(msg), true)
	}
	if msg, revoked := s.revoked(sess.user, sess.device); revoked {
		sess.close(CloseRevoked, closeReason(msg), true)
	}
	// Two connections of the user let in at once on this gateway: the
	// second look counts both.
	if msg, many := s.tooManyConnections(sess.user, sess.device); many {
		sess.close(CloseTooManyConnections, closeReason(msg), true)
	}
	s.userLimits.acquire(sess.user, now)
	defer s.userLimits.release(sess.user)
	sess.send(newOutbound(&pb.ServerFrame{Body: &pb.ServerFrame_Welcome{Welcome: &pb.Welcome{
		SessionId: sess.id, UserId: sess.user, DeviceId: sess.device, ServerTime: timestamppb.New(now),
		MaxFrameBytes: int64(l.MaxFrameBytes), MaxMessageBytes: int64(l.MaxMessageBytes),
		UserStreamId: schemas.UserStreamID(sess.user)}}}))
	sess.log.Debug("session open", "subprotocol", conn.Subprotocol(), "remote", remote)
	s.publishPresence(sess.devicePresence())

	go sess.writeLoop()
	sess.readLoop()
	<-sess.writerDone
	_ = conn.Close()
	// Settles the close (unregistering too); after it the watchdog, if the
	// close ran elsewhere, is visible here and can be stopped.
	sess.close(websocket.CloseNormalClosure, "", false)
	sess.watchdog.Stop()
	s.presence.unwatch(sess)
	if s.hub.device(sess.user, sess.device) == nil { // not replaced by a newer session
		s.publishPresence(&pb.DevicePresence{UserId: sess.user, DeviceId: sess.device, State: pb.PresenceState_PRESENCE_STATE_OFFLINE})
	}
}

// healthz is 200 when this gateway can do its job: its events consumer has
// its start positions and Kafka answers metadata for both topics.
// Checks are what /healthz reports (deploy.Handler, the ops handler every
// main serves): the gateway is not shutting down, its events consumer is
// positioned, and Kafka answers metadata for the commands and events topics.
func (s *Server) Checks() []deploy.Check {
	checks := []deploy.Check{
		{Name: "serving", Fn: func(context.Context) error {
			switch {
			case s.draining.Load():
				return errors.New("shutting down")
			case !s.consumerReady.Load():
				return errors.New("events consumer not started")
			case !s.bansReady():
				return errors.New("the standing bans are not read yet")
			}
			return nil
		}},
		{Name: "kafka", Fn: func(ctx context.Context) error {
			md, err := kadm.NewClient(s.admin).Metadata(ctx, s.cfg.CommandsTopic, s.cfg.EventsTopic)
			if err != nil {
				return fmt.Errorf("unreachable: %w", err)
			}
			for _, t := range []string{s.cfg.CommandsTopic, s.cfg.EventsTopic} {
				if td, ok := md.Topics[t]; !ok || td.Err != nil {
					return fmt.Errorf("topic %s unavailable", t)
				}
			}
			return nil
		}},
	}
	// Cassandra is not a check: without it the gateway still accepts sends
	// and delivers live (membership is cached), so taking every gateway out
	// of a load balancer when Cassandra fails would turn a degraded Resume
	// into an outage.
	return checks
}

type devTokenResponse struct {
	Token     string    `json:"token"`
	UserID    string    `json:"userId"`
	DeviceID  string    `json:"deviceId"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// devToken mints a token for ?user=&device=. Only served with DevTokens.
func (s *Server) devToken(w http.ResponseWriter, r *http.Request) {
	user, device := r.URL.Query().Get("user"), r.URL.Query().Get("device")
	if user == "" || device == "" {
		writeError(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "user and device query parameters are required")
		return
	}
	for _, c := range []struct{ field, id string }{{"user", user}, {"device", device}} {
		if err := schemas.CheckID(c.field, c.id); err != nil {
			writeError(w, http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ID, err.Error())
			return
		}
	}
	tok, err := s.devIssuer.Issue(user, device, DevTokenTTL)
	var idErr *schemas.IDError
	if errors.As(err, &idErr) {
		writeError(w, http.StatusBadRequest, idErr.Code, idErr.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, pb.ErrorCode_ERROR_CODE_INTERNAL, err.Error())
		return
	}
	s.log.Warn("dev token issued", "user", user, "device", device)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(devTokenResponse{Token: tok, UserID: user, DeviceID: device,
		ExpiresAt: time.Now().Add(DevTokenTTL).UTC().Truncate(time.Second)})
}

// writeError answers a plain HTTP request with the JSON of an Error frame
// body, e.g. {"code":"ERROR_CODE_UNAUTHENTICATED","message":"…"}.
func writeError(w http.ResponseWriter, status int, code pb.ErrorCode, msg string) {
	b, _ := jsonOut.Marshal(&pb.Error{Code: code, Message: msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

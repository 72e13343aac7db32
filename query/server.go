package query

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/token"
)

const (
	// requestTimeout bounds the Cassandra work of one request.
	requestTimeout = 10 * time.Second
	// shutdownGrace is how long Run lets requests in flight finish.
	shutdownGrace = 10 * time.Second
)

// Server is the query HTTP service. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	verifier *token.Verifier
	serving  *serving // the keyspace the views are read from (serving.go)
	handler  http.Handler
	tls      *tls.Config // nil: plain HTTP
	limits   *limiters   // per user; nil: no limit

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	closeOnce sync.Once
}

// New validates cfg and opens the Cassandra session; Close releases it.
func New(cfg Config) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	verifier, err := token.NewVerifier(cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		verifier: verifier,
		limits:   newLimiters(cfg.RatePerSecond, cfg.Burst),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parley", Subsystem: "query", Name: "requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "parley", Subsystem: "query", Name: "request_duration_seconds",
			Help:    "HTTP request latency, by route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms … 8 s
		}, []string{"route", "status"}),
	}
	for _, c := range []prometheus.Collector{s.requests, s.latency} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("query: register metrics: %w", err)
		}
	}
	if s.serving, err = openServing(cfg); err != nil {
		return nil, err
	}
	s.handler = cfg.TrustedProxies.Wrap(deploy.SecurityHeaders(s.cors(s.routes())))
	if cfg.TLS.On() {
		if cfg.TLS.Logger == nil {
			cfg.TLS.Logger = s.log
		}
		if s.tls, err = cfg.TLS.Config(); err != nil {
			s.Close()
			return nil, fmt.Errorf("query: %w", err)
		}
	}
	return s, nil
}

// Handler returns the HTTP handler of every endpoint, for tests and for
// embedding in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves cfg.Addr until ctx ends, then stops accepting connections and
// waits up to 10 s for requests in flight. It returns nil after a shutdown
// caused by ctx.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("query: listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (a test hands over one on a
// port the kernel picked); it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      requestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.log.Info("query listening", "addr", ln.Addr().String(), "tls", s.tls != nil, "keyspace", s.serving.current().keyspace)
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	go s.serving.follow(fctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("query: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("query: shutdown: %w", err)
	}
	s.log.Info("query stopped")
	return nil
}

// Keyspace returns the keyspace the views are served from now.
func (s *Server) Keyspace() string { return s.serving.current().keyspace }

// Close closes the Cassandra sessions. Call it after Run has returned.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.serving != nil {
			s.serving.close()
		}
	})
}

// route is one endpoint: its ServeMux pattern (always GET; HEAD is served
// too) and the route label of its metrics.
type route struct {
	pattern, name string
	handler       http.HandlerFunc
}

func (s *Server) endpoints() []route {
	gatherer, ok := s.cfg.Registerer.(prometheus.Gatherer)
	if !ok {
		gatherer = prometheus.DefaultGatherer
	}
	ops := deploy.Handler(gatherer, s.Checks(), nil)
	return []route{
		{"/v1/inbox", "inbox", s.authed(s.handleInbox)},
		{"/v1/unread", "unread", s.authed(s.handleUnread)},
		{"/v1/me/settings", "settings", s.authed(s.handleSettings)},
		{"/v1/conversations/{id}", "conversation", s.authed(s.handleConversation)},
		{"/v1/conversations/{id}/messages", "messages", s.authed(s.handleMessages)},
		{"/v1/conversations/{id}/messages/{seq}/versions", "versions", s.authed(s.handleVersions)},
		{"/v1/conversations/{id}/messages/{seq}/replies", "replies", s.authed(s.handleReplies)},
		{"/v1/conversations/{id}/receipts", "receipts", s.authed(s.handleReceipts)},
		{"/v1/conversations/{id}/pins", "pins", s.authed(s.handlePins)},
		{"/v1/conversations/{id}/mentions", "mentions", s.authed(s.handleMentions)},
		{"/v1/conversations/{id}/invites", "invites", s.authed(s.handleInvites)},
		{"/v1/conversations/{id}/join-requests", "join_requests", s.authed(s.handleJoinRequests)},
		{"/v1/conversations/{id}/join-request", "join_request", s.authed(s.handleOwnJoinRequest)},
		{"/healthz", "healthz", ops.ServeHTTP},
		{"/metrics", "metrics", ops.ServeHTTP},
	}
}

// routes builds the mux. Routes are registered without a method so a wrong
// method gets the JSON error shape (405 UNSUPPORTED) instead of the mux's
// plain-text answer, and unknown paths get 404 NOT_FOUND in the same shape.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.endpoints() {
		mux.Handle(rt.pattern, s.instrument(rt.name, getOnly(s, rt.handler)))
	}
	mux.Handle("/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &apiError{http.StatusNotFound, codeNotFound, "no such endpoint: " + schemas.Clip(r.URL.Path)})
	})))
	return mux
}

func getOnly(s *Server, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.fail(w, r, &apiError{http.StatusMethodNotAllowed, codeUnsupported, "method " + r.Method + " not allowed; use GET"})
			return
		}
		h(w, r)
	}
}

// authed verifies the bearer token and passes its identity on; sub is the
// user id every membership check uses.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, token.Identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := token.TokenFromRequest(r)
		if tok == "" {
			s.fail(w, r, &apiError{http.StatusUnauthorized, codeUnauthenticated, "missing bearer token (Authorization: Bearer <jwt>)"})
			return
		}
		id, err := s.verifier.Verify(tok)
		if err != nil {
			s.fail(w, r, &apiError{http.StatusUnauthorized, codeUnauthenticated, err.Error()})
			return
		}
		if ok, wait := s.limits.allow(id.UserID, time.Now()); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			s.fail(w, r, &apiError{http.StatusTooManyRequests, codeRateLimited,
				fmt.Sprintf("more than %g requests a second (burst %d) for this user; retry after %s s", s.cfg.RatePerSecond, s.cfg.Burst, retryAfter(wait))})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		// One request reads one keyspace, even across a switch.
		st := s.serving.current()
		ctx = context.WithValue(ctx, storeKey{}, st)
		r = r.WithContext(ctx)
		// A banned user's token reads nothing while the ban holds (the
		// bans view, one row).
		ban, banned, err := st.tables.Ban(ctx, id.UserID)
		if err != nil {
			s.fail(w, r, &storeError{op: "read ban", err: err})
			return
		}
		if banned && ban.Holds(time.Now()) {
			msg := "banned"
			if !ban.Until.IsZero() {
				msg += " until " + ban.Until.UTC().Format(time.RFC3339)
			}
			if ban.Reason != "" {
				msg += ": " + ban.Reason
			}
			s.fail(w, r, &apiError{http.StatusForbidden, codeUserBanned, msg})
			return
		}
		// Nor a token naming a revoked device (the device_revocations
		// view, one row); the user's other devices go on.
		if id.DeviceID != "" {
			rev, revoked, err := st.tables.Revocation(ctx, id.UserID, id.DeviceID)
			if err != nil {
				s.fail(w, r, &storeError{op: "read revocation", err: err})
				return
			}
			if revoked {
				msg := "device revoked"
				if rev.Reason != "" {
					msg += ": " + rev.Reason
				}
				s.fail(w, r, &apiError{http.StatusForbidden, codeDeviceRevoked, msg})
				return
			}
		}
		h(w, r, id)
	}
}

// statusWriter remembers the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		status := strconv.Itoa(sw.status)
		elapsed := time.Since(start)
		s.requests.WithLabelValues(route, status).Inc()
		s.latency.WithLabelValues(route, status).Observe(elapsed.Seconds())
		s.log.DebugContext(r.Context(), "request", "method", r.Method, "route", route, "status", sw.status, "elapsed", elapsed)
	})
}

// Checks are what /healthz reports (deploy.Handler, the ops handler every
// main serves): Cassandra answers on the keyspace query serves.
func (s *Server) Checks() []deploy.Check {
	return []deploy.Check{{Name: "cassandra", Fn: func(ctx context.Context) error {
		return s.serving.current().ping(ctx)
	}}}
}

package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one condition /healthz reports: nil when it holds, else why not.
// It must answer within CheckTimeout (it gets a context with that deadline).
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// CheckTimeout bounds one Check.
const CheckTimeout = 2 * time.Second

// Registry returns a Prometheus registry with the Go and process collectors,
// for a main's own metrics, and parley_kafka_authorization_failures_total.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		KafkaAuthorizationFailures)
	return reg
}

// Ops is a main's ops listener: GET /metrics (Prometheus) and GET /healthz,
// which runs every check concurrently and answers 200 with
// {"status":"ok",…} when all hold, 503 with {"status":"unavailable",…} and
// each failing check's reason otherwise. Load balancers and orchestrators
// take the status; people read the body.
type Ops struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// HealthBody is the JSON body of /healthz.
type HealthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Handler is the ops listener's handler, for mains that mount it on their own mux.
func Handler(g prometheus.Gatherer, checks []Check, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		body := Health(r.Context(), checks)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if body.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	for p, h := range extra {
		mux.Handle(p, h)
	}
	return mux
}

// Health runs checks concurrently, each within CheckTimeout.
func Health(ctx context.Context, checks []Check) HealthBody {
	body := HealthBody{Status: "ok", Checks: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			err := c.Fn(cctx)
			if err == nil && cctx.Err() != nil {
				err = errors.New("no answer within " + CheckTimeout.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				body.Status = "unavailable"
				body.Checks[c.Name] = err.Error()
			} else {
				body.Checks[c.Name] = "ok"
			}
		}()
	}
	wg.Wait()
	return body
}

// ListenOps listens on addr (host:port; port 0 picks one) and serves the ops
// handler until Close. extra mounts more handlers (e.g. pprof) on the same mux.
func ListenOps(addr string, log *slog.Logger, g prometheus.Gatherer, checks []Check, extra map[string]http.Handler) (*Ops, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return ServeOps(ln, log, g, checks, extra), nil
}

// ServeOps serves the ops handler on ln until Close.
func ServeOps(ln net.Listener, log *slog.Logger, g prometheus.Gatherer, checks []Check, extra map[string]http.Handler) *Ops {
	o := &Ops{ln: ln, log: log, srv: &http.Server{
		Handler:           Handler(g, checks, extra),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
	}}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ops listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return o
}

// Addr is where the listener listens.
func (o *Ops) Addr() string { return o.ln.Addr().String() }

// Close stops the listener.
func (o *Ops) Close() error { return o.srv.Close() }

// CheckNames lists checks' names, sorted (for logs).
func CheckNames(checks []Check) []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

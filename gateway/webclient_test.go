package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestWebClientRoutes: the gateway serves the embedded client at / with
// its settings, and none when it is off.
func TestWebClientRoutes(t *testing.T) {
	serve := func(cfg Config, path string) *httptest.ResponseRecorder {
		s := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler), gatherer: prometheus.NewRegistry()}
		rec := httptest.NewRecorder()
		s.routes().mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	on := Config{DevTokens: true, Web: Web{QueryURL: "http://127.0.0.1:8081"}}
	page := serve(on, "/")
	if page.Code != http.StatusOK || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(page.Body.String(), "app.js") {
		t.Fatalf("GET /: %d %q", page.Code, page.Header().Get("Content-Type"))
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' ws: wss: http://127.0.0.1:8081") {
		t.Errorf("CSP %q does not allow the query origin", csp)
	}
	var conf struct {
		QueryURL  string `json:"queryUrl"`
		DevTokens bool   `json:"devTokens"`
	}
	rec := serve(on, "/config.json")
	if err := json.Unmarshal(rec.Body.Bytes(), &conf); err != nil || conf.QueryURL != on.Web.QueryURL || !conf.DevTokens {
		t.Errorf("GET /config.json: %d %s (%v)", rec.Code, rec.Body, err)
	}
	if rec := serve(on, "/app.js"); rec.Code != http.StatusOK || rec.Body.Len() == 0 {
		t.Errorf("GET /app.js: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if rec := serve(on, "/nothing.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing.js: %d, want 404", rec.Code)
	}
	off := Config{Web: Web{Off: true}}
	for _, p := range []string{"/", "/config.json", "/app.js"} {
		if rec := serve(off, p); rec.Code != http.StatusNotFound {
			t.Errorf("web off: GET %s: %d, want 404", p, rec.Code)
		}
	}
	bad := Config{Seeds: []string{"x:1"}, Web: Web{QueryURL: "query:8081"}}
	bad = bad.Defaults()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "QueryURL") {
		t.Errorf("a QueryURL with no scheme: %v, want refused", err)
	}
}

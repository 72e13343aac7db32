package query

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		_, _ = w.Write([]byte("{}"))
	})
	const page = "http://127.0.0.1:8080"
	h := (&Server{cfg: Config{CORSOrigins: []string{page}}}).cors(next)
	do := func(method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/v1/inbox", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	preflight := map[string]string{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}

	rec := do(http.MethodOptions, page, preflight)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != page ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight from an allowed origin: %d %v", rec.Code, rec.Header())
	}
	rec = do(http.MethodGet, page, map[string]string{"Authorization": "Bearer x"})
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != page ||
		!strings.Contains(strings.Join(rec.Header().Values("Vary"), ","), "Origin") ||
		rec.Header().Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Errorf("GET from an allowed origin: %d %v", rec.Code, rec.Header())
	}
	for _, origin := range []string{"http://evil.example", "http://127.0.0.1:8081", "null"} {
		rec = do(http.MethodOptions, origin, preflight)
		if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Code == http.StatusNoContent {
			t.Errorf("preflight from %s: %d %v, want no CORS answer", origin, rec.Code, rec.Header())
		}
		rec = do(http.MethodGet, origin, nil)
		if rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET from %s: allowed %v", origin, rec.Header())
		}
	}
	if rec = do(http.MethodGet, "", nil); rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Header().Get("Vary") != "" {
		t.Errorf("GET without Origin: %v, want no CORS headers", rec.Header())
	}
	none := (&Server{cfg: Config{}}).cors(next)
	r := httptest.NewRequest(http.MethodOptions, "/v1/inbox", nil)
	r.Header.Set("Origin", page)
	r.Header.Set("Access-Control-Request-Method", "GET")
	rec = httptest.NewRecorder()
	none.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("no CORSOrigins: %d %v, want the handler's own answer and no CORS header", rec.Code, rec.Header())
	}
	star := (&Server{cfg: Config{CORSOrigins: []string{"*"}}}).cors(next)
	r = httptest.NewRequest(http.MethodGet, "/v1/inbox", nil)
	r.Header.Set("Origin", "https://chat.example")
	rec = httptest.NewRecorder()
	star.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://chat.example" {
		t.Errorf(`"*": %v, want the origin allowed`, rec.Header())
	}
	for _, bad := range []string{"chat.example", "https://chat.example/", "https://chat.example/app", "ftp://x", "https://"} {
		if checkOrigins([]string{bad}) == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	if err := checkOrigins([]string{"*", "https://chat.example:8443", page}); err != nil {
		t.Error(err)
	}
}

package query

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS: a browser page served from another origin (the gateway's web
// client, a company's own front end) may read the API only when its origin
// is listed in Config.CORSOrigins. The API takes a bearer token, never a
// cookie, so no request carries credentials the browser adds by itself.

// corsMaxAge is how long a browser may cache a preflight answer.
const corsMaxAge = "600"

// checkOrigins refuses an entry that is no origin: scheme and host only.
func checkOrigins(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" || strings.HasSuffix(o, "/") {
			return fmt.Errorf("query: CORSOrigins entry %q is not an origin (scheme://host[:port])", o)
		}
	}
	return nil
}

// cors answers preflights of allowed origins and marks their responses
// readable. A request from another origin gets no CORS header, so the
// browser keeps the answer from the page; requests with no Origin pass
// untouched.
func (s *Server) cors(next http.Handler) http.Handler {
	allowed := s.cfg.CORSOrigins
	if len(allowed) == 0 {
		return next
	}
	anyOrigin := slices.Contains(allowed, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if !anyOrigin && !slices.Contains(allowed, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, HEAD")
			h.Set("Access-Control-Allow-Headers", "Authorization")
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// A page must read a 429's Retry-After to wait as long as asked.
		h.Set("Access-Control-Expose-Headers", "Retry-After")
		next.ServeHTTP(w, r)
	})
}

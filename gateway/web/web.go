// Package web holds Parley's web client (sources in src/, built with
// `go tool task web:build` into dist/) and serves its built assets, which
// are embedded so a gateway binary carries its client. See README.md.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/parley-im/parley/projector/push"
)

//go:embed dist
var dist embed.FS

// Config is what the client learns from /config.json.
type Config struct {
	// QueryURL is the query service's base URL as a browser reaches it
	// (scheme, host and port, no path). query must allow the gateway's
	// origin (query's CORSOrigins). Empty: the gateway's own origin, as
	// behind a reverse proxy that routes query's paths to query.
	QueryURL string `json:"queryUrl,omitempty"`
	// DevTokens tells the client to offer sign-in by user name through
	// /v1/dev/token (the gateway's DevTokens).
	DevTokens bool `json:"devTokens"`
	// SignInURL is the deployer's sign-in hook: the client sends a person
	// there, and takes the token from #access_token=… of the page the
	// identity provider redirects back to (README.md, "Signing in").
	SignInURL string `json:"signInUrl,omitempty"`
	// VAPIDPublicKey is the application server key the notifier signs Web
	// Push requests with (PARLEY_WEBPUSH_VAPID_PUBLIC_KEY, the notifier's
	// setting): an uncompressed P-256 point, base64url. The client offers
	// notifications only when it is set, and subscribes with it.
	VAPIDPublicKey string `json:"vapidPublicKey,omitempty"`
}

// Check refuses URLs a browser cannot use.
func (c Config) Check() error {
	for _, u := range []struct{ name, v string }{{"QueryURL", c.QueryURL}, {"SignInURL", c.SignInURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("web: %s %q is not an absolute http(s) URL", u.name, u.v)
		}
	}
	if c.VAPIDPublicKey != "" {
		if _, err := push.ParseVAPIDPublicKey(c.VAPIDPublicKey); err != nil {
			return fmt.Errorf("web: %w (what 'notifier vapid-keys' prints; got %d characters)", err, len(c.VAPIDPublicKey))
		}
	}
	return nil
}

// asset is one built file, served with a strong ETag so a browser
// revalidates cheaply and never runs a stale bundle after an upgrade.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets are the built files, by the path they are served at ("/" is
// index.html).
func assets() (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		name := "/" + strings.TrimPrefix(p, "dist/")
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		if name == "/index.html" {
			name = "/"
		}
		out[name] = asset{body: b, contentType: ct, etag: etag(b)}
		return nil
	})
	if err == nil && out["/"].body == nil {
		err = fmt.Errorf("web: dist has no index.html: run 'go tool task web:build'")
	}
	return out, err
}

// Routes are the patterns Handler serves, for a mux to register: the
// page, each built file (among them the service worker, /sw.js) and
// /config.json, all GET (HEAD is served too).
func Routes() []string {
	as, _ := assets()
	out := []string{"GET /{$}", "GET /config.json"}
	for name := range as {
		if name != "/" {
			out = append(out, "GET "+name)
		}
	}
	return out
}

// Handler serves the client: the page at /, the built files, and
// /config.json. Every answer carries a Content-Security-Policy that allows
// scripts and styles from the gateway only, connections to the gateway
// (WebSocket, uploads, signed-URL requests) and to QueryURL, and images
// and media from the gateway (attachments' signed /v1/files/ URLs) and
// blob: (the composer's previews of files not yet sent). /sw.js, the
// service worker that shows Web Push notifications, is served at the root
// so that its scope is the whole client; scripts from 'self' include it
// (worker-src falls back to script-src), and it loads nothing itself.
func Handler(cfg Config) (http.Handler, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	as, err := assets()
	if err != nil {
		return nil, err
	}
	conf, _ := json.Marshal(cfg)
	as["/config.json"] = asset{body: conf, contentType: "application/json", etag: etag(conf)}
	connect := "'self' ws: wss:"
	if cfg.QueryURL != "" {
		u, _ := url.Parse(cfg.QueryURL)
		connect += " " + u.Scheme + "://" + u.Host
	}
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; " +
		"connect-src " + connect + "; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := as[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Content-Type", a.contentType)
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", fmt.Sprint(len(a.body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(a.body)
		}
	}), nil
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

package web

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// budgetBytes is the stated budget (README.md): the script, the
// stylesheet and the service worker, gzipped, together.
const budgetBytes = 40 << 10

func TestBundleBudget(t *testing.T) {
	as, err := assets()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, name := range []string{"/app.js", "/app.css", "/sw.js"} {
		a, ok := as[name]
		if !ok {
			t.Fatalf("dist has no %s", name)
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(a.body)
		_ = zw.Close()
		t.Logf("%s: %d bytes, %d gzipped", name, len(a.body), buf.Len())
		total += buf.Len()
	}
	if total > budgetBytes {
		t.Fatalf("app.js, app.css and sw.js are %d bytes gzipped, over the budget of %d", total, budgetBytes)
	}
}

func TestHandler(t *testing.T) {
	if _, err := Handler(Config{QueryURL: "ftp://x"}); err == nil {
		t.Fatal("a non-http QueryURL was accepted")
	}
	h, err := Handler(Config{QueryURL: "http://127.0.0.1:8081", DevTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, etag string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	page := get("/", "")
	if page.Code != 200 || !strings.Contains(page.Body.String(), "app.js") || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %q %s", page.Code, page.Header().Get("Content-Type"), page.Body)
	}
	csp := page.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self' ws: wss: http://127.0.0.1:8081") ||
		// attachments: signed URLs on the gateway, and previews of files not yet sent; nothing else
		!strings.Contains(csp, "img-src 'self' blob:;") || !strings.Contains(csp, "media-src 'self' blob:;") {
		t.Fatalf("CSP %q", csp)
	}
	if again := get("/", page.Header().Get("ETag")); again.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", again.Code)
	}
	var conf Config
	if c := get("/config.json", ""); c.Code != 200 || json.Unmarshal(c.Body.Bytes(), &conf) != nil || conf != (Config{QueryURL: "http://127.0.0.1:8081", DevTokens: true}) {
		t.Fatalf("/config.json: %d %s", c.Code, c.Body)
	}
	if js := get("/app.js", ""); js.Code != 200 || !strings.Contains(js.Header().Get("Content-Type"), "javascript") {
		t.Fatalf("/app.js: %d %q", js.Code, js.Header().Get("Content-Type"))
	}
	if nf := get("/nope", ""); nf.Code != 404 {
		t.Fatalf("/nope: %d", nf.Code)
	}
	if len(Routes()) != 5 {
		t.Fatalf("routes %v, want the page, config.json, app.js, app.css and sw.js", Routes())
	}
}

// TestServiceWorker: the service worker is served at the root (its scope
// is the whole client) as JavaScript, under the same CSP; config.json
// names the VAPID key when there is one, and a key that is no P-256 point
// is refused with the reason.
func TestServiceWorker(t *testing.T) {
	const key = "BEHoNYxd0o22uQ6XGvRuFVz_IPam-gsPxdFneev9woRzduzggCylrLVjEjqek6HdfWAtlysmE3AdHcrSyWd3ey0"
	h, err := Handler(Config{VAPIDPublicKey: key})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	sw := get("/sw.js")
	if sw.Code != 200 || !strings.HasPrefix(sw.Header().Get("Content-Type"), "text/javascript") ||
		!strings.Contains(sw.Body.String(), "showNotification") || !strings.Contains(sw.Body.String(), "notificationclick") {
		t.Fatalf("/sw.js: %d %q", sw.Code, sw.Header().Get("Content-Type"))
	}
	if csp := sw.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "worker-src") {
		t.Fatalf("/sw.js CSP %q: want script-src 'self', which worker-src falls back to", csp)
	}
	var conf Config
	if c := get("/config.json"); c.Code != 200 || json.Unmarshal(c.Body.Bytes(), &conf) != nil || conf.VAPIDPublicKey != key {
		t.Fatalf("/config.json: %d %s", c.Code, c.Body)
	}
	off, _ := Handler(Config{})
	c := httptest.NewRecorder()
	off.ServeHTTP(c, httptest.NewRequest(http.MethodGet, "/config.json", nil))
	if c.Code != 200 || strings.Contains(c.Body.String(), "vapidPublicKey") {
		t.Fatalf("/config.json without a key: %d %s", c.Code, c.Body)
	}
	for _, bad := range []string{"not-a-key", key[:40], "BA" + key[2:]} {
		if _, err := Handler(Config{VAPIDPublicKey: bad}); err == nil || !strings.Contains(err.Error(), "VAPIDPublicKey") {
			t.Errorf("VAPIDPublicKey %q: %v, want it refused", bad, err)
		}
	}
}

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

// budgetBytes is the stated budget (README.md): the script and the
// stylesheet, gzipped, together.
const budgetBytes = 40 << 10

func TestBundleBudget(t *testing.T) {
	as, err := assets()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, name := range []string{"/app.js", "/app.css"} {
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
		t.Fatalf("app.js and app.css are %d bytes gzipped, over the budget of %d", total, budgetBytes)
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
	if len(Routes()) != 4 {
		t.Fatalf("routes %v, want the page, config.json, app.js and app.css", Routes())
	}
}

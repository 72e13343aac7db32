package query

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log destination the test reads while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestEdge: every client-named value is checked before any read, with its
// own code and a bounded message; no request writes a long log line.
func TestEdge(t *testing.T) {
	f := newFixture(t)
	club := gid("club")
	f.conversation(club, "group", "Club", "alice", "bob")
	f.timeline(club, 1, 3, "alice", nil)

	huge := "g:" + strings.Repeat("a", 64<<10) // over Cassandra's 64 KiB key limit
	badIDs := []string{huge, "g:club", "G:" + club[2:], "g:" + strings.ToUpper(club[2:]), "x:" + club[2:],
		club + "0", club[:33], "d:", "g:" + strings.Repeat("0", 31) + "%00", "%20" + club[1:]}
	t.Run("InvalidID", func(t *testing.T) {
		tok := f.token("alice")
		for _, id := range badIDs {
			for _, path := range conversationRoutes(id) {
				code, body := f.getWithToken(tok, path)
				var e errorBody
				if err := json.Unmarshal(body, &e); err != nil || code != http.StatusBadRequest || e.Error.Code != "INVALID_ID" {
					t.Errorf("GET %s: %d %s, want 400 INVALID_ID", clipPath(path), code, clipPath(string(body)))
					continue
				}
				if len(e.Error.Message) > 300 {
					t.Errorf("GET %s: a %d-byte message", clipPath(path), len(e.Error.Message))
				}
			}
		}
		// Unauthenticated requests are refused before the id is looked at.
		f.wantError("", "/v1/conversations/"+huge, http.StatusUnauthorized, "UNAUTHENTICATED")
	})

	t.Run("BearerSchemeAnyCase", func(t *testing.T) {
		tok := f.token("alice")
		for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR  " + tok} {
			req := httptest.NewRequest(http.MethodGet, "/v1/conversations/"+club, nil)
			req.Header.Set("Authorization", h)
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Errorf("Authorization %q…: %d %s", h[:8], rec.Code, rec.Body)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/v1/unread", nil)
		req.Header.Set("Authorization", "Basic "+tok)
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("Basic scheme: %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("BoundedLogLines", func(t *testing.T) {
		var logs syncBuffer
		srv, err := New(Config{Hosts: f.cass.Hosts, Keyspace: f.cass.Keyspace, Auth: f.authCfg,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		tok := f.token("alice")
		get := func(path string) int {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			return rec.Code
		}
		long := strings.Repeat("x", 512<<10)
		for _, path := range []string{"/v1/conversations/" + huge, "/v1/conversations/" + huge + "/messages?before=" + long,
			"/v1/conversations/" + club + "/messages?after=" + long, "/v1/conversations/" + club + "/messages/" + long + "/versions",
			"/v1/inbox?cursor=" + long, "/v1/" + long} {
			if code := get(path); code != http.StatusBadRequest && code != http.StatusNotFound {
				t.Errorf("GET %s: %d", clipPath(path), code)
			}
		}
		// A failing read is logged at WARN: it names the route, not the path.
		f.exec("DROP TABLE members")
		if code := get("/v1/conversations/" + club + "/messages?before=" + strings.Repeat("9", 18)); code != http.StatusServiceUnavailable {
			t.Errorf("members dropped: %d, want 503", code)
		}
		warned := false
		for _, l := range logs.lines() {
			if len(l) > 2048 {
				t.Errorf("a %d-byte log line: %s", len(l), clipPath(l))
			}
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "/v1/conversations/{id}/messages") {
				warned = true
			}
		}
		if !warned {
			t.Errorf("no WARN line naming the route; logs:\n%s", strings.Join(logs.lines(), "\n"))
		}
	})
}

func clipPath(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

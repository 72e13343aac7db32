package query

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/token"
	"github.com/parley-im/parley/testenv"
)

// conversationRoutes are every route that reads one conversation; all of
// them need the caller to be a current member.
func conversationRoutes(id string) []string {
	return []string{
		"/v1/conversations/" + id,
		"/v1/conversations/" + id + "/messages",
		"/v1/conversations/" + id + "/messages?before=2&limit=1",
		"/v1/conversations/" + id + "/messages/1/versions",
		"/v1/conversations/" + id + "/receipts",
	}
}

func TestAccess(t *testing.T) {
	f := newFixture(t)
	f.conversation(gid("club"), "group", "Club", "alice", "bob", "carol")
	f.timeline(gid("club"), 1, 3, "alice", nil)
	f.remove(gid("club"), "carol", 4)

	for _, path := range conversationRoutes(gid("club")) {
		if code, body := f.get("alice", path); code != http.StatusOK {
			t.Errorf("member: GET %s: %d %s", path, code, body)
		}
	}
	for _, path := range conversationRoutes(gid("club")) {
		f.wantError(f.token("mallory"), path, http.StatusForbidden, "NOT_MEMBER")
		f.wantError(f.token("carol"), path, http.StatusForbidden, "NOT_MEMBER") // removed
	}
	// A conversation that does not exist looks the same as one the caller is
	// not in.
	for _, path := range conversationRoutes(gid("nope")) {
		f.wantError(f.token("alice"), path, http.StatusForbidden, "NOT_MEMBER")
	}
	var p inboxPage
	f.getJSON("carol", "/v1/inbox", &p)
	if len(p.Conversations) != 0 {
		t.Errorf("removed member's inbox %+v", p)
	}

	t.Run("Unauthenticated", func(t *testing.T) {
		other := make([]byte, 32)
		_, _ = rand.Read(other)
		forged, _ := mustIssuer(t, token.Config{HMACSecret: other, Issuer: "parley-test", Audience: "parley"}).Issue("alice", "", time.Hour)
		wrongAud, _ := mustIssuer(t, token.Config{HMACSecret: f.authCfg.HMACSecret, Issuer: "parley-test", Audience: "elsewhere"}).Issue("alice", "", time.Hour)
		expired, _ := f.issuer.Issue("alice", "", -time.Hour)
		paths := append(conversationRoutes(gid("club")), "/v1/inbox", "/v1/unread")
		for _, tok := range []string{"", "not-a-jwt", forged, wrongAud, expired} {
			for _, path := range paths {
				f.wantError(tok, path, http.StatusUnauthorized, "UNAUTHENTICATED")
			}
		}
		// A device claim is optional for query.
		tok, _ := f.issuer.Issue("alice", "", time.Hour)
		if code, body := f.getWithToken(tok, "/v1/unread"); code != http.StatusOK {
			t.Errorf("token without device: %d %s", code, body)
		}
	})

	t.Run("Routing", func(t *testing.T) {
		f.wantError("", "/v1/nothing", http.StatusNotFound, "NOT_FOUND")
		req := httptest.NewRequest(http.MethodPost, "/v1/inbox", nil)
		req.Header.Set("Authorization", "Bearer "+f.token("alice"))
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		var e errorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusMethodNotAllowed || e.Error.Code != "UNSUPPORTED" || rec.Header().Get("Allow") == "" {
			t.Errorf("POST /v1/inbox: %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("HealthAndMetrics", func(t *testing.T) {
		if code, body := f.get("", "/healthz"); code != http.StatusOK || !bytes.Contains(body, []byte(`"ok"`)) {
			t.Errorf("healthz: %d %s", code, body)
		}
		code, body := f.get("", "/metrics")
		for _, want := range []string{
			`parley_query_requests_total{route="conversation",status="403"}`,
			`parley_query_requests_total{route="inbox",status="200"}`,
			`parley_query_requests_total{route="inbox",status="405"}`,
			`parley_query_request_duration_seconds_bucket{route="messages",status="200"`,
			`parley_query_requests_total{route="versions",status="200"}`,
			`parley_query_requests_total{route="versions",status="403"}`,
		} {
			if code != http.StatusOK || !bytes.Contains(body, []byte(want)) {
				t.Errorf("metrics (%d) lack %s", code, want)
			}
		}
	})

	t.Run("Serve", func(t *testing.T) {
		ln := testenv.Listen(t)
		addr := ln.Addr().String()
		srv, err := New(Config{Addr: addr, Hosts: f.cass.Hosts, Keyspace: f.cass.Keyspace, Auth: f.authCfg, Logger: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		// Run listens on Addr itself: ln holds it, so Run fails before it
		// serves (the canceled context would end a Run that got further).
		stopped, stop := context.WithCancel(context.Background())
		stop()
		if err := srv.Run(stopped); err == nil || !strings.Contains(err.Error(), "listen "+addr) {
			t.Fatalf("Run on an address in use: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		// ln listens already: the request waits in its backlog until Serve accepts it.
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("healthz over TCP: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz over TCP: %s", resp.Status)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve after cancel: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Serve did not stop after cancel")
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatal("still listening after Serve returned")
		}
	})

	t.Run("Unavailable", func(t *testing.T) {
		// A failing Cassandra read is UNAVAILABLE (retryable), not INTERNAL.
		f.exec("DROP TABLE inbox")
		f.wantError(f.token("alice"), "/v1/inbox", http.StatusServiceUnavailable, "UNAVAILABLE")
		f.wantError(f.token("alice"), "/v1/unread", http.StatusServiceUnavailable, "UNAVAILABLE")
	})
}

func TestConversation(t *testing.T) {
	f := newFixture(t)
	f.conversation(gid("team"), "group", "Team", "alice", "bob", "carol")
	f.timeline(gid("team"), 1, 12, "bob", nil)
	f.marks(gid("team"), "alice", 10, 12)
	f.marks(gid("team"), "bob", 12, 12)
	f.remove(gid("team"), "carol", 13)

	var c conversationView
	f.getJSON("bob", "/v1/conversations/"+gid("team"), &c)
	want := conversationView{
		ConversationID: gid("team"), Kind: "group", Title: "Team", CreatorUserID: "alice", CreatedAt: t0,
		LastSeq: 12, Version: 13, LastActivity: t0.Add(12 * time.Second), Preview: &preview{Seq: 12, Sender: "bob", Text: "m12"},
		// No owner_user_id in these rows (as projected before owners
		// were): the member whose role says so; no settings: the defaults.
		OwnerUserID: "alice",
		Settings:    &groupSettings{WhoMayAdd: "members", WhoMayMentionAll: "members", WhoMayPin: "members", HistoryVisibility: "all"},
		Members: []memberItem{
			{UserID: "alice", Role: "owner", ReadSeq: 10, DeliveredSeq: 12},
			{UserID: "bob", Role: "member", ReadSeq: 12, DeliveredSeq: 12},
		},
	}
	if g, w := jsonOf(t, c), jsonOf(t, want); g != w {
		t.Errorf("conversation\n got %s\nwant %s", g, w)
	}

	var r receiptsView
	f.getJSON("alice", "/v1/conversations/"+gid("team")+"/receipts", &r)
	wantR := receiptsView{ConversationID: gid("team"), Receipts: []receiptItem{
		{UserID: "alice", ReadSeq: 10, DeliveredSeq: 12}, {UserID: "bob", ReadSeq: 12, DeliveredSeq: 12}}}
	if g, w := jsonOf(t, r), jsonOf(t, wantR); g != w {
		t.Errorf("receipts\n got %s\nwant %s", g, w)
	}

	// Percent-encoded ids (clients may escape the ':') name the same
	// conversation.
	if code, body := f.get("alice", "/v1/conversations/"+strings.Replace(gid("team"), ":", "%3A", 1)+"/receipts"); code != http.StatusOK || !strings.Contains(string(body), `"`+gid("team")+`"`) {
		t.Errorf("escaped id: %d %s", code, body)
	}

	// A member whose conversation row the projector has not written yet
	// learns that it is missing; others still only see NOT_MEMBER.
	f.exec(`INSERT INTO members (conversation_id, user_id, role, joined_seq, read_seq, delivered_seq, removed) VALUES (?, 'alice', 'member', 0, 0, 0, false)`, gid("half"))
	f.wantError(f.token("alice"), "/v1/conversations/"+gid("half"), http.StatusNotFound, "NOT_FOUND")
	f.wantError(f.token("bob"), "/v1/conversations/"+gid("half"), http.StatusForbidden, "NOT_MEMBER")
	var p messagePage
	f.getJSON("alice", "/v1/conversations/"+gid("half")+"/messages", &p)
	if len(p.Messages) != 0 || p.HasMore || string(mustJSON(t, p.Messages)) != "[]" {
		t.Errorf("messages of an unprojected conversation: %+v", p)
	}
}

func mustIssuer(t *testing.T, c token.Config) *token.DevIssuer {
	t.Helper()
	i, err := token.NewDevIssuer(c)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonOf(t *testing.T, v any) string { return string(mustJSON(t, v)) }

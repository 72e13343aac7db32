package query

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLimiters: a user's burst, then refusals with the wait, refilled at
// the rate; users apart; a negative rate is no limit.
func TestLimiters(t *testing.T) {
	l := newLimiters(2, 3)
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if ok, _ := l.allow("alice", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("alice", now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("the 4th at once: %v, wait %v; want refused, about 500 ms", ok, wait)
	}
	if retryAfter(wait) != "1" {
		t.Errorf("Retry-After %q, want 1", retryAfter(wait))
	}
	if ok, _ := l.allow("bob", now); !ok {
		t.Error("bob refused for alice's requests")
	}
	if ok, _ := l.allow("alice", now.Add(500*time.Millisecond)); !ok {
		t.Error("alice refused after a token came back")
	}
	if ok, _ := l.allow("alice", now.Add(500*time.Millisecond)); ok {
		t.Error("alice allowed two requests on one refilled token")
	}
	if off := newLimiters(-1, 1); off != nil {
		t.Error("a negative rate made a limiter")
	} else if ok, _ := off.allow("alice", now); !ok {
		t.Error("no limiter refused")
	}
}

// TestRateLimit: over the per-user bucket, query answers 429 RATE_LIMITED
// with Retry-After, before reading anything; other users go on.
func TestRateLimit(t *testing.T) {
	f := newFixtureWith(t, Config{RatePerSecond: 0.001, Burst: 2})
	for range 2 {
		if code, body := f.get("alice", "/v1/inbox"); code != 200 {
			t.Fatalf("within the burst: %d %s", code, body)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/inbox", nil)
	req.Header.Set("Authorization", "Bearer "+f.token("alice"))
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), codeRateLimited) || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("over the burst: %d %s Retry-After %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	f.wantError(f.token("alice"), "/v1/unread", http.StatusTooManyRequests, codeRateLimited)
	if code, body := f.get("bob", "/v1/inbox"); code != 200 {
		t.Errorf("bob: %d %s", code, body)
	}
}

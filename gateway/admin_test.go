package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// testAdminSecret is a fresh random secret (never a constant in the repo).
func testAdminSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// adminRoutes are the routes of a never-started gateway with keys.
func adminRoutes(t *testing.T, keys AdminKeys) *router {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{AdminKeys: keys, Limits: DefaultLimits}, log: slog.New(slog.DiscardHandler), gatherer: reg, metrics: m}
	return s.routes()
}

func adminCall(t *testing.T, mux *router, method, path, auth, body string, header ...string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	mux.mux.ServeHTTP(rec, req)
	var e struct{ Code, Message string }
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code, e.Code, e.Message
}

// TestAdminKeysFile: the key file is read and checked, every bad key named.
func TestAdminKeysFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "keys.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := HashAdminSecret(testAdminSecret(t))
	k, err := LoadAdminKeys(write(`{"keys":[{"id":"ops","sha256":"` + hash + `","scopes":["users:ban","export"],"actAs":["*"]}]}`))
	if err != nil || len(k.Keys) != 1 || k.Keys[0].ID != "ops" {
		t.Fatalf("a good file: %v %+v", err, k)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"unknown field", `{"keys":[{"id":"ops","sha256":"` + hash + `","scopes":["export"],"secret":"x"}]}`, "unknown field"},
		{"a dot in the id", `{"keys":[{"id":"o.ps","sha256":"` + hash + `","scopes":["export"]}]}`, "without spaces, control characters or '.'"},
		{"a bad hash", `{"keys":[{"id":"ops","sha256":"abc","scopes":["export"]}]}`, "64 lowercase hex"},
		{"an unknown scope", `{"keys":[{"id":"ops","sha256":"` + hash + `","scopes":["root"]}]}`, `unknown scope "root"`},
		{"no scopes", `{"keys":[{"id":"ops","sha256":"` + hash + `","scopes":[]}]}`, "no scopes"},
		{"twice", `{"keys":[{"id":"ops","sha256":"` + hash + `","scopes":["export"]},{"id":"ops","sha256":"` + hash + `","scopes":["export"]}]}`, "listed twice"},
		{"a bad user", `{"keys":[{"id":"ops","sha256":"` + hash + `","scopes":["export"],"actAs":["a b"]}]}`, "no user id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadAdminKeys(write(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadAdminKeys(filepath.Join(dir, "none.json")); err == nil {
		t.Fatal("a missing file loads")
	}
}

// TestAdminAuth: the key and its scopes are checked before anything else,
// with the gateway's error JSON; bad input is refused with its code before
// anything is appended.
func TestAdminAuth(t *testing.T) {
	secret, other := testAdminSecret(t), testAdminSecret(t)
	mux := adminRoutes(t, AdminKeys{Keys: []AdminKey{
		{ID: "ops", SHA256: HashAdminSecret(secret), Scopes: Scopes, ActAs: []string{"bot"}},
		{ID: "reader", SHA256: HashAdminSecret(other), Scopes: []string{ScopeConversationsRead}},
	}})
	ops, reader := "Bearer ops."+secret, "bearer reader."+other
	g := "/v1/admin/conversations/g:" + strings.Repeat("0", 32)
	for _, tc := range []struct {
		name, method, path, auth, body string
		header                         []string
		status                         int
		code, msg                      string
	}{
		{"no key", "POST", g + "/messages", "", `{}`, nil, 401, "ERROR_CODE_UNAUTHENTICATED", "admin API key is required"},
		{"a user's JWT", "POST", g + "/messages", "Bearer eyJhbGciOi.eyJzdWIi.sig", `{}`, nil, 401, "ERROR_CODE_UNAUTHENTICATED", ""},
		{"a wrong secret", "POST", g + "/messages", "Bearer ops." + other, `{}`, nil, 401, "ERROR_CODE_UNAUTHENTICATED", ""},
		{"an unknown key", "POST", g + "/messages", "Bearer nobody." + secret, `{}`, nil, 401, "ERROR_CODE_UNAUTHENTICATED", ""},
		{"no secret", "POST", g + "/messages", "Bearer ops", `{}`, nil, 401, "ERROR_CODE_UNAUTHENTICATED", ""},
		{"a key without the scope", "POST", g + "/messages", reader, `{}`, nil, 403, "ERROR_CODE_PERMISSION_DENIED", "lacks the scope messages:write"},
		{"ban without the scope", "PUT", "/v1/admin/users/bob/ban", reader, `{}`, nil, 403, "ERROR_CODE_PERMISSION_DENIED", "users:ban"},
		{"export without the scope", "GET", g + "/export", reader, ``, nil, 403, "ERROR_CODE_PERMISSION_DENIED", "export"},
		{"acting as a user not listed", "POST", g + "/messages", ops, `{"asUserId":"alice","text":"hi"}`, nil, 403, "ERROR_CODE_PERMISSION_DENIED", "may not act as"},
		{"an unknown field", "POST", g + "/messages", ops, `{"asUserId":"bot","txt":"hi"}`, nil, 400, "ERROR_CODE_INVALID_ARGUMENT", "unknown field"},
		{"not JSON", "POST", "/v1/admin/conversations", ops, `hi`, nil, 400, "ERROR_CODE_INVALID_ARGUMENT", "documented JSON"},
		{"a bad conversation id", "POST", "/v1/admin/conversations/x/messages", ops, `{}`, nil, 400, "ERROR_CODE_INVALID_ID", ""},
		{"a bad user id", "PUT", "/v1/admin/users/a%20b/ban", ops, `{}`, nil, 400, "ERROR_CODE_INVALID_ID", ""},
		{"a bad asUserId", "POST", g + "/messages", ops, `{"asUserId":"","text":"hi"}`, nil, 400, "ERROR_CODE_INVALID_ID", ""},
		{"a bad idempotency key", "POST", g + "/messages", ops, `{"asUserId":"bot","text":"hi"}`, []string{"Idempotency-Key", "two words"}, 400, "ERROR_CODE_INVALID_ARGUMENT", "Idempotency-Key"},
		{"a kind unknown", "POST", "/v1/admin/conversations", ops, `{"asUserId":"bot","kind":"channel"}`, nil, 400, "ERROR_CODE_INVALID_ARGUMENT", "kind"},
		{"a direct conversation with two peers", "POST", "/v1/admin/conversations", ops, `{"asUserId":"bot","kind":"direct","memberUserIds":["a","b"]}`, nil, 400, "ERROR_CODE_INVALID_ARGUMENT", "exactly one"},
		{"a bad member id", "POST", "/v1/admin/conversations", ops, `{"asUserId":"bot","kind":"group","memberUserIds":["a b"]}`, nil, 400, "ERROR_CODE_INVALID_ID", "memberUserIds[0]"},
		{"no members to add", "POST", g + "/members", ops, `{"asUserId":"bot","userIds":[]}`, nil, 400, "ERROR_CODE_INVALID_ARGUMENT", "nobody"},
		{"a text too large", "POST", g + "/messages", ops, `{"asUserId":"bot","text":"` + strings.Repeat("x", DefaultLimits.MaxMessageBytes+1) + `"}`, nil, 413, "ERROR_CODE_MESSAGE_TOO_LARGE", ""},
		{"a body too large", "POST", g + "/messages", ops, `{"asUserId":"bot","text":"` + strings.Repeat("x", maxAdminBodyBytes) + `"}`, nil, 413, "ERROR_CODE_FRAME_TOO_LARGE", ""},
		{"a role unknown", "PUT", g + "/members/bob/role", ops, `{"asUserId":"bot","role":"owner"}`, nil, 400, "ERROR_CODE_INVALID_ARGUMENT", "role"},
		{"a removal by nobody", "DELETE", g + "/members/bob", ops, ``, nil, 400, "ERROR_CODE_INVALID_ID", "asUserId"},
		{"a removal by a user not listed", "DELETE", g + "/members/bob?asUserId=alice", ops, ``, nil, 403, "ERROR_CODE_PERMISSION_DENIED", "may not act as"},
		{"listing without views", "GET", "/v1/admin/users/bob/conversations", reader, ``, nil, 503, "ERROR_CODE_UNAVAILABLE", "views"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := adminCall(t, mux, tc.method, tc.path, tc.auth, tc.body, tc.header...)
			if status != tc.status || code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("%d %s %q, want %d %s %q", status, code, msg, tc.status, tc.code, tc.msg)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, other) {
				t.Fatal("an answer repeats a secret")
			}
		})
	}
}

package system_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// adminKey is a fresh key id and secret, and its line of the key file.
func adminKey(t *testing.T, id string, scopes []string, actAs ...string) (string, gateway.AdminKey) {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	return id + "." + secret, gateway.AdminKey{ID: id, SHA256: gateway.HashAdminSecret(secret), Scopes: scopes, ActAs: actAs}
}

// adminResult is the admin API's answer to a write.
type adminResult struct {
	CommandID      string `json:"commandId"`
	ConversationID string `json:"conversationId"`
	Event          string `json:"event"`
	Seq            int64  `json:"seq"`
	Repeated       bool   `json:"repeated"`
	Code           string `json:"code"`
	Message        string `json:"message"`
}

// adminDo calls the admin API of gateway gw with key; idem is the
// Idempotency-Key ("" for none).
func adminDo(t *testing.T, sys *system.System, gw int, key, method, path, idem string, body any) (int, adminResult, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, sys.GatewayURLs[gw]+path, r)
	req.Header.Set("Authorization", "Bearer "+key)
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out adminResult
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, raw
}

// TestE2EAdminAPI: a service creates a group as its bot, adds a member and
// posts as the bot; retries with the same Idempotency-Key return the first
// result and change nothing; the bot makes the member an admin and removes
// her; every event names the key as actor_service; a key without a scope,
// or acting as a user not listed, is refused 403 with the gateway's error
// JSON, and bad input 400 with its code; a ban closes the banned user's
// open WebSocket with 4003, its tokens are
// refused (by the gateways and by query), and its next command is refused
// USER_BANNED by the decider;
// the user's conversations are listed from the views; the export holds
// the conversation's events; after the unban the user sends again; and
// the views rebuilt from the log equal the live ones.
func TestE2EAdminAPI(t *testing.T) {
	t.Parallel()
	ops, opsKey := adminKey(t, "ops", gateway.Scopes, "helpdesk-bot")
	reader, readerKey := adminKey(t, "reader", []string{gateway.ScopeConversationsRead})
	asBob, asBobKey := adminKey(t, "bob-relay", []string{gateway.ScopeMessagesWrite}, "bob")
	sys, live := startWith(t, system.Options{Gateways: 2,
		GatewayAdminKeys: gateway.AdminKeys{Keys: []gateway.AdminKey{opsKey, readerKey, asBobKey}}})
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")

	// Create a group as the bot, retried with the same key.
	create := map[string]any{"asUserId": "helpdesk-bot", "kind": "group", "title": "Incident 4711", "memberUserIds": []string{"alice", "bob"}}
	status, created, raw := adminDo(t, sys, 0, ops, "POST", "/v1/admin/conversations", "create-4711", create)
	if status != http.StatusCreated || created.Event != schemas.TypeConversationCreated || !strings.HasPrefix(created.ConversationID, "g:") {
		t.Fatalf("create: %d %s", status, raw)
	}
	g := created.ConversationID
	status, again, raw := adminDo(t, sys, 1, ops, "POST", "/v1/admin/conversations", "create-4711", create)
	if status != http.StatusOK || !again.Repeated || again.ConversationID != g {
		t.Fatalf("create again: %d %s", status, raw)
	}
	ev := alice.WaitEvent("the ConversationCreated", func(e *pb.Event) bool {
		return e.GetConversationId() == g && e.GetConversationCreated() != nil
	})
	if ev.GetActorUserId() != "helpdesk-bot" || ev.GetActorService() != "ops" {
		t.Fatalf("ConversationCreated by %q service %q", ev.GetActorUserId(), ev.GetActorService())
	}

	// Add carol, post as the bot; a retried post is the same message.
	status, added, raw := adminDo(t, sys, 0, ops, "POST", "/v1/admin/conversations/"+g+"/members", "add-carol",
		map[string]any{"asUserId": "helpdesk-bot", "userIds": []string{"carol"}})
	if status != http.StatusOK || added.Event != schemas.TypeMembersAdded || added.Seq != 1 {
		t.Fatalf("add: %d %s", status, raw)
	}
	post := map[string]any{"asUserId": "helpdesk-bot", "text": "Incident 4711 is mitigated."}
	status, posted, raw := adminDo(t, sys, 0, ops, "POST", "/v1/admin/conversations/"+g+"/messages", "post-1", post)
	if status != http.StatusCreated || posted.Event != schemas.TypeMessageSent || posted.Seq != 2 {
		t.Fatalf("post: %d %s", status, raw)
	}
	status, reposted, raw := adminDo(t, sys, 1, ops, "POST", "/v1/admin/conversations/"+g+"/messages", "post-1", post)
	if status != http.StatusOK || !reposted.Repeated || reposted.Seq != 2 {
		t.Fatalf("post again: %d %s", status, raw)
	}
	msg := bob.WaitEvent("the bot's message", func(e *pb.Event) bool { return e.GetConversationId() == g && e.GetMessageSent() != nil })
	if msg.GetActorUserId() != "helpdesk-bot" || msg.GetActorService() != "ops" || msg.GetMessageSent().GetText() != "Incident 4711 is mitigated." ||
		msg.GetSeq() != 2 {
		t.Fatalf("bob got %v", msg)
	}

	// Make carol an admin, then remove her, as the bot (the owner).
	status, role, raw := adminDo(t, sys, 1, ops, "PUT", "/v1/admin/conversations/"+g+"/members/carol/role", "carol-admin",
		map[string]any{"asUserId": "helpdesk-bot", "role": "admin"})
	if status != http.StatusOK || role.Event != schemas.TypeMemberRoleChanged {
		t.Fatalf("role: %d %s", status, raw)
	}
	status, removed, raw := adminDo(t, sys, 0, ops, "DELETE", "/v1/admin/conversations/"+g+"/members/carol?asUserId=helpdesk-bot", "carol-out", nil)
	if status != http.StatusOK || removed.Event != schemas.TypeMemberRemoved || removed.Seq != 3 {
		t.Fatalf("remove: %d %s", status, raw)
	}
	alice.WaitEvent("carol's removal", func(e *pb.Event) bool {
		return e.GetConversationId() == g && e.GetMemberRemoved().GetUserId() == "carol" && e.GetActorService() == "ops"
	})

	// Scopes, acting as, bad input.
	for _, tc := range []struct {
		name, key, method, path string
		body                    any
		status                  int
		code, msg               string
	}{
		{"a key without messages:write", reader, "POST", "/v1/admin/conversations/" + g + "/messages", post, 403, "ERROR_CODE_PERMISSION_DENIED", "lacks the scope messages:write"},
		{"a key without users:ban", reader, "PUT", "/v1/admin/users/bob/ban", map[string]any{}, 403, "ERROR_CODE_PERMISSION_DENIED", "users:ban"},
		{"a key without export", asBob, "GET", "/v1/admin/conversations/" + g + "/export", nil, 403, "ERROR_CODE_PERMISSION_DENIED", "export"},
		{"acting as a user not listed", ops, "POST", "/v1/admin/conversations/" + g + "/messages", map[string]any{"asUserId": "alice", "text": "x"}, 403, "ERROR_CODE_PERMISSION_DENIED", "may not act as"},
		{"a wrong secret", "ops.not-the-secret", "POST", "/v1/admin/conversations", create, 401, "ERROR_CODE_UNAUTHENTICATED", ""},
		{"an unknown field", ops, "POST", "/v1/admin/conversations/" + g + "/messages", `{"asUserId":"helpdesk-bot","txt":"x"}`, 400, "ERROR_CODE_INVALID_ARGUMENT", "unknown field"},
		{"a bad conversation id", ops, "POST", "/v1/admin/conversations/g:nope/messages", post, 400, "ERROR_CODE_INVALID_ID", ""},
		{"a ban's end in the past", ops, "PUT", "/v1/admin/users/bob/ban", map[string]any{"until": "2001-01-01T00:00:00Z"}, 400, "ERROR_CODE_INVALID_ARGUMENT", "until"},
		{"a role unknown", ops, "PUT", "/v1/admin/conversations/" + g + "/members/bob/role", map[string]any{"asUserId": "helpdesk-bot", "role": "king"}, 400, "ERROR_CODE_INVALID_ARGUMENT", "role"},
		{"the role of no member", ops, "PUT", "/v1/admin/conversations/" + g + "/members/dave/role", map[string]any{"asUserId": "helpdesk-bot", "role": "admin"}, 404, "ERROR_CODE_NOT_FOUND", "dave"},
		{"the bot in a group it is not in", ops, "POST", "/v1/admin/conversations/g:" + strings.Repeat("e", 32) + "/messages", post, 403, "ERROR_CODE_NOT_MEMBER", ""},
	} {
		status, got, raw := adminDo(t, sys, 0, tc.key, tc.method, tc.path, "", tc.body)
		if status != tc.status || got.Code != tc.code || !strings.Contains(got.Message, tc.msg) {
			t.Errorf("%s: %d %s, want %d %s %q", tc.name, status, raw, tc.status, tc.code, tc.msg)
		}
	}

	// Ban bob: his open session closes with 4003, his token is refused,
	// and a command of his appended now is refused by the decider.
	status, banned, raw := adminDo(t, sys, 0, ops, "PUT", "/v1/admin/users/bob/ban", "ban-bob", map[string]any{"reason": "spam"})
	if status != http.StatusOK || banned.Event != schemas.TypeUserBanned || banned.ConversationID != schemas.UserStreamID("bob") {
		t.Fatalf("ban: %d %s", status, raw)
	}
	ce := bob.WaitClosed()
	if ce.Code != gateway.CloseBanned || !strings.Contains(ce.Text, "spam") {
		t.Fatalf("bob's session closed with %d %q, want %d", ce.Code, ce.Text, gateway.CloseBanned)
	}
	if status, _, raw := adminDo(t, sys, 1, ops, "PUT", "/v1/admin/users/bob/ban", "ban-bob", map[string]any{"reason": "spam"}); status != http.StatusOK ||
		!strings.Contains(string(raw), `"repeated":true`) {
		t.Fatalf("ban again: %d %s", status, raw)
	}
	tok, err := sys.Issuer.Issue("bob", "laptop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for gw := range 2 {
		testenv.Eventually(t, time.Minute, func() string {
			req, _ := http.NewRequest("GET", sys.GatewayURLs[gw]+"/v1/ws", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "ERROR_CODE_USER_BANNED") {
				return fmt.Sprintf("gateway %d answered bob's token %d %s", gw, resp.StatusCode, b)
			}
			return ""
		})
	}
	// Query refuses bob's token too, once the bans view has the ban.
	testenv.Eventually(t, time.Minute, func() string {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if status := api(t, sys, "bob", "/v1/inbox", &e); status != http.StatusForbidden || e.Error.Code != "USER_BANNED" {
			return fmt.Sprintf("query answered bob %d %s", status, e.Error.Code)
		}
		return ""
	})
	status, refused, raw := adminDo(t, sys, 0, asBob, "POST", "/v1/admin/conversations/"+g+"/messages", "", map[string]any{"asUserId": "bob", "text": "let me in"})
	if status != http.StatusForbidden || refused.Code != "ERROR_CODE_USER_BANNED" {
		t.Fatalf("bob's send after the ban: %d %s", status, raw)
	}

	// The views list alice's conversations.
	testenv.Eventually(t, time.Minute, func() string {
		var list struct {
			Conversations []struct {
				ConversationID string `json:"conversationId"`
				Kind, Title    string
			} `json:"conversations"`
		}
		status, _, raw := adminDo(t, sys, 1, reader, "GET", "/v1/admin/users/alice/conversations", "", nil)
		if err := json.Unmarshal(raw, &list); status != http.StatusOK || err != nil {
			return fmt.Sprintf("%d %s", status, raw)
		}
		for _, c := range list.Conversations {
			if c.ConversationID == g && c.Kind == "group" && c.Title == "Incident 4711" {
				return ""
			}
		}
		return "alice's conversations: " + string(raw)
	})

	// The export: the conversation's events in log order.
	status, _, raw = adminDo(t, sys, 0, ops, "GET", "/v1/admin/conversations/"+g+"/export", "", nil)
	if status != http.StatusOK {
		t.Fatalf("export: %d %s", status, raw)
	}
	var types []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Type  string `json:"type"`
			Event struct {
				ActorService    string `json:"actorService"`
				CommandRejected struct {
					Code string `json:"code"`
				} `json:"commandRejected"`
			} `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if line.Type == schemas.TypeCommandRejected {
			line.Type += ":" + line.Event.CommandRejected.Code
		}
		types = append(types, line.Type+"/"+line.Event.ActorService)
	}
	// The create and the post retried, the refused send of the banned bob;
	// every event names the key that caused it.
	want := "[ConversationCreated/ops CommandRejected:ERROR_CODE_CONVERSATION_EXISTS/ops MembersAdded/ops MessageSent/ops " +
		"MessageDeduplicated/ops MemberRoleChanged/ops MemberRemoved/ops CommandRejected:ERROR_CODE_NOT_FOUND/ops " +
		"CommandRejected:ERROR_CODE_USER_BANNED/bob-relay]"
	if got := fmt.Sprint(types); got != want {
		t.Fatalf("export\n got %s\nwant %s", got, want)
	}
	// Both reads are in the log: the export, and the listing of alice's
	// conversations, each by the key that read.
	readTopicUntil(t, sys.Topics.Events.Name, func(r *kgo.Record) bool {
		ev := &pb.Event{}
		return proto.Unmarshal(r.Value, ev) == nil && ev.GetConversationId() == g && ev.GetActorService() == "ops" &&
			ev.GetServiceReadRecorded().GetRoute() == "GET /v1/admin/conversations/{conversation}/export" && ev.GetVersion() == 0
	})
	readTopicUntil(t, sys.Topics.Events.Name, func(r *kgo.Record) bool {
		ev := &pb.Event{}
		return proto.Unmarshal(r.Value, ev) == nil && ev.GetConversationId() == schemas.UserStreamID("alice") && ev.GetActorService() == "reader" &&
			ev.GetServiceReadRecorded().GetRoute() == "GET /v1/admin/users/{user}/conversations"
	})
	if status, _, raw := adminDo(t, sys, 0, ops, "GET", "/v1/admin/conversations/g:"+strings.Repeat("f", 32)+"/export", "", nil); status != http.StatusNotFound ||
		!strings.Contains(string(raw), "ERROR_CODE_NOT_FOUND") {
		t.Fatalf("export of no conversation: %d %s", status, raw)
	}

	// Unban: bob's token works again and he sends.
	status, unbanned, raw := adminDo(t, sys, 0, ops, "DELETE", "/v1/admin/users/bob/ban", "unban-bob", nil)
	if status != http.StatusOK || unbanned.Event != schemas.TypeUserUnbanned {
		t.Fatalf("unban: %d %s", status, raw)
	}
	testenv.Eventually(t, time.Minute, func() string {
		status, got, raw := adminDo(t, sys, 1, asBob, "POST", "/v1/admin/conversations/"+g+"/messages", "bob-back", map[string]any{"asUserId": "bob", "text": "thanks"})
		if status/100 != 2 || got.Event != schemas.TypeMessageSent {
			return fmt.Sprintf("bob's send after the unban: %d %s", status, raw)
		}
		return ""
	})
	back := connect(t, sys, 1, "bob", "laptop")
	back.WaitWelcome()
	testenv.Eventually(t, time.Minute, func() string {
		if status := api(t, sys, "bob", "/v1/inbox", &inbox{}); status != http.StatusOK {
			return fmt.Sprintf("query answered bob %d after the unban", status)
		}
		return ""
	})

	assertRebuildEqual(t, sys, live, "bans")
}

package query

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fixture is a query Server on a fresh, migrated keyspace, with helpers
// that write view rows directly in the shape the projector writes them, or
// have the projector write them (project).
type fixture struct {
	t        *testing.T
	srv      *Server
	handler  http.Handler
	db       *gocql.Session
	issuer   *token.DevIssuer
	authCfg  token.Config
	cass     *testenv.CassandraEnv
	registry *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, Config{RatePerSecond: -1})
}

// newFixtureWith is newFixture with cfg's limits (RatePerSecond, Burst).
func newFixtureWith(t *testing.T, cfg Config) *fixture {
	t.Helper()
	c := testenv.MigratedCassandra(t)
	db := c.Session()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ac := token.Config{HMACSecret: secret, Issuer: "parley-test", Audience: "parley"}
	issuer, err := token.NewDevIssuer(ac)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Config{Hosts: c.Hosts, Keyspace: c.Keyspace, Auth: ac, Registerer: reg, Logger: testenv.Logger(t),
		RatePerSecond: cfg.RatePerSecond, Burst: cfg.Burst})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, handler: srv.Handler(), db: db, issuer: issuer, authCfg: ac, cass: c, registry: reg}
}

func (f *fixture) exec(stmt string, args ...any) {
	f.t.Helper()
	if err := f.db.Query(stmt, args...).Exec(); err != nil {
		f.t.Fatalf("%s: %v", stmt, err)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// conversation writes a conversation created at t0 with no timeline yet:
// the conversations row, and members and inbox rows of every user (the
// first is the creator; owner in groups).
func (f *fixture) conversation(id, kind, title string, users ...string) {
	f.t.Helper()
	// Version 1 is the creation; each timeline item below takes the next.
	f.exec(`INSERT INTO conversations (conversation_id, kind, title, creator_user_id, created_at, last_seq, last_message_seq, updated_at, last_version)
		VALUES (?, ?, ?, ?, ?, 0, 0, ?, 1)`, id, kind, title, users[0], t0, t0)
	for i, u := range users {
		role := "member"
		if i == 0 && kind == "group" {
			role = "owner"
		}
		f.exec(`INSERT INTO members (conversation_id, user_id, role, joined_seq, joined_at, read_seq, delivered_seq, removed)
			VALUES (?, ?, ?, 0, ?, 0, 0, false)`, id, u, role, t0)
		f.exec(`INSERT INTO inbox (user_id, conversation_id, kind, title, joined_seq, removed) VALUES (?, ?, ?, ?, 0, false)`,
			u, id, kind, title)
	}
}

// timeline writes seqs from..to of conversation id, messages from sender
// (plus a notice for every event in notices, by seq), each at t0 + seq
// seconds, and moves the conversations row to the last one.
func (f *fixture) timeline(id string, from, to int64, sender string, notices map[int64]*parleyv1.Event) {
	f.t.Helper()
	at := func(seq int64) time.Time { return t0.Add(time.Duration(seq) * time.Second) }
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, 32)
		lastMsg  int64
	)
	for seq := from; seq <= to; seq++ {
		e := notices[seq]
		if e == nil {
			lastMsg = seq
			e = &parleyv1.Event{Body: &parleyv1.Event_MessageSent{MessageSent: &parleyv1.MessageSent{
				ClientMsgId: "c" + itoa(seq), Text: "m" + itoa(seq), ContentType: "text/plain"}}}
			e.ActorUserId, e.ActorDeviceId = sender, sender+"-phone"
		}
		e.ConversationId, e.Seq, e.OccurredAt = id, seq, timestamppb.New(at(seq))
		blob, err := proto.Marshal(e)
		if err != nil {
			f.t.Fatal(err)
		}
		typ := schemas.EventType(e)
		ms := e.GetMessageSent()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := f.db.Query(`INSERT INTO messages (conversation_id, bucket, seq, type, actor_user_id, actor_device_id, command_id,
				client_msg_id, content_type, text, occurred_at, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, schemas.Bucket(seq), seq, typ, e.ActorUserId, e.ActorDeviceId, "cmd"+itoa(seq),
				ms.GetClientMsgId(), ms.GetContentType(), ms.GetText(), at(seq), blob).Exec()
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		f.t.Fatalf("insert messages: %v", firstErr)
	}
	f.exec(`UPDATE conversations SET last_seq = ?, updated_at = ?, last_version = ? WHERE conversation_id = ?`, to, at(to), to+1, id)
	if lastMsg > 0 {
		f.exec(`UPDATE conversations SET last_message_seq = ?, last_message_preview = ?, last_message_sender = ? WHERE conversation_id = ?`,
			lastMsg, "m"+itoa(lastMsg), sender, id)
	}
}

// project applies events of conversation id through the projector itself
// (projector.Apply, in order), so the rows are exactly the projector's, with
// its cell timestamps: what message actions need, since an edit or a recall
// only shows over a send written at the projector's clock (the rows
// timeline writes directly would shadow them). The events take versions
// 1, 2, … in order, and each happens at t0 + its version in seconds.
func (f *fixture) project(id string, events ...*parleyv1.Event) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, e := range events {
		e.ConversationId, e.Version = id, int64(i+1)
		e.OccurredAt = timestamppb.New(t0.Add(time.Duration(e.Version) * time.Second))
		raw, err := proto.Marshal(e)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := projector.Apply(ctx, f.db, f.cass.Keyspace, []byte(id), raw); err != nil {
			f.t.Fatalf("apply event %d (%s): %v", i+1, schemas.EventType(e), err)
		}
	}
}

// gid is a group conversation id of the documented form named after name
// (at most 16 bytes), so tests read well: "g:" + the hex of name padded with
// zeros to 32 digits. Ids sort as their names do.
func gid(name string) string {
	if len(name) > schemas.ConversationIDHexDigits/2 {
		panic("gid: name over 16 bytes: " + name)
	}
	h := hex.EncodeToString([]byte(name))
	return "g:" + h + strings.Repeat("0", schemas.ConversationIDHexDigits-len(h))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (f *fixture) marks(id, user string, read, delivered int64) {
	f.t.Helper()
	f.exec(`UPDATE members SET read_seq = ?, delivered_seq = ? WHERE conversation_id = ? AND user_id = ?`, read, delivered, id, user)
}

func (f *fixture) remove(id, user string, seq int64) {
	f.t.Helper()
	f.exec(`UPDATE members SET removed = true, removed_seq = ?, removed_reason = 'left' WHERE conversation_id = ? AND user_id = ?`, seq, id, user)
	f.exec(`UPDATE inbox SET removed = true, removed_seq = ? WHERE user_id = ? AND conversation_id = ?`, seq, user, id)
}

func (f *fixture) token(user string) string {
	f.t.Helper()
	tok, err := f.issuer.Issue(user, user+"-phone", time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// get requests path as user ("" sends no token) and returns status and body.
func (f *fixture) get(user, path string) (int, []byte) {
	f.t.Helper()
	return f.getWithToken(f.tokenOrEmpty(user), path)
}

func (f *fixture) tokenOrEmpty(user string) string {
	if user == "" {
		return ""
	}
	return f.token(user)
}

func (f *fixture) getWithToken(tok, path string) (int, []byte) {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, body
}

// getJSON requests path as user, expects 200 and decodes the body into v.
func (f *fixture) getJSON(user, path string, v any) {
	f.t.Helper()
	code, body := f.get(user, path)
	if code != http.StatusOK {
		f.t.Fatalf("GET %s as %s: %d %s", path, user, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		f.t.Fatalf("GET %s: decode %s: %v", path, body, err)
	}
}

// wantError checks that GET path as user fails with status and code in the
// one error shape.
func (f *fixture) wantError(tok, path string, status int, code string) {
	f.t.Helper()
	got, body := f.getWithToken(tok, path)
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		f.t.Fatalf("GET %s: error body %q: %v", path, body, err)
	}
	if got != status || e.Error.Code != code || e.Error.Message == "" {
		f.t.Fatalf("GET %s: got %d %s, want %d %s", path, got, body, status, code)
	}
}

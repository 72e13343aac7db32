package system_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/examples/echobot"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// subscriber is a webhook receiver over TLS: it checks every request's
// signature with the secret it is given, answers 500 to the first try of
// the first failFirst deliveries (and to every try when always500), and
// records what it saw.
type subscriber struct {
	srv       *httptest.Server
	mu        sync.Mutex
	secret    []byte
	failFirst int
	always500 bool
	tries     map[string]int // delivery id -> requests
	acked     map[string]int // delivery id -> 2xx answered
	bodies    map[string]notify.WebhookBody
	badSigs   []string
}

func startSubscriber(t *testing.T, failFirst int, always500 bool) *subscriber {
	s := &subscriber{failFirst: failFirst, always500: always500, tries: map[string]int{}, acked: map[string]int{},
		bodies: map[string]notify.WebhookBody{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *subscriber) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

func (s *subscriber) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := push.VerifySignature(s.secret, r.Header.Get("Parley-Signature"), body, time.Now(), push.DefaultSignatureTolerance); err != nil {
		s.badSigs = append(s.badSigs, err.Error())
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var b notify.WebhookBody
	if err := json.Unmarshal(body, &b); err != nil || b.DeliveryID == "" || r.Header.Get(notify.HeaderDeliveryID) != b.DeliveryID ||
		r.Header.Get(notify.HeaderEventType) != b.Type {
		s.badSigs = append(s.badSigs, fmt.Sprintf("body %q does not match its headers", body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	s.tries[b.DeliveryID]++
	failing := s.always500 || (s.tries[b.DeliveryID] == 1 && len(s.tries) <= s.failFirst)
	if failing {
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	s.acked[b.DeliveryID]++
	s.bodies[b.DeliveryID] = b
	w.WriteHeader(http.StatusNoContent)
}

func (s *subscriber) setSecret(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = []byte(secret)
}

// seen returns the acked deliveries' (conversation, version) of events of
// conv, the requests per delivery and the acks per delivery.
func (s *subscriber) seen() (events map[string]string, tries, acked map[string]int, bad []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events = map[string]string{}
	for id, b := range s.bodies {
		var ev struct {
			ConversationID string `json:"conversationId"`
			Version        string `json:"version"`
		}
		_ = json.Unmarshal(b.Event, &ev)
		events[id] = ev.ConversationID + "@" + ev.Version + " " + b.Type
	}
	return events, maps.Clone(s.tries), maps.Clone(s.acked), slices.Clone(s.badSigs)
}

type webhookCreated struct {
	adminResult
	WebhookID string `json:"webhookId"`
	Secret    string `json:"secret"`
}

// TestE2EWebhooks: a service subscribes two bots' webhooks through the
// admin API. The group they are in gets messages from alice; the echo bot
// (schemas/examples/echobot) answers each exactly once through the admin
// API although the dispatcher retries; the watching subscriber verifies
// every signature, answers 500 to the first tries of three deliveries
// (retried, then acked once each) and ends with every versioned event of
// the group acked exactly once. A re-send from the test's start brings the
// same deliveries (same ids) again. A receiver that always fails is
// dead-lettered after MaxRetries. Scopes, the owner check and bad input
// are refused with their codes; the webhooks view lists and forgets the
// webhooks and equals its rebuild from the log.
func TestE2EWebhooks(t *testing.T) {
	t.Parallel()
	signing := make([]byte, 32)
	if _, err := rand.Read(signing); err != nil {
		t.Fatal(err)
	}
	ops, opsKey := adminKey(t, "ops", gateway.Scopes, "watch-bot", "echo-bot", "dead-bot")
	reader, readerKey := adminKey(t, "reader", []string{gateway.ScopeConversationsRead, gateway.ScopeMessagesWrite}, "watch-bot")
	watch, dead := startSubscriber(t, 3, false), startSubscriber(t, 0, true)
	roots := watch.pool()
	roots.AddCert(dead.srv.Certificate())
	sys, live := startWith(t, system.Options{Gateways: 1,
		GatewayAdminKeys: gateway.AdminKeys{Keys: []gateway.AdminKey{opsKey, readerKey}},
		Webhooks: &notify.DispatcherConfig{SigningKey: signing, MaxRetries: 3, RetryInitial: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
			Poster: push.PosterConfig{AllowHTTP: true, AllowPrivate: true, RootCAs: roots}}})
	began := time.Now()

	// The echo bot listens on plain HTTP (allowed here); its webhook
	// secret comes from the admin API, like the others'.
	bot := &echobot.Bot{UserID: "echo-bot", AdminURL: sys.GatewayURLs[0], AdminKey: ops, Logger: testenv.Logger(t)}
	var botMu sync.Mutex
	botSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		botMu.Lock()
		b := *bot
		botMu.Unlock()
		b.ServeHTTP(w, r)
	}))
	t.Cleanup(botSrv.Close)

	createHook := func(key, user, idem string, body map[string]any) (int, webhookCreated, []byte) {
		status, _, raw := adminDo(t, sys, 0, key, "POST", "/v1/admin/users/"+user+"/webhooks", idem, body)
		var out webhookCreated
		_ = json.Unmarshal(raw, &out)
		return status, out, raw
	}
	// Refusals first: no scope, a user the key may not act as, bad input.
	if status, _, raw := createHook(reader, "watch-bot", "", map[string]any{"url": watch.srv.URL, "memberConversations": true}); status != http.StatusForbidden ||
		!strings.Contains(string(raw), "PERMISSION_DENIED") {
		t.Fatalf("create without the scope: %d %s", status, raw)
	}
	if status, _, raw := createHook(ops, "alice", "", map[string]any{"url": watch.srv.URL, "memberConversations": true}); status != http.StatusForbidden {
		t.Fatalf("create for a user the key may not act as: %d %s", status, raw)
	}
	for _, bad := range []map[string]any{
		{"url": "ftp://example.com/x", "memberConversations": true},
		{"url": watch.srv.URL},
		{"url": watch.srv.URL, "memberConversations": true, "eventTypes": []string{"NoSuchEvent"}},
	} {
		if status, _, raw := createHook(ops, "watch-bot", "", bad); status != http.StatusBadRequest || !strings.Contains(string(raw), "INVALID_ARGUMENT") {
			t.Fatalf("create %v: %d %s", bad, status, raw)
		}
	}

	// The webhooks; a retry with the same Idempotency-Key is the same.
	watchDef := map[string]any{"url": watch.srv.URL, "memberConversations": true}
	status, wh, raw := createHook(ops, "watch-bot", "watch-1", watchDef)
	if status != http.StatusCreated || wh.Event != schemas.TypeWebhookCreated || wh.Secret == "" {
		t.Fatalf("create the watch webhook: %d %s", status, raw)
	}
	if string(schemas.WebhookSecret(signing, "watch-bot", wh.WebhookID)) != wh.Secret {
		t.Fatal("the secret handed out is not the one the dispatcher signs with")
	}
	watch.setSecret(wh.Secret)
	// The decider answers the repeat NO_CHANGE: no view is read.
	if status, again, raw := createHook(ops, "watch-bot", "watch-1", watchDef); status != http.StatusOK || !again.Repeated ||
		again.WebhookID != wh.WebhookID || again.Secret != wh.Secret {
		t.Fatalf("create again: %d %s", status, raw)
	}
	// Another definition under the same id is a conflict.
	if status, _, raw := createHook(ops, "watch-bot", "watch-1", map[string]any{"url": watch.srv.URL, "conversationIds": []string{"g:" + strings.Repeat("0", 32)}}); status != http.StatusConflict ||
		!strings.Contains(string(raw), "WEBHOOK_EXISTS") {
		t.Fatalf("create another definition: %d %s", status, raw)
	}
	status, eh, raw := createHook(ops, "echo-bot", "", map[string]any{"url": botSrv.URL, "memberConversations": true,
		"eventTypes": []string{schemas.TypeMessageSent}})
	if status != http.StatusCreated {
		t.Fatalf("create the echo webhook: %d %s", status, raw)
	}
	botMu.Lock()
	bot.Secret = []byte(eh.Secret)
	botMu.Unlock()
	status, dh, raw := createHook(ops, "dead-bot", "", map[string]any{"url": dead.srv.URL, "memberConversations": true,
		"eventTypes": []string{schemas.TypeConversationCreated}})
	if status != http.StatusCreated {
		t.Fatalf("create the failing webhook: %d %s", status, raw)
	}
	dead.setSecret(dh.Secret)

	// The group, and alice's messages.
	alice := connect(t, sys, 0, "alice", "laptop")
	status, created, raw := adminDo(t, sys, 0, ops, "POST", "/v1/admin/conversations", "", map[string]any{"asUserId": "echo-bot",
		"kind": "group", "title": "Bots", "memberUserIds": []string{"alice", "watch-bot", "dead-bot"}})
	if status != http.StatusCreated {
		t.Fatalf("create the group: %d %s", status, raw)
	}
	g := created.ConversationID
	const n = 5
	for i := range n {
		accepted(t, alice.MustDo(g, send(fmt.Sprintf("m%d", i), fmt.Sprintf("hello %d", i))))
	}
	for i := range n {
		want := fmt.Sprintf("echo: hello %d", i)
		alice.WaitEvent(want, func(e *pb.Event) bool {
			return e.GetConversationId() == g && e.GetActorUserId() == "echo-bot" && e.GetMessageSent().GetText() == want
		})
	}

	// Every versioned event of the group, acked once each by the watcher.
	wantEvents := func() map[string]bool {
		want := map[string]bool{}
		for _, rec := range readTopicToEnd(t, sys.Topics.Events.Name) {
			ev := &pb.Event{}
			if proto.Unmarshal(rec.Value, ev) == nil && ev.GetConversationId() == g && ev.GetVersion() >= 1 {
				want[fmt.Sprintf("%s@%d %s", g, ev.GetVersion(), schemas.EventType(ev))] = true
			}
		}
		return want
	}
	var events map[string]string
	var tries, acked map[string]int
	testenv.Eventually(t, time.Minute, func() string {
		var bad []string
		events, tries, acked, bad = watch.seen()
		if len(bad) > 0 {
			t.Fatalf("the watcher refused requests: %q", bad)
		}
		want := wantEvents()
		got := map[string]bool{}
		for _, e := range events {
			got[e] = true
		}
		if len(want) < 2*n+1 || !mapsEqual(got, want) {
			return fmt.Sprintf("the watcher acked %d events %v, the log has %d: %v", len(got), got, len(want), want)
		}
		return ""
	})
	echoes := 0
	for _, e := range events {
		if strings.HasSuffix(e, " "+schemas.TypeMessageSent) {
			echoes++
		}
	}
	if echoes != 2*n {
		t.Fatalf("the watcher saw %d messages, want %d (alice's and the echoes, once each): %v", echoes, 2*n, events)
	}
	retried := 0
	for id, c := range acked {
		if c != 1 {
			t.Fatalf("delivery %s acked %d times", id, c)
		}
		if tries[id] > 1 {
			retried++
		}
	}
	if retried != 3 {
		t.Fatalf("%d deliveries were tried more than once, want the 3 the watcher failed: %v", retried, tries)
	}

	// A receiver that always fails: tried 1 + MaxRetries times, then the
	// delivery is in the dead-letter topic.
	var deadID string
	testenv.Eventually(t, time.Minute, func() string {
		_, tr, _, bad := dead.seen()
		if len(bad) > 0 {
			t.Fatalf("the failing receiver refused a signature: %q", bad)
		}
		for id, c := range tr {
			if c >= 4 {
				deadID = id
				return ""
			}
		}
		return fmt.Sprintf("the failing receiver's tries: %v", tr)
	})
	readTopicUntil(t, sys.Topics.DeadLetters.Name, func(r *kgo.Record) bool {
		dl := &pb.WebhookDelivery{}
		return proto.Unmarshal(r.Value, dl) == nil && dl.GetDeliveryId() == deadID && dl.GetWebhookId() == dh.WebhookID
	})
	if _, tr, _, _ := dead.seen(); tr[deadID] != 4 {
		t.Fatalf("the dead delivery was tried %d times, want 1 + MaxRetries = 4", tr[deadID])
	}

	// A re-send from the start: the same deliveries, with the same ids.
	d, err := notify.NewDispatcher(sys.WebhooksConfig())
	if err != nil {
		t.Fatal(err)
	}
	resent, err := d.Resend(t.Context(), "watch-bot", wh.WebhookID, notify.ResendFrom{Time: began})
	if err != nil || resent != len(acked) {
		t.Fatalf("resend: %d deliveries, %v; want %d", resent, err, len(acked))
	}
	testenv.Eventually(t, time.Minute, func() string {
		_, _, again, _ := watch.seen()
		for id := range acked {
			if again[id] != 2 {
				return fmt.Sprintf("delivery %s acked %d times after the re-send, want 2", id, again[id])
			}
		}
		if len(again) != len(acked) {
			return fmt.Sprintf("the re-send brought %d deliveries, want the %d of before", len(again), len(acked))
		}
		return ""
	})

	// The view lists the webhooks; a deletion (retried) removes them.
	listed := func(user string) []string {
		status, _, raw := adminDo(t, sys, 0, ops, "GET", "/v1/admin/users/"+user+"/webhooks", "", nil)
		var out struct {
			Webhooks []struct {
				WebhookID string `json:"webhookId"`
				URL       string `json:"url"`
			} `json:"webhooks"`
		}
		if status != http.StatusOK || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("list %s's webhooks: %d %s", user, status, raw)
		}
		var ids []string
		for _, w := range out.Webhooks {
			ids = append(ids, w.WebhookID+" "+w.URL)
		}
		return ids
	}
	testenv.Eventually(t, time.Minute, func() string {
		if got := listed("watch-bot"); !slices.Equal(got, []string{wh.WebhookID + " " + watch.srv.URL}) {
			return fmt.Sprintf("watch-bot's webhooks: %q", got)
		}
		return ""
	})
	for range 2 {
		if status, res, raw := adminDo(t, sys, 0, ops, "DELETE", "/v1/admin/users/dead-bot/webhooks/"+dh.WebhookID, "", nil); status != http.StatusOK ||
			res.Event != schemas.TypeWebhookDeleted {
			t.Fatalf("delete: %d %s", status, raw)
		}
	}
	testenv.Eventually(t, time.Minute, func() string {
		if got := listed("dead-bot"); len(got) != 0 {
			return fmt.Sprintf("dead-bot's webhooks after the deletion: %q", got)
		}
		return ""
	})
	assertRebuildEqual(t, sys, live, "webhooks")

	// A second dispatcher (its own groups) reports healthy once it runs:
	// connected, both handlers assigned, the webhooks read.
	cfg := sys.WebhooksConfig()
	cfg.Group += "-second"
	second, err := notify.NewDispatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range second.Checks() {
		if c.Fn(t.Context()) == nil {
			t.Fatalf("check %s passes before Run", c.Name)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- second.Run(ctx) }()
	testenv.Eventually(t, time.Minute, func() string {
		for _, c := range second.Checks() {
			if err := c.Fn(t.Context()); err != nil {
				return fmt.Sprintf("check %s: %v", c.Name, err)
			}
		}
		return ""
	})
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// readTopicToEnd reads topic from its start up to its last stable offsets
// as they are when it is called.
func readTopicToEnd(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	cl := testenv.Kafka(t).Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("%s: end offsets: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var recs []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: not read to its end in a minute (%d records)", topic, len(recs))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
		})
	}
	return recs
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
